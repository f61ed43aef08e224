/* GPT-2 style decoder: token + position embedding, L pre-LN transformer
 * blocks, final layernorm, head tied to the token embedding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "models/model.h"
#include "models/ops.h"

enum { T_LN1W, T_LN1B, T_QKVW, T_QKVB, T_PROJW, T_PROJB, T_LN2W, T_LN2B, T_FCW, T_FCB,
       T_FCPW, T_FCPB, T_PER_LAYER };

typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd; /* (N,C) (N) (N) */
    float *qkv;                      /* (N,3C) */
    float *atty;                     /* (N,C) */
    float *att;                      /* (B,NH,T,T) softmax probabilities */
    float *attproj;                  /* (N,C) */
    float *res2;                     /* (N,C) */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch, *fch_gelu;           /* (N,4C) */
    float *fcproj;                   /* (N,C) */
    float *res3;                     /* (N,C) = input of the next layer */
} LayerActs;

struct GptState {
    int layer_tensor0;   /* index of layer 0's first tensor in the table */
    float *encoded;      /* (N,C) */
    LayerActs *layers;   /* L */
    float *lnf, *lnf_mean, *lnf_rstd;
    float *logits;       /* (N,V) */
    /* backward scratch, reused by every layer */
    float *dres, *dln, *dqkv, *datty, *dfch, *dfch_gelu, *datt_scratch, *dlogits;
    float *act_pool;
};

/* pointer to tensor k of layer l in buffer buf (params or grads) */
static float *lt(const Model *m, const float *buf, int l, int k)
{
    const ParamInfo *t = &m->tensors[m->gpt->layer_tensor0 + l * T_PER_LAYER + k];
    return (float *)buf + t->offset;
}

static float *tensor_at(const Model *m, const float *buf, int k)
{
    return (float *)buf + m->tensors[k].offset;
}
/* fixed table positions: 0 wte, 1 wpe, then layers, then lnfw, lnfb */
#define WTE 0
#define WPE 1
static int lnf_index(const Model *m) { return 2 + m->cfg.n_layer * T_PER_LAYER; }

static void add_layer_tensors(Model *m, int l)
{
    const int C = m->cfg.n_embd, L = m->cfg.n_layer;
    const float std = 0.02f, proj_std = 0.02f / sqrtf(2.0f * L);
    char n[MODEL_MAX_NAME];
#define ADD(suffix, nd, d0, d1, decay, split, s)                       \
    snprintf(n, sizeof n, "h.%d." suffix, l);                          \
    model_add_tensor(m, n, nd, d0, d1, l + 1, decay, split, s)
    ADD("ln1.w", 1, C, 0, 0, TP_REPLICATED, -1);
    ADD("ln1.b", 1, C, 0, 0, TP_REPLICATED, 0);
    ADD("attn.qkv.w", 2, 3 * C, C, 1, TP_COLUMN, std);
    ADD("attn.qkv.b", 1, 3 * C, 0, 0, TP_COLUMN, 0);
    ADD("attn.proj.w", 2, C, C, 1, TP_ROW, proj_std);
    ADD("attn.proj.b", 1, C, 0, 0, TP_REPLICATED, 0);
    ADD("ln2.w", 1, C, 0, 0, TP_REPLICATED, -1);
    ADD("ln2.b", 1, C, 0, 0, TP_REPLICATED, 0);
    ADD("mlp.fc.w", 2, 4 * C, C, 1, TP_COLUMN, std);
    ADD("mlp.fc.b", 1, 4 * C, 0, 0, TP_COLUMN, 0);
    ADD("mlp.proj.w", 2, C, 4 * C, 1, TP_ROW, proj_std);
    ADD("mlp.proj.b", 1, C, 0, 0, TP_REPLICATED, 0);
#undef ADD
}

static size_t layer_act_floats(int B, int T, int C, int NH)
{
    size_t N = (size_t)B * T;
    return N * C * 8 + N * 4 + N * 3 * C + N * 4 * C * 2 + (size_t)B * NH * T * T;
}

