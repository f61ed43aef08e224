/* Whole-model checks: the gradient of every parameter tensor of a tiny GPT
 * and a tiny MLP against central differences of the model's own (float)
 * forward, deterministic init, config validation, and a small learning
 * test (the MLP must actually learn a separable problem with plain GD). */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/arch.h"
#include "models/model.h"
#include "models/ops.h"
#include "models/philox.h"

/* The model is float, so the differences are taken of the float forward
 * (whose loss sum is accumulated in double). Measured on the tiny GPT over
 * ALL its parameters: the 2-point difference with h = 1e-2 is limited by
 * float noise in the loss (~2e-5 in the gradient) and truncation, worst
 * relative error 0.038 with a 1e-3 floor; the 4-point stencil
 * (8(f(h)-f(-h)) - (f(2h)-f(-2h))) / 12h with h = 3e-2 has O(h^4)
 * truncation and half the noise: worst 0.009 with a 2e-3 floor. */
#define FD_H 3e-2f
#define FD_RTOL 2e-2  /* |an - fd| / max(|an|, |fd|, FD_FLOOR) */
#define FD_FLOOR 2e-3
#define MAX_REPORTS 10

static int rand_int(uint64_t seed, uint64_t i, int n)
{
    int v = (int)(philox_uniform(seed, RNG_SAMPLE, i) * n);
    return v < n ? v : n - 1;
}

/* Moves every parameter off its init (biases 0, norm weights 1, tiny
 * matrices) so that every term of the backward is exercised with
 * non-degenerate values. */
static void perturb_params(Model *m, uint64_t seed, float scale)
{
    for (size_t i = 0; i < m->n_params; i++)
        m->params[i] += scale * philox_normal(seed, RNG_SAMPLE, i);
}

/* The loss of the model at its current parameters, as a double. */
typedef double (*LossFn)(Model *m, void *ctx);

typedef struct {
    const int *inputs, *targets;
    int B;
} TokCtx;

static double tok_loss(Model *m, void *p)
{
    TokCtx *c = p;
    return model_forward(m, c->inputs, c->targets, c->B);
}

typedef struct {
    const float *x;
    const int *labels;
    int B;
} FeatCtx;

static double feat_loss(Model *m, void *p)
{
    FeatCtx *c = p;
    return mlp_forward_features(m, c->x, c->labels, c->B);
}

/* The analytic gradient must already be in m->grads. Every element of
 * every tensor (the models are tiny) is checked against the 4-point central
 * difference of the loss. Returns the worst error ratio seen. */
static double check_model_grads_h(const char *what, Model *m, LossFn loss, void *ctx, float h)
{
    double worst = 0.0;
    int n_checked = 0, n_nonzero = 0, n_bad = 0;
    for (int k = 0; k < m->n_tensors; k++) {
        const ParamInfo *t = &m->tensors[k];
        double tworst = 0.0;
        for (size_t i = 0; i < t->numel; i++) {
            size_t gi = t->offset + i;
            float p0 = m->params[gi];
            double f[4];
            const float step[4] = {h, -h, 2 * h, -2 * h};
            for (int s = 0; s < 4; s++) {
                m->params[gi] = p0 + step[s];
                f[s] = loss(m, ctx);
            }
            m->params[gi] = p0;
            double fd = (8.0 * (f[0] - f[1]) - (f[2] - f[3])) / (12.0 * h);
            double an = m->grads[gi];
            double ratio = fabs(an - fd) / fmax(fmax(fabs(fd), fabs(an)), FD_FLOOR);
            if (ratio > tworst) tworst = ratio;
            n_checked++;
            if (fabs(fd) > FD_FLOOR) n_nonzero++;
            if (!(ratio < FD_RTOL) && n_bad++ < MAX_REPORTS)
                cr_expect(0, "%s: %s[%zu]: analytic %.7g vs finite difference %.7g (rel err %.3g)",
                          what, t->name, i, an, fd, ratio);
        }
        cr_log_info("%s: %-16s worst rel err %.3g", what, t->name, tworst);
        if (tworst > worst) worst = tworst;
    }
    cr_log_info("%s: %d elements checked (%d with |grad| > %g), worst rel err %.3g", what,
                n_checked, n_nonzero, FD_FLOOR, worst);
    cr_expect(n_bad == 0, "%s: %d of %d gradient elements disagree with finite differences", what,
              n_bad, n_checked);
    /* a test that checks only zeros checks nothing */
    cr_expect(n_nonzero > n_checked / 2, "%s: only %d of %d gradients are nonzero", what,
              n_nonzero, n_checked);
    return worst;
}

static double check_model_grads(const char *what, Model *m, LossFn loss, void *ctx)
{
    return check_model_grads_h(what, m, loss, ctx, FD_H);
}

/* grads of backward twice == 2 * grads of backward once (accumulation), and
 * backward with grad_scale s == s * grads with scale 1. */
static void check_backward_accumulates(Model *m, void (*bwd)(Model *, void *, float), void *ctx)
{
    size_t n = m->n_params;
    float *once = malloc(n * sizeof(float));
    cr_assert_not_null(once);
    model_zero_grad(m);
    bwd(m, ctx, 1.0f);
    memcpy(once, m->grads, n * sizeof(float));
    bwd(m, ctx, 1.0f);
    double maxg = 0.0;
    for (size_t i = 0; i < n; i++) maxg = fmax(maxg, fabs(once[i]));
    cr_expect(maxg > 0.0);
    for (size_t i = 0; i < n; i++) {
        if (fabs(m->grads[i] - 2.0 * once[i]) > 1e-5 * maxg) {
            cr_expect(0, "grad[%zu]: backward twice %.8g, once %.8g: not accumulating", i,
                      (double)m->grads[i], (double)once[i]);
            break;
        }
    }
    model_zero_grad(m);
    for (size_t i = 0; i < n; i++)
        if (m->grads[i] != 0.0f) {
            cr_expect(0, "model_zero_grad left grad[%zu] = %g", i, (double)m->grads[i]);
            break;
        }
    bwd(m, ctx, 0.25f);
    for (size_t i = 0; i < n; i++) {
        if (fabs(m->grads[i] - 0.25 * once[i]) > 1e-5 * maxg) {
            cr_expect(0, "grad[%zu]: grad_scale 0.25 gives %.8g, scale 1 gives %.8g", i,
                      (double)m->grads[i], (double)once[i]);
            break;
        }
    }
    free(once);
}

/* forward first: a backward consumes its forward's activations (the GPT
 * head turns the logits into their gradient in place) */
