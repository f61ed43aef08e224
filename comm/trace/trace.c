#include "comm/trace/trace.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/fileio.h"
#include "comm/transport.h"
#define MAX_DEPTH 16
/* spans kept in memory before a spill: 64K x 88 B = 5.5 MB per rank;
 * MPITRAIN_TEST_TRACE_BUFFER=N makes tests spill every N spans */
#define BUFFER_SPANS (1u << 16)
typedef TraceSpan Span;

/* The one piece of process state besides MPI (and the transports' span
 * hook that points here): a tracer is a property of the process (like the
 * MPI world), and threading it through every kernel call would put a
 * parameter on every function for a debugging aid. */
static struct {
    Span *spans;
    size_t n, cap, flushed; /* in the buffer, its size; already in the spill file */
    double origin;         /* this rank's clock at rank 0's zero */
    size_t stack[MAX_DEPTH];
    int depth;
    FILE *spill;
    char spill_path[PATH_BUF];
    int failed;            /* a spill write failed: reported by trace_close */
} tr;

void trace_spill_path(const char *prefix, int rank, char *out, size_t n)
{
    snprintf(out, n, "%s.rank-%05d.part", prefix, rank);
}

/* The transports' finished operations (comm/transport.h's span hook). */
static void transport_span(const char *what, int p2p, double t0, double t1, double bytes)
{
    trace_record(what, p2p ? TR_P2P : TR_COMM, t0, t1, bytes);
}

int trace_enable(Group *world, const char *spill_prefix, Err *e)
{
    trace_disable();
    /* zero = rank 0's clock now, read on this rank's clock (+ its offset) */
    double offset = comm_clock_offset(world, 16), zero = comm_wtime();
    coll_bcast(world, &zero, sizeof zero, 0);
    tr.origin = zero + offset;
    int rank = group_rank(world);
    trace_spill_path(spill_prefix, rank, tr.spill_path, sizeof tr.spill_path);
    tr.spill = fopen(tr.spill_path, "wb");
    if (!tr.spill)
        return err_set(e, "--trace: %s: cannot create: %s", tr.spill_path, strerror(errno));
    TraceSpillHeader h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, TRACE_SPILL_MAGIC, 8);
    h.rank = (uint32_t)rank;
    snprintf(h.label, sizeof h.label, "rank %d", rank);
    const char *test = getenv("MPITRAIN_TEST_TRACE_BUFFER");
    tr.cap = test && atoi(test) >= 4 ? (size_t)atoi(test) : BUFFER_SPANS;
    tr.spans = calloc(tr.cap, sizeof *tr.spans);
    if (!tr.spans || fwrite(&h, sizeof h, 1, tr.spill) != 1) {
        trace_disable();
        return err_set(e, "--trace: out of memory or cannot write %s", tr.spill_path);
    }
    comm_set_span_hook(transport_span);
    return 0;
}

void trace_set_label(const char *label)
{
    if (!tr.spill) return;
    char l[TRACE_LABEL_LEN] = {0};
    snprintf(l, sizeof l, "%s", label);
    long here = ftell(tr.spill);
    if (fseek(tr.spill, (long)offsetof(TraceSpillHeader, label), SEEK_SET) == 0)
        tr.failed |= fwrite(l, sizeof l, 1, tr.spill) != 1;
    tr.failed |= fseek(tr.spill, here, SEEK_SET) != 0;
}

void trace_disable(void)
{
    comm_set_span_hook(NULL);
    if (tr.spill) {
        fclose(tr.spill);
        remove(tr.spill_path);
    }
    free(tr.spans);
    memset(&tr, 0, sizeof tr);
}

/* The spans before the oldest open one go to the spill file; an open span
 * stays (its end is written in place later) with everything after it. When
 * the oldest open span is the first, the buffer grows instead. */
