/* KV-cache decoding of the transformer of models/gpt.c (see gpt_decode.h),
 * with the widths and pieces of its TransformerDesc and TransformerShape:
 * layernorm or RMSNorm, a position table or rotary positions (at each
 * row's cache position), one kv head per group of q heads, the qk-norm,
 * GELU or SwiGLU, a tied or untied head.
 * The math is gpt.c's forward, row by row: the same kernels (ops.h) for
 * everything but attention, which here is one block of new query rows
 * against the cached keys and values of every earlier position. The
 * softmax uses the same exp approximation as the full forward, so the two
 * agree to float rounding. */
#include "models/gpt_decode.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "models/ops.h"

/* A LoRA adapter on one of a layer's linears: columns [col, col + width)
 * of its output get scale (x A^T) B^T, as the training forward adds them. */
typedef struct {
    const float *A, *B; /* (r, in) (width, r); A NULL: no adapter */
    int col, width;
} Adapter;

/* A linear's adapters: packed q | k | v has up to three, the others one */
typedef struct {
    Adapter a[3];
    int n;
} Adapters;

typedef struct {
    const float *ln1w, *ln1b;  /* (C); no bias for RMSNorm */
    const float *qkvw, *qkvb;  /* (Q,C) (Q): packed, or q, k, v one after the other */
    const float *qnw, *knw;    /* qk-norm: (hs) each */
    const float *projw, *projb; /* (C,Qw) (C) */
    const float *ln2w, *ln2b;  /* (C) */
    const float *fcw, *fcb;    /* (F,C) (F): GELU's fc or SwiGLU's gate */
    const float *upw, *upb;    /* SwiGLU: (F,C) (F) */
    const float *fcpw, *fcpb;  /* (C,F) (C) */
    Adapters qkv_ad, proj_ad, fc_ad, up_ad, fcp_ad; /* LoRA not merged: applied as it runs */
} LayerW;

struct GptDecoder {
    int L, NH, C, T, V;
    int NKV, hs, KV, Q, F, Qw;   /* kv heads, head width, keys' width, packed q/k/v rows,
                                    MLP hidden units, queries' width */
    int rms, swiglu;             /* RMSNorm, a SwiGLU MLP (else layernorm, GELU) */
    float eps;
    RopeTable rope;              /* rotary positions (cos NULL: a position table) */
    int pos;                     /* positions in the cache */
    const float *wte, *wpe;      /* (V,C) (T,C); wpe NULL under rotary positions */
    const float *head;           /* (V,C): wte when tied */
    const float *lnfw, *lnfb;    /* (C) */
    LayerW *lw;                  /* (L) */
    float *kcache, *vcache;      /* (L,T,KV) each */
    /* scratch for up to T rows at once (a prefill) */
    float *x, *ln, *tmp;         /* (T,C) each; x is the residual stream */
    float *atty;                 /* (T,Qw) */
    float *qkv;                  /* (T,Q) */
    float *fch, *up;             /* (T,F) each */
    float *mean, *rstd;          /* (T) */
    float *scores;               /* (T,T) one head's attention */
    float *logits;               /* (V) */
    float *pool;                 /* everything above, one allocation */
    int lora_r;                  /* unmerged LoRA adapters' rank (0: none) */
    float lora_scale;            /* ... and their alpha / rank */
    float *u;                    /* (T, lora_r): x A^T of one adapter */
};

/* ---- building ------------------------------------------------------------- */

/* The whole tensor called name, which must hold numel floats. */
static const float *weight(const Model *m, const char *name, size_t numel, Err *e)
{
    int id = model_find_id(m, name);
    const ParamInfo *t = id < 0 ? NULL : model_tensor(m, id);
    if (!t) {
        err_set(e, "decoder: the model has no tensor %s", name);
        return NULL;
    }
    /* what a forward reads: wpe may keep more positions than the context */
    if (t->live != numel) {
        err_set(e, "decoder: tensor %s holds %zu floats, expected %zu (a sharded model?)", name,
                t->live, numel);
        return NULL;
    }
    return model_tensor_data(m, id);
}

