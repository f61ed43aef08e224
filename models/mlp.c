/* MLP classifier: L hidden layers of width H with GELU, then a linear head.
 * On token data it predicts the token after a context of seq_len tokens fed
 * as one-hot features. Blocks: 0..L-1 the hidden layers, L the head.
 * Tensor parallel: layers alternate column-parallel (even: outputs split)
 * and row-parallel (odd: inputs split, outputs summed over the group), so L
 * must be even when tp > 1; the head is replicated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "models/model.h"
#include "models/ops.h"

typedef struct {
    int in_dim;
    float *x;           /* (B, in_dim) one-hot input for token data */
    float **pre, **post; /* L x (B,H) */
    float *logits;      /* (B,K) */
    float *dlogits, *dpost, *dpre;
    int *labels;        /* (B) */
    float *pool;
} MlpState;

static MlpState *mst(const Model *m) { return m->state; }

/* The features interface is MLP-only: on another model, say so and stop
 * rather than read a different architecture's state as ours. */
static void require_mlp(const Model *m, const char *what)
{
    if (m->arch == &MLP_ARCH) return;
    fprintf(stderr, "mpitrain: internal error: %s on a %s model (mlp only)\n", what,
            m->arch ? m->arch->name : "unbuilt");
    abort();
}

static float *w_of(const Model *m, const float *buf, int layer, int bias)
{
    return (float *)buf + m->tensors[2 * layer + bias].offset;
}

static int is_row_parallel(const Model *m, int l) { return l < m->cfg.n_layer && l % 2 == 1; }

/* local input / output widths of layer l (the head is l = L) */
static int in_width(const Model *m, int l)
{
    return m->tensors[2 * l].local_shape[1];
}

static int out_width(const Model *m, int l)
{
    return m->tensors[2 * l].local_shape[0];
}

static size_t mlp_in_dim(const ModelConfig *c)
{
    return c->in_dim ? (size_t)c->in_dim : (size_t)c->seq_len * c->vocab;
}

/* State and tensor table; model.c allocates params and grads from it. */
static int mlp_declare(Model *m, Err *e)
{
    const ModelConfig *c = &m->cfg;
    const int L = c->n_layer, H = c->n_embd, K = c->vocab;
    MlpState *s = m->state = calloc(1, sizeof *s);
    if (!s) return err_set(e, "out of memory");
    s->in_dim = (int)mlp_in_dim(c);
    char n[MODEL_MAX_NAME];
    for (int l = 0; l <= L; l++) {
        int in = l == 0 ? s->in_dim : H, out = l == L ? K : H;
        TpSplit split = l == L ? TP_REPLICATED : (l % 2 ? TP_ROW : TP_COLUMN);
        snprintf(n, sizeof n, l == L ? "head.w" : "fc.%d.w", l);
        model_add_tensor(m, n, 2, out, in, l, 1, split, 1, 1.0f / sqrtf((float)in));
        snprintf(n, sizeof n, l == L ? "head.b" : "fc.%d.b", l);
        model_add_tensor(m, n, 1, out, 0, l, 0, split == TP_COLUMN ? TP_COLUMN : TP_REPLICATED,
                         1, 0);
    }
    return 0;
}

/* Training keeps every layer's pre- and post-activation for backward; a
 * forward-only pass ping-pongs between one pair (layer l reads the post of
 * l - 1 and writes the pre, then the post, of l) and has no gradients. */
static size_t mlp_act_floats(const ModelConfig *c, const ModelShard *sh, int B)
{
    /* the whole model, at full width (tp only narrows what is used) */
    size_t in = mlp_in_dim(c), H = c->n_embd, K = c->vocab, L = c->n_layer;
    if (sh->forward_only) return (size_t)B * (in + 2 * H + K) + 4 * 16;
    return (size_t)B * (in + 2 * L * H + 2 * K + 2 * H) + (2 * L + 8) * 16;
}

static int mlp_alloc_acts(Model *m, Err *e)
{
    MlpState *s = mst(m);
    const int L = m->cfg.n_layer, H = m->cfg.n_embd, K = m->cfg.vocab, B = m->max_batch;
    const int lean = m->shard.forward_only;
    size_t total = mlp_act_floats(&m->cfg, &m->shard, B);
    s->pool = model_calloc(total, sizeof(float));
    s->pre = calloc(L, sizeof(float *));
    s->post = calloc(L, sizeof(float *));
    s->labels = calloc(B, sizeof(int));
    if (!s->pool || !s->pre || !s->post || !s->labels)
        return err_set(e, "out of memory: activations need %.1f MB for batch %d", total * 4.0 / 1e6,
                       B);
    m->act_floats = total;
    float *p = s->pool;
#define CARVE(n) (p += ((n) + 15) / 16 * 16, p - ((n) + 15) / 16 * 16)
    s->x = CARVE((size_t)B * s->in_dim);
    for (int l = 0; l < L; l++) {
        s->pre[l] = lean && l ? s->pre[0] : CARVE((size_t)B * H);
        s->post[l] = lean && l ? s->post[0] : CARVE((size_t)B * H);
    }
    s->logits = CARVE((size_t)B * K);
    if (!lean) {
        s->dlogits = CARVE((size_t)B * K);
        s->dpost = CARVE((size_t)B * H);
        s->dpre = CARVE((size_t)B * H);
    }
#undef CARVE
    return 0;
}

