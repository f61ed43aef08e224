#ifndef MPITRAIN_SWARM_EVENTS_H
#define MPITRAIN_SWARM_EVENTS_H
/* The lines a roster protocol (the swarm, elastic DiLoCo) has for the log
 * ("machine 4 joined at step 20"): kept until the step strategy prints
 * them between steps; the oldest go when more than EVENTS_KEPT wait. */
#include <stdarg.h>

enum { EVENTS_KEPT = 32, EVENT_LEN = 200 };

typedef struct {
    char lines[EVENTS_KEPT][EVENT_LEN];
    int head, tail;
} EventRing;

void events_vadd(EventRing *r, const char *fmt, va_list ap);
/* The oldest line not yet taken, or NULL. */
const char *events_next(EventRing *r);

#endif
