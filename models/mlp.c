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

struct MlpState {
    int in_dim;
    float *x;           /* (B, in_dim) one-hot input for token data */
    float **pre, **post; /* L x (B,H) */
    float *logits;      /* (B,K) */
    float *dlogits, *dpost, *dpre;
    int *labels;        /* (B) */
    float *pool;
};

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

int mlp_build(Model *m, Err *e)
{
    const ModelConfig *c = &m->cfg;
    const int L = c->n_layer, H = c->n_embd, K = c->vocab, B = m->max_batch;
    MlpState *s = m->mlp = calloc(1, sizeof *m->mlp);
    if (!s) return err_set(e, "out of memory");
    s->in_dim = c->in_dim ? c->in_dim : c->seq_len * c->vocab;
    m->n_blocks = L + 1;
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
    if (model_tensors_ok(m, e)) return -1;
    m->params = model_calloc(m->n_params, sizeof(float));
    if (!m->shard.forward_only) m->grads = model_calloc(m->n_params, sizeof(float));
    size_t total = model_act_floats(c, B);
    s->pool = model_calloc(total, sizeof(float));
    s->pre = calloc(L, sizeof(float *));
    s->post = calloc(L, sizeof(float *));
    s->labels = calloc(B, sizeof(int));
    if (!m->params || (!m->grads && !m->shard.forward_only) || !s->pool || !s->pre || !s->post ||
        !s->labels)
        return err_set(e, "out of memory: %zu parameters", m->n_params);
    m->act_floats = total;
    float *p = s->pool;
#define CARVE(n) (p += ((n) + 15) / 16 * 16, p - ((n) + 15) / 16 * 16)
    s->x = CARVE((size_t)B * s->in_dim);
    for (int l = 0; l < L; l++) {
        s->pre[l] = CARVE((size_t)B * H);
        s->post[l] = CARVE((size_t)B * H);
    }
    s->logits = CARVE((size_t)B * K);
    s->dlogits = CARVE((size_t)B * K);
    s->dpost = CARVE((size_t)B * H);
    s->dpre = CARVE((size_t)B * H);
#undef CARVE
    return 0;
}

void mlp_free(Model *m)
{
    MlpState *s = m->mlp;
    free(s->pool);
    free(s->pre);
    free(s->post);
    free(s->labels);
    free(s);
    m->mlp = NULL;
}

double mlp_forward_features(Model *m, const float *x, const int *labels, int B)
{
    MlpState *s = m->mlp;
    const int L = m->cfg.n_layer, K = m->cfg.vocab;
    const float *in = x;
    for (int l = 0; l < L; l++) {
        int out = out_width(m, l);
        if (is_row_parallel(m, l)) {
            matmul_forward(s->pre[l], in, w_of(m, m->params, l, 0), NULL, B, in_width(m, l), out);
            model_tp_allreduce(m, s->pre[l], (size_t)B * out);
            bias_forward(s->pre[l], w_of(m, m->params, l, 1), B, out);
        } else {
            matmul_forward(s->pre[l], in, w_of(m, m->params, l, 0), w_of(m, m->params, l, 1), B,
                           in_width(m, l), out);
        }
        gelu_forward(s->post[l], s->pre[l], (size_t)B * out);
        in = s->post[l];
    }
    matmul_forward(s->logits, in, w_of(m, m->params, L, 0), w_of(m, m->params, L, 1), B,
                   in_width(m, L), K);
    if (!labels) return 0.0;
    return softmax_xent(NULL, s->logits, labels, B, K, 0.0f);
}

void mlp_backward_features(Model *m, const float *x, const int *labels, int B, float grad_scale)
{
    MlpState *s = m->mlp;
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
    MlpState *s = m->mlp;
    const int T = m->cfg.seq_len, V = m->cfg.vocab;
    memset(s->x, 0, (size_t)B * s->in_dim * sizeof(float));
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) s->x[(size_t)b * s->in_dim + (size_t)t * V + inputs[b * T + t]] = 1.0f;
        if (targets) s->labels[b] = targets[b * T + T - 1];
    }
}

double mlp_forward_tokens(Model *m, const int *inputs, const int *targets, int B)
{
    tokens_to_features(m, inputs, targets, B);
    return mlp_forward_features(m, m->mlp->x, targets ? m->mlp->labels : NULL, B);
}

void mlp_backward_tokens(Model *m, const int *inputs, const int *targets, int B, float grad_scale)
{
    (void)inputs;
    (void)targets;
    /* features and labels are still in place from the forward pass */
    mlp_backward_features(m, m->mlp->x, m->mlp->labels, B, grad_scale);
}
