#include "comm/trace.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define NAME_LEN TRACE_NAME_LEN
#define MAX_DEPTH 16
typedef TraceSpan Span;

/* The one piece of process state besides MPI: a tracer is a property of the
 * process (like the MPI world), and threading it through every kernel call
 * would put a parameter on every function for a debugging aid. */
static struct {
    Span *spans;
    size_t n, cap, dropped;
    double origin;
    size_t stack[MAX_DEPTH];
    int depth;
} tr;

int trace_enable(Group *world, size_t max_spans, Err *e)
{
    trace_disable();
    coll_barrier(world); /* untraced: the spans do not exist yet */
    tr.origin = comm_wtime(); /* everyone leaves the barrier together: a shared zero */
    tr.spans = calloc(max_spans, sizeof *tr.spans);
    if (!tr.spans) return err_set(e, "out of memory for %zu trace spans", max_spans);
    tr.cap = max_spans;
    return 0;
}


void trace_disable(void)
{
    free(tr.spans);
    memset(&tr, 0, sizeof tr);
}

static void begin(const char *name, TraceCat cat)
{
    if (tr.depth >= MAX_DEPTH) return;
    if (tr.n == tr.cap) {
        tr.dropped++;
        tr.stack[tr.depth++] = (size_t)-1;
        return;
    }
    Span *s = &tr.spans[tr.n];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->cat = cat;
    s->depth = tr.depth;
    s->t0 = comm_wtime() - tr.origin;
    s->t1 = s->t0;
    tr.stack[tr.depth++] = tr.n++;
}

void trace_begin(const char *name, TraceCat cat)
{
    if (tr.spans) begin(name, cat);
}

void trace_begin_fmt(TraceCat cat, const char *fmt, ...)
{
    if (!tr.spans) return;
    char name[NAME_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    begin(name, cat);
}

void trace_end(void)
{
    if (!tr.spans || tr.depth == 0) return;
    size_t i = tr.stack[--tr.depth];
    if (i != (size_t)-1) tr.spans[i].t1 = comm_wtime() - tr.origin;
}

void trace_record(const char *name, TraceCat cat, double t0, double t1)
{
    if (!tr.spans) return;
    if (tr.n == tr.cap) {
        tr.dropped++;
        return;
    }
    Span *s = &tr.spans[tr.n++];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->cat = cat;
    s->depth = tr.depth;
    s->t0 = t0 - tr.origin;
    s->t1 = t1 - tr.origin;
}

const char *trace_cat_name(int c)
{
    static const char *names[] = {"compute", "comm", "p2p", "optimizer", "io"};
    return c >= 0 && c < 5 ? names[c] : "other";
}

void trace_gather(Group *world, TraceSpan **all, size_t **counts)
{
    int n = group_size(world), me = group_rank(world);
    *all = NULL;
    *counts = me == 0 ? calloc(n, sizeof **counts) : NULL;
    while (tr.depth > 0) trace_end(); /* close what is still open */
    size_t mine = tr.n;
    coll_gather_bytes(world, &mine, *counts, sizeof mine, 0);
    size_t *lens = me == 0 ? calloc(n, sizeof *lens) : NULL;
    void *buf = NULL;
    coll_gatherv_bytes(world, tr.spans, tr.n * sizeof(Span), &buf, lens, 0);
    free(lens);
    if (me == 0) *all = buf;
}