static float *carve(float **pool, size_t n)
{
    float *p = *pool;
    *pool += (n + 15) / 16 * 16; /* keep 64-byte alignment */
    return p;
}

static void carve_layer(LayerActs *a, float **pool, int B, int T, int C, int NH)
{
    size_t N = (size_t)B * T;
    a->ln1 = carve(pool, N * C);
    a->ln1_mean = carve(pool, N);
    a->ln1_rstd = carve(pool, N);
    a->qkv = carve(pool, N * 3 * C);
    a->atty = carve(pool, N * C);
    a->att = carve(pool, (size_t)B * NH * T * T);
    a->attproj = carve(pool, N * C);
    a->res2 = carve(pool, N * C);
    a->ln2 = carve(pool, N * C);
    a->ln2_mean = carve(pool, N);
    a->ln2_rstd = carve(pool, N);
    a->fch = carve(pool, N * 4 * C);
    a->fch_gelu = carve(pool, N * 4 * C);
    a->fcproj = carve(pool, N * C);
    a->res3 = carve(pool, N * C);
}

size_t gpt_act_floats(const ModelConfig *c, int B)
{
    const int T = c->seq_len, C = c->n_embd, NH = c->n_head, V = c->vocab, L = c->n_layer;
    size_t N = (size_t)B * T;
    return L * (layer_act_floats(B, T, C, NH) + 16 * 16) /* carve padding */
           + N * C * 9 + N * 3 * C + N * 4 * C * 2 + N * 2 + N * V * 2
           + (size_t)B * NH * T * T + 64 * 16;
}

static int alloc_acts(Model *m, Err *e)
{
    GptState *g = m->gpt;
    const int B = m->max_batch, T = m->cfg.seq_len, C = m->cfg.n_embd, NH = m->cfg.n_head,
              V = m->cfg.vocab, L = m->cfg.n_layer;
    size_t N = (size_t)B * T;
    size_t total = gpt_act_floats(&m->cfg, B);
    g->act_pool = model_calloc(total, sizeof(float));
    g->layers = calloc(L, sizeof *g->layers);
    if (!g->act_pool || !g->layers)
        return err_set(e, "out of memory: activations need %.1f MB for batch %d x seq %d",
                       total * 4.0 / 1e6, B, T);
    m->act_floats = total;
    float *pool = g->act_pool;
    g->encoded = carve(&pool, N * C);
    for (int l = 0; l < L; l++) carve_layer(&g->layers[l], &pool, B, T, C, NH);
    g->lnf = carve(&pool, N * C);
    g->lnf_mean = carve(&pool, N);
    g->lnf_rstd = carve(&pool, N);
    g->logits = carve(&pool, N * V);
    g->dres = carve(&pool, N * C);
    g->dln = carve(&pool, N * C);
    g->dqkv = carve(&pool, N * 3 * C);
    g->datty = carve(&pool, N * C);
    g->dfch = carve(&pool, N * 4 * C);
    g->dfch_gelu = carve(&pool, N * 4 * C);
    g->datt_scratch = carve(&pool, (size_t)B * NH * T * T);
    g->dlogits = carve(&pool, N * V);
    return 0;
}

int gpt_build(Model *m, Err *e)
{
    const ModelConfig *c = &m->cfg;
    m->gpt = calloc(1, sizeof *m->gpt);
    if (!m->gpt) return err_set(e, "out of memory");
    m->n_blocks = c->n_layer + 2;
    model_add_tensor(m, "wte", 2, c->vocab, c->n_embd, 0, 1, TP_REPLICATED, 0.02f);
    model_add_tensor(m, "wpe", 2, c->seq_len, c->n_embd, 0, 1, TP_REPLICATED, 0.01f);
    m->gpt->layer_tensor0 = m->n_tensors;
    for (int l = 0; l < c->n_layer; l++) add_layer_tensors(m, l);
    model_add_tensor(m, "lnf.w", 1, c->n_embd, 0, c->n_layer + 1, 0, TP_REPLICATED, -1);
    model_add_tensor(m, "lnf.b", 1, c->n_embd, 0, c->n_layer + 1, 0, TP_REPLICATED, 0);
    m->params = model_calloc(m->n_params, sizeof(float));
    m->grads = model_calloc(m->n_params, sizeof(float));
    if (!m->params || !m->grads)
        return err_set(e, "out of memory: %zu parameters", m->n_params);
    return alloc_acts(m, e);
}