static void tok_bwd(Model *m, void *p, float s)
{
    TokCtx *c = p;
    model_forward(m, c->inputs, c->targets, c->B);
    model_backward(m, c->inputs, c->targets, c->B, s);
}

static void feat_bwd(Model *m, void *p, float s)
{
    FeatCtx *c = p;
    mlp_backward_features(m, c->x, c->labels, c->B, s);
}

/* The tensor table tiles [0, n_params) in order, without gaps. */
static void check_table(const Model *m)
{
    size_t off = 0;
    for (int k = 0; k < m->n_tensors; k++) {
        const ParamInfo *t = &m->tensors[k];
        cr_expect_eq(t->offset, off, "tensor %s starts at %zu, expected %zu", t->name, t->offset,
                     off);
        size_t numel = (size_t)t->shape[0] * (t->ndim > 1 ? (size_t)t->shape[1] : 1);
        cr_expect_eq(t->numel, numel, "tensor %s numel %zu vs shape", t->name, t->numel);
        cr_expect(t->block >= 0 && t->block < m->n_blocks, "tensor %s block %d", t->name, t->block);
        if (k > 0) cr_expect(t->block >= m->tensors[k - 1].block, "blocks out of order at %s", t->name);
        off += t->numel;
    }
    cr_expect_eq(off, m->n_params);
}

/* ---- GPT ------------------------------------------------------------------ */

static ModelConfig tiny_gpt(void)
{
    ModelConfig c = {0};
    c.kind = MODEL_GPT;
    c.n_layer = 2;
    c.n_head = 2;
    c.n_embd = 8;
    c.seq_len = 5;
    c.vocab = 11;
    return c;
}

/* Every gradient of a tiny transformer against finite differences, then
 * the backward's accumulation; returns nothing, expects. */
static void transformer_gradcheck(const char *what, ModelConfig cfg, size_t expect_params, float h)
{
    const int B = 2, T = cfg.seq_len, V = cfg.vocab;
    Model m;
    Err e = {{0}};
    cr_assert_eq(model_init(&m, &cfg, B, 1234, &e), 0, "model_init: %s", e.msg);
    check_table(&m);
    if (expect_params)
        cr_expect_eq(m.n_params, expect_params, "%s has %zu params, expected %zu", what,
                     m.n_params, expect_params);
    perturb_params(&m, 99, 0.2f);

    int inputs[16], targets[16];
    cr_assert(B * T <= 16);
    for (int i = 0; i < B * T; i++) {
        inputs[i] = rand_int(5, i, V);
        targets[i] = rand_int(6, i, V);
    }
    inputs[3] = inputs[1]; /* a token repeated within a sequence */
    inputs[B * T - 1] = inputs[0];
    TokCtx ctx = {inputs, targets, B};

    model_zero_grad(&m);
    double loss = model_forward(&m, inputs, targets, B);
    cr_expect(isfinite(loss) && loss > 0.0, "loss %g", loss);
    model_backward(&m, inputs, targets, B, 1.0f);
    check_model_grads_h(what, &m, tok_loss, &ctx, h);

    /* the forward at the unperturbed parameters still gives the same loss
     * (the difference loop restored every element) */
    cr_expect(model_forward(&m, inputs, targets, B) == loss);

    model_forward(&m, inputs, targets, B);
    check_backward_accumulates(&m, tok_bwd, &ctx);
    model_free(&m);
}

Test(models, gpt_gradcheck)
{
    ModelConfig cfg = tiny_gpt();
    const size_t T = cfg.seq_len, V = cfg.vocab, C = cfg.n_embd, L = cfg.n_layer;
    size_t expect = V * C + T * C + 2 * C
                    + L * (2 * C + 3 * C * C + 3 * C + C * C + C + 2 * C + 4 * C * C + 4 * C
                           + 4 * C * C + C);
    transformer_gradcheck("gpt", cfg, expect, FD_H);
}

/* Batch rows are independent: the loss of a batch of 2 is the sum of the
 * two single-sequence losses (the buffers are sized for max_batch, the
 * forward must honour the smaller B). */
Test(models, gpt_batch_rows_independent)
{
    ModelConfig cfg = tiny_gpt();
    const int T = cfg.seq_len;
    Model m;
    Err e = {{0}};
    cr_assert_eq(model_init(&m, &cfg, 3, 7, &e), 0, "model_init: %s", e.msg);
    perturb_params(&m, 8, 0.2f);
    int in[10], tg[10];
    for (int i = 0; i < 2 * T; i++) {
        in[i] = rand_int(9, i, cfg.vocab);
        tg[i] = rand_int(10, i, cfg.vocab);
    }
    double both = model_forward(&m, in, tg, 2);
    double a = model_forward(&m, in, tg, 1);
    double b = model_forward(&m, in + T, tg + T, 1);
    cr_expect(fabs(both - (a + b)) < 1e-5 * fabs(both), "batch loss %.9g vs %.9g + %.9g", both, a,
              b);
    model_free(&m);
}

/* ---- MLP ------------------------------------------------------------------ */

Test(models, mlp_tokens_gradcheck)
{
    ModelConfig cfg = {0};
    cfg.kind = MODEL_MLP;
    cfg.n_layer = 2;
    cfg.n_embd = 6;
    cfg.seq_len = 3;
    cfg.vocab = 5;
    const int B = 4, T = cfg.seq_len, V = cfg.vocab;
    Model m;
    Err e = {{0}};
    cr_assert_eq(model_init(&m, &cfg, B, 42, &e), 0, "model_init: %s", e.msg);
    check_table(&m);
    const int H = cfg.n_embd, in = T * V;
    cr_expect_eq(m.n_params, (size_t)(in * H + H + H * H + H + H * V + V));
    perturb_params(&m, 77, 0.2f);

    int inputs[12], targets[12];
    for (int i = 0; i < B * T; i++) {
        inputs[i] = rand_int(11, i, V);
        targets[i] = rand_int(12, i, V);
    }
    TokCtx ctx = {inputs, targets, B};
    model_zero_grad(&m);
    double loss = model_forward(&m, inputs, targets, B);
    cr_expect(isfinite(loss) && loss > 0.0);
    model_backward(&m, inputs, targets, B, 1.0f);
    check_model_grads("mlp tokens", &m, tok_loss, &ctx);

    model_forward(&m, inputs, targets, B);
    check_backward_accumulates(&m, tok_bwd, &ctx);
    cr_expect_eq(model_preds_per_seq(&cfg), 1);
    model_free(&m);
}

