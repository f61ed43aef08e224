#include "worker/method/diloco/diloco.h"

#include <stdlib.h>
#include <string.h>
#include "worker/method/backprop/backprop.h"

int diloco_init(Diloco *d, Model *m, Group *dp, Group *emb, float lr, float mu, int overlap,
                WireFormat wire, Err *e)
{
    memset(d, 0, sizeof *d);
    d->m = m;
    d->dp = dp;
    d->emb = emb;
    d->lr = lr;
    d->mu = mu;
    d->overlap = overlap;
    d->n = m->n_params;
    size_t n = d->n ? d->n : 1;
    d->global = model_calloc(n, sizeof(float));
    d->mom = model_calloc(n, sizeof(float));
    if (overlap) {
        d->base = model_calloc(n, sizeof(float));
        d->pend = model_calloc(n, sizeof(float));
    }
    if (paced_init(&d->sum, dp, DILOCO_PIECE, wire, d->n, e)) return -1;
    if (!d->global || !d->mom || (overlap && (!d->base || !d->pend)))
        return err_set(e, "out of memory for DiLoCo's outer state (%zu floats, %d copies of the "
                          "weights)", d->n, overlap ? 4 : 2);
    memcpy(d->global, m->params, d->n * sizeof(float));
    if (overlap) memcpy(d->base, m->params, d->n * sizeof(float));
    return 0;
}

void diloco_free(Diloco *d)
{
    if (d->sum.g) paced_free(&d->sum);
    free(d->global);
    free(d->mom);
    free(d->base);
    free(d->pend);
    memset(d, 0, sizeof *d);
}

size_t diloco_state_bytes(const Diloco *d)
{
    int copies = (d->overlap ? 4 : 2) + (d->sum.send_err ? 2 : 0);
    return d->n * sizeof(float) * copies;
}

/* sum -> mean, and the tied embedding's two copies made one: the two
 * stages reduce buffers of different lengths, which MPI may sum in
 * different orders; the first stage's bits win, so both copies take the
 * same outer step and stay equal. */
static void finish_mean(Diloco *d, float *sum)
{
    float p = (float)group_size(d->dp);
    for (size_t j = 0; j < d->n; j++) sum[j] /= p;
    const ParamInfo *w = backprop_tied_embedding(d->m);
    if (d->emb && w) coll_bcast(d->emb, sum + w->offset, w->numel * sizeof(float), 0);
}

void diloco_nesterov(float *global, float *mom, const float *delta, size_t n, float lr, float mu)
{
    for (size_t j = 0; j < n; j++) {
        float m = mu * mom[j] + delta[j];
        mom[j] = m;
        global[j] -= lr * (delta[j] + mu * m);
    }
}

static void outer_update(Diloco *d, const float *delta)
{
    diloco_nesterov(d->global, d->mom, delta, d->n, d->lr, d->mu);
}

/* buf holds this replica's pseudo-gradient of the round: averaged now,
 * one outer step, and every replica continues from the new global. */
static void reduce_and_step(Diloco *d, float *buf)
{
    paced_start(&d->sum, buf, d->n);
    paced_wait(&d->sum);
    finish_mean(d, buf);
    outer_update(d, buf);
    memcpy(d->m->params, d->global, d->n * sizeof(float));
    if (d->base) memcpy(d->base, d->global, d->n * sizeof(float));
}

static void blocking_round(Diloco *d)
{
    float *p = d->m->params;
    for (size_t j = 0; j < d->n; j++) p[j] = d->global[j] - p[j];
    reduce_and_step(d, p);
}

void diloco_progress(Diloco *d)
{
    if (d->pending && !d->pend_done) paced_progress(&d->sum);
}

void diloco_settle(Diloco *d)
{
    if (!d->pending || d->pend_done) return;
    paced_wait(&d->sum);
    finish_mean(d, d->pend);
    d->pend_done = 1;
}

/* The delayed round applied: global moves by its mean, and this replica's
 * progress since the round's start is kept on top of it; pend becomes the
 * progress, negated (the pseudo-gradient of the round just ended). */
static void apply_delayed(Diloco *d)
{
    diloco_settle(d);
    outer_update(d, d->pend);
    float *p = d->m->params;
    for (size_t j = 0; j < d->n; j++) {
        float progress = p[j] - d->base[j];
        p[j] = d->global[j] + progress;
        d->pend[j] = -progress;
        d->base[j] = p[j];
    }
    d->pending = 0;
}

static void start_delayed(Diloco *d)
{
    if (d->pending) {
        apply_delayed(d);
    } else {
        float *p = d->m->params;
        for (size_t j = 0; j < d->n; j++) {
            d->pend[j] = d->base[j] - p[j];
            d->base[j] = p[j];
        }
    }
    paced_start(&d->sum, d->pend, d->n);
    d->pending = 1;
    d->pend_done = 0;
}

void diloco_outer_step(Diloco *d, int last)
{
    if (!d->overlap) {
        blocking_round(d);
        return;
    }
    if (!last) {
        start_delayed(d);
        return;
    }
    /* the end: the round in flight, then this one, so all replicas agree */
    if (d->pending) {
        apply_delayed(d); /* pend: this round's pseudo-gradient */
    } else {
        float *p = d->m->params;
        for (size_t j = 0; j < d->n; j++) d->pend[j] = d->base[j] - p[j];
    }
    reduce_and_step(d, d->pend);
}
