#include "models/cost.h"

#include "models/arch.h"

/* A shard as the builder sees it: a negative last block means through the
 * end, at least one slot and one tensor-parallel rank. */
static ModelShard normalized(const ModelConfig *c, const ModelShard *sh)
{
    ModelShard s = *sh;
    if (s.tp_size < 1) s.tp_size = 1;
    if (s.last_block < 0) s.last_block = model_n_blocks(c) - 1;
    if (s.slots < 1) s.slots = 1;
    return s;
}

size_t cost_param_count(const ModelConfig *c)
{
    /* the whole model on one rank holds each tensor once */
    ModelShard whole = model_shard_whole(0);
    return cost_shard_params(c, &whole);
}

size_t cost_shard_params(const ModelConfig *c, const ModelShard *sh)
{
    const ModelArch *a = model_arch(c->kind);
    ModelShard s = normalized(c, sh);
    return a ? a->shard_params(c, &s) : 0;
}

size_t cost_shard_base_params(const ModelConfig *c, const ModelShard *sh)
{
    const ModelArch *a = model_arch(c->kind);
    ModelShard s = normalized(c, sh);
    return a && a->shard_base_params ? a->shard_base_params(c, &s) : 0;
}

size_t cost_act_floats(const ModelConfig *c, const ModelShard *sh, int B)
{
    const ModelArch *a = model_arch(c->kind);
    ModelShard s = normalized(c, sh);
    return a ? a->act_floats(c, &s, B) : 0;
}

size_t cost_view_floats(const ModelConfig *c, const ModelShard *sh, int B)
{
    const ModelArch *a = model_arch(c->kind);
    ModelShard s = normalized(c, sh);
    return a ? a->view_floats(c, &s, B) : 0;
}

double cost_fwd_flops_per_token(const ModelConfig *c)
{
    const ModelArch *a = model_arch(c->kind);
    return a ? a->fwd_flops_per_token(c) : 0.0;
}

double cost_train_flops_per_token(const ModelConfig *c)
{
    /* backward: the gradient of each matmul's input and of its weight */
    return 3.0 * cost_fwd_flops_per_token(c);
}

CostMemory cost_memory(const ModelConfig *c, const CostLayout *l)
{
    const size_t F = sizeof(float);
    int dp = l->dp > 0 ? l->dp : 1, B = l->micro_batch > 0 ? l->micro_batch : 1;
    size_t n = cost_shard_params(c, &l->shard), part = (n + dp - 1) / dp;
    CostMemory m = {0};
    /* a frozen base (LoRA) is weights only: no gradient, no optimizer state */
    m.weights = (n + cost_shard_base_params(c, &l->shard)) * F;
    /* ZeRO-2 in this build keeps the whole gradient buffer (backward fills
     * it) plus the reduce-scattered shard the optimizer reads */
    if (!l->shard.forward_only) m.grads = (n + (l->zero == 2 ? part : 0)) * F;
    m.optim = (size_t)l->moments * (l->zero ? part : n) * F;
    m.acts = cost_act_floats(c, &l->shard, B) * F;
    /* forward-only training (zo) perturbs through a weight view */
    if (l->shard.forward_only) m.view = cost_view_floats(c, &l->shard, B) * F;
    m.total = m.weights + m.grads + m.optim + m.acts + m.view;
    return m;
}