Test(models, mlp_features_gradcheck)
{
    ModelConfig cfg = {0};
    cfg.kind = MODEL_MLP;
    cfg.n_layer = 2;
    cfg.n_embd = 6;
    cfg.seq_len = 1;
    cfg.vocab = 3;
    cfg.in_dim = 4;
    const int B = 4;
    Model m;
    Err e = {{0}};
    cr_assert_eq(model_init(&m, &cfg, B, 43, &e), 0, "model_init: %s", e.msg);
    check_table(&m);
    cr_expect_eq(m.n_params, (size_t)(4 * 6 + 6 + 6 * 6 + 6 + 6 * 3 + 3));
    perturb_params(&m, 78, 0.2f);

    float x[16];
    int labels[4] = {0, 2, 1, 2};
    for (int i = 0; i < B * cfg.in_dim; i++) x[i] = philox_normal(13, RNG_SAMPLE, i);
    FeatCtx ctx = {x, labels, B};
    model_zero_grad(&m);
    double loss = mlp_forward_features(&m, x, labels, B);
    cr_expect(isfinite(loss) && loss > 0.0);
    mlp_backward_features(&m, x, labels, B, 1.0f);
    check_model_grads("mlp features", &m, feat_loss, &ctx);

    mlp_forward_features(&m, x, labels, B);
    check_backward_accumulates(&m, feat_bwd, &ctx);
    model_free(&m);
}

/* ---- init and config ------------------------------------------------------ */

Test(models, init_is_deterministic)
{
    ModelConfig cfgs[2] = {tiny_gpt(), {0}};
    cfgs[1].kind = MODEL_MLP;
    cfgs[1].n_layer = 2;
    cfgs[1].n_embd = 6;
    cfgs[1].seq_len = 3;
    cfgs[1].vocab = 5;
    for (int k = 0; k < 2; k++) {
        Model a, b, c;
        Err e = {{0}};
        cr_assert_eq(model_init(&a, &cfgs[k], 2, 2024, &e), 0, "%s", e.msg);
        cr_assert_eq(model_init(&b, &cfgs[k], 3, 2024, &e), 0, "%s", e.msg);
        cr_assert_eq(model_init(&c, &cfgs[k], 2, 2025, &e), 0, "%s", e.msg);
        cr_assert_eq(a.n_params, b.n_params);
        cr_expect(memcmp(a.params, b.params, a.n_params * sizeof(float)) == 0,
                  "kind %d: the same seed gave different parameters", k);
        cr_expect(memcmp(a.params, c.params, a.n_params * sizeof(float)) != 0,
                  "kind %d: different seeds gave identical parameters", k);
        /* every random tensor differs between the seeds, not just one */
        for (int t = 0; t < a.n_tensors; t++) {
            const ParamInfo *ti = &a.tensors[t];
            if (ti->init_std <= 0) continue;
            cr_expect(memcmp(a.params + ti->offset, c.params + ti->offset,
                             ti->numel * sizeof(float)) != 0,
                      "tensor %s is the same under two seeds", ti->name);
        }
        /* re-initializing reproduces the weights after they were changed */
        perturb_params(&a, 5, 1.0f);
        model_init_weights(&a, 2024);
        cr_expect(memcmp(a.params, b.params, a.n_params * sizeof(float)) == 0);
        /* gradients start at zero */
        for (size_t i = 0; i < a.n_params; i++)
            if (a.grads[i] != 0.0f) {
                cr_expect(0, "grads[%zu] = %g after init", i, (double)a.grads[i]);
                break;
            }
        model_free(&a);
        model_free(&b);
        model_free(&c);
    }
}

/* init_std semantics: norms are ones, biases zeros, matrices have the
 * requested standard deviation. */
Test(models, init_statistics)
{
    ModelConfig cfg = tiny_gpt();
    cfg.n_embd = 32;
    cfg.vocab = 64;
    cfg.seq_len = 16;
    Model m;
    Err e = {{0}};
    cr_assert_eq(model_init(&m, &cfg, 1, 3, &e), 0, "%s", e.msg);
    for (int k = 0; k < m.n_tensors; k++) {
        const ParamInfo *t = &m.tensors[k];
        const float *p = m.params + t->offset;
        if (t->init_std <= 0) {
            float v = t->init_std < 0 ? 1.0f : 0.0f;
            for (size_t i = 0; i < t->numel; i++)
                if (p[i] != v) {
                    cr_expect(0, "%s[%zu] = %g, expected %g", t->name, i, (double)p[i], (double)v);
                    break;
                }
        } else if (t->numel >= 512) {
            double s = 0.0, s2 = 0.0;
            for (size_t i = 0; i < t->numel; i++) {
                s += p[i];
                s2 += (double)p[i] * p[i];
            }
            double mean = s / t->numel, sd = sqrt(s2 / t->numel - mean * mean);
            cr_expect(fabs(sd / t->init_std - 1.0) < 0.15, "%s: std %.4g, expected %.4g", t->name,
                      sd, (double)t->init_std);
            cr_expect(fabs(mean) < 4.0 * t->init_std / sqrt((double)t->numel),
                      "%s: mean %.4g", t->name, mean);
        }
    }
    model_free(&m);
}

Test(models, config_validate)
{
    ModelConfig c = tiny_gpt();
    Err e = {{0}};
    cr_expect_eq(model_config_validate(&c, &e), 0, "%s", e.msg);

    c.n_head = 3; /* 8 % 3 != 0 */
    memset(&e, 0, sizeof e);
    cr_expect_neq(model_config_validate(&c, &e), 0, "heads 3 with embd 8 accepted");
    cr_expect(strstr(e.msg, "--heads") != NULL, "message does not name --heads: '%s'", e.msg);

    Model m;
    memset(&e, 0, sizeof e);
    cr_expect_neq(model_init(&m, &c, 1, 1, &e), 0, "model_init accepted heads 3 with embd 8");
    cr_expect(strstr(e.msg, "--heads") != NULL, "model_init message: '%s'", e.msg);

    c = tiny_gpt();
    c.n_head = 0;
    cr_expect_neq(model_config_validate(&c, &e), 0, "0 heads accepted");
    c = tiny_gpt();
    c.n_layer = 0;
    cr_expect_neq(model_config_validate(&c, &e), 0, "0 layers accepted");
    cr_expect(strstr(e.msg, "--layers") != NULL, "'%s'", e.msg);
    c = tiny_gpt();
    c.vocab = 1;
    cr_expect_neq(model_config_validate(&c, &e), 0, "vocab 1 accepted");
    cr_expect(strstr(e.msg, "--vocab") != NULL, "'%s'", e.msg);

    /* heads do not matter for the MLP */
    ModelConfig mc = {0};
    mc.kind = MODEL_MLP;
    mc.n_layer = 1;
    mc.n_embd = 7;
    mc.seq_len = 2;
    mc.vocab = 3;
    cr_expect_eq(model_config_validate(&mc, &e), 0, "%s", e.msg);
}

