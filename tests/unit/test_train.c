/* Training behaviour of the compute core + optimizer, without MPI: the loss
 * falls, runs repeat to the bit, and AdamW/SGD/clipping/schedule behave. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include "models/model.h"
#include "models/ops.h"
#include "worker/method/backprop/backprop.h"
#include "worker/optim/optim.h"

static const char TEXT[] =
    "In the beginning God created the heaven and the earth. And the earth was without "
    "form, and void; and darkness was upon the face of the deep. And the Spirit of God "
    "moved upon the face of the waters. And God said, Let there be light: and there was "
    "light. And God saw the light, that it was good: and God divided the light from the "
    "darkness. And God called the light Day, and the darkness he called Night.";

static const ModelConfig TINY = {.kind = MODEL_GPT, .n_layer = 2, .n_head = 2, .n_embd = 32,
                                 .seq_len = 32, .vocab = 256};

/* Batch k: B windows of T+1 bytes at fixed offsets of the text. */
static void text_batch(int k, int B, int T, int *in, int *tg)
{
    int n = (int)strlen(TEXT);
    for (int b = 0; b < B; b++) {
        int start = ((k * B + b) * 37) % (n - T - 1);
        for (int t = 0; t < T; t++) {
            in[b * T + t] = (unsigned char)TEXT[start + t];
            tg[b * T + t] = (unsigned char)TEXT[start + t + 1];
        }
    }
}

/* Trains `steps` AdamW steps, writing each step's mean loss to losses. */
static void train_tiny(int steps, float *losses, int threads)
{
    enum { B = 4 };
    const int T = TINY.seq_len;
    ops_set_threads(threads);
    Model m;
    Err e;
    cr_assert_eq(model_init(&m, &TINY, B, 42, &e), 0, "%s", e.msg);
    OptimConfig oc = {OPT_ADAMW, 3e-3f, 3e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.9f, 1.0f, 5, steps};
    Optimizer o;
    cr_assert_eq(optim_init(&o, &oc, 0, m.n_params, &e), 0);
    int in[B * 32], tg[B * 32];
    for (int s = 0; s < steps; s++) {
        text_batch(s, B, T, in, tg);
        model_zero_grad(&m);
        double loss = model_forward(&m, in, tg, B) / (B * T);
        model_backward(&m, in, tg, B, 1.0f / (B * T));
        double norm = sqrt(sum_squares(m.grads, m.n_params));
        optim_update(&o, &m, m.params, m.grads, lr_at(&oc, s), clip_coef(&oc, norm));
        losses[s] = (float)loss;
    }
    optim_free(&o);
    model_free(&m);
}

Test(train, tiny_gpt_loss_falls_clearly)
{
    float losses[150];
    train_tiny(150, losses, 1);
    cr_assert(losses[0] > 5.0f, "initial loss %f should be near ln(256)=5.55", losses[0]);
    float tail = 0;
    for (int i = 140; i < 150; i++) tail += losses[i] / 10;
    cr_assert(tail < 2.0f, "loss fell only from %f to %f", losses[0], tail);
}

Test(train, same_seed_is_bit_identical)
{
    float a[12], b[12];
    train_tiny(12, a, 1);
    train_tiny(12, b, 1);
    cr_assert(memcmp(a, b, sizeof a) == 0, "two runs with one seed differ");
}

/* The embedding whose two copies the first and the last pipeline stage keep
 * equal (backprop sums their gradients, DiLoCo their outer steps): "wte" on
 * both stages of a tied head, none for an untied head or an mlp. */
Test(train, tied_embedding_only_for_a_tied_head)
{
    Err e;
    int n = TINY.n_layer + 2;
    ModelShard first = {.tp_size = 1, .first_block = 0, .last_block = n / 2 - 1, .slots = 1};
    ModelShard last = {.tp_size = 1, .first_block = n / 2, .last_block = n - 1, .slots = 1};
    const ModelShard *stages[] = {&first, &last};
    for (int k = 0; k < 2; k++) {
        Model m;
        cr_assert_eq(model_declare_shard(&m, &TINY, stages[k], &e), 0, "%s", e.msg);
        const ParamInfo *w = backprop_tied_embedding(&m);
        cr_assert(w && !strcmp(w->name, "wte"), "stage %d: no tied embedding", k);
        cr_assert_eq(w->tied_copy, k == 1, "stage %d: the copy is the head stage's", k);
        model_free(&m);
    }
    /* an untied head (the llama family's --untied-head 1): the head stage
     * holds head.w and no copy, the first stage wte, which nothing ties */
    ModelConfig untied = {.kind = MODEL_LLAMA, .n_layer = 2, .n_head = 2, .n_embd = 32,
                          .seq_len = 32, .vocab = 256, .mlp_hidden = 64, .untied_head = 1};
    for (int k = 0; k < 2; k++) {
        Model m;
        cr_assert_eq(model_declare_shard(&m, &untied, stages[k], &e), 0, "%s", e.msg);
        cr_assert_null(backprop_tied_embedding(&m), "untied, stage %d: a tied embedding", k);
        cr_assert_eq(model_find_tensor(&m, "head.w") != NULL, k == 1);
        model_free(&m);
    }
    untied.untied_head = 0;
    Model tied;
    cr_assert_eq(model_declare_shard(&tied, &untied, &last, &e), 0, "%s", e.msg);
    const ParamInfo *w = backprop_tied_embedding(&tied);
    cr_assert(w && w->tied_copy, "a tied llama's head stage holds the copy");
    model_free(&tied);
    ParamInfo wte = {.name = "wte", .ndim = 2, .shape = {256, 32}};
    Model mlp = {.cfg = {.kind = MODEL_MLP, .n_layer = 1, .n_embd = 2, .seq_len = 1, .vocab = 2},
                 .n_tensors = 1, .tensors = &wte};
    cr_assert_null(backprop_tied_embedding(&mlp));
}

