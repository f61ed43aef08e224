/* KV-cache decoding (models/gpt_decode.c) against the full-context forward
 * (model_next_logits): the same logits at every position, whether the
 * positions come one by one or as a batched prefill, for GPT-2 and the
 * llama family. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/gpt_decode.h"
#include "models/model.h"
#include "models/ops.h"
#include "models/philox.h"

/* Relative to the largest logit: the two paths sum in different orders
 * (one row vs the whole context per GEMM), which moves the last bits. */
#define LOGIT_RTOL 1e-4

static ModelConfig small_gpt(void)
{
    return (ModelConfig){.kind = MODEL_GPT, .n_layer = 3, .n_head = 4, .n_embd = 32,
                         .seq_len = 24, .vocab = 61};
}

/* A model off its init (biases 0, norms 1), so every term matters. */
static void make_model(Model *m, const ModelConfig *cfg)
{
    Err e = {{0}};
    cr_assert_eq(model_init(m, cfg, 1, 11, &e), 0, "model_init: %s", e.msg);
    for (size_t i = 0; i < m->n_params; i++)
        m->params[i] += 0.3f * philox_normal(12, RNG_SAMPLE, i);
}

static void random_tokens(int *tok, int n, int V, uint64_t seed)
{
    for (int i = 0; i < n; i++) {
        int v = (int)(philox_uniform(seed, RNG_SAMPLE, (uint64_t)i) * V);
        tok[i] = v < V ? v : V - 1;
    }
}