/* ---- architecture tables ------------------------------------------------------ */

Test(models, arch_is_chosen_by_kind)
{
    cr_expect_eq(model_arch(MODEL_GPT), &GPT_ARCH);
    cr_expect_eq(model_arch(MODEL_MLP), &MLP_ARCH);
    cr_expect_null(model_arch((ModelKind)7));
    ModelConfig bad = tiny_gpt();
    bad.kind = (ModelKind)7;
    Err e = {{0}};
    cr_expect_neq(model_config_validate(&bad, &e), 0);
    cr_expect_eq(model_n_blocks(&bad), 0, "an unknown kind has no blocks");
    Model m;
    ModelConfig g = tiny_gpt();
    cr_assert_eq(model_init(&m, &g, 1, 1, &e), 0, "%s", e.msg);
    cr_expect_eq(m.arch, &GPT_ARCH);
    cr_expect_eq(strcmp(m.arch->name, "gpt"), 0);
    /* a whole GPT's stage output is its last layer's residual stream */
    cr_expect_not_null(model_stage_output(&m, 0));
    model_free(&m);
}

/* The description: GPT-2's values, the shape they give, and a family whose
 * kernels are not written yet refused by name. */
Test(models, transformer_description)
{
    ModelConfig g = tiny_gpt();
    cr_expect_eq(model_transformer(&g), &GPT2_TRANSFORMER);
    cr_expect_eq(GPT_ARCH.transformer, &GPT2_TRANSFORMER);
    cr_expect_null(MLP_ARCH.transformer, "the mlp is not a transformer");
    TransformerShape ts = transformer_shape(&g);
    cr_expect_eq(ts.n_head, 2);
    cr_expect_eq(ts.n_kv_head, 2);
    cr_expect_eq(ts.head_dim, 4);
    cr_expect_eq(ts.kv_width, 8);
    cr_expect_eq(ts.qkv_rows, 24);
    cr_expect_eq(ts.mlp_hidden, 32);
    Err e = {{0}};
    cr_expect_eq(transformer_check(&GPT2_TRANSFORMER, "gpt", &e), 0, "%s", e.msg);
    cr_expect_eq(transformer_check(&LLAMA_TRANSFORMER, "llama", &e), 0, "%s", e.msg);
    /* each piece of Llama/Qwen/Mistral has its kernel, mixed with GPT-2's too */
    TransformerDesc d[6];
    for (int i = 0; i < 6; i++) d[i] = GPT2_TRANSFORMER;
    d[0].norm = NORM_RMS;
    d[0].biases &= ~(unsigned)BIAS_NORM;
    d[1].pos = POS_ROPE;
    d[2].mlp = MLP_SWIGLU;
    d[3].grouped_kv = 1;
    d[4].biases = BIAS_QKV;
    d[5].tied_head = 0;
    for (int i = 0; i < 6; i++) cr_expect_eq(transformer_check(&d[i], "x", &e), 0, "%d: %s", i, e.msg);
    /* but RMSNorm has no shift */
    d[0].biases |= BIAS_NORM;
    cr_expect_neq(transformer_check(&d[0], "llama", &e), 0);
    cr_expect(strstr(e.msg, "llama") && strstr(e.msg, "RMSNorm"), "%s", e.msg);
}

/* ---- the llama family ----------------------------------------------------------- */

static ModelConfig tiny_llama(void)
{
    return (ModelConfig){.kind = MODEL_LLAMA, .n_layer = 2, .n_head = 4, .n_kv_head = 2,
                         .n_embd = 8, .seq_len = 5, .vocab = 11, .mlp_hidden = 12};
}

/* Names, shapes, TP splits and init of the table: expect[] lists layer 1's
 * tensors after the embedding and layer 0, then the end. */
static void expect_names(const Model *m, const char *const *names, size_t n)
{
    cr_expect_eq((size_t)m->n_tensors, n, "%d tensors, expected %zu", m->n_tensors, n);
    for (size_t i = 0; i < n && i < (size_t)m->n_tensors; i++)
        cr_expect_str_eq(m->tensors[i].name, names[i], "tensor %zu", i);
}

/* Grouped kv heads (2 q heads per kv head), RMSNorm, rotary positions,
 * SwiGLU, the tied head. */
Test(models, llama_gradcheck)
{
    ModelConfig c = tiny_llama();
    const size_t C = 8, V = 11, F = 12, L = 2;
    const size_t layer = C + (8 + 4 + 4) * C + C * 8 + C + 3 * F * C;
    transformer_gradcheck("llama", c, V * C + L * layer + C, FD_H);
}

/* Every option at once: an explicit head size (heads x head_dim != width),
 * one kv head for all, q/k/v, o_proj and MLP biases, the qk-norm, an
 * untied head and llama3's rope scaling (a small theta and original
 * context put the frequencies in all three of its bands). Rows 6 wide
 * RMS-normalized (the embedding, heads of 6) curve more than FD_H's
 * stencil allows: at h = 3e-2, 3 of 1482 elements were off by 6-16%
 * (wte, v.w); at h = 1e-2 the worst is 1.1%. */
Test(models, llama_options_gradcheck)
{
    ModelConfig c = tiny_llama();
    c.n_layer = 1; /* the layers are alike: one checks the options in half the time */
    c.n_kv_head = 1;
    c.head_dim = 6;
    c.n_embd = 6;
    c.qkv_bias = c.attn_out_bias = c.mlp_bias = c.qk_norm = c.untied_head = 1;
    c.rope_theta = 50;
    c.rope_factor = 4;
    c.rope_low_freq = 1;
    c.rope_high_freq = 4;
    c.rope_orig_ctx = 32; /* wavelengths 6.3 (kept), 23 (smoothed), 85 (scaled) */
    c.norm_eps = 1e-3f;
    transformer_gradcheck("llama options", c, 0, 1e-2f);
    /* two kv heads, q/k/v biases only, tied */
    c.n_kv_head = 2;
    c.qk_norm = 0;
    c.attn_out_bias = c.mlp_bias = 0;
    c.untied_head = 0;
    transformer_gradcheck("llama kv 2", c, 0, 1e-2f);
}