static void spill(void)
{
    size_t keep = tr.n;
    for (int d = 0; d < tr.depth; d++)
        if (tr.stack[d] != (size_t)-1 && tr.stack[d] < keep) keep = tr.stack[d];
    if (keep == 0) {
        Span *more = realloc(tr.spans, 2 * tr.cap * sizeof *more);
        if (more) {
            tr.spans = more;
            tr.cap *= 2;
        }
        return;
    }
    tr.failed |= fwrite(tr.spans, sizeof *tr.spans, keep, tr.spill) != keep;
    memmove(tr.spans, tr.spans + keep, (tr.n - keep) * sizeof *tr.spans);
    for (int d = 0; d < tr.depth; d++)
        tr.stack[d] = tr.stack[d] == (size_t)-1 || tr.stack[d] < keep ? (size_t)-1
                                                                      : tr.stack[d] - keep;
    tr.flushed += keep;
    tr.n -= keep;
}

static Span *next_span(void)
{
    if (tr.n == tr.cap) spill();
    if (tr.n == tr.cap) return NULL; /* a buffer of open spans only: cannot happen */
    return &tr.spans[tr.n++];
}

static void begin(const char *name, TraceCat cat, int64_t arg)
{
    if (tr.depth >= MAX_DEPTH) return;
    Span *s = next_span();
    if (!s) {
        tr.stack[tr.depth++] = (size_t)-1;
        return;
    }
    snprintf(s->name, sizeof s->name, "%s", name);
    s->cat = cat;
    s->depth = tr.depth;
    s->t0 = comm_wtime() - tr.origin;
    s->t1 = s->t0;
    s->bytes = -1;
    s->arg = arg;
    tr.stack[tr.depth++] = (size_t)(s - tr.spans);
}

void trace_begin(const char *name, TraceCat cat)
{
    if (tr.spans) begin(name, cat, -1);
}

static void begin_v(TraceCat cat, int64_t arg, const char *fmt, va_list ap)
{
    char name[TRACE_NAME_LEN];
    vsnprintf(name, sizeof name, fmt, ap);
    begin(name, cat, arg);
}

void trace_begin_fmt(TraceCat cat, const char *fmt, ...)
{
    if (!tr.spans) return;
    va_list ap;
    va_start(ap, fmt);
    begin_v(cat, -1, fmt, ap);
    va_end(ap);
}

void trace_begin_arg(TraceCat cat, int64_t arg, const char *fmt, ...)
{
    if (!tr.spans) return;
    va_list ap;
    va_start(ap, fmt);
    begin_v(cat, arg, fmt, ap);
    va_end(ap);
}

void trace_end(void)
{
    if (!tr.spans || tr.depth == 0) return;
    size_t i = tr.stack[--tr.depth];
    if (i != (size_t)-1) tr.spans[i].t1 = comm_wtime() - tr.origin;
}

void trace_record(const char *name, TraceCat cat, double t0, double t1, double bytes)
{
    if (!tr.spans) return;
    Span *s = next_span();
    if (!s) return;
    snprintf(s->name, sizeof s->name, "%s", name);
    s->cat = cat;
    s->depth = tr.depth;
    s->t0 = t0 - tr.origin;
    s->t1 = t1 - tr.origin;
    s->bytes = bytes;
    s->arg = -1;
}

int trace_close(Err *e)
{
    if (!tr.spill) return 0;
    comm_set_span_hook(NULL);
    while (tr.depth > 0) trace_end(); /* close what is still open */
    tr.failed |= fwrite(tr.spans, sizeof *tr.spans, tr.n, tr.spill) != tr.n;
    tr.failed |= fclose(tr.spill) != 0;
    tr.spill = NULL;
    free(tr.spans);
    tr.spans = NULL;
    return tr.failed ? err_set(e, "--trace: writing %s failed (disk full?)", tr.spill_path) : 0;
}

const char *trace_cat_name(int c)
{
    static const char *names[] = {"compute", "comm", "p2p", "optimizer", "io", "step", "eval"};
    return c >= 0 && c < (int)(sizeof names / sizeof names[0]) ? names[c] : "other";
}
