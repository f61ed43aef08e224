#include "coordinator/timeline.h"

#include <stdio.h>
#include <stdlib.h>
#include "base/fileio.h"
#include "base/json.h"

/* Per rank, the metadata events that name its track and keep tracks in
 * rank order. */
static void write_rank_meta(JsonOut *j, int r)
{
    char name[32];
    snprintf(name, sizeof name, "rank %d", r);
    const char *what[2] = {"process_name", "process_sort_index"};
    for (int k = 0; k < 2; k++) {
        json_newline(j);
        json_begin_object(j);
        json_str(json_key(j, "name"), what[k]);
        json_str(json_key(j, "ph"), "M");
        json_int(json_key(j, "pid"), r);
        json_int(json_key(j, "tid"), 0);
        json_begin_object(json_key(j, "args"));
        if (k == 0) json_str(json_key(j, "name"), name);
        else json_int(json_key(j, "sort_index"), r);
        json_end_object(j);
        json_end_object(j);
    }
}

/* One complete ("X") event; times in microseconds, as the format wants. */
static void write_span(JsonOut *j, const TraceSpan *s, int r)
{
    json_newline(j);
    json_begin_object(j);
    json_str(json_key(j, "name"), s->name);
    json_str(json_key(j, "cat"), trace_cat_name(s->cat));
    json_str(json_key(j, "ph"), "X");
    json_int(json_key(j, "pid"), r);
    json_int(json_key(j, "tid"), 0);
    json_fixed(json_key(j, "ts"), s->t0 * 1e6, 3);
    json_fixed(json_key(j, "dur"), (s->t1 - s->t0) * 1e6, 3);
    json_end_object(j);
}

/* One event per line; streamed to f, as a long run's trace can be large. */
static int write_events(FILE *f, const TraceSpan *all, const size_t *counts, int ranks,
                        const char *path, Err *e)
{
    JsonOut j;
    json_init(&j, f);
    json_begin_object(&j);
    json_str(json_key(&j, "displayTimeUnit"), "ms");
    json_begin_array(json_key(&j, "traceEvents"));
    for (int r = 0; r < ranks; r++) write_rank_meta(&j, r);
    size_t k = 0;
    for (int r = 0; r < ranks; r++)
        for (size_t i = 0; i < counts[r]; i++, k++) write_span(&j, &all[k], r);
    json_newline(&j);
    json_end_array(&j);
    json_end_object(&j);
    json_newline(&j);
    int rc = json_finish(&j) ? err_set(e, "%s: %s", path, j.error) : 0;
    json_free(&j);
    return rc;
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
            rc = write_events(af.f, all, counts, group_size(world), path, e);
            if (!rc && ferror(af.f)) rc = err_set(e, "%s: write failed", path);
            if (rc) atomic_abort(&af);
            else rc = atomic_commit(&af, e);
        }
    }
    free(all);
    free(counts);
    return rc;
}
