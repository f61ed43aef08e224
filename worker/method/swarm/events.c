#include "worker/method/swarm/events.h"

#include <stdio.h>

void events_vadd(EventRing *r, const char *fmt, va_list ap)
{
    vsnprintf(r->lines[r->tail], sizeof r->lines[0], fmt, ap);
    r->tail = (r->tail + 1) % EVENTS_KEPT;
    if (r->tail == r->head) r->head = (r->head + 1) % EVENTS_KEPT;
}

const char *events_next(EventRing *r)
{
    if (r->head == r->tail) return NULL;
    const char *s = r->lines[r->head];
    r->head = (r->head + 1) % EVENTS_KEPT;
    return s;
}