/* The layer's q, k and v (weights or biases, per row `per` floats): one
 * packed tensor, or three the table lays out one after the other, so that
 * one product gives the packed [q | k | v] rows either way. */
static const float *qkv_run(const GptDecoder *d, const Model *m, int l, const char *kind,
                            size_t per, Err *e)
{
    char name[MODEL_MAX_NAME];
    snprintf(name, sizeof name, "h.%d.attn.qkv.%s", l, kind);
    if (model_find_id(m, name) >= 0) return weight(m, name, (size_t)d->Q * per, e);
    const char *part[3] = {"q", "k", "v"};
    const size_t rows[3] = {(size_t)d->Qw, (size_t)d->KV, (size_t)d->KV};
    const float *first = NULL, *next = NULL;
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "h.%d.attn.%s.%s", l, part[i], kind);
        const float *p = weight(m, name, rows[i] * per, e);
        if (!p) return NULL;
        if (next && p != next) {
            err_set(e, "decoder: %s does not follow the tensor before it", name);
            return NULL;
        }
        if (!first) first = p;
        next = p + rows[i] * per;
    }
    return first;
}

/* Layer l's adapter on the linear called stem ("attn.q", "mlp.up"), if it
 * has one, appended to ad: it reads `in` columns and adds into the output
 * columns [col, col + width). */
static int add_adapter(const GptDecoder *d, const Model *m, int l, const char *stem, int in,
                       int col, int width, Adapters *ad, Err *e)
{
    char a[MODEL_MAX_NAME], b[MODEL_MAX_NAME];
    snprintf(a, sizeof a, "h.%d.%s.lora_A", l, stem);
    snprintf(b, sizeof b, "h.%d.%s.lora_B", l, stem);
    if (model_find_id(m, a) < 0) return 0;
    const size_t r = (size_t)d->lora_r;
    Adapter *x = &ad->a[ad->n];
    *x = (Adapter){weight(m, a, r * in, e), weight(m, b, (size_t)width * r, e), col, width};
    if (!x->A || !x->B) return -1;
    ad->n++;
    return 0;
}

/* Every adapter of layer l, on the linears the model has. */
static int layer_adapters(const GptDecoder *d, const Model *m, int l, LayerW *w, Err *e)
{
    char packed[MODEL_MAX_NAME];
    snprintf(packed, sizeof packed, "h.%d.attn.qkv.w", l);
    const int C = d->C, F = d->F, Qw = d->Qw, KV = d->KV;
    int rc = model_find_id(m, packed) >= 0
                 ? add_adapter(d, m, l, "attn.qkv", C, 0, d->Q, &w->qkv_ad, e)
                 : add_adapter(d, m, l, "attn.q", C, 0, Qw, &w->qkv_ad, e) ||
                       add_adapter(d, m, l, "attn.k", C, Qw, KV, &w->qkv_ad, e) ||
                       add_adapter(d, m, l, "attn.v", C, Qw + KV, KV, &w->qkv_ad, e);
    return rc || add_adapter(d, m, l, "attn.proj", Qw, 0, C, &w->proj_ad, e) ||
           add_adapter(d, m, l, d->swiglu ? "mlp.gate" : "mlp.fc", C, 0, F, &w->fc_ad, e) ||
           (d->swiglu && add_adapter(d, m, l, "mlp.up", C, 0, F, &w->up_ad, e)) ||
           add_adapter(d, m, l, "mlp.proj", F, 0, C, &w->fcp_ad, e);
}

