/* The forward-only memory plan (ModelShard.forward_only): one layer's
 * buffers reused by every layer, the loss over vocabulary tiles with no
 * (N,V) logits, the weights read through a weight view. Its loss must be
 * the training forward's loss bit for bit (GPT, llama and MLP, whole models and
 * pipeline stages; tensor parallelism is tests/mpi/tpgrad.c), and what it
 * allocates must not grow with the number of layers. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/cost.h"
#include "models/model.h"
#include "models/ops.h"
#include "models/philox.h"

static void build(Model *m, ModelConfig c, ModelShard sh, int B)
{
    Err e = {{0}};
    cr_assert_eq(model_init_shard(m, &c, &sh, B, 11, &e), 0, "model_init_shard: %s", e.msg);
}

static void tokens(const ModelConfig *c, int B, int *in, int *tg, uint64_t seed)
{
    for (int i = 0; i < B * c->seq_len; i++) {
        in[i] = (int)(philox_uniform(seed, RNG_SAMPLE, 2 * (uint64_t)i) * c->vocab) % c->vocab;
        tg[i] = (int)(philox_uniform(seed, RNG_SAMPLE, 2 * (uint64_t)i + 1) * c->vocab) % c->vocab;
    }
}

/* Moves every weight off its init by an amount keyed by its global index,
 * so a shard gets exactly its slice of the whole model's change. */
static void nudge(Model *m)
{
    for (int k = 0; k < m->n_tensors; k++) {
        const ParamInfo *t = &m->tensors[k];
        for (size_t i = 0; i < t->numel; i++)
            m->params[t->offset + i] +=
                0.05f * philox_normal(99, RNG_SAMPLE, model_global_index(m, t, i));
    }
}

static int same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

/* A view that hands out copies: the forward must then read every weight
 * from the scratch, and still compute the same bits. */
static const float *copy_view(void *ctx, const Model *m, int k, size_t first, size_t n, float *dst)
{
    (void)ctx;
    memcpy(dst, m->params + m->tensors[k].offset + first, n * sizeof *dst);
    return dst;
}

static double loss_of(Model *m, const int *in, const int *tg, int B)
{
    return model_forward(m, in, tg, B);
}

static void expect_lean_equals_training(ModelConfig c, int B, const char *what)
{
    Model train, lean;
    build(&train, c, model_shard_whole(0), B);
    build(&lean, c, model_shard_whole(1), B);
    nudge(&train);
    nudge(&lean);
    int *in = malloc(sizeof(int) * B * c.seq_len), *tg = malloc(sizeof(int) * B * c.seq_len);
    tokens(&c, B, in, tg, 5);
    double a = loss_of(&train, in, tg, B), b = loss_of(&lean, in, tg, B);
    cr_expect(same_bits(a, b), "%s: forward-only loss %.17g, training %.17g", what, b, a);
    Err e = {{0}};
    cr_assert_eq(model_set_weight_view(&lean, copy_view, NULL, &e), 0, "%s", e.msg);
    double v = loss_of(&lean, in, tg, B);
    cr_expect(same_bits(a, v), "%s: through a copying view %.17g, training %.17g", what, v, a);
    /* the view comes off again */
    cr_assert_eq(model_set_weight_view(&lean, NULL, NULL, &e), 0);
    cr_expect(same_bits(a, loss_of(&lean, in, tg, B)), "%s: view removed", what);
    /* and a second batch size (the tail batch of an eval) */
    if (B > 1) {
        double a1 = loss_of(&train, in, tg, B - 1), b1 = loss_of(&lean, in, tg, B - 1);
        cr_expect(same_bits(a1, b1), "%s: batch %d: %.17g vs %.17g", what, B - 1, b1, a1);
    }
    free(in);
    free(tg);
    model_free(&train);
    model_free(&lean);
}

Test(forward_only, gpt_loss_is_the_training_loss_bit_for_bit)
{
    expect_lean_equals_training((ModelConfig){.kind = MODEL_GPT, .n_layer = 3, .n_head = 2,
                                              .n_embd = 16, .seq_len = 12, .vocab = 37}, 3, "gpt");
    expect_lean_equals_training((ModelConfig){.kind = MODEL_GPT, .n_layer = 1, .n_head = 1,
                                              .n_embd = 8, .seq_len = 4,
                                              .vocab = 5}, 1, "gpt 1 layer");
}

/* 2 x 256 rows x 40000 words is 20 M logits: several vocabulary tiles. */
Test(forward_only, gpt_with_vocabulary_tiles)
{
    expect_lean_equals_training((ModelConfig){.kind = MODEL_GPT, .n_layer = 1, .n_head = 2,
                                              .n_embd = 8, .seq_len = 256,
                                              .vocab = 40000}, 2, "gpt tiles");
}