/* ---- LoRA ---------------------------------------------------------------------- */

/* Adapters on every linear of GPT-2 and of llama (biases and a qk-norm
 * too): their gradients against finite differences, the base frozen. */
Test(models, lora_gradcheck)
{
    ModelConfig c = tiny_gpt();
    c.lora_rank = 2;
    c.lora_alpha = 1;
    snprintf(c.lora_targets, sizeof c.lora_targets, "all-linear");
    const size_t C = c.n_embd, r = 2;
    /* c_attn (C -> 3C), attn c_proj (C -> C), c_fc (C -> 4C), mlp c_proj (4C -> C) */
    transformer_gradcheck("gpt lora", c, c.n_layer * r * 16 * C, FD_H);
    ModelConfig l = tiny_llama();
    l.lora_rank = 3;
    l.lora_alpha = 1.5f;
    l.qkv_bias = l.qk_norm = 1;
    l.n_head = 2; /* heads of 4: the qk-norm of heads of 2 curves too much for a stencil */
    l.n_kv_head = 1;
    snprintf(l.lora_targets, sizeof l.lora_targets, "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj");
    /* RMS-normalized heads curve: the smaller step, as llama_options_gradcheck */
    transformer_gradcheck("llama lora", l, 0, 1e-2f);
}

/* A LoRA model is its base plus adapters: the base draws what the model
 * without adapters draws (same names, same values), B starts at zero so
 * the first loss is the base's, nothing of the base is trained, and
 * merging the trained adapters into the base keeps the loss. */
Test(models, lora_base_and_merge)
{
    ModelConfig c = tiny_llama(), lc = c;
    lc.lora_rank = 2;
    snprintf(lc.lora_targets, sizeof lc.lora_targets, "all-linear");
    Model full, lora;
    Err e = {{0}};
    cr_assert_eq(model_init(&full, &c, 2, 77, &e), 0, "%s", e.msg);
    cr_assert_eq(model_init(&lora, &lc, 2, 77, &e), 0, "%s", e.msg);
    cr_expect_eq(lora.base.n_tensors, full.n_tensors);
    cr_expect_eq(lora.base.n_params, full.n_params);
    for (int k = 0; k < full.n_tensors && k < lora.base.n_tensors; k++)
        cr_expect_str_eq(lora.base.tensors[k].name, full.tensors[k].name);
    cr_expect(!memcmp(lora.base.params, full.params, full.n_params * sizeof(float)),
              "the base's init differs from the plain model's");
    for (int k = 0; k < lora.n_tensors; k++)
        cr_expect(strstr(lora.tensors[k].name, ".lora_"), "trained tensor %s is not an adapter",
                  lora.tensors[k].name);
    cr_expect_eq(model_weight_table(&lora).n_params, full.n_params);
    cr_expect(lora.grads && !model_tensor_grad(&lora, MODEL_BASE_ID), "only the adapters have gradients");
    int in[10], tg[10];
    for (int i = 0; i < 10; i++) in[i] = rand_int(1, i, c.vocab), tg[i] = rand_int(2, i, c.vocab);
    double l0 = model_forward(&full, in, tg, 2), l1 = model_forward(&lora, in, tg, 2);
    cr_expect(l0 == l1, "B = 0: the adapted model's loss %.9g is the base's %.9g", l1, l0);
    perturb_params(&lora, 5, 0.3f);
    double adapted = model_forward(&lora, in, tg, 2);
    cr_expect(fabs(adapted - l0) > 1e-4, "perturbed adapters change the loss");
    cr_assert_eq(model_merge_adapters(&lora, &e), 0, "%s", e.msg);
    double merged = model_forward(&lora, in, tg, 2);
    cr_expect(fabs(merged - adapted) < 1e-5 * fabs(adapted), "merged %.9g vs adapted %.9g", merged,
              adapted);
    model_free(&full);
    model_free(&lora);
}

/* LoRA dropout: a keyed forward (the key is consumed) drops the adapters'
 * inputs by a mask the backward draws again: gradients against finite
 * differences of the same keyed loss; an unkeyed forward drops nothing;
 * the mask of a token row depends on its global row, not on the batch it
 * came in (so the data-parallel split of a batch draws the whole's). */
typedef struct {
    TokCtx tok;
    uint64_t key, row0;
} KeyedCtx;

static double keyed_loss(Model *m, void *p)
{
    KeyedCtx *k = p;
    m->dropout_key = k->key;
    m->dropout_row0 = k->row0;
    return model_forward(m, k->tok.inputs, k->tok.targets, k->tok.B);
}

Test(models, lora_dropout)
{
    ModelConfig c = tiny_llama();
    c.lora_rank = 2;
    c.lora_alpha = 2;
    c.lora_dropout = 0.3f;
    snprintf(c.lora_targets, sizeof c.lora_targets, "all-linear");
    const int B = 2, T = c.seq_len;
    Model m, plain;
    Err e = {{0}};
    cr_assert_eq(model_init(&m, &c, B, 3, &e), 0, "%s", e.msg);
    ModelConfig c0 = c;
    c0.lora_dropout = 0;
    cr_assert_eq(model_init(&plain, &c0, B, 3, &e), 0, "%s", e.msg);
    perturb_params(&m, 8, 0.3f);
    perturb_params(&plain, 8, 0.3f);
    int in[10], tg[10];
    for (int i = 0; i < B * T; i++) in[i] = rand_int(3, i, c.vocab), tg[i] = rand_int(4, i, c.vocab);
    KeyedCtx k = {{in, tg, B}, 0x1234567, 40};
    double none = model_forward(&m, in, tg, B), base = model_forward(&plain, in, tg, B);
    cr_expect(none == base, "unkeyed: no dropout (%.9g vs %.9g)", none, base);
    double dropped = keyed_loss(&m, &k);
    cr_expect(dropped != none, "keyed: the mask changes the loss");
    cr_expect(keyed_loss(&m, &k) == dropped, "the same key, the same mask");
    cr_expect(model_forward(&m, in, tg, B) == none, "the key was consumed");
    /* row by row: sequence b with row0 + b T alone gives its share */
    double rows = 0;
    for (int b = 0; b < B; b++) {
        KeyedCtx one = {{in + b * T, tg + b * T, 1}, k.key, k.row0 + (uint64_t)b * T};
        rows += keyed_loss(&m, &one);
    }
    cr_expect(fabs(rows - dropped) < 1e-5 * fabs(dropped), "split rows %.9g vs batch %.9g", rows,
              dropped);
    model_zero_grad(&m);
    keyed_loss(&m, &k);
    model_backward(&m, in, tg, B, 1.0f);
    check_model_grads_h("llama lora dropout", &m, keyed_loss, &k, 1e-2f);
    model_free(&m);
    model_free(&plain);
}

