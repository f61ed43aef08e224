#include "coordinator/display/timeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/fileio.h"
#include "base/json.h"

/* Per rank, the metadata events that name its track and its thread and keep
 * tracks in rank order. */
static void write_rank_meta(JsonOut *j, int r, const char *label)
{
    const char *what[3] = {"process_name", "process_sort_index", "thread_name"};
    for (int k = 0; k < 3; k++) {
        json_newline(j);
        json_begin_object(j);
        json_str(json_key(j, "name"), what[k]);
        json_str(json_key(j, "ph"), "M");
        json_int(json_key(j, "pid"), r);
        json_int(json_key(j, "tid"), 0);
        json_begin_object(json_key(j, "args"));
        if (k == 0) json_str(json_key(j, "name"), label);
        else if (k == 1) json_int(json_key(j, "sort_index"), r);
        else json_str(json_key(j, "name"), "main");
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
    if (s->bytes >= 0 || s->arg >= 0) {
        json_begin_object(json_key(j, "args"));
        if (s->bytes >= 0) json_fixed(json_key(j, "bytes"), s->bytes, 0);
        if (s->arg >= 0) json_int(json_key(j, s->cat == TR_STEP ? "step" : "micro_batch"), s->arg);
        json_end_object(j);
    }
    json_end_object(j);
}

/* Rank r's spill file into the events, span by span (it can be large). */
static int copy_rank(JsonOut *j, const char *prefix, int r, Err *e)
{
    char path[PATH_BUF];
    trace_spill_path(prefix, r, path, sizeof path);
    FILE *f = fopen_input(path, NULL, e);
    if (!f) return err_wrap(e, "--trace: rank %d's spans", r);
    TraceSpillHeader h;
    int rc = 0;
    if (fread(&h, sizeof h, 1, f) != 1 || memcmp(h.magic, TRACE_SPILL_MAGIC, 8) ||
        h.rank != (uint32_t)r)
        rc = err_set(e, "--trace: %s is not rank %d's span file", path, r);
    if (!rc) {
        h.label[sizeof h.label - 1] = 0;
        write_rank_meta(j, r, h.label);
    }
    TraceSpan s;
    while (!rc && fread(&s, sizeof s, 1, f) == 1) {
        s.name[sizeof s.name - 1] = 0;
        write_span(j, &s, r);
    }
    fclose(f);
    remove(path);
    return rc;
}

/* One event per line; streamed to f, as a long run's trace can be large. */
static int write_events(FILE *f, const char *path, int ranks, Err *e)
{
    JsonOut j;
    json_init(&j, f);
    json_begin_object(&j);
    json_str(json_key(&j, "displayTimeUnit"), "ms");
    json_begin_array(json_key(&j, "traceEvents"));
    int rc = 0;
    for (int r = 0; !rc && r < ranks; r++) rc = copy_rank(&j, path, r, e);
    json_newline(&j);
    json_end_array(&j);
    json_end_object(&j);
    json_newline(&j);
    if (json_finish(&j) && !rc) rc = err_set(e, "%s: %s", path, j.error);
    json_free(&j);
    return rc;
}

int timeline_write(Group *world, const char *path, Err *e)
{
    Err mine = {{0}};
    /* every rank's spans are on disk before rank 0 reads them */
    if (comm_agree(world, trace_close(&mine), &mine, e)) return -1;
    int rc = 0;
    if (group_rank(world) == 0) {
        AtomicFile af;
        rc = atomic_open(&af, path, e);
        if (!rc) {
            rc = write_events(af.f, path, group_size(world), e);
            if (!rc && ferror(af.f)) rc = err_set(e, "%s: write failed", path);
            if (rc) atomic_abort(&af);
            else rc = atomic_commit(&af, e);
        }
    }
    return rc;
}