static int layer_weights(const GptDecoder *d, const Model *m, int l, LayerW *w, Err *e)
{
    const size_t C = (size_t)d->C, F = (size_t)d->F, Qw = (size_t)d->Qw, hs = (size_t)d->hs;
    const TransformerShape ts = transformer_shape(&m->cfg);
    const int gelu = !d->swiglu, swi = d->swiglu;
    /* when: whether the family has the tensor (else NULL) */
    struct { const char *suffix; const float **dst; size_t numel; int when; } tab[] = {
        {"ln1.w", &w->ln1w, C, 1},
        {"ln1.b", &w->ln1b, C, !!(ts.biases & BIAS_NORM)},
        {"attn.q_norm.w", &w->qnw, hs, ts.qk_norm},
        {"attn.k_norm.w", &w->knw, hs, ts.qk_norm},
        {"attn.proj.w", &w->projw, C * Qw, 1},
        {"attn.proj.b", &w->projb, C, !!(ts.biases & BIAS_ATTN_PROJ)},
        {"ln2.w", &w->ln2w, C, 1},
        {"ln2.b", &w->ln2b, C, !!(ts.biases & BIAS_NORM)},
        {"mlp.fc.w", &w->fcw, F * C, gelu},
        {"mlp.fc.b", &w->fcb, F, gelu && (ts.biases & BIAS_MLP_IN)},
        {"mlp.gate.w", &w->fcw, F * C, swi},
        {"mlp.gate.b", &w->fcb, F, swi && (ts.biases & BIAS_MLP_IN)},
        {"mlp.up.w", &w->upw, F * C, swi},
        {"mlp.up.b", &w->upb, F, swi && (ts.biases & BIAS_MLP_IN)},
        {"mlp.proj.w", &w->fcpw, C * F, 1},
        {"mlp.proj.b", &w->fcpb, C, !!(ts.biases & BIAS_MLP_OUT)},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        if (!tab[i].when) continue;
        char name[MODEL_MAX_NAME];
        snprintf(name, sizeof name, "h.%d.%s", l, tab[i].suffix);
        if (!(*tab[i].dst = weight(m, name, tab[i].numel, e))) return -1;
    }
    if (!(w->qkvw = qkv_run(d, m, l, "w", C, e))) return -1;
    if ((ts.biases & BIAS_QKV) && !(w->qkvb = qkv_run(d, m, l, "b", 1, e))) return -1;
    return d->lora_r ? layer_adapters(d, m, l, w, e) : 0;
}

static int check_whole_gpt(const Model *m, Err *e)
{
    if (!m->arch || !m->arch->transformer || !m->params)
        return err_set(e, "decoder: needs an initialized gpt model");
    const ModelShard *s = &m->shard;
    int whole = s->tp_size <= 1 && s->first_block == 0 &&
                (s->last_block < 0 || s->last_block == m->n_blocks - 1);
    if (!whole)
        return err_set(e, "decoder: needs the whole model (tp 1, every block); this one is a "
                          "shard (tp %d, blocks %d..%d)",
                       s->tp_size, s->first_block, s->last_block);
    return 0;
}

static float *take(float **pool, size_t n)
{
    float *p = *pool;
    *pool += (n + 15) / 16 * 16; /* 64-byte aligned pieces */
    return p;
}

static int alloc_buffers(GptDecoder *d, Err *e)
{
    const size_t L = d->L, T = d->T, C = d->C;
    const size_t cache = L * T * d->KV, rows = T * C, atty = T * d->Qw;
    size_t total = 0;
    const size_t qkv = T * d->Q, fch = T * d->F, up = d->swiglu ? fch : 0;
    const size_t u = T * (size_t)d->lora_r;
    size_t sizes[] = {cache, cache, rows, rows, rows, atty, qkv, fch, up, T, T, T * T, (size_t)d->V, u};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += (sizes[i] + 15) / 16 * 16;
    d->pool = model_calloc(total, sizeof(float));
    d->lw = calloc((size_t)d->L, sizeof *d->lw);
    if (!d->pool || !d->lw)
        return err_set(e, "decoder: out of memory (%.1f MB for the cache and scratch)",
                       total * 4.0 / 1e6);
    float *p = d->pool;
    d->kcache = take(&p, cache);
    d->vcache = take(&p, cache);
    d->x = take(&p, rows);
    d->ln = take(&p, rows);
    d->tmp = take(&p, rows);
    d->atty = take(&p, atty);
    d->qkv = take(&p, qkv);
    d->fch = take(&p, fch);
    d->up = d->swiglu ? take(&p, up) : NULL;
    d->mean = take(&p, T);
    d->rstd = take(&p, T);
    d->scores = take(&p, T * T);
    d->logits = take(&p, (size_t)d->V);
    d->u = take(&p, u);
    return 0;
}