/* Refusals by name. */
Test(models, lora_config_refusals)
{
    Err e = {{0}};
    ModelConfig c = tiny_llama();
    c.lora_rank = 2;
    snprintf(c.lora_targets, sizeof c.lora_targets, "q_proj,c_attn");
    cr_expect_neq(model_config_validate(&c, &e), 0);
    cr_expect(strstr(e.msg, "'c_attn'"), "%s", e.msg);
    c.lora_targets[0] = 0;
    c.lora_dropout = 1.0f; /* keeps nothing */
    cr_expect_neq(model_config_validate(&c, &e), 0);
    cr_expect(strstr(e.msg, "--lora-dropout"), "%s", e.msg);
    ModelConfig g = tiny_gpt();
    snprintf(g.lora_targets, sizeof g.lora_targets, "c_attn");
    cr_expect_neq(model_config_validate(&g, &e), 0);
    cr_expect(strstr(e.msg, "--lora-rank"), "%s", e.msg);
}

Test(models, llama_tensor_table)
{
    ModelConfig c = tiny_llama();
    Model m;
    Err e = {{0}};
    cr_assert_eq(model_init(&m, &c, 1, 5, &e), 0, "%s", e.msg);
    check_table(&m);
    static const char *const plain[] = {
        "wte", "h.0.ln1.w", "h.0.attn.q.w", "h.0.attn.k.w", "h.0.attn.v.w", "h.0.attn.proj.w",
        "h.0.ln2.w", "h.0.mlp.gate.w", "h.0.mlp.up.w", "h.0.mlp.proj.w", "h.1.ln1.w",
        "h.1.attn.q.w", "h.1.attn.k.w", "h.1.attn.v.w", "h.1.attn.proj.w", "h.1.ln2.w",
        "h.1.mlp.gate.w", "h.1.mlp.up.w", "h.1.mlp.proj.w", "lnf.w"};
    expect_names(&m, plain, sizeof plain / sizeof plain[0]);
    const struct { const char *name; int d0, d1; float std; } shapes[] = {
        {"wte", 11, 8, 0.02f}, {"h.0.attn.q.w", 8, 8, 0.02f}, {"h.0.attn.k.w", 4, 8, 0.02f},
        {"h.1.attn.proj.w", 8, 8, 0.02f}, {"h.1.mlp.gate.w", 12, 8, 0.02f},
        {"h.1.mlp.proj.w", 8, 12, 0.02f}, {"lnf.w", 8, 1, -1}, {"h.0.ln2.w", 8, 1, -1}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const ParamInfo *t = model_find_tensor(&m, shapes[i].name);
        cr_assert_not_null(t, "%s", shapes[i].name);
        cr_expect(t->shape[0] == shapes[i].d0 && t->shape[1] == shapes[i].d1, "%s: %d x %d",
                  t->name, t->shape[0], t->shape[1]);
        cr_expect_eq(t->init_std, shapes[i].std, "%s: init %g", t->name, (double)t->init_std);
    }
    model_free(&m);

    /* every option: biases, qk norms, an explicit head size, an untied head */
    c.head_dim = 6;
    c.qkv_bias = c.attn_out_bias = c.mlp_bias = c.qk_norm = c.untied_head = 1;
    c.n_layer = 1;
    cr_assert_eq(model_init(&m, &c, 1, 5, &e), 0, "%s", e.msg);
    check_table(&m);
    static const char *const all[] = {
        "wte", "h.0.ln1.w", "h.0.attn.q.w", "h.0.attn.k.w", "h.0.attn.v.w", "h.0.attn.q.b",
        "h.0.attn.k.b", "h.0.attn.v.b", "h.0.attn.q_norm.w", "h.0.attn.k_norm.w",
        "h.0.attn.proj.w", "h.0.attn.proj.b", "h.0.ln2.w", "h.0.mlp.gate.w", "h.0.mlp.gate.b",
        "h.0.mlp.up.w", "h.0.mlp.up.b", "h.0.mlp.proj.w", "h.0.mlp.proj.b", "lnf.w", "head.w"};
    expect_names(&m, all, sizeof all / sizeof all[0]);
    cr_expect_eq(model_find_tensor(&m, "h.0.attn.q.w")->shape[0], 24);
    cr_expect_eq(model_find_tensor(&m, "h.0.attn.v.b")->shape[0], 12);
    cr_expect_eq(model_find_tensor(&m, "h.0.attn.q_norm.w")->shape[0], 6);
    cr_expect_eq(model_find_tensor(&m, "h.0.attn.proj.w")->shape[1], 24);
    cr_expect_eq(model_find_tensor(&m, "head.w")->block, 2);
    model_free(&m);
}

/* TP: q, gate, up by rows, o_proj and down by columns; k and v by rows when
 * tp divides the kv heads, else whole on every rank; norms whole. */
Test(models, llama_tp_splits)
{
    ModelConfig c = tiny_llama(); /* 4 heads, 2 kv heads of 2 */
    c.qk_norm = 1;
    for (int tp = 2; tp <= 4; tp *= 2) {
        ModelShard sh = {.tp_rank = 1, .tp_size = tp, .last_block = -1, .slots = 1};
        Model m;
        Err e = {{0}};
        cr_assert_eq(model_init_shard(&m, &c, &sh, 1, 5, &e), 0, "%s", e.msg);
        const ParamInfo *q = model_find_tensor(&m, "h.0.attn.q.w"),
                        *k = model_find_tensor(&m, "h.0.attn.k.w"),
                        *o = model_find_tensor(&m, "h.0.attn.proj.w"),
                        *up = model_find_tensor(&m, "h.0.mlp.up.w"),
                        *dn = model_find_tensor(&m, "h.0.mlp.proj.w"),
                        *qn = model_find_tensor(&m, "h.0.attn.q_norm.w");
        cr_expect_eq(q->local_shape[0], 8 / tp);
        cr_expect_eq(k->split, tp == 2 ? TP_COLUMN : TP_REPLICATED, "tp %d", tp);
        cr_expect_eq(k->local_shape[0], tp == 2 ? 2 : 4, "tp %d", tp);
        cr_expect_eq(o->local_shape[1], 8 / tp);
        cr_expect_eq(up->local_shape[0], 12 / tp);
        cr_expect_eq(dn->local_shape[1], 12 / tp);
        cr_expect_eq(qn->split, TP_REPLICATED);
        model_free(&m);
    }
    /* tp must divide the heads and the MLP */
    ModelShard bad = {.tp_rank = 0, .tp_size = 8, .last_block = -1, .slots = 1};
    Err e = {{0}};
    cr_expect_neq(model_shard_validate(&c, &bad, &e), 0);
    c.mlp_hidden = 10;
    bad.tp_size = 4;
    cr_expect_neq(model_shard_validate(&c, &bad, &e), 0);
    cr_expect(strstr(e.msg, "--mlp-hidden"), "%s", e.msg);
}