/* The view scratch: the largest layer's weight and bias. */
static size_t mlp_view_floats(const ModelConfig *c, const ModelShard *sh, int B)
{
    (void)B;
    size_t in = mlp_in_dim(c), H = c->n_embd, K = c->vocab, tp = sh->tp_size;
    size_t most = (K * H + 15) / 16 * 16 + (K + 15) / 16 * 16;
    size_t first = (H / tp * in + 15) / 16 * 16 + (H + 15) / 16 * 16;
    size_t inner = (H * H / tp + 15) / 16 * 16 + (H + 15) / 16 * 16;
    if (first > most) most = first;
    if (c->n_layer > 1 && inner > most) most = inner;
    return most;
}

static void mlp_free(Model *m)
{
    MlpState *s = mst(m);
    free(s->pool);
    free(s->pre);
    free(s->post);
    free(s->labels);
    free(s);
    m->state = NULL;
}

double mlp_forward_features(Model *m, const float *x, const int *labels, int B)
{
    require_mlp(m, "mlp_forward_features");
    MlpState *s = mst(m);
    const int L = m->cfg.n_layer, K = m->cfg.vocab;
    const float *in = x;
    for (int l = 0; l <= L; l++) {
        float *scratch = m->view_scratch;
        int out = out_width(m, l);
        size_t nw = (size_t)out * in_width(m, l);
        const float *w = model_weights(m, 2 * l, 0, nw, &scratch);
        const float *b = model_weights(m, 2 * l + 1, 0, m->tensors[2 * l + 1].numel, &scratch);
        float *pre = l == L ? s->logits : s->pre[l];
        if (is_row_parallel(m, l)) {
            matmul_forward(pre, in, w, NULL, B, in_width(m, l), out);
            model_tp_allreduce(m, pre, (size_t)B * out);
            bias_forward(pre, b, B, out);
        } else {
            matmul_forward(pre, in, w, b, B, in_width(m, l), out);
        }
        if (l == L) break;
        gelu_forward(s->post[l], pre, (size_t)B * out);
        in = s->post[l];
    }
    if (!labels) return 0.0;
    return softmax_xent(NULL, s->logits, labels, B, K, 0.0f);
}

void mlp_backward_features(Model *m, const float *x, const int *labels, int B, float grad_scale)
{
    require_mlp(m, "mlp_backward_features");
    MlpState *s = mst(m);
    const int L = m->cfg.n_layer, K = m->cfg.vocab;
    softmax_xent(s->dlogits, s->logits, labels, B, K, grad_scale);
    const float *dout = s->dlogits;
    for (int l = L; l >= 0; l--) {
        const float *in = l == 0 ? x : s->post[l - 1];
        int in_dim = in_width(m, l);
        float *dinp = NULL;
        if (l > 0) {
            memset(s->dpost, 0, (size_t)B * in_dim * sizeof(float));
            dinp = s->dpost;
        }
        matmul_backward(dinp, w_of(m, m->grads, l, 0), w_of(m, m->grads, l, 1), dout, in,
                        w_of(m, m->params, l, 0), B, in_dim, out_width(m, l));
        model_block_done(m, l);
        if (l == 0) break;
        /* a column-parallel layer's input gradient is a partial sum */
        if (l < L && !is_row_parallel(m, l)) model_tp_allreduce(m, s->dpost, (size_t)B * in_dim);
        memset(s->dpre, 0, (size_t)B * in_dim * sizeof(float));
        gelu_backward(s->dpre, s->pre[l - 1], s->dpost, (size_t)B * in_dim);
        dout = s->dpre;
    }
}

/* one-hot context features and the label = the token after the context */
static void tokens_to_features(Model *m, const int *inputs, const int *targets, int B)
{
    MlpState *s = mst(m);
    const int T = m->cfg.seq_len, V = m->cfg.vocab;
    memset(s->x, 0, (size_t)B * s->in_dim * sizeof(float));
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) s->x[(size_t)b * s->in_dim + (size_t)t * V + inputs[b * T + t]] = 1.0f;
        if (targets) s->labels[b] = targets[b * T + T - 1];
    }
}