static int find_weights(GptDecoder *d, const Model *m, Err *e)
{
    const size_t C = d->C;
    const TransformerShape ts = transformer_shape(&m->cfg);
    if (!(d->wte = weight(m, "wte", (size_t)d->V * C, e))) return -1;
    if (!d->rope.cos && !(d->wpe = weight(m, "wpe", (size_t)d->T * C, e))) return -1;
    d->head = ts.tied_head ? d->wte : weight(m, "head.w", (size_t)d->V * C, e);
    if (!d->head) return -1;
    if (!(d->lnfw = weight(m, "lnf.w", C, e))) return -1;
    if ((ts.biases & BIAS_NORM) && !(d->lnfb = weight(m, "lnf.b", C, e))) return -1;
    for (int l = 0; l < d->L; l++)
        if (layer_weights(d, m, l, &d->lw[l], e)) return -1;
    return 0;
}

GptDecoder *decoder_new(const Model *m, Err *e)
{
    if (check_whole_gpt(m, e)) return NULL;
    GptDecoder *d = calloc(1, sizeof *d);
    if (!d) {
        err_set(e, "decoder: out of memory");
        return NULL;
    }
    d->L = m->cfg.n_layer;
    d->NH = m->cfg.n_head;
    d->C = m->cfg.n_embd;
    d->T = m->cfg.seq_len;
    d->V = m->cfg.vocab;
    const TransformerShape ts = transformer_shape(&m->cfg);
    d->NKV = ts.n_kv_head;
    d->hs = ts.head_dim;
    d->KV = ts.kv_width;
    d->Q = ts.qkv_rows;
    d->F = ts.mlp_hidden;
    d->Qw = ts.q_width;
    const TransformerDesc *desc = m->arch->transformer;
    d->rms = desc->norm == NORM_RMS;
    d->swiglu = desc->mlp == MLP_SWIGLU;
    d->eps = ts.norm_eps;
    /* adapters not merged into the weights are applied as they are */
    if (m->base.n_tensors && !m->adapters_merged) {
        d->lora_r = ts.lora_rank;
        d->lora_scale = ts.lora_scale;
    }
    if (desc->pos == POS_ROPE &&
        rope_table_init(&d->rope, d->T, d->hs, ts.rope_theta, ts.rope_factor, ts.rope_low_freq,
                        ts.rope_high_freq, ts.rope_orig_ctx)) {
        err_set(e, "decoder: out of memory for the rotary table");
        decoder_free(d);
        return NULL;
    }
    if (alloc_buffers(d, e) || find_weights(d, m, e)) {
        decoder_free(d);
        return NULL;
    }
    return d;
}

void decoder_free(GptDecoder *d)
{
    if (!d) return;
    rope_table_free(&d->rope);
    free(d->pool);
    free(d->lw);
    free(d);
}

void decoder_reset(GptDecoder *d) { d->pos = 0; }

int decoder_pos(const GptDecoder *d) { return d->pos; }

/* ---- running ---------------------------------------------------------------- */

/* Rows 0..N-1 of qkv are positions p0..p0+N-1: their keys and values join
 * layer l's cache. */
static void cache_kv(GptDecoder *d, int l, int p0, int N)
{
    const size_t Qw = d->Qw, KV = d->KV, base = ((size_t)l * d->T + p0) * KV;
    for (int i = 0; i < N; i++) {
        const float *row = d->qkv + (size_t)i * d->Q;
        memcpy(d->kcache + base + i * KV, row + Qw, KV * sizeof(float));
        memcpy(d->vcache + base + i * KV, row + Qw + KV, KV * sizeof(float));
    }
}

