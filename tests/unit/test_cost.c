/* The cost model (models/cost.h) against what the models really allocate:
 * parameter counts of whole models and of shards (tensor-parallel slices,
 * pipeline stages, the tied embedding's copy), the memory estimate's
 * weights, gradients, activations and optimizer state, and the FLOP
 * counts against the hand formula. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "models/cost.h"
#include "models/model.h"
#include "sharding/partition.h"
#include "worker/optim/optim.h"

static const float *params_view(void *ctx, const Model *m, int k, size_t first, size_t n,
                                float *dst);

static void build(Model *m, ModelConfig c, ModelShard sh, int B)
{
    Err e = {{0}};
    cr_assert_eq(model_init_shard(m, &c, &sh, B, 1, &e), 0, "model_init_shard: %s", e.msg);
}

/* The estimate of the model alone must be the model's own sizes. */
static void expect_memory_matches(const Model *m, const ModelShard *sh, int B, const char *what)
{
    CostLayout l = {*sh, B, 1, 0, 0};
    CostMemory mem = cost_memory(&m->cfg, &l);
    const size_t F = sizeof(float);
    cr_expect_eq(cost_shard_params(&m->cfg, sh), m->n_params, "%s: %zu params estimated, %zu built",
                 what, cost_shard_params(&m->cfg, sh), m->n_params);
    cr_expect_eq(cost_shard_base_params(&m->cfg, sh), m->base.n_params, "%s: %zu frozen estimated, "
                 "%zu built", what, cost_shard_base_params(&m->cfg, sh), m->base.n_params);
    cr_expect_eq(mem.weights, (m->n_params + m->base.n_params) * F, "%s: weights", what);
    cr_expect_eq(mem.grads, m->grads ? m->n_params * F : 0, "%s: grads", what);
    cr_expect_eq(mem.acts, m->act_floats * F, "%s: activations %zu estimated, %zu built", what,
                 mem.acts, m->act_floats * F);
    cr_expect_eq(mem.optim, 0);
    cr_expect_eq(mem.view, sh->forward_only ? cost_view_floats(&m->cfg, sh, B) * F : 0,
                 "%s: view scratch", what);
    cr_expect_eq(mem.total, mem.weights + mem.grads + mem.acts + mem.view, "%s: total", what);
}

static const ModelConfig GPTS[] = {
    {.kind = MODEL_GPT, .n_layer = 2, .n_head = 2, .n_embd = 8, .seq_len = 5, .vocab = 11},
    {.kind = MODEL_GPT, .n_layer = 1, .n_head = 1, .n_embd = 4, .seq_len = 3, .vocab = 2},
    {.kind = MODEL_GPT, .n_layer = 3, .n_head = 4, .n_embd = 16, .seq_len = 8, .vocab = 32},
    {.kind = MODEL_GPT, .n_layer = 4, .n_head = 2, .n_embd = 12, .seq_len = 7, .vocab = 50},
};

/* The llama family: grouped kv heads (split by tp 2, replicated by tp 4),
 * an explicit head size, biases, qk-norm, an untied head. */
static const ModelConfig LLAMAS[] = {
    {.kind = MODEL_LLAMA, .n_layer = 3, .n_head = 4, .n_kv_head = 2, .n_embd = 16, .seq_len = 8,
     .vocab = 32, .mlp_hidden = 24},
    {.kind = MODEL_LLAMA, .n_layer = 2, .n_head = 4, .n_kv_head = 1, .head_dim = 6, .n_embd = 12,
     .seq_len = 5, .vocab = 19, .mlp_hidden = 20, .qkv_bias = 1, .attn_out_bias = 1,
     .mlp_bias = 1, .qk_norm = 1, .untied_head = 1},
};