void gpt_free(Model *m)
{
    free(m->gpt->act_pool);
    free(m->gpt->layers);
    free(m->gpt);
    m->gpt = NULL;
}

static void layer_forward(Model *m, int l, const float *inp, int B, int T)
{
    const int C = m->cfg.n_embd, NH = m->cfg.n_head, N = B * T;
    LayerActs *a = &m->gpt->layers[l];
    const float *p = m->params;
    layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, inp, lt(m, p, l, T_LN1W),
                      lt(m, p, l, T_LN1B), N, C);
    matmul_forward(a->qkv, a->ln1, lt(m, p, l, T_QKVW), lt(m, p, l, T_QKVB), N, C, 3 * C);
    attention_forward(a->atty, a->att, a->qkv, B, T, NH, C / NH);
    matmul_forward(a->attproj, a->atty, lt(m, p, l, T_PROJW), lt(m, p, l, T_PROJB), N, C, C);
    residual_forward(a->res2, inp, a->attproj, (size_t)N * C);
    layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res2, lt(m, p, l, T_LN2W),
                      lt(m, p, l, T_LN2B), N, C);
    matmul_forward(a->fch, a->ln2, lt(m, p, l, T_FCW), lt(m, p, l, T_FCB), N, C, 4 * C);
    gelu_forward(a->fch_gelu, a->fch, (size_t)N * 4 * C);
    matmul_forward(a->fcproj, a->fch_gelu, lt(m, p, l, T_FCPW), lt(m, p, l, T_FCPB), N, 4 * C, C);
    residual_forward(a->res3, a->res2, a->fcproj, (size_t)N * C);
}

/* dres holds d(res3) on entry and d(inp) on exit */
static void layer_backward(Model *m, int l, const float *inp, int B, int T)
{
    GptState *g = m->gpt;
    const int C = m->cfg.n_embd, NH = m->cfg.n_head, N = B * T;
    LayerActs *a = &g->layers[l];
    const float *p = m->params, *gr = m->grads;
    size_t NC = (size_t)N * C;

    memset(g->dfch_gelu, 0, NC * 4 * sizeof(float));
    matmul_backward(g->dfch_gelu, lt(m, gr, l, T_FCPW), lt(m, gr, l, T_FCPB), g->dres,
                    a->fch_gelu, lt(m, p, l, T_FCPW), N, 4 * C, C);
    memset(g->dfch, 0, NC * 4 * sizeof(float));
    gelu_backward(g->dfch, a->fch, g->dfch_gelu, NC * 4);
    memset(g->dln, 0, NC * sizeof(float));
    matmul_backward(g->dln, lt(m, gr, l, T_FCW), lt(m, gr, l, T_FCB), g->dfch, a->ln2,
                    lt(m, p, l, T_FCW), N, C, 4 * C);
    layernorm_backward(g->dres, lt(m, gr, l, T_LN2W), lt(m, gr, l, T_LN2B), g->dln, a->res2,
                       lt(m, p, l, T_LN2W), a->ln2_mean, a->ln2_rstd, N, C);
    memset(g->datty, 0, NC * sizeof(float));
    matmul_backward(g->datty, lt(m, gr, l, T_PROJW), lt(m, gr, l, T_PROJB), g->dres, a->atty,
                    lt(m, p, l, T_PROJW), N, C, C);
    memset(g->dqkv, 0, NC * 3 * sizeof(float));
    attention_backward(g->dqkv, g->datt_scratch, g->datty, a->qkv, a->att, B, T, NH, C / NH);
    memset(g->dln, 0, NC * sizeof(float));
    matmul_backward(g->dln, lt(m, gr, l, T_QKVW), lt(m, gr, l, T_QKVB), g->dqkv, a->ln1,
                    lt(m, p, l, T_QKVW), N, C, 3 * C);
    layernorm_backward(g->dres, lt(m, gr, l, T_LN1W), lt(m, gr, l, T_LN1B), g->dln, inp,
                       lt(m, p, l, T_LN1W), a->ln1_mean, a->ln1_rstd, N, C);
}