static double mlp_forward_tokens(Model *m, int slot, const int *inputs, const int *targets, int B)
{
    (void)slot; /* one set of activations: no pipeline */
    tokens_to_features(m, inputs, targets, B);
    return mlp_forward_features(m, mst(m)->x, targets ? mst(m)->labels : NULL, B);
}

static void mlp_backward_tokens(Model *m, int slot, const int *inputs, const int *targets, int B,
                                float grad_scale, const float *dout)
{
    (void)slot;
    (void)inputs;
    (void)targets;
    (void)dout; /* the head is always here: no gradient comes from a later stage */
    /* features and labels are still in place from the forward pass */
    mlp_backward_features(m, mst(m)->x, mst(m)->labels, B, grad_scale);
}

/* ---- configuration and costs ------------------------------------------------ */

static int mlp_validate(const ModelConfig *c, Err *e)
{
    if (!c->in_dim && (long)c->seq_len * c->vocab > (1L << 26))
        return err_set(e, "--model mlp: --seq-len %d x --vocab %d one-hot inputs are too wide; "
                          "use a shorter context", c->seq_len, c->vocab);
    return 0;
}

static int mlp_n_blocks(const ModelConfig *c) { return c->n_layer + 1; }

static int mlp_validate_shard(const ModelConfig *c, const ModelShard *sh, Err *e)
{
    int n = mlp_n_blocks(c);
    if (sh->tp_size > 1) {
        if (c->n_layer % 2)
            return err_set(e, "--model mlp with --tp %d needs an even --layers (column- and "
                              "row-parallel layers come in pairs); got %d", sh->tp_size, c->n_layer);
        if (c->n_embd % sh->tp_size)
            return err_set(e, "--tp %d does not divide the MLP width --embd %d", sh->tp_size,
                           c->n_embd);
    }
    if (sh->first_block != 0 || (sh->last_block >= 0 && sh->last_block != n - 1))
        return err_set(e, "--model mlp does not support pipeline stages (--pp 1 only)");
    return 0;
}

/* one prediction per sample: the token after the context */
static int mlp_preds_per_seq(const ModelConfig *c)
{
    (void)c;
    return 1;
}

static void mlp_block_costs(const ModelConfig *c, double *cost)
{
    /* never split into stages: any equal weights do */
    for (int b = 0; b < mlp_n_blocks(c); b++) cost[b] = 1;
}

/* Layer l's local parameters (the head is l = L): even hidden layers are
 * column-parallel (rows and bias split), odd ones row-parallel (columns
 * split, bias replicated), the head replicated. */
static size_t layer_params(const ModelConfig *c, int l, size_t tp)
{
    size_t in = l == 0 ? (c->in_dim ? (size_t)c->in_dim : (size_t)c->seq_len * c->vocab)
                       : (size_t)c->n_embd;
    size_t out = l == c->n_layer ? (size_t)c->vocab : (size_t)c->n_embd;
    if (l == c->n_layer) return out * in + out;
    return l % 2 ? out * (in / tp) + out : (out / tp) * in + out / tp;
}

static size_t mlp_shard_params(const ModelConfig *c, const ModelShard *sh)
{
    size_t n = 0;
    for (int l = sh->first_block; l <= sh->last_block; l++) n += layer_params(c, l, sh->tp_size);
    return n;
}

/* A sample is one prediction from seq_len context tokens: 2 FLOPs per
 * weight, spread over the tokens it reads, so that FLOPs per token x tokens
 * gives the whole model's count (training, 3x: 6 N per sample). */
static double mlp_fwd_flops_per_token(const ModelConfig *c)
{
    ModelShard whole = {.tp_size = 1, .last_block = c->n_layer, .slots = 1};
    return 2.0 * (double)mlp_shard_params(c, &whole) / c->seq_len;
}

/* No stage boundary entries: model.c refuses stage I/O for this table. */
static const ModelOps MLP_OPS = {
    .declare = mlp_declare,
    .alloc_acts = mlp_alloc_acts,
    .free = mlp_free,
    .forward = mlp_forward_tokens,
    .backward = mlp_backward_tokens,
};

const ModelArch MLP_ARCH = {
    .name = "mlp",
    .validate = mlp_validate,
    .validate_shard = mlp_validate_shard,
    .n_blocks = mlp_n_blocks,
    .preds_per_seq = mlp_preds_per_seq,
    .shard_params = mlp_shard_params,
    .act_floats = mlp_act_floats,
    .view_floats = mlp_view_floats,
    .fwd_flops_per_token = mlp_fwd_flops_per_token,
    .block_costs = mlp_block_costs,
    .ops = &MLP_OPS,
};
