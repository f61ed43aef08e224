#include "coordinator/timeline.h"

#include <stdio.h>
#include <stdlib.h>
#include "base/fileio.h"

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc((unsigned char)*s >= 32 ? *s : ' ', f);
    }
    fputc('"', f);
}

static void write_events(FILE *f, const TraceSpan *all, const size_t *counts, int ranks)
{
    fprintf(f, "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n");
    for (int r = 0; r < ranks; r++)
        fprintf(f, "%s{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,"
                   "\"args\":{\"name\":\"rank %d\"}},\n"
                   "{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,"
                   "\"args\":{\"sort_index\":%d}}",
                r ? ",\n" : "", r, r, r, r);
    size_t k = 0;
    for (int r = 0; r < ranks; r++)
        for (size_t i = 0; i < counts[r]; i++, k++) {
            const TraceSpan *s = &all[k];
            fprintf(f, ",\n{\"name\":");
            json_string(f, s->name);
            fprintf(f, ",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":%d,\"tid\":0,\"ts\":%.3f,\"dur\":%.3f}",
                    trace_cat_name(s->cat), r, s->t0 * 1e6, (s->t1 - s->t0) * 1e6);
        }
    fprintf(f, "\n]}\n");
}

int timeline_write(Group *world, const char *path, Err *e)
{
    TraceSpan *all;
    size_t *counts;
    trace_gather(world, &all, &counts);
    int rc = 0;
    if (group_rank(world) == 0) {
        AtomicFile af;
        rc = atomic_open(&af, path, e);
        if (!rc) {
            write_events(af.f, all, counts, group_size(world));
            rc = ferror(af.f) ? (atomic_abort(&af), err_set(e, "%s: write failed", path))
                              : atomic_commit(&af, e);
        }
    }
    free(all);
    free(counts);
    return rc;
}