static const ModelConfig LLAMA = {.kind = MODEL_LLAMA, .n_layer = 3, .n_head = 4, .n_kv_head = 2,
                                  .n_embd = 16, .seq_len = 12, .vocab = 37, .mlp_hidden = 40};

/* The llama family: grouped kv heads, rotary positions, SwiGLU; then every
 * option (the qk-norm, in place when forward-only, biases, an untied head,
 * heads x head_dim != width, llama3 rope scaling). */
Test(forward_only, llama_loss_is_the_training_loss_bit_for_bit)
{
    expect_lean_equals_training(LLAMA, 3, "llama");
    ModelConfig q = LLAMA;
    q.n_kv_head = 1;
    q.head_dim = 6;
    q.qkv_bias = q.attn_out_bias = q.mlp_bias = q.qk_norm = q.untied_head = 1;
    q.rope_factor = 8;
    q.rope_low_freq = 1;
    q.rope_high_freq = 4;
    q.rope_orig_ctx = 8;
    expect_lean_equals_training(q, 2, "llama options");
}

Test(forward_only, mlp_loss_is_the_training_loss_bit_for_bit)
{
    expect_lean_equals_training((ModelConfig){.kind = MODEL_MLP, .n_layer = 3, .n_embd = 12,
                                              .seq_len = 4, .vocab = 9}, 5, "mlp");
    expect_lean_equals_training((ModelConfig){.kind = MODEL_MLP, .n_layer = 2, .n_embd = 8,
                                              .seq_len = 3, .vocab = 5}, 2, "mlp 2");
}

/* A pipeline of forward-only stages hands its residual stream on; the last
 * stage's loss is the whole training model's, bit for bit, with every
 * stage holding two micro-batch slots. */
static void expect_stages_equal_whole(const ModelConfig c)
{
    enum { B = 2 };
    const int N = B * c.seq_len;
    Model whole;
    build(&whole, c, model_shard_whole(0), B);
    nudge(&whole);
    int *in = malloc(sizeof(int) * N), *tg = malloc(sizeof(int) * N);
    tokens(&c, B, in, tg, 8);
    double want = loss_of(&whole, in, tg, B);
    /* blocks: 0 embedding, 1..4 layers, 5 head */
    const int cuts[][2] = {{0, 1}, {2, 3}, {4, 5}};
    Model st[3];
    for (int s = 0; s < 3; s++) {
        ModelShard stage = {.tp_size = 1, .first_block = cuts[s][0], .last_block = cuts[s][1],
                            .slots = 2, .forward_only = 1};
        build(&st[s], c, stage, B);
        nudge(&st[s]);
    }
    for (int slot = 0; slot < 2; slot++) {
        double got = model_forward_slot(&st[0], slot, in, tg, B);
        for (int s = 1; s < 3; s++) {
            memcpy(model_stage_input(&st[s], slot), model_stage_output(&st[s - 1], slot),
                   (size_t)N * c.n_embd * sizeof(float));
            got = model_forward_slot(&st[s], slot, in, tg, B);
        }
        cr_expect(same_bits(want, got), "slot %d: staged forward-only %.17g, whole %.17g", slot,
                  got, want);
    }
    for (int s = 0; s < 3; s++) model_free(&st[s]);
    model_free(&whole);
    free(in);
    free(tg);
}

Test(forward_only, gpt_pipeline_stages)
{
    expect_stages_equal_whole((ModelConfig){.kind = MODEL_GPT, .n_layer = 4, .n_head = 2,
                                            .n_embd = 16, .seq_len = 8, .vocab = 23});
}

/* tied (the last stage's copy of wte) and untied (head.w) */
Test(forward_only, llama_pipeline_stages)
{
    ModelConfig c = LLAMA;
    c.n_layer = 4;
    expect_stages_equal_whole(c);
    c.untied_head = 1;
    c.qk_norm = 1;
    expect_stages_equal_whole(c);
}

/* LoRA on every linear: the adapters read through the view (the frozen
 * weights in place), the output projections' u kept after their output in
 * the lean layout's shared buffer; and pipeline stages of adapters. */