static void build_tiny_mlp(Model *m)
{
    ModelConfig c = {.kind = MODEL_MLP, .n_layer = 2, .n_embd = 4, .seq_len = 2, .vocab = 3};
    Err e = {{0}};
    cr_assert_eq(model_init(m, &c, 1, 1, &e), 0, "%s", e.msg);
}

/* The MLP has no pipeline stages: asking for stage I/O stops with a
 * message (abort) instead of reading another architecture's state. */
Test(models, mlp_stage_input_refused, .signal = SIGABRT)
{
    Model m;
    build_tiny_mlp(&m);
    model_stage_input(&m, 0);
}

Test(models, mlp_stage_output_refused, .signal = SIGABRT)
{
    Model m;
    build_tiny_mlp(&m);
    model_stage_output(&m, 0);
}

Test(models, mlp_stage_dinput_refused, .signal = SIGABRT)
{
    Model m;
    build_tiny_mlp(&m);
    model_stage_dinput(&m);
}

Test(models, mlp_has_no_sampling_or_boundary)
{
    Model m;
    build_tiny_mlp(&m);
    int tok[2] = {0, 1};
    cr_expect_null(model_next_logits(&m, tok, 2));
    cr_expect_eq(model_boundary_floats(&m.cfg, 4), 0);
    model_free(&m);
}

/* The features interface on a GPT stops with a message. */
Test(models, mlp_features_on_gpt_refused, .signal = SIGABRT)
{
    Model m;
    ModelConfig g = tiny_gpt();
    Err e = {{0}};
    cr_assert_eq(model_init(&m, &g, 1, 1, &e), 0, "%s", e.msg);
    float x[8] = {0};
    int y = 0;
    mlp_forward_features(&m, x, &y, 1);
}

/* ---- deep models -------------------------------------------------------------- */

/* The tensor table grows with the model: 401 layers are 4816 tensors, more
 * than the fixed 4096-entry table this build once had (which the builder
 * overran). Every tensor must be in place and the model must run. */
Test(models, deep_gpt_tensor_table_grows)
{
    ModelConfig cfg = {.kind = MODEL_GPT, .n_layer = 401, .n_head = 1, .n_embd = 8, .seq_len = 4,
                       .vocab = 16};
    Model m;
    Err e = {{0}};
    cr_assert_eq(model_init(&m, &cfg, 1, 3, &e), 0, "model_init: %s", e.msg);
    cr_expect_eq(m.n_tensors, 2 + 12 * 401 + 2, "n_tensors %d", m.n_tensors);
    cr_expect_geq(m.tensors_cap, m.n_tensors);
    cr_expect_eq(strcmp(m.tensors[m.n_tensors - 1].name, "lnf.b"), 0, "last tensor '%s'",
                 m.tensors[m.n_tensors - 1].name);
    cr_expect(model_find_tensor(&m, "h.400.mlp.proj.b") != NULL, "last layer's tensor missing");
    const ParamInfo *last = &m.tensors[m.n_tensors - 1];
    cr_expect_eq(last->offset + last->numel, m.n_params, "tensors do not tile the buffer");
    int in[4] = {1, 2, 3, 4}, tg[4] = {2, 3, 4, 5};
    cr_expect(isfinite(model_forward(&m, in, tg, 1)), "deep forward is not finite");
    model_free(&m);
}

/* ---- learning --------------------------------------------------------------- */

/* 4 Gaussian blobs in 8 dimensions, 512 points; full-batch gradient descent
 * on the mean loss must separate them. */
Test(models, mlp_learns_blobs)
{
    enum { D = 8, K = 4, NPTS = 512, STEPS = 300 };
    ModelConfig cfg = {0};
    cfg.kind = MODEL_MLP;
    cfg.n_layer = 2;
    cfg.n_embd = 32;
    cfg.seq_len = 1;
    cfg.vocab = K;
    cfg.in_dim = D;
    Model m;
    Err e = {{0}};
    cr_assert_eq(model_init(&m, &cfg, NPTS, 31337, &e), 0, "%s", e.msg);

    float centers[K * D];
    for (int i = 0; i < K * D; i++) centers[i] = 1.0f * philox_normal(500, RNG_SAMPLE, i);
    float *x = malloc((size_t)NPTS * D * sizeof(float));
    int *y = malloc(NPTS * sizeof(int));
    cr_assert(x && y);
    for (int n = 0; n < NPTS; n++) {
        y[n] = n % K;
        for (int d = 0; d < D; d++)
            x[n * D + d] = centers[y[n] * D + d] + philox_normal(501, RNG_SAMPLE, (uint64_t)n * D + d);
    }

    const float lr = 0.5f;
    double first = 0.0, mean_loss = 0.0;
    for (int step = 0; step < STEPS; step++) {
        model_zero_grad(&m);
        mean_loss = mlp_forward_features(&m, x, y, NPTS) / NPTS;
        if (step == 0) first = mean_loss;
        cr_assert(isfinite(mean_loss), "loss diverged at step %d", step);
        mlp_backward_features(&m, x, y, NPTS, 1.0f / NPTS);
        for (size_t i = 0; i < m.n_params; i++) m.params[i] -= lr * m.grads[i];
    }
    mean_loss = mlp_forward_features(&m, x, y, NPTS) / NPTS;

    /* accuracy without a logits accessor: a single-sample loss below ln 2
     * means p(true class) > 1/2, so the true class is the argmax */
    int correct = 0;
    double sum1 = 0.0;
    for (int n = 0; n < NPTS; n++) {
        double l = mlp_forward_features(&m, x + (size_t)n * D, &y[n], 1);
        sum1 += l;
        if (l < log(2.0)) correct++;
    }
    double acc = (double)correct / NPTS;
    cr_log_info("blobs: loss %.4f -> %.4f after %d steps, accuracy >= %.4f", first, mean_loss,
                STEPS, acc);
    cr_expect(first > 1.0, "initial loss %.4g: the problem is trivial before training", first);
    cr_expect(mean_loss < 0.15, "mean loss %.4g after %d steps (from %.4g)", mean_loss, STEPS,
              first);
    cr_expect(acc >= 0.95, "training accuracy %.4f < 0.95", acc);
    /* B=1 forwards agree with the batched forward */
    cr_expect(fabs(sum1 / NPTS - mean_loss) < 1e-4 * (mean_loss + 1e-3),
              "per-sample mean %.8g vs batch mean %.8g", sum1 / NPTS, mean_loss);
    free(x);
    free(y);
    model_free(&m);
}

