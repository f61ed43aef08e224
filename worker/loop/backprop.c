/* The backprop step strategy: forward and backward through the pipeline,
 * gradient buckets reduced across data-parallel ranks during backward, then
 * the optimizer (AdamW / SGD, ZeRO-sharded when asked). */
#include <math.h>
#include <stdlib.h>
#include "comm/trace.h"
#include "worker/loop/strategy.h"

/* Global gradient norm: every element of the model counted once, however
 * it is replicated (DP replicas, TP-replicated norms and biases, the tied
 * embedding's second copy). g holds the gradient of elements [u.lo, u.hi). */
static double grad_norm(Trainer *t, const float *g, Range u)
{
    double ss = 0;
    int dp_counts = t->cfg->zero || t->mesh.me.dp == 0;
    for (int k = 0; dp_counts && k < t->model.n_tensors; k++) {
        const ParamInfo *ti = &t->model.tensors[k];
        if (ti->tied_copy || (ti->split == TP_REPLICATED && t->mesh.me.tp > 0)) continue;
        size_t a = ti->offset > u.lo ? ti->offset : u.lo;
        size_t b = ti->offset + ti->numel < u.hi ? ti->offset + ti->numel : u.hi;
        if (a < b) ss += sum_squares(g + (a - u.lo), b - a);
    }
    coll_allreduce_sum_f64(t->mesh.world, &ss, 1);
    return sqrt(ss);
}

/* The head's copy of the tied embedding and the embedding itself each got
 * half of the gradient: sum them so both copies take the same step. */
static void sync_tied_grads(Trainer *t)
{
    if (!t->mesh.emb) return;
    const ParamInfo *w = model_find_tensor(&t->model, "wte");
    coll_allreduce_sum_f32(t->mesh.emb, t->model.grads + w->offset, w->numel);
}

typedef struct {
    double grad_norm; /* of the step being taken: the clip coefficient's input */
} Backprop;

static int bp_setup(Trainer *t, void **state, Err *e)
{
    (void)t;
    *state = calloc(1, sizeof(Backprop));
    return *state ? 0 : err_set(e, "out of memory");
}

static int bp_compute(Trainer *t, void *state, long step, StepOutcome *o, Err *e)
{
    (void)step;
    (void)e;
    const TrainConfig *c = t->cfg;
    loader_batch(&t->train, t->data_pos, t->inputs, t->targets);
    t->data_pos++;
    model_zero_grad(&t->model);
    double local = pipeline_train(&t->pipe, t->inputs, t->targets, (float)trainer_per_pred(c), &t->sync);
    gradsync_finish(&t->sync);
    sync_tied_grads(t);
    o->loss = trainer_loss_sum(t, t->mesh.world, local) * trainer_per_pred(c);
    o->grad_norm = grad_norm(t, gradsync_grads(&t->sync), gradsync_update_range(&t->sync));
    ((Backprop *)state)->grad_norm = o->grad_norm;
    return 0;
}

static int bp_apply(Trainer *t, void *state, long step, int skip, Err *e)
{
    (void)e;
    if (skip) return 0;
    const TrainConfig *c = t->cfg;
    trace_begin("optimizer", TR_OPT);
    optim_update(&t->opt, &t->model, t->model.params, gradsync_grads(&t->sync),
                 lr_at(&c->optim, step), clip_coef(&c->optim, ((Backprop *)state)->grad_norm));
    trace_end();
    if (c->zero) coll_allgatherv_inplace_f32(t->mesh.dp, t->model.params, t->shard_counts);
    return 0;
}

/* The whole model's training FLOPs for the step's global batch (every
 * rank reports the job's figure, whatever part of the model it holds). */
static double bp_flops(const Trainer *t)
{
    const ModelConfig *c = &t->cfg->model;
    return cost_train_flops_per_token(c) * t->cfg->global_batch * c->seq_len;
}

const StepStrategy BACKPROP_STRATEGY = {
    .name = "backprop",
    .setup = bp_setup,
    .compute = bp_compute,
    .apply = bp_apply,
    .flops_per_step = bp_flops,
    .free = free,
};