/* max |a - b| / max |b| over V logits */
static double rel_diff(const float *a, const float *b, int V)
{
    double d = 0, scale = 1e-30;
    for (int i = 0; i < V; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    return d / scale;
}

/* Full-context logits after tokens[0..t) (a copy: the model reuses its buffer). */
static void reference(Model *m, const int *tokens, int t, float *out)
{
    const float *l = model_next_logits(m, tokens, t);
    cr_assert_not_null(l, "model_next_logits(t=%d)", t);
    memcpy(out, l, (size_t)m->cfg.vocab * sizeof *out);
}

/* Llama: grouped kv heads (a cache of 2 of them for 4 q heads), rotary
 * positions at each row's cache position, RMSNorm, SwiGLU, tied. */
static ModelConfig small_llama(void)
{
    return (ModelConfig){.kind = MODEL_LLAMA, .n_layer = 3, .n_head = 4, .n_kv_head = 2,
                         .n_embd = 32, .seq_len = 24, .vocab = 61, .mlp_hidden = 40};
}

/* Qwen3-like: the qk-norm, heads x head_dim != width, one kv head, biases,
 * an untied head, llama3 rope scaling. */
static ModelConfig small_qwen(void)
{
    ModelConfig c = small_llama();
    c.n_kv_head = 1;
    c.head_dim = 10;
    c.qk_norm = c.qkv_bias = c.attn_out_bias = c.mlp_bias = c.untied_head = 1;
    c.rope_factor = 8;
    c.rope_low_freq = 1;
    c.rope_high_freq = 4;
    c.rope_orig_ctx = 16;
    return c;
}

static void expect_steps_equal_full_forward(ModelConfig cfg)
{
    const int T = cfg.seq_len, V = cfg.vocab;
    Model m;
    make_model(&m, &cfg);
    int tok[64];
    random_tokens(tok, T, V, 5);
    Err e = {{0}};
    GptDecoder *d = decoder_new(&m, &e);
    cr_assert_not_null(d, "decoder_new: %s", e.msg);
    float *ref = malloc((size_t)V * sizeof *ref);
    double worst = 0;
    for (int t = 1; t <= T; t++) {
        const float *got = decoder_step(d, tok[t - 1]);
        cr_assert_not_null(got, "decoder_step at position %d", t - 1);
        reference(&m, tok, t, ref);
        double r = rel_diff(got, ref, V);
        worst = fmax(worst, r);
        cr_expect(r < LOGIT_RTOL, "position %d: logits differ by %.3g of their scale", t - 1, r);
    }
    cr_log_info("worst relative logit difference %.3g", worst);
    cr_expect_eq(decoder_pos(d), T);
    free(ref);
    decoder_free(d);
    model_free(&m);
}

Test(decode, step_equals_full_forward_at_every_position)
{
    expect_steps_equal_full_forward(small_gpt());
    expect_steps_equal_full_forward(small_llama());
    expect_steps_equal_full_forward(small_qwen());
}

/* Each of T steps of d gives the logits ref holds for that position (T x V). */
static void expect_steps_match(GptDecoder *d, const int *tok, const float *ref, int T, int V,
                               const char *what)
{
    for (int t = 1; t <= T; t++) {
        const float *got = decoder_step(d, tok[t - 1]);
        cr_assert_not_null(got);
        double r = rel_diff(got, ref + (size_t)(t - 1) * V, V);
        cr_expect(r < LOGIT_RTOL, "position %d: %s vs the adapted forward %.3g", t - 1, what, r);
    }
}

/* LoRA: a model whose adapters are not merged (a run's) is decoded with
 * them applied as the decoder runs: the adapted model's logits, the model
 * untouched; merged in place, the same logits from the weights alone (the
 * adapter tensors, still in the table, are not added twice). GPT-2's packed
 * qkv adapter and the llama family's q, k, v, gate and up ones. */
static void expect_lora_decoded(ModelConfig c)
{
    c.lora_rank = 4;
    snprintf(c.lora_targets, sizeof c.lora_targets, "all-linear");
    const int T = c.seq_len, V = c.vocab;
    Model m;
    make_model(&m, &c); /* the adapters move off B = 0 */
    int tok[64];
    random_tokens(tok, T, V, 7);
    float *ref = malloc((size_t)V * T * sizeof *ref);
    for (int t = 1; t <= T; t++) reference(&m, tok, t, ref + (size_t)(t - 1) * V);
    float *params = malloc(m.n_params * sizeof *params), *base = malloc(m.base.n_params * sizeof *base);
    memcpy(params, m.params, m.n_params * sizeof *params);
    memcpy(base, m.base.params, m.base.n_params * sizeof *base);
    Err e = {{0}};
    GptDecoder *d = decoder_new(&m, &e);
    cr_assert_not_null(d, "decoder_new: %s", e.msg);
    expect_steps_match(d, tok, ref, T, V, "adapters applied as it runs");
    decoder_free(d);
    cr_expect(!m.adapters_merged && !memcmp(params, m.params, m.n_params * sizeof *params) &&
                  !memcmp(base, m.base.params, m.base.n_params * sizeof *base),
              "the decoder left the model's weights and adapters as they were");
    free(params);
    free(base);
    cr_assert_eq(model_merge_adapters(&m, &e), 0, "%s", e.msg);
    /* the merge zeroes B: move the adapters off it, so that adding them
     * again would show */
    for (size_t i = 0; i < m.n_params; i++) m.params[i] += 0.3f * philox_normal(13, RNG_SAMPLE, i);
    d = decoder_new(&m, &e);
    cr_assert_not_null(d, "decoder_new: %s", e.msg);
    expect_steps_match(d, tok, ref, T, V, "merged in place (the adapters not added again)");
    free(ref);
    decoder_free(d);
    model_free(&m);
}

Test(decode, lora_adapters_applied_or_merged)
{
    expect_lora_decoded(small_qwen());
    expect_lora_decoded(small_gpt());
}

static void expect_prefill_equals_full_forward(ModelConfig cfg)
{
    const int T = cfg.seq_len, V = cfg.vocab;
    Model m;
    make_model(&m, &cfg);
    int tok[64];
    random_tokens(tok, T, V, 6);
    Err e = {{0}};
    GptDecoder *d = decoder_new(&m, &e);
    cr_assert_not_null(d, "decoder_new: %s", e.msg);
    float *ref = malloc((size_t)V * sizeof *ref);
    for (int n = 1; n <= T; n += 7) { /* prompt lengths 1, 8, 15, 22 */
        decoder_reset(d);
        const float *got = decoder_prefill(d, tok, n);
        cr_assert_not_null(got, "prefill of %d", n);
        reference(&m, tok, n, ref);
        cr_expect(rel_diff(got, ref, V) < LOGIT_RTOL, "prefill of %d differs", n);
        for (int t = n + 1; t <= T; t++) {
            got = decoder_step(d, tok[t - 1]);
            cr_assert_not_null(got);
            reference(&m, tok, t, ref);
            cr_expect(rel_diff(got, ref, V) < LOGIT_RTOL, "prefill %d, position %d differs", n,
                      t - 1);
        }
    }
    free(ref);
    decoder_free(d);
    model_free(&m);
}

Test(decode, prefill_then_steps_equals_full_forward)
{
    expect_prefill_equals_full_forward(small_gpt());
    expect_prefill_equals_full_forward(small_llama());
    expect_prefill_equals_full_forward(small_qwen());
}

Test(decode, full_cache_and_bad_tokens_are_refused)
{
    ModelConfig cfg = small_gpt();
    const int T = cfg.seq_len;
    Model m;
    make_model(&m, &cfg);
    int tok[64] = {0};
    Err e = {{0}};
    GptDecoder *d = decoder_new(&m, &e);
    cr_assert_not_null(d, "decoder_new: %s", e.msg);
    cr_expect_null(decoder_step(d, cfg.vocab), "a token = vocab is refused");
    cr_expect_null(decoder_step(d, -1), "a negative token is refused");
    cr_expect_null(decoder_prefill(d, tok, 0), "an empty prefill is refused");
    cr_expect_null(decoder_prefill(d, tok, T + 1), "a prefill past the context is refused");
    cr_expect_eq(decoder_pos(d), 0, "refusals append nothing");
    cr_assert_not_null(decoder_prefill(d, tok, T));
    cr_expect_null(decoder_step(d, 1), "a full cache refuses another position");
    decoder_reset(d);
    cr_expect_eq(decoder_pos(d), 0);
    cr_expect_not_null(decoder_step(d, 1), "after a reset it decodes again");
    decoder_free(d);
    model_free(&m);
}

Test(decode, shards_and_mlps_are_refused)
{
    ModelConfig cfg = small_gpt();
    Err e = {{0}};
    Model m;
    ModelShard half = {.tp_size = 2, .last_block = -1, .slots = 1, .forward_only = 1};
    cr_assert_eq(model_init_shard(&m, &cfg, &half, 1, 3, &e), 0, "init shard: %s", e.msg);
    cr_expect_null(decoder_new(&m, &e));
    cr_expect(strstr(e.msg, "whole model") != NULL, "message: %s", e.msg);
    model_free(&m);

    ModelConfig mc = {.kind = MODEL_MLP, .n_layer = 1, .n_embd = 8, .seq_len = 4, .vocab = 16};
    cr_assert_eq(model_init(&m, &mc, 1, 3, &e), 0, "init mlp: %s", e.msg);
    cr_expect_null(decoder_new(&m, &e));
    cr_expect(strstr(e.msg, "gpt") != NULL, "message: %s", e.msg);
    model_free(&m);
}

/* Scoring (task evaluation): a shared prefix, then two continuations, the
 * second after truncating the first away; each continuation's summed
 * log-probabilities are the full forward's loss on those positions. */
static double forward_loglik(Model *m, const int *tok, int n, int from)
{
    const int T = m->cfg.seq_len;
    int in[64], tg[64];
    for (int i = 0; i < T; i++) {
        in[i] = i < n - 1 ? tok[i] : 0;
        tg[i] = i < n - 1 && i + 1 >= from ? tok[i + 1] : TARGET_IGNORED;
    }
    return -model_forward(m, in, tg, 1);
}

static void expect_truncated_scores_equal_forward(ModelConfig cfg)
{
    const int T = cfg.seq_len, V = cfg.vocab, P = 9, n = 15;
    Model m;
    Err e = {{0}};
    cr_assert_eq(model_init(&m, &cfg, 1, 11, &e), 0, "model_init: %s", e.msg);
    for (size_t i = 0; i < m.n_params; i++) m.params[i] += 0.3f * philox_normal(12, RNG_SAMPLE, i);
    int a[64], b[64], next[64];
    random_tokens(a, T, V, 7);
    memcpy(b, a, P * sizeof *b);
    random_tokens(b + P, T - P, V, 8); /* the same first P tokens, then others */
    GptDecoder *d = decoder_new(&m, &e);
    cr_assert_not_null(d, "decoder_new: %s", e.msg);
    for (int i = 0; i < n - 1; i++) next[i] = i + 1 >= P ? a[i + 1] : -1;
    double got_a = 0;
    cr_assert_eq(decoder_append_logprob(d, a, n - 1, next, &got_a), 0);
    /* b keeps a's first P-1 positions: position P-1 predicts b's first own token */
    decoder_truncate(d, P - 1);
    cr_expect_eq(decoder_pos(d), P - 1);
    for (int i = P - 1; i < n - 1; i++) next[i - (P - 1)] = b[i + 1];
    double got_b = 0;
    cr_assert_eq(decoder_append_logprob(d, b + P - 1, n - P, next, &got_b), 0);
    double want_a = forward_loglik(&m, a, n, P), want_b = forward_loglik(&m, b, n, P);
    cr_expect(fabs(got_a - want_a) < 1e-5 * fabs(want_a), "a: %.9g, forward %.9g", got_a, want_a);
    cr_expect(fabs(got_b - want_b) < 1e-5 * fabs(want_b), "b: %.9g, forward %.9g", got_b, want_b);
    int bad = V;
    cr_expect_eq(decoder_append_logprob(d, a, 1, &bad, &got_a), -1, "a next token = vocab is refused");
    cr_expect_eq(decoder_pos(d), n - 1, "a refusal appends nothing");
    decoder_free(d);
    model_free(&m);
}

Test(decode, truncated_continuations_score_as_the_full_forward)
{
    expect_truncated_scores_equal_forward(small_gpt());
    expect_truncated_scores_equal_forward(small_llama());
    expect_truncated_scores_equal_forward(small_qwen());
}