/* ---- documents packed in a row (ops.h DOC POSITIONS) ------------------------ */

/* Lengths of the documents packed into one row of PACK_T tokens: they cross
 * the attention kernels' 64-query blocks, and one is a single token. */
enum { PACK_T = 160, PACK_DOCS = 4 };
static const int PACK_LEN[PACK_DOCS] = {70, 1, 45, 44};

typedef struct {
    int in[PACK_T], tg[PACK_T], pos[PACK_T];              /* the packed row */
    int ain[PACK_DOCS * PACK_T], atg[PACK_DOCS * PACK_T]; /* each document alone */
} Packed;

/* Random documents packed into one row, and each alone at the start of a
 * row of its own followed by filler nobody counts. A document's last token
 * would predict the next one's first: no target there, packed or alone. */
static void pack_documents(Packed *p, int V)
{
    int at = 0;
    for (int d = 0; d < PACK_DOCS; d++) {
        int *ain = p->ain + d * PACK_T, *atg = p->atg + d * PACK_T;
        for (int t = 0; t < PACK_T; t++) {
            ain[t] = rand_int(31, (uint64_t)d * PACK_T + t, V); /* filler past the document */
            atg[t] = -1;
        }
        for (int t = 0; t < PACK_LEN[d]; t++, at++) {
            p->in[at] = ain[t] = rand_int(32, at, V);
            int last = t == PACK_LEN[d] - 1 && d < PACK_DOCS - 1;
            p->tg[at] = atg[t] = last ? -1 : rand_int(33, at, V);
            p->pos[at] = t;
        }
    }
    cr_assert_eq(at, PACK_T);
}

/* The packed row with its doc positions computes what each document does
 * alone: the same loss, the same gradient of every weight (rows of wpe and
 * rotary angles restart, attention stops at each document's start). Without
 * the positions the later documents see the earlier: the loss differs. The
 * forward-only plan (zeroth-order training) gives the training loss. */
static void expect_packed_as_alone(const char *what, ModelConfig c)
{
    c.seq_len = PACK_T;
    Model m, lean;
    Err e = {{0}};
    cr_assert_eq(model_init(&m, &c, PACK_DOCS, 5, &e), 0, "%s: %s", what, e.msg);
    perturb_params(&m, 6, 0.6f); /* sharp enough attention that crossing shows */
    Packed *p = malloc(sizeof *p);
    pack_documents(p, c.vocab);
    size_t n = m.n_params;
    float *g_alone = malloc(n * sizeof(float));

    model_zero_grad(&m);
    double alone = model_forward(&m, p->ain, p->atg, PACK_DOCS);
    model_backward(&m, p->ain, p->atg, PACK_DOCS, 1.0f);
    memcpy(g_alone, m.grads, n * sizeof(float));

    model_zero_grad(&m);
    m.positions = p->pos;
    double packed = model_forward(&m, p->in, p->tg, 1);
    cr_expect_null(m.positions, "%s: the forward consumes the positions", what);
    /* the backward reads the forward's own copy: the caller's buffer may
     * hold the next batch's by then (a pipeline's 1F1B) */
    int saved[PACK_T];
    memcpy(saved, p->pos, sizeof saved);
    memset(p->pos, 0, sizeof saved);
    model_backward(&m, p->in, p->tg, 1, 1.0f);
    memcpy(p->pos, saved, sizeof saved);
    cr_expect(fabs(packed - alone) <= 1e-5 * fabs(alone), "%s: packed loss %.9g, alone %.9g",
              what, packed, alone);
    double gmax = 0, worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(g_alone[i]));
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)m.grads[i] - g_alone[i]);
        if (d > worst) worst = d, at = i;
    }
    cr_expect(gmax > 0 && worst <= 1e-5 * gmax, "%s: gradient element %zu: packed %.9g, alone %.9g "
              "(largest |g| %.3g)", what, at, m.grads[at], g_alone[at], gmax);

    double crossing = model_forward(&m, p->in, p->tg, 1);
    cr_expect(fabs(crossing - alone) > 1e-3 * fabs(alone),
              "%s: without positions the documents see each other, yet the loss is the same "
              "(%.9g, alone %.9g)", what, crossing, alone);

    ModelShard sh = model_shard_whole(1);
    cr_assert_eq(model_init_shard(&lean, &c, &sh, 1, 5, &e), 0, "%s: %s", what, e.msg);
    memcpy(lean.params, m.params, n * sizeof(float));
    m.positions = lean.positions = p->pos;
    double a = model_forward(&m, p->in, p->tg, 1), b = model_forward(&lean, p->in, p->tg, 1);
    cr_expect(a == b, "%s: forward-only packed loss %.17g, training %.17g", what, b, a);
    model_free(&lean);
    model_free(&m);
    free(g_alone);
    free(p);
}

Test(models, packed_documents_compute_as_alone)
{
    expect_packed_as_alone("gpt", tiny_gpt());
    expect_packed_as_alone("llama", tiny_llama());
    ModelConfig q = tiny_llama();
    q.n_kv_head = 1; /* every q head on one kv head */
    q.qk_norm = 1;
    expect_packed_as_alone("llama, one kv head, qk-norm", q);
}

/* Positions that would let a query reach before its row are refused. */
Test(models, bad_doc_positions_refused, .signal = SIGABRT)
{
    ModelConfig c = tiny_gpt();
    Model m;
    Err e = {{0}};
    cr_assert_eq(model_init(&m, &c, 1, 5, &e), 0, "%s", e.msg);
    int in[5] = {1, 2, 3, 4, 5}, tg[5] = {2, 3, 4, 5, 6}, pos[5] = {0, 1, 0, 3, 4};
    m.positions = pos;
    model_forward(&m, in, tg, 1);
}
