#ifndef MPITRAIN_TRACE_H
#define MPITRAIN_TRACE_H
/* Trace spans for the timeline: a fixed-size per-process buffer of
 * (name, category, start, end) filled by the comm layer (every collective
 * and p2p wait) and by the worker (forward/backward per micro-batch,
 * optimizer). Written at the end as Chrome trace-event JSON, one track per
 * rank, clocks aligned at a barrier. Off (and free) unless enabled. */
#include <stddef.h>
#include "comm/comm.h"

typedef enum { TR_COMPUTE = 0, TR_COMM = 1, TR_P2P = 2, TR_OPT = 3, TR_IO = 4 } TraceCat;

#define TRACE_NAME_LEN 40
typedef struct {
    char name[TRACE_NAME_LEN];
    int cat;
    int depth;
    double t0, t1; /* seconds since the aligned origin */
} TraceSpan;

/* Enables recording of up to max_spans spans; collective (barrier). */
int trace_enable(Group *world, size_t max_spans, Err *e);
/* Begin/end a span; spans nest (a stack of depth 16). name must outlive
 * the trace (string literals), or use trace_begin_fmt. */
void trace_begin(const char *name, TraceCat cat);
void trace_begin_fmt(TraceCat cat, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void trace_end(void);
/* A finished span with absolute comm_wtime() stamps (the comm layer's
 * collectives and waits). */
void trace_record(const char *name, TraceCat cat, double t0, double t1);
/* Collective: rank 0 receives every rank's spans back to back (*all,
 * malloc'd) and counts[r] (n entries, malloc'd). Others get NULLs. */
void trace_gather(Group *world, TraceSpan **all, size_t **counts);
const char *trace_cat_name(int cat);
void trace_disable(void);

#endif
