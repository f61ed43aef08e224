/* The backprop step strategy: forward and backward through the pipeline,
 * gradient buckets reduced across data-parallel ranks during backward, then
 * the optimizer (AdamW / SGD, ZeRO-sharded when asked). */
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include "comm/trace/trace.h"
#include "worker/method/backprop/backprop.h"

/* Global gradient norm: every element of the model counted once, however
 * it is replicated (DP replicas, TP-replicated norms and biases, the tied
 * embedding's second copy). g holds the gradient of elements [u.lo, u.hi).
 * A replica with its own gradient (b->replica_norm) has its own norm. */
static double grad_norm(Trainer *t, const Backprop *b, const float *g, Range u)
{
    double ss = 0;
    int dp_counts = b->replica_norm || t->cfg->zero || t->mesh.me.dp == 0;
    for (int k = 0; dp_counts && k < t->model.n_tensors; k++) {
        const ParamInfo *ti = &t->model.tensors[k];
        if (ti->tied_copy || (ti->split == TP_REPLICATED && t->mesh.me.tp > 0)) continue;
        size_t a = ti->offset > u.lo ? ti->offset : u.lo;
        size_t b = ti->offset + ti->numel < u.hi ? ti->offset + ti->numel : u.hi;
        if (a < b) ss += sum_squares(g + (a - u.lo), b - a);
    }
    coll_allreduce_sum_f64(b->norm_group, &ss, 1);
    return sqrt(ss);
}

const ParamInfo *backprop_tied_embedding(const Model *m)
{
    if (!model_transformer(&m->cfg) || !transformer_shape(&m->cfg).tied_head) return NULL;
    return model_find_tensor(m, "wte");
}

/* The head's copy of the tied embedding and the embedding itself each got
 * half of the gradient: sum them so both copies take the same step. */
static void sync_tied_grads(Trainer *t)
{
    const ParamInfo *w = backprop_tied_embedding(&t->model);
    if (!t->mesh.emb || !w) return;
    coll_allreduce_sum_f32(t->mesh.emb, t->model.grads + w->offset, w->numel);
}

void backprop_init(Backprop *b, Trainer *t)
{
    *b = (Backprop){0, trainer_per_pred(t->cfg), t->mesh.world, 0};
}

void backprop_init_replica(Backprop *b, Trainer *t)
{
    *b = (Backprop){0, trainer_per_pred(t->cfg) * t->mesh.dims.dp, t->mesh.mp, 1};
}

static int bp_setup(Trainer *t, void **state, Err *e)
{
    Backprop *b = calloc(1, sizeof *b);
    if (!(*state = b)) return err_set(e, "out of memory");
    backprop_init(b, t);
    return 0;
}

int backprop_compute(Trainer *t, void *state, long step, StepOutcome *o, Err *e)
{
    (void)step;
    (void)e;
    Backprop *b = state;
    uint64_t k = t->data_pos;
    trainer_load_batch(t, &t->train, k);
    trainer_key_dropout(t, k);
    t->data_pos++;
    /* a masked file's mean is over the targets each batch counts */
    if (t->train.file->mask) b->grad_scale = trainer_batch_scale(t, k, !b->replica_norm);
    model_zero_grad(&t->model);
    double local = pipeline_train(&t->pipe, t->inputs, t->targets, (float)b->grad_scale, &t->sync);
    gradsync_finish(&t->sync);
    sync_tied_grads(t);
    double scale = trainer_batch_scale(t, k, 1);
    o->loss = trainer_loss_sum(t, t->mesh.world, local) * scale;
    o->no_loss = scale == 0.0; /* a batch whose mask counts nothing */
    o->grad_norm = grad_norm(t, b, gradsync_grads(&t->sync), gradsync_update_range(&t->sync));
    b->grad_norm = o->grad_norm;
    return 0;
}

int backprop_apply(Trainer *t, void *state, long step, int skip, Err *e)
{
    (void)e;
    (void)step; /* the loop set t->lr for it */
    if (skip) return 0;
    const TrainConfig *c = t->cfg;
    trace_begin("optimizer", TR_OPT);
    optim_update(&t->opt, &t->model, t->model.params, gradsync_grads(&t->sync),
                 t->lr, clip_coef(&c->optim, ((Backprop *)state)->grad_norm));
    trace_end();
    if (c->zero) coll_allgatherv_inplace_f32(t->mesh.dp, t->model.params, t->shard_counts);
    return 0;
}

/* The whole model's training FLOPs for the step's global batch (every
 * rank reports the job's figure, whatever part of the model it holds). */
double backprop_flops(const Trainer *t)
{
    const ModelConfig *c = &t->cfg->model;
    return cost_train_flops_per_token(c) * t->cfg->global_batch * c->seq_len;
}

const StepStrategy BACKPROP_STRATEGY = {
    .name = "backprop",
    .setup = bp_setup,
    .compute = backprop_compute,
    .apply = backprop_apply,
    .flops_per_step = backprop_flops,
    .free = free,
};