static const float *layer_input(const Model *m, int l)
{
    return l == 0 ? m->gpt->encoded : m->gpt->layers[l - 1].res3;
}

/* Final norm + tied head; returns the logits buffer. */
static void head_forward(Model *m, int B, int T)
{
    GptState *g = m->gpt;
    const int C = m->cfg.n_embd, V = m->cfg.vocab, L = m->cfg.n_layer, N = B * T;
    int f = lnf_index(m);
    layernorm_forward(g->lnf, g->lnf_mean, g->lnf_rstd, layer_input(m, L),
                      tensor_at(m, m->params, f), tensor_at(m, m->params, f + 1), N, C);
    matmul_forward(g->logits, g->lnf, tensor_at(m, m->params, WTE), NULL, N, C, V);
}

double gpt_forward(Model *m, const int *inputs, const int *targets, int B, int T)
{
    GptState *g = m->gpt;
    const int C = m->cfg.n_embd, V = m->cfg.vocab;
    embedding_forward(g->encoded, inputs, tensor_at(m, m->params, WTE),
                      tensor_at(m, m->params, WPE), B, T, C);
    for (int l = 0; l < m->cfg.n_layer; l++) layer_forward(m, l, layer_input(m, l), B, T);
    head_forward(m, B, T);
    if (!targets) return 0.0;
    return softmax_xent(NULL, g->logits, targets, B * T, V, 0.0f);
}

void gpt_backward(Model *m, const int *inputs, const int *targets, int B, float grad_scale)
{
    GptState *g = m->gpt;
    const int C = m->cfg.n_embd, V = m->cfg.vocab, L = m->cfg.n_layer, T = m->cfg.seq_len;
    const int N = B * T;
    int f = lnf_index(m);
    softmax_xent(g->dlogits, g->logits, targets, N, V, grad_scale);
    memset(g->dln, 0, (size_t)N * C * sizeof(float));
    matmul_backward(g->dln, tensor_at(m, m->grads, WTE), NULL, g->dlogits, g->lnf,
                    tensor_at(m, m->params, WTE), N, C, V);
    memset(g->dres, 0, (size_t)N * C * sizeof(float));
    layernorm_backward(g->dres, tensor_at(m, m->grads, f), tensor_at(m, m->grads, f + 1), g->dln,
                       layer_input(m, L), tensor_at(m, m->params, f), g->lnf_mean, g->lnf_rstd,
                       N, C);
    model_block_done(m, L + 1);
    for (int l = L - 1; l >= 0; l--) {
        layer_backward(m, l, layer_input(m, l), B, T);
        model_block_done(m, l + 1);
    }
    embedding_backward(tensor_at(m, m->grads, WTE), tensor_at(m, m->grads, WPE), g->dres,
                       inputs, B, T, C);
    model_block_done(m, 0);
}

const float *model_next_logits(Model *m, const int *tokens, int t)
{
    /* run the full context length; causal attention means positions after t
     * do not affect position t-1, so pad with token 0 */
    const int T = m->cfg.seq_len;
    if (t < 1 || t > T) return NULL;
    int *buf = calloc(T, sizeof(int));
    if (!buf) return NULL;
    memcpy(buf, tokens, (size_t)t * sizeof(int));
    if (m->cfg.kind == MODEL_GPT) {
        gpt_forward(m, buf, NULL, 1, T);
        free(buf);
        return m->gpt->logits + (size_t)(t - 1) * m->cfg.vocab;
    }
    free(buf);
    return NULL;
}