Test(forward_only, lora_loss_is_the_training_loss_bit_for_bit)
{
    ModelConfig g = {.kind = MODEL_GPT, .n_layer = 3, .n_head = 2, .n_embd = 16, .seq_len = 12,
                     .vocab = 37, .lora_rank = 3};
    snprintf(g.lora_targets, sizeof g.lora_targets, "all-linear");
    expect_lean_equals_training(g, 3, "gpt lora");
    ModelConfig q = LLAMA;
    q.n_kv_head = 1;
    q.head_dim = 6;
    q.qkv_bias = q.qk_norm = q.untied_head = 1;
    q.lora_rank = 2;
    snprintf(q.lora_targets, sizeof q.lora_targets, "all-linear");
    expect_lean_equals_training(q, 2, "llama lora");
    snprintf(q.lora_targets, sizeof q.lora_targets, "k_proj,down_proj");
    expect_lean_equals_training(q, 2, "llama lora k, down");
    q.n_layer = 4;
    expect_stages_equal_whole(q);
}

/* Sampling's full recompute gives the same logits row either way. */
Test(forward_only, next_logits_match)
{
    const ModelConfig c = {.kind = MODEL_GPT, .n_layer = 2, .n_head = 2, .n_embd = 16,
                           .seq_len = 10, .vocab = 29};
    Model train, lean;
    build(&train, c, model_shard_whole(0), 1);
    build(&lean, c, model_shard_whole(1), 1);
    nudge(&train);
    nudge(&lean);
    int tok[10] = {1, 4, 9, 16, 25, 7, 3, 2, 0, 28};
    for (int t = 1; t <= 10; t += 3) {
        float a[29], b[29];
        memcpy(a, model_next_logits(&train, tok, t), sizeof a);
        memcpy(b, model_next_logits(&lean, tok, t), sizeof b);
        cr_expect(memcmp(a, b, sizeof a) == 0, "t=%d: logits differ", t);
    }
    model_free(&train);
    model_free(&lean);
}

/* What a forward-only pass allocates does not grow with the layers: one
 * set of layer buffers, and a view scratch of one block, not a model. */
static void expect_memory_flat_in_layers(ModelConfig c)
{
    ModelShard lean = model_shard_whole(1), train = model_shard_whole(0);
    size_t one = cost_act_floats(&c, &lean, 4), view1 = cost_view_floats(&c, &lean, 4);
    size_t train1 = cost_act_floats(&c, &train, 4);
    for (int L = 2; L <= 16; L *= 2) {
        c.n_layer = L;
        cr_expect_eq(cost_act_floats(&c, &lean, 4), one, "%d layers: forward-only activations "
                     "%zu floats, 1 layer %zu", L, cost_act_floats(&c, &lean, 4), one);
        cr_expect_eq(cost_view_floats(&c, &lean, 4), view1, "%d layers: view scratch", L);
        cr_expect_gt(cost_act_floats(&c, &train, 4), train1, "training keeps every layer's");
        Model m;
        build(&m, c, lean, 4);
        Err e = {{0}};
        cr_assert_eq(model_set_weight_view(&m, copy_view, NULL, &e), 0);
        cr_expect_eq(m.act_floats, one);
        cr_expect_eq(m.view_floats, view1);
        cr_expect_null(m.grads);
        if (L >= 4)
            cr_expect_lt(m.view_floats, m.n_params / 2, "%d layers: the view scratch (%zu) is "
                         "a block's, not the model's %zu", L, m.view_floats, m.n_params);
        model_free(&m);
    }
}

Test(forward_only, memory_does_not_grow_with_layers)
{
    expect_memory_flat_in_layers((ModelConfig){.kind = MODEL_GPT, .n_layer = 1, .n_head = 4,
                                               .n_embd = 32, .seq_len = 16, .vocab = 64});
    expect_memory_flat_in_layers((ModelConfig){.kind = MODEL_LLAMA, .n_layer = 1, .n_head = 4,
                                               .n_kv_head = 2, .n_embd = 32, .seq_len = 16,
                                               .vocab = 64, .mlp_hidden = 80, .qk_norm = 1,
                                               .untied_head = 1});
}

/* GPT-2 124M's shape at 1 x 1024 tokens: the logits of a forward-only
 * pass are one tile of at most 32 MB, not the 206 MB (N,V) buffer. */
Test(forward_only, gpt2_logits_are_tiled)
{
    const ModelConfig c = {.kind = MODEL_GPT, .n_layer = 12, .n_head = 12, .n_embd = 768,
                           .seq_len = 1024, .vocab = 50257};
    ModelShard lean = model_shard_whole(1), train = model_shard_whole(0);
    size_t full = (size_t)1024 * 50257;
    cr_expect_gt(cost_act_floats(&c, &train, 1), full);
    size_t acts = cost_act_floats(&c, &lean, 1);
    cr_expect_lt(acts, (size_t)(16 << 20), "forward-only activations %zu floats", acts);
}