/* atty (N,Qw) = causal attention of the N new query rows over the p0+N
 * cached positions of layer l, head by head; a query head reads the keys
 * and values of its group's kv head (its own: kv heads = heads). */
static void attend(GptDecoder *d, int l, int p0, int N)
{
    const int Qw = d->Qw, KV = d->KV, hs = d->hs, kv = p0 + N, per_kv = d->NH / d->NKV;
    const float scale = 1.0f / sqrtf((float)hs);
    const float *K = d->kcache + (size_t)l * d->T * KV, *Vc = d->vcache + (size_t)l * d->T * KV;
    for (int h = 0; h < d->NH; h++) {
        const int kh = h / per_kv;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, kv, hs, scale, d->qkv + h * hs,
                    d->Q, K + kh * hs, KV, 0.0f, d->scores, kv);
        causal_softmax_rows(d->scores, NULL, NULL, p0, N, kv);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, hs, kv, 1.0f, d->scores, kv,
                    Vc + kh * hs, KV, 0.0f, d->atty + h * hs, Qw);
    }
}

/* out (N,OC) = inp (N,C) @ w^T + bias, as matmul_forward. A single row is
 * a matrix-vector product: GEMM packs all of w first, which for one row
 * costs more than the product (OpenBLAS, 3072x768: sgemm 3 ms, sgemv
 * 0.2 ms), and decoding is one row per token. */
static void rows_matmul(float *out, const float *inp, const float *w, const float *bias, int N,
                        int C, int OC)
{
    if (N > 1) {
        matmul_forward(out, inp, w, bias, N, C, OC);
        return;
    }
    if (bias)
        memcpy(out, bias, (size_t)OC * sizeof *out);
    else
        memset(out, 0, (size_t)OC * sizeof *out);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, OC, C, 1.0f, w, C, inp, 1, 1.0f, out, 1);
}

/* A linear over N rows: rows_matmul, then its adapters' s (x A^T) B^T
 * into their columns of out (OC wide). */
static void linear_rows(GptDecoder *d, float *out, const float *inp, const float *w,
                        const float *bias, const Adapters *ad, int N, int C, int OC)
{
    rows_matmul(out, inp, w, bias, N, C, OC);
    for (int i = 0; i < ad->n; i++) {
        const Adapter *a = &ad->a[i];
        matmul_forward_ld(d->u, d->lora_r, inp, a->A, N, C, d->lora_r);
        lora_up(out + a->col, OC, d->u, a->B, N, d->lora_r, a->width, d->lora_scale);
    }
}

/* The family's norm over the N rows of inp. */
static void norm_rows(GptDecoder *d, const float *inp, const float *w, const float *b, int N)
{
    if (d->rms)
        rmsnorm_forward(d->ln, d->rstd, inp, w, N, d->C, d->C, d->eps);
    else
        layernorm_forward(d->ln, d->mean, d->rstd, inp, w, b, N, d->C);
}

/* The new rows' q and k as attention reads them: each head RMS-normalized
 * (the qk-norm, in place) and rotated to its position. */
static void shape_qk(GptDecoder *d, const LayerW *w, int p0, int N)
{
    const int nh = d->NH + d->NKV;
    for (int h = 0; w->qnw && h < nh; h++)
        rmsnorm_forward(d->qkv + h * d->hs, NULL, d->qkv + h * d->hs, h < d->NH ? w->qnw : w->knw,
                        N, d->hs, d->Q, d->eps);
    if (d->rope.cos) rope_forward(d->qkv, &d->rope, NULL, 1, N, d->Q, 0, nh, d->hs, p0);
}

