#include "worker/parallel/gradsync.h"

#include <stdlib.h>
#include <string.h>

static void launch(GradSync *s, int i)
{
    Range b = s->bucket[i];
    float *g = s->m->grads + b.lo;
    if (s->zero < 2) {
        coll_iallreduce_sum_f32(s->dp, g, b.hi - b.lo, &s->req[i]);
        return;
    }
    /* our piece of the bucket lands at its place in the shard buffer */
    size_t at = b.lo > s->shard.lo ? b.lo - s->shard.lo : 0;
    if (at > s->shard.hi - s->shard.lo) at = 0; /* empty piece: any valid pointer */
    coll_ireduce_scatter_f32(s->dp, g, s->shard_grads + at, s->counts + (size_t)i * group_size(s->dp),
                             &s->req[i]);
}

static void drive_progress(GradSync *s)
{
    for (int i = 0; i < s->next; i++) coll_test(&s->req[i]);
}

static void on_block(void *ctx, int block)
{
    GradSync *s = ctx;
    if (!s->armed || !s->overlap) return;
    while (s->next < s->nb && s->first_block[s->next] >= block) launch(s, s->next++);
    drive_progress(s);
}

int gradsync_init(GradSync *s, Model *m, Group *dp, int zero, size_t bucket_bytes, int overlap,
                  Err *e)
{
    memset(s, 0, sizeof *s);
    s->m = m;
    s->dp = dp;
    s->zero = zero;
    s->overlap = overlap;
    int p = group_size(dp);
    s->shard = split_even(m->n_params, p, group_rank(dp));
    size_t *block_lo = calloc(m->n_blocks + 1, sizeof *block_lo);
    s->bucket = calloc(m->n_blocks, sizeof *s->bucket);
    s->first_block = calloc(m->n_blocks, sizeof *s->first_block);
    s->req = calloc(m->n_blocks, sizeof *s->req);
    s->counts = calloc((size_t)m->n_blocks * p, sizeof *s->counts);
    if (!block_lo || !s->bucket || !s->first_block || !s->req || !s->counts) {
        free(block_lo); /* the rest is gradsync_free's */
        return err_set(e, "out of memory for gradient buckets");
    }
    model_block_offsets(m, block_lo);
    /* A bucket holds at most an eighth of the gradient: a small one (LoRA's
     * adapters, a few hundred kB to a few MB) would otherwise be one bucket
     * or a few, and the last, which starts only when backward has ended,
     * is all exposed. */
    size_t floats = bucket_bytes / sizeof(float), eighth = m->n_params / 8;
    if (eighth > 0 && eighth < floats) floats = eighth;
    s->nb = make_buckets(block_lo, m->n_blocks, floats ? floats : 1, s->bucket, s->first_block);
    free(block_lo);
    for (int i = 0; i < s->nb; i++)
        if (shard_counts(m->n_params, p, s->bucket[i], s->counts + (size_t)i * p))
            return err_set(e, "gradient bucket of %zu floats is too large for MPI counts",
                           s->bucket[i].hi - s->bucket[i].lo);
    if (zero == 2 && p > 1 && !(s->shard_grads = model_calloc(s->shard.hi - s->shard.lo + 1, sizeof(float))))
        return err_set(e, "out of memory for the gradient shard");
    if (p > 1) {
        m->on_block_grads = on_block;
        m->hook_ctx = s;
    }
    return 0;
}

void gradsync_free(GradSync *s)
{
    for (int i = 0; s->req && i < s->nb; i++) comm_request_free(&s->req[i]);
    if (s->m && s->m->hook_ctx == s) {
        s->m->on_block_grads = NULL;
        s->m->hook_ctx = NULL;
    }
    free(s->bucket);
    free(s->first_block);
    free(s->req);
    free(s->counts);
    free(s->shard_grads);
    memset(s, 0, sizeof *s);
}

void gradsync_arm(GradSync *s)
{
    s->next = 0;
    s->armed = 1;
}

void gradsync_finish(GradSync *s)
{
    s->armed = 0;
    if (group_size(s->dp) == 1) return;
    while (s->next < s->nb) launch(s, s->next++);
    for (int i = 0; i < s->nb; i++) coll_wait(&s->req[i]);
}

const float *gradsync_grads(const GradSync *s)
{
    if (s->zero == 2 && s->shard_grads) return s->shard_grads;
    return s->m->grads + (s->zero ? s->shard.lo : 0);
}

Range gradsync_update_range(const GradSync *s)
{
    return s->zero ? s->shard : (Range){0, s->m->n_params};
}
