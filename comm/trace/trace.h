#ifndef MPITRAIN_TRACE_H
#define MPITRAIN_TRACE_H
/* Trace spans for the timeline: (name, category, start, end, an argument)
 * recorded from the transports (every collective and p2p wait, with its
 * bytes, through comm/transport.h's span hook, which trace_enable installs)
 * and by the worker (steps, forward/backward per micro-batch,
 * optimizer, evaluation). Each rank buffers spans and spills the buffer to
 * its own file (<trace>.rank-NNNNN.part, beside the trace: a shared file
 * system, as for checkpoints) whenever it fills, so none is dropped however
 * long the run. Clocks are aligned to rank 0's by the best of several ping
 * rounds. Off (and free) unless enabled. */
#include <stddef.h>
#include <stdint.h>
#include "comm/mpi/comm.h"

typedef enum {
    TR_COMPUTE = 0, TR_COMM = 1, TR_P2P = 2, TR_OPT = 3, TR_IO = 4, TR_STEP = 5, TR_EVAL = 6
} TraceCat;

#define TRACE_NAME_LEN 40
#define TRACE_LABEL_LEN 96
typedef struct {
    char name[TRACE_NAME_LEN];
    int cat;
    int depth;
    double t0, t1;  /* seconds since rank 0's origin */
    double bytes;   /* comm spans: bytes this rank sent; else -1 */
    int64_t arg;    /* the micro-batch or step a span is about; -1 = none */
} TraceSpan;

/* Enables recording; collective. spill_prefix: this rank spills to
 * <prefix>.rank-NNNNN.part. */
int trace_enable(Group *world, const char *spill_prefix, Err *e);
/* What the timeline calls this rank's track ("rank 3: dp 1, tp 0, pp 1"). */
void trace_set_label(const char *label);
/* Begin/end a span; spans nest (a stack of depth 16). */
void trace_begin(const char *name, TraceCat cat);
void trace_begin_fmt(TraceCat cat, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A span about one micro-batch or step: arg goes into the span's args. */
void trace_begin_arg(TraceCat cat, int64_t arg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void trace_end(void);
/* A finished span with absolute comm_wtime() stamps and the bytes sent
 * (bytes < 0 = none); the transports' operations arrive here through the
 * span hook. */
void trace_record(const char *name, TraceCat cat, double t0, double t1, double bytes);
/* Closes open spans and writes the rest of the buffer to this rank's spill
 * file. Every rank calls it (the caller agrees on the verdict) before rank
 * 0 reads the files back. */
int trace_close(Err *e);
/* This rank's spill file of rank r (for the reader). */
void trace_spill_path(const char *prefix, int rank, char *out, size_t n);
const char *trace_cat_name(int cat);
void trace_disable(void);

/* A spill file: "MPTRACE2", u32 rank, the label, then TraceSpans to the end
 * (same build on every rank, so the same layout). */
#define TRACE_SPILL_MAGIC "MPTRACE2"
typedef struct {
    char magic[8];
    uint32_t rank;
    char label[TRACE_LABEL_LEN];
} TraceSpillHeader;

#endif