/* One transformer layer over the N rows of x (positions p0..p0+N-1), in place. */
static void layer_rows(GptDecoder *d, int l, int p0, int N)
{
    const LayerW *w = &d->lw[l];
    const int C = d->C;
    const size_t NC = (size_t)N * C, NF = (size_t)N * d->F;
    norm_rows(d, d->x, w->ln1w, w->ln1b, N);
    linear_rows(d, d->qkv, d->ln, w->qkvw, w->qkvb, &w->qkv_ad, N, C, d->Q);
    shape_qk(d, w, p0, N);
    cache_kv(d, l, p0, N);
    attend(d, l, p0, N);
    linear_rows(d, d->tmp, d->atty, w->projw, w->projb, &w->proj_ad, N, d->Qw, C);
    residual_forward(d->x, d->x, d->tmp, NC);
    norm_rows(d, d->x, w->ln2w, w->ln2b, N);
    linear_rows(d, d->fch, d->ln, w->fcw, w->fcb, &w->fc_ad, N, C, d->F);
    /* element-wise: in place is safe */
    if (d->swiglu) {
        linear_rows(d, d->up, d->ln, w->upw, w->upb, &w->up_ad, N, C, d->F);
        swiglu_forward(d->fch, d->fch, d->up, NF);
    } else {
        gelu_forward(d->fch, d->fch, NF);
    }
    linear_rows(d, d->tmp, d->fch, w->fcpw, w->fcpb, &w->fcp_ad, N, d->F, C);
    residual_forward(d->x, d->x, d->tmp, NC);
}

/* Final norm and the head, for the last of the N rows only: sampling
 * needs nothing else, and the head is the largest matmul. */
static const float *head_last(GptDecoder *d, int N)
{
    const int C = d->C;
    norm_rows(d, d->x + (size_t)(N - 1) * C, d->lnfw, d->lnfb, 1);
    rows_matmul(d->logits, d->ln, d->head, NULL, 1, C, d->V);
    return d->logits;
}

/* The n tokens through every layer at the next positions (x holds their
 * rows after); 0, or -1 with nothing appended when they do not fit or one
 * is outside the vocabulary. */
static int append_rows(GptDecoder *d, const int *tokens, int n)
{
    if (n < 1 || n > d->T - d->pos) return -1;
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= d->V) return -1;
    const int p0 = d->pos;
    /* B=1, T=n with wpe shifted to p0: row i gets position p0+i (rotary
     * positions turn q and k instead) */
    if (d->wpe)
        embedding_forward(d->x, tokens, NULL, d->wte, d->wpe + (size_t)p0 * d->C, 1, n, d->C);
    else
        for (int i = 0; i < n; i++)
            memcpy(d->x + (size_t)i * d->C, d->wte + (size_t)tokens[i] * d->C,
                   (size_t)d->C * sizeof(float));
    for (int l = 0; l < d->L; l++) layer_rows(d, l, p0, n);
    d->pos += n;
    return 0;
}

const float *decoder_prefill(GptDecoder *d, const int *tokens, int n)
{
    return append_rows(d, tokens, n) ? NULL : head_last(d, n);
}

void decoder_truncate(GptDecoder *d, int pos)
{
    if (pos >= 0 && pos < d->pos) d->pos = pos;
}

/* log softmax(logits)[k], in double: the sum of exponentials of V floats */
static double log_softmax_at(const float *logits, int V, int k)
{
    float mx = logits[0];
    for (int v = 1; v < V; v++) mx = logits[v] > mx ? logits[v] : mx;
    double sum = 0;
    for (int v = 0; v < V; v++) sum += exp((double)logits[v] - mx);
    return (double)logits[k] - mx - log(sum);
}

int decoder_append_logprob(GptDecoder *d, const int *tokens, int n, const int *next,
                           double *logprob)
{
    for (int i = 0; i < n; i++)
        if (next[i] >= d->V) return -1;
    if (append_rows(d, tokens, n)) return -1;
    /* the head row by row, for the rows scored only (a choice's few) */
    for (int i = 0; i < n; i++) {
        if (next[i] < 0) continue;
        *logprob += log_softmax_at(head_last(d, i + 1), d->V, next[i]);
    }
    return 0;
}

const float *decoder_step(GptDecoder *d, int token) { return decoder_prefill(d, &token, 1); }