static const ModelConfig MLPS[] = {
    /* float features */
    {.kind = MODEL_MLP, .n_layer = 1, .n_embd = 2, .seq_len = 1, .vocab = 2, .in_dim = 2},
    {.kind = MODEL_MLP, .n_layer = 2, .n_embd = 8, .seq_len = 3, .vocab = 5}, /* one-hot tokens */
    {.kind = MODEL_MLP, .n_layer = 3, .n_embd = 6, .seq_len = 4, .vocab = 7},
    {.kind = MODEL_MLP, .n_layer = 4, .n_embd = 10, .seq_len = 2, .vocab = 9, .in_dim = 13},
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

Test(cost, whole_model_param_count_is_the_built_count)
{
    for (size_t i = 0; i < N_OF(GPTS) + N_OF(MLPS) + N_OF(LLAMAS); i++) {
        ModelConfig c = i < N_OF(GPTS)                ? GPTS[i]
                        : i < N_OF(GPTS) + N_OF(MLPS) ? MLPS[i - N_OF(GPTS)]
                                                      : LLAMAS[i - N_OF(GPTS) - N_OF(MLPS)];
        ModelShard whole = model_shard_whole(0);
        Model m;
        build(&m, c, whole, 2);
        /* the tied head adds nothing on one rank: wte is held once */
        cr_expect_eq(cost_param_count(&c), m.n_params, "config %zu: %zu counted, %zu built", i,
                     cost_param_count(&c), m.n_params);
        cr_expect_eq(cost_param_count(&c), m.global_params, "config %zu: global", i);
        expect_memory_matches(&m, &whole, 2, "whole");
        model_free(&m);
    }
}

/* Every (tp rank, stage) shard of c, tp 1, 2 and 4, stages that start and
 * end anywhere, training and forward-only: its counts equal what the build
 * allocates (and the view scratch the estimate), then also() checks the
 * family's own (NULL: nothing more). */
typedef void (*ShardCheck)(const Model *m, const ModelConfig *c, const ModelShard *sh,
                           const char *what);

static void expect_every_shard(ModelConfig c, const char *label, ShardCheck also)
{
    const int n = c.n_layer + 2;
    char what[96];
    for (int tp = 1; tp <= 4; tp *= 2)
        for (int b0 = 0; b0 < n; b0++)
            for (int b1 = b0; b1 < n; b1++)
                for (int fo = 0; fo < 2; fo++) {
                    ModelShard sh = {.tp_rank = tp - 1, .tp_size = tp, .first_block = b0,
                                     .last_block = b1, .slots = 1 + b0 % 3, .forward_only = fo};
                    Model m;
                    build(&m, c, sh, 3);
                    snprintf(what, sizeof what, "%s tp %d blocks %d..%d%s", label, tp, b0, b1,
                             fo ? " forward only" : "");
                    expect_memory_matches(&m, &sh, 3, what);
                    if (also) also(&m, &c, &sh, what);
                    Err e = {{0}};
                    if (fo) {
                        cr_assert_eq(model_set_weight_view(&m, params_view, NULL, &e), 0);
                        cr_expect_eq(m.view_floats, cost_view_floats(&m.cfg, &sh, 3), "%s", what);
                    }
                    model_free(&m);
                }
}

/* A head stage without the embedding keeps its own copy of the tied wte;
 * an untied head has head.w instead. */
static void expect_head_copy(const Model *m, const ModelConfig *c, const ModelShard *sh,
                             const char *what)
{
    const int last = c->n_layer + 1, b0 = sh->first_block, b1 = sh->last_block;
    int tied = model_find_tensor(m, "wte") && b0 > 0;
    cr_expect_eq(tied, !c->untied_head && b1 == last && b0 > 0, "%s: tied copy", what);
    cr_expect_eq(model_find_tensor(m, "head.w") != NULL, c->untied_head && b1 == last,
                 "%s: head.w", what);
}

Test(cost, gpt_shards_match_the_built_shards)
{
    expect_every_shard(GPTS[2], "gpt", expect_head_copy); /* 3 layers, heads 4 */
}

/* The llama family: tp 2 splits the kv heads of the first, tp 4 replicates
 * them; the second's untied head has no copy of wte on a later stage. */
Test(cost, llama_shards_match_the_built_shards)
{
    for (size_t i = 0; i < N_OF(LLAMAS); i++) expect_every_shard(LLAMAS[i], "llama", expect_head_copy);
}

/* LoRA on every linear: the adapters are what trains (their gradients),
 * the base is weights only. */
Test(cost, lora_shards_match_the_built_shards)
{
    ModelConfig cs[] = {GPTS[2], LLAMAS[0], LLAMAS[1]};
    for (size_t i = 0; i < N_OF(cs); i++) {
        cs[i].lora_rank = 3;
        snprintf(cs[i].lora_targets, sizeof cs[i].lora_targets, "all-linear");
        expect_every_shard(cs[i], "lora", NULL);
    }
}

Test(cost, mlp_tp_shards_match_the_built_shards)
{
    for (size_t i = 0; i < N_OF(MLPS); i++) {
        ModelConfig c = MLPS[i];
        if (c.n_layer % 2) continue; /* tp needs column/row pairs */
        for (int r = 0; r < 2; r++) {
            ModelShard sh = {.tp_rank = r, .tp_size = 2, .last_block = -1, .slots = 1};
            Model m;
            build(&m, c, sh, 4);
            expect_memory_matches(&m, &sh, 4, "mlp tp 2");
            model_free(&m);
        }
    }
}

static const float *params_view(void *ctx, const Model *m, int k, size_t first, size_t n,
                                float *dst)
{
    (void)ctx;
    (void)n;
    (void)dst;
    return m->params + m->tensors[k].offset + first;
}

/* Forward-only (ZO) models hold no gradients, and the estimate says so; the
 * weight view's scratch is what the estimate says too. */
Test(cost, forward_only_has_no_gradients)
{
    ModelShard sh = model_shard_whole(1);
    const ModelConfig cs[] = {GPTS[0], GPTS[2], MLPS[1], MLPS[3]};
    for (int i = 0; i < 4; i++) {
        Model m;
        Err e = {{0}};
        build(&m, cs[i], sh, 2);
        cr_expect_null(m.grads);
        expect_memory_matches(&m, &sh, 2, "forward only");
        cr_assert_eq(model_set_weight_view(&m, params_view, NULL, &e), 0);
        cr_expect_eq(m.view_floats, cost_view_floats(&m.cfg, &sh, 2));
        model_free(&m);
    }
}

Test(cost, optimizer_moments_match_the_optimizer)
{
    cr_expect_eq(optim_moments(OPT_ADAMW), 2);
    cr_expect_eq(optim_moments(OPT_SGD), 1);
    cr_expect_eq(optim_moments(OPT_ZO), 0);
    const ModelConfig c = GPTS[0];
    const size_t n = cost_param_count(&c);
    OptKind kinds[] = {OPT_ADAMW, OPT_SGD, OPT_ZO};
    for (int k = 0; k < 3; k++) {
        OptimConfig oc = {kinds[k], 1e-3f, 0, 0.9f, 0.95f, 1e-8f, 0, 0, 0, 0, 1};
        Optimizer o;
        Err e = {{0}};
        cr_assert_eq(optim_init(&o, &oc, 0, n, &e), 0, "%s", e.msg);
        CostLayout l = {{0, 1, 0, -1, 1, kinds[k] == OPT_ZO}, 1, 1, 0, optim_moments(kinds[k])};
        cr_expect_eq(cost_memory(&c, &l).optim, o.state_bytes, "%s", optim_name(kinds[k]));
        optim_free(&o);
    }
}

/* ZeRO: the optimizer state (and ZeRO-2's gradient shard) is the largest
 * shard the partition hands a data-parallel rank. */
Test(cost, zero_shards_are_the_largest_partition)
{
    const ModelConfig c = GPTS[3];
    const size_t n = cost_param_count(&c), F = sizeof(float);
    for (int dp = 1; dp <= 5; dp++) {
        size_t largest = 0;
        for (int r = 0; r < dp; r++) {
            Range s = split_even(n, dp, r);
            if (s.hi - s.lo > largest) largest = s.hi - s.lo;
        }
        CostLayout l = {{0, 1, 0, -1, 1, 0}, 1, dp, 1, 2};
        CostMemory z1 = cost_memory(&c, &l);
        cr_expect_eq(z1.optim, 2 * largest * F, "dp %d", dp);
        cr_expect_eq(z1.grads, n * F);
        l.zero = 2;
        CostMemory z2 = cost_memory(&c, &l);
        cr_expect_eq(z2.grads, (n + largest) * F, "dp %d: full buffer + shard", dp);
        l.zero = 0;
        cr_expect_eq(cost_memory(&c, &l).optim, 2 * n * F);
    }
}

/* 2 FLOPs per weight plus attention's 4 L C T per token forward (the
 * Kaplan/PaLM count), 3x for training; written out by hand for the tiny
 * GPT: N = V C + T C + L (12 C^2 + 13 C) + 2 C. */
Test(cost, gpt_flops_are_the_hand_formula)
{
    const ModelConfig c = GPTS[0]; /* L 2, C 8, T 5, V 11 */
    const double N = 11 * 8 + 5 * 8 + 2 * (12 * 64 + 13 * 8) + 2 * 8;
    cr_assert_eq(N, 1888.0);
    cr_expect_eq((double)cost_param_count(&c), N);
    cr_expect_eq(cost_fwd_flops_per_token(&c), 2 * N + 4 * 2 * 8 * 5);
    cr_expect_eq(cost_train_flops_per_token(&c), 6 * N + 12 * 2 * 8 * 5);
    cr_expect_eq(cost_train_flops_per_token(&c), 12288.0);
}

/* The MLP's sample costs 2 N forward, spread over its seq_len tokens. */
/* Llama: separate q, k, v of their widths, qk norms, a SwiGLU MLP of
 * three matrices, no wpe; the untied head's embedding is a lookup (not
 * counted as FLOPs) and attention spans q_width = heads x head_dim. */
Test(cost, llama_flops_are_the_hand_formula)
{
    const ModelConfig c = LLAMAS[1]; /* L 2, C 12, q 4 x 6, kv 1 x 6, F 20, T 5, V 19 */
    const double layer = 12 + (24 + 6 + 6) * 12 + (24 + 6 + 6) + 2 * 6 + 12 * 24 + 12 + 12 +
                         2 * (20 * 12 + 20) + 12 * 20 + 12;
    cr_assert_eq(layer, 1576.0);
    const double N = 19 * 12 + 2 * layer + 12 + 19 * 12;
    cr_expect_eq((double)cost_param_count(&c), N);
    cr_expect_eq(cost_fwd_flops_per_token(&c), 2 * (N - 19 * 12) + 4 * 2 * 24 * 5);
}

Test(cost, mlp_flops_per_sample)
{
    const ModelConfig c = MLPS[1];
    double per_sample = cost_fwd_flops_per_token(&c) * c.seq_len;
    cr_expect_float_eq(per_sample, 2.0 * cost_param_count(&c), 1e-9);
    cr_expect_float_eq(cost_train_flops_per_token(&c) * c.seq_len, 6.0 * cost_param_count(&c),
                       1e-9);
}

/* An unchecked configuration (a hostile manifest) costs nothing rather
 * than crashing the estimate. */
Test(cost, unknown_kind_costs_nothing)
{
    ModelConfig c = GPTS[0];
    c.kind = (ModelKind)9;
    ModelShard sh = model_shard_whole(0);
    cr_expect_eq(cost_param_count(&c), 0);
    cr_expect_eq(cost_act_floats(&c, &sh, 1), 0);
    cr_expect_eq(cost_fwd_flops_per_token(&c), 0.0);
}