Test(optim, lr_schedule_warmup_then_cosine)
{
    OptimConfig c = {OPT_ADAMW, 1.0f, 0.1f, 0.9f, 0.95f, 1e-8f, 0, 0, 0, 10, 110};
    cr_assert_float_eq(lr_at(&c, 0), 0.1f, 1e-6);
    cr_assert_float_eq(lr_at(&c, 9), 1.0f, 1e-6);
    cr_assert_float_eq(lr_at(&c, 60), 0.55f, 1e-5);
    cr_assert_float_eq(lr_at(&c, 110), 0.1f, 1e-6);
    cr_assert_float_eq(lr_at(&c, 500), 0.1f, 1e-6);
}

Test(optim, clip_scales_to_the_limit)
{
    OptimConfig c = {.grad_clip = 1.0f};
    cr_assert_float_eq(clip_coef(&c, 0.5), 1.0f, 0);
    cr_assert_float_eq(clip_coef(&c, 4.0), 0.25f, 1e-6);
    c.grad_clip = 0;
    cr_assert_float_eq(clip_coef(&c, 4.0), 1.0f, 0);
}

/* One AdamW step against the formula, and no decay on 1-D tensors. */
Test(optim, adamw_matches_formula_and_skips_decay_on_norms)
{
    ModelConfig mc = {.kind = MODEL_MLP, .n_layer = 1, .n_embd = 2, .seq_len = 1, .vocab = 2,
                      .in_dim = 2};
    Model m;
    Err e;
    cr_assert_eq(model_init(&m, &mc, 1, 1, &e), 0, "%s", e.msg);
    OptimConfig oc = {OPT_ADAMW, 0.1f, 0.1f, 0.9f, 0.99f, 1e-8f, 0.5f, 0, 0, 0, 10};
    Optimizer o;
    cr_assert_eq(optim_init(&o, &oc, 0, m.n_params, &e), 0);
    for (size_t i = 0; i < m.n_params; i++) {
        m.params[i] = 1.0f;
        m.grads[i] = 2.0f;
    }
    optim_update(&o, &m, m.params, m.grads, 0.1f, 1.0f);
    /* first step: mhat = g, vhat = g^2, update = 1 (up to eps) */
    const ParamInfo *w = model_find_tensor(&m, "fc.0.w"), *b = model_find_tensor(&m, "fc.0.b");
    cr_assert_float_eq(m.params[w->offset], 1.0f * (1 - 0.1f * 0.5f) - 0.1f, 1e-6);
    cr_assert_float_eq(m.params[b->offset], 1.0f - 0.1f, 1e-6);
    cr_assert_eq(o.state_bytes, 2 * m.n_params * sizeof(float));
    optim_free(&o);
    model_free(&m);
}

Test(optim, sgd_momentum_accumulates)
{
    ModelConfig mc = {.kind = MODEL_MLP, .n_layer = 1, .n_embd = 2, .seq_len = 1, .vocab = 2,
                      .in_dim = 2};
    Model m;
    Err e;
    cr_assert_eq(model_init(&m, &mc, 1, 1, &e), 0);
    OptimConfig oc = {OPT_SGD, 0.1f, 0.1f, 0, 0, 1e-8f, 0, 0.5f, 0, 0, 10};
    Optimizer o;
    cr_assert_eq(optim_init(&o, &oc, 0, m.n_params, &e), 0);
    const ParamInfo *b = model_find_tensor(&m, "fc.0.b");
    m.params[b->offset] = 0;
    m.grads[b->offset] = 1;
    optim_update(&o, &m, m.params, m.grads, 0.1f, 1.0f);
    optim_update(&o, &m, m.params, m.grads, 0.1f, 1.0f);
    /* buf: 1, then 1.5; p: -0.1, then -0.25 */
    cr_assert_float_eq(m.params[b->offset], -0.25f, 1e-6);
    optim_free(&o);
    model_free(&m);
}

Test(optim, bad_config_names_the_flag)
{
    Err e;
    OptimConfig c = {OPT_ADAMW, -1.0f, 0, 0.9f, 0.95f, 1e-8f, 0, 0, 0, 0, 1};
    cr_assert_eq(optim_config_validate(&c, &e), -1);
    cr_assert(strstr(e.msg, "--lr"), "%s", e.msg);
    c.lr = 1;
    c.beta2 = 1.5f;
    cr_assert_eq(optim_config_validate(&c, &e), -1);
    cr_assert(strstr(e.msg, "--beta2"), "%s", e.msg);
}
