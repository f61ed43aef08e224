#include "comm/transport.h"

#include <time.h>

double comm_wtime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Process state, like the tracer it points to: the transports report their
 * operations without knowing who listens, so comm/ needs no arrow to the
 * trace above it. */
static CommSpanHook span_hook;

void comm_set_span_hook(CommSpanHook hook) { span_hook = hook; }

void comm_span(const char *what, int p2p, double t0, double t1, double bytes)
{
    if (span_hook) span_hook(what, p2p, t0, t1, bytes);
}

void comm_account(CommStats *s, double bytes, double t0, const char *what)
{
    double t1 = comm_wtime();
    s->bytes_sent += bytes;
    s->exposed_s += t1 - t0;
    s->calls++;
    comm_span(what, 0, t0, t1, bytes);
}
