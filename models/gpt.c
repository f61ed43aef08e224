/* The transformer families' decoder (models/arch.h describes them: GPT-2,
 * llama): token embedding (+ a position table, or rotary q and k), L
 * pre-norm transformer blocks (layernorm or RMSNorm; attention with one kv
 * head per head or per group of heads, the qk-norm; a GELU or SwiGLU MLP),
 * final norm, head tied to the token embedding or its own. The widths come
 * from the configuration's TransformerShape.
 * Blocks: 0 = embedding, 1..L = transformer layers, L+1 = final norm + head.
 * A shard holds a block range (a pipeline stage) as a tensor-parallel slice:
 * attention heads and the MLP's hidden units are split over TP ranks
 * (q|k|v, fc, gate and up column-parallel, the two output projections
 * row-parallel; kv heads that tp does not divide are held whole by each). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "models/model.h"
#include "models/ops.h"
#include "sharding/tpsplit.h"

enum { T_LN1W, T_LN1B, T_QKVW, T_QKVB, T_QW, T_KW, T_VW, T_QB, T_KB, T_VB, T_QNORM, T_KNORM,
       T_PROJW, T_PROJB, T_LN2W, T_LN2B, T_FCW, T_FCB, T_GATEW, T_GATEB, T_UPW, T_UPB, T_FCPW,
       T_FCPB, T_PER_LAYER };

/* The tensors of one transformer layer, in canonical order (their names,
 * offsets and init draws follow it), as the family's description shapes
 * them: widths from its TransformerShape, a row only where the family has
 * it (need) and a bias only where its biases have the bit. A weight is
 * followed by its bias (layer_group reads them together), but separate q,
 * k and v (grouped kv heads) come as three weights, then their three
 * biases: each run is one contiguous (q + 2 kv rows, C) matrix in params
 * and grads, so the packed [q | k | v] activations take one GEMM forward
 * and one backward, as GPT-2's single qkv tensor does. */
typedef enum { W_NONE, W_C, W_QKV, W_Q, W_KV, W_HD, W_MLP } Width;
typedef enum { INIT_ONES, INIT_ZEROS, INIT_STD, INIT_PROJ } Init;
enum {
    NEED_PACKED_QKV = 1 << 0, /* one qkv tensor: every head has its own keys (GPT-2) */
    NEED_SPLIT_QKV = 1 << 1,  /* q, k, v of their own widths: grouped kv heads */
    NEED_QK_NORM = 1 << 2,    /* the configuration's qk_norm */
    NEED_GELU = 1 << 3,
    NEED_SWIGLU = 1 << 4,
};
static const struct {
    const char *suffix;
    Width rows, cols;  /* cols W_NONE: a vector */
    int decay;
    TpSplit split;
    int groups;
    Init init;
    unsigned bias;     /* the BIAS_* bit that keeps it; 0: always there */
    unsigned need;     /* NEED_* the family must have; 0: every family */
    int kv;            /* key/value rows: split as above when tp divides the kv
                          heads, else replicated on every tp rank */
    int tp_sum;        /* its gradient is summed over the tp group (the qk
                          norms, whose heads are split; replicated kv rows too) */
    unsigned lora;     /* the LORA_* bit that gives this weight adapters */
} LAYER_TENSORS[T_PER_LAYER] = {
    [T_LN1W] = {"ln1.w", W_C, W_NONE, 0, TP_REPLICATED, 1, INIT_ONES, 0},
    [T_LN1B] = {"ln1.b", W_C, W_NONE, 0, TP_REPLICATED, 1, INIT_ZEROS, BIAS_NORM},
    [T_QKVW] = {"attn.qkv.w", W_QKV, W_C, 1, TP_COLUMN, 3, INIT_STD, 0, NEED_PACKED_QKV, 0, 0,
                LORA_QKV},
    [T_QKVB] = {"attn.qkv.b", W_QKV, W_NONE, 0, TP_COLUMN, 3, INIT_ZEROS, BIAS_QKV,
                NEED_PACKED_QKV},
    [T_QW] = {"attn.q.w", W_Q, W_C, 1, TP_COLUMN, 1, INIT_STD, 0, NEED_SPLIT_QKV, 0, 0, LORA_Q},
    [T_KW] = {"attn.k.w", W_KV, W_C, 1, TP_COLUMN, 1, INIT_STD, 0, NEED_SPLIT_QKV, 1, 0, LORA_K},
    [T_VW] = {"attn.v.w", W_KV, W_C, 1, TP_COLUMN, 1, INIT_STD, 0, NEED_SPLIT_QKV, 1, 0, LORA_V},
    [T_QB] = {"attn.q.b", W_Q, W_NONE, 0, TP_COLUMN, 1, INIT_ZEROS, BIAS_QKV, NEED_SPLIT_QKV},
    [T_KB] = {"attn.k.b", W_KV, W_NONE, 0, TP_COLUMN, 1, INIT_ZEROS, BIAS_QKV, NEED_SPLIT_QKV, 1},
    [T_VB] = {"attn.v.b", W_KV, W_NONE, 0, TP_COLUMN, 1, INIT_ZEROS, BIAS_QKV, NEED_SPLIT_QKV, 1},
    [T_QNORM] = {"attn.q_norm.w", W_HD, W_NONE, 0, TP_REPLICATED, 1, INIT_ONES, 0, NEED_QK_NORM,
                 0, 1},
    [T_KNORM] = {"attn.k_norm.w", W_HD, W_NONE, 0, TP_REPLICATED, 1, INIT_ONES, 0, NEED_QK_NORM,
                 0, 1},
    [T_PROJW] = {"attn.proj.w", W_C, W_Q, 1, TP_ROW, 1, INIT_PROJ, 0, 0, 0, 0, LORA_ATTN_OUT},
    [T_PROJB] = {"attn.proj.b", W_C, W_NONE, 0, TP_REPLICATED, 1, INIT_ZEROS, BIAS_ATTN_PROJ},
    [T_LN2W] = {"ln2.w", W_C, W_NONE, 0, TP_REPLICATED, 1, INIT_ONES, 0},
    [T_LN2B] = {"ln2.b", W_C, W_NONE, 0, TP_REPLICATED, 1, INIT_ZEROS, BIAS_NORM},
    [T_FCW] = {"mlp.fc.w", W_MLP, W_C, 1, TP_COLUMN, 1, INIT_STD, 0, NEED_GELU, 0, 0, LORA_FC},
    [T_FCB] = {"mlp.fc.b", W_MLP, W_NONE, 0, TP_COLUMN, 1, INIT_ZEROS, BIAS_MLP_IN, NEED_GELU},
    [T_GATEW] = {"mlp.gate.w", W_MLP, W_C, 1, TP_COLUMN, 1, INIT_STD, 0, NEED_SWIGLU, 0, 0,
                 LORA_GATE},
    [T_GATEB] = {"mlp.gate.b", W_MLP, W_NONE, 0, TP_COLUMN, 1, INIT_ZEROS, BIAS_MLP_IN,
                 NEED_SWIGLU},
    [T_UPW] = {"mlp.up.w", W_MLP, W_C, 1, TP_COLUMN, 1, INIT_STD, 0, NEED_SWIGLU, 0, 0, LORA_UP},
    [T_UPB] = {"mlp.up.b", W_MLP, W_NONE, 0, TP_COLUMN, 1, INIT_ZEROS, BIAS_MLP_IN, NEED_SWIGLU},
    [T_FCPW] = {"mlp.proj.w", W_C, W_MLP, 1, TP_ROW, 1, INIT_PROJ, 0, 0, 0, 0, LORA_MLP_OUT},
    [T_FCPB] = {"mlp.proj.b", W_C, W_NONE, 0, TP_REPLICATED, 1, INIT_ZEROS, BIAS_MLP_OUT},
};

/* The NEED_* a configuration's family has. */
static unsigned family_has(const TransformerDesc *d, const TransformerShape *ts)
{
    return (d->grouped_kv ? NEED_SPLIT_QKV : NEED_PACKED_QKV) | (ts->qk_norm ? NEED_QK_NORM : 0u) |
           (d->mlp == MLP_SWIGLU ? NEED_SWIGLU : NEED_GELU);
}

static int layer_has(const TransformerDesc *d, const TransformerShape *ts, int k)
{
    return (!LAYER_TENSORS[k].bias || (ts->biases & LAYER_TENSORS[k].bias)) &&
           (LAYER_TENSORS[k].need & ~family_has(d, ts)) == 0;
}

/* Whether tp ranks split the key/value heads (else each holds them all). */
static int kv_split(const TransformerShape *ts, int tp) { return ts->n_kv_head % tp == 0; }

static TpSplit row_split(int k, const TransformerShape *ts, int tp)
{
    return LAYER_TENSORS[k].kv && !kv_split(ts, tp) ? TP_REPLICATED : LAYER_TENSORS[k].split;
}

/* The rows whose gradient each tp rank holds only a part of. */
static int row_tp_summed(int k, const TransformerShape *ts, int tp)
{
    return tp > 1 && (LAYER_TENSORS[k].tp_sum || (LAYER_TENSORS[k].kv && !kv_split(ts, tp)));
}

/* slot[k]: where tensor k sits among its layer's declared tensors (-1: the
 * family has none); returns how many a layer declares. */
static int layer_slots(const TransformerDesc *d, const TransformerShape *ts, int *slot)
{
    int n = 0;
    for (int k = 0; k < T_PER_LAYER; k++) slot[k] = layer_has(d, ts, k) ? n++ : -1;
    return n;
}

static int width_of(const ModelConfig *c, const TransformerShape *ts, Width w)
{
    switch (w) {
    case W_C: return c->n_embd;
    case W_QKV: return ts->qkv_rows;
    case W_Q: return ts->q_width;
    case W_KV: return ts->kv_width;
    case W_HD: return ts->head_dim;
    case W_MLP: return ts->mlp_hidden;
    case W_NONE: break;
    }
    return 0;
}

/* ---- LoRA's adapters ------------------------------------------------------- */

/* Whether weight k of this configuration carries adapters (then every
 * weight of the model is frozen, in Model.base). */
static int lora_on(const TransformerDesc *d, const TransformerShape *ts, int k)
{
    return (ts->lora & LAYER_TENSORS[k].lora) && layer_has(d, ts, k);
}

/* How weight k's adapters A (r x in) and B (out x r) split over tp, so
 * that the weight's own all-reduce carries theirs and no other is needed:
 * a column-parallel weight's A is whole on every rank (u = x A^T is the
 * same everywhere; its gradient comes from the summed dU) and its B is
 * split like the weight's rows; a row-parallel weight's A is split like
 * its columns (u is partial and summed with the weight's output) and its B
 * whole. */
static TpSplit lora_a_split(int k)
{
    return LAYER_TENSORS[k].split == TP_ROW ? TP_ROW : TP_REPLICATED;
}

static TpSplit lora_b_split(int k, const TransformerShape *ts, int tp)
{
    return LAYER_TENSORS[k].split == TP_ROW ? TP_REPLICATED : row_split(k, ts, tp);
}

/* One layer's adapter floats on a tp rank. */
static size_t layer_lora_params(const ModelConfig *c, int tp)
{
    const TransformerShape ts = transformer_shape(c);
    const int r = ts.lora_rank;
    size_t n = 0;
    for (int k = 0; k < T_PER_LAYER; k++) {
        if (!lora_on(model_transformer(c), &ts, k)) continue;
        int out = width_of(c, &ts, LAYER_TENSORS[k].rows), in = width_of(c, &ts, LAYER_TENSORS[k].cols);
        TpSlice a = {(SplitKind)lora_a_split(k), 1, r, in, 0, tp};
        TpSlice b = {(SplitKind)lora_b_split(k, &ts, tp), LAYER_TENSORS[k].groups, out, r, 0, tp};
        n += (size_t)tp_local_rows(&a) * tp_local_cols(&a) + (size_t)tp_local_rows(&b) * tp_local_cols(&b);
    }
    return n;
}

/* An adapter on a linear that reads the attention's input (GPT-2's packed
 * qkv, or q, k and v) or the MLP's (fc, or gate and up): weight k, the
 * columns of the packed output it adds into, and whether that output is
 * the MLP's up projection (else qkv, or fc/gate). */
typedef struct {
    int k, col, width, up;
} LoraCol;

typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd; /* (N,C) (N) (N); no mean for RMSNorm */
    float *qkv;                      /* (N,QKVt) [q | k | v] as attention reads them */
    float *qkv_pre;                  /* qk-norm: the projections before it; else qkv */
    float *qk_rstd;                  /* qk-norm: (NHt + NKVt, N) each head's rstd */
    float *atty;                     /* (N,Qt) */
    float *lse;                      /* (B,NH/tp,T) attention log-sum-exp */
    float *attproj;                  /* (N,C) */
    float *res2;                     /* (N,C) */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch, *fch_gelu;           /* (N,F/tp): fc (SwiGLU: gate) and its activation */
    float *up;                       /* SwiGLU: (N,F/tp) the up projection */
    float *fcproj;                   /* (N,C) */
    float *res3;                     /* (N,C) = input of the next layer */
    float *lora_u;                   /* LoRA: (N,r) x A^T of each input-side adapter (the
                                        attention's lora_cols, then the MLP's); an output
                                        projection's follows attproj's or fcproj's N*C */
} LayerActs;

typedef struct {
    float *encoded;      /* (N,C): the embedding, or the stage's received input */
    LayerActs *layers;   /* owned layers */
    float *lnf, *lnf_mean, *lnf_rstd;
    float *logits;       /* (N,V) */
    uint64_t drop_key, drop_row0; /* LoRA dropout: the forward's mask (key 0: none) */
    int *pos;            /* (N) the forward's doc positions, kept for its backward */
    int has_pos;         /* pos holds them (else one document per row) */
} SlotActs;

typedef struct {
    int l0, l1;          /* owned transformer layers [l0, l1) */
    int emb, head;       /* owns block 0 / block L+1 */
    int i_wte, i_wpe, i_lnf, i_lnfb, i_head; /* tensor ids, -1 = not held; i_head: wte
                                                when tied */
    int slot[T_PER_LAYER];                   /* layer_slots */
    int *lid;            /* (owned layers, T_PER_LAYER): each layer's tensor ids, -1 = none */
    int *lora_a, *lora_b; /* the same for the adapters of each weight, -1 = none */
    LoraCol cols[2][3];  /* the adapters on the attention's and the MLP's input linears */
    int ncols[2];
    int F_tp, QKV_tp, Q_tp;                            /* local widths */
    AttnHeads heads;     /* this rank's q and kv heads */
    int rms, swiglu, qk_norm; /* the family's norm and MLP, the configuration's qk-norm */
    float eps;           /* RMSNorm's */
    TransformerShape ts;
    RopeTable rope;      /* rotary positions (cos NULL: none): seq_len positions */
    SlotActs *slots;
    /* backward scratch, reused by every layer and slot; the head's logits
     * gradient is taken in place of the logits */
    float *dres, *dln, *dqkv, *datty, *dfch, *dfch_gelu;
    float *dup;          /* SwiGLU: the up projection's gradient */
    float *dqkv_pre;     /* qk-norm: the gradient before the norm */
    float *tp_saved;     /* tp > 1: the gradients a layer sums over tp, kept aside */
    float *lora_du;      /* LoRA: (N,r) an output projection adapter's dU */
    float *lora_drop;    /* LoRA dropout: scales, dropped input, a gradient: 3 x drop_floats */
    size_t drop_floats;  /* N x the widest input an adapter reads */
    uint64_t drop_key, drop_row0; /* the pass running: its slot's mask */
    float *att_scratch;  /* the attention kernels' per-thread tiles */
    int att_threads;     /* threads att_scratch is sized for */
    LayerActs lean_acts; /* forward only: every layer's buffers (layout_acts) */
    int vtile;           /* vocabulary rows of one head tile (head_vtile) */
    float *head_tile;    /* forward only: one tile of logits */
    XentTiles xt;        /* the tiled loss's per-row state */
    int *iota;           /* 0..N-1: token ids of rows gathered through a weight view */
    int *pos_pool;       /* the slots' pos */
    float *act_pool;
} GptState;

static GptState *gst(const Model *m) { return m->state; }

static size_t layer_at(const GptState *g, int l, int k)
{
    return (size_t)(l - g->l0) * T_PER_LAYER + k;
}

/* Tensor id of tensor k of owned layer l, -1 when the family has none. */
static int layer_tensor(const Model *m, int l, int k) { return gst(m)->lid[layer_at(gst(m), l, k)]; }

/* Tensor k of owned layer l: its weights, and its gradient (NULL: no such
 * tensor, or frozen) */
static const float *lw(const Model *m, int l, int k)
{
    int i = layer_tensor(m, l, k);
    return i < 0 ? NULL : model_tensor_data(m, i);
}

static float *lg(const Model *m, int l, int k)
{
    int i = layer_tensor(m, l, k);
    return i < 0 ? NULL : model_tensor_grad(m, i);
}

static const float *data_of(const Model *m, int id) { return id < 0 ? NULL : model_tensor_data(m, id); }
static float *grad_of(const Model *m, int id) { return id < 0 ? NULL : model_tensor_grad(m, id); }

/* Layer l's adapters, after its weights (A then B for each target, in
 * LAYER_TENSORS order): the trained tensors, while the weights went to the
 * frozen base. A starts Kaiming-uniform (PEFT's bound 1/sqrt(in)), B at
 * zero, so the adapted model starts as the base. */
static void add_layer_adapters(Model *m, int l, const TransformerShape *ts)
{
    const ModelConfig *c = &m->cfg;
    const TransformerDesc *d = m->arch->transformer;
    GptState *g = gst(m);
    const int owned = l >= g->l0 && l < g->l1, tp = m->shard.tp_size, r = ts->lora_rank;
    const int was_base = m->declaring_base;
    char n[MODEL_MAX_NAME];
    m->declaring_base = 0;
    for (int k = 0; k < T_PER_LAYER; k++) {
        if (!lora_on(d, ts, k)) continue;
        int out = width_of(c, ts, LAYER_TENSORS[k].rows), in = width_of(c, ts, LAYER_TENSORS[k].cols);
        /* "attn.q.w" -> "attn.q.lora_A" */
        int stem = (int)strlen(LAYER_TENSORS[k].suffix) - 2;
        snprintf(n, sizeof n, "h.%d.%.*s.lora_A", l, stem, LAYER_TENSORS[k].suffix);
        int a = model_add_tensor(m, n, 2, r, in, l + 1, 1, lora_a_split(k), 1, 0);
        if (a >= 0) m->tensors[a].init_bound = 1.0f / sqrtf((float)in);
        snprintf(n, sizeof n, "h.%d.%.*s.lora_B", l, stem, LAYER_TENSORS[k].suffix);
        int b = model_add_tensor(m, n, 2, out, r, l + 1, 1, lora_b_split(k, ts, tp),
                                 LAYER_TENSORS[k].groups, 0);
        if (owned) g->lora_a[layer_at(g, l, k)] = a, g->lora_b[layer_at(g, l, k)] = b;
    }
    m->declaring_base = was_base;
}

static void add_layer_tensors(Model *m, int l)
{
    const ModelConfig *c = &m->cfg;
    const TransformerDesc *d = m->arch->transformer;
    const TransformerShape ts = transformer_shape(c);
    const float std = 0.02f, proj_std = d->scaled_proj_init ? 0.02f / sqrtf(2.0f * c->n_layer) : std;
    const float init[] = {[INIT_ONES] = -1, [INIT_ZEROS] = 0, [INIT_STD] = std,
                          [INIT_PROJ] = proj_std};
    GptState *g = gst(m);
    const int owned = l >= g->l0 && l < g->l1, tp = m->shard.tp_size;
    char n[MODEL_MAX_NAME];
    for (int k = 0; k < T_PER_LAYER; k++) {
        if (!layer_has(d, &ts, k)) continue;
        int d0 = width_of(c, &ts, LAYER_TENSORS[k].rows);
        int d1 = width_of(c, &ts, LAYER_TENSORS[k].cols);
        snprintf(n, sizeof n, "h.%d.%s", l, LAYER_TENSORS[k].suffix);
        int id = model_add_tensor(m, n, d1 ? 2 : 1, d0, d1, l + 1, LAYER_TENSORS[k].decay,
                                  row_split(k, &ts, tp), LAYER_TENSORS[k].groups,
                                  init[LAYER_TENSORS[k].init]);
        if (owned) g->lid[layer_at(g, l, k)] = id;
    }
    add_layer_adapters(m, l, &ts);
}

/* ---- activation memory ----------------------------------------------------- */

static size_t pad16(size_t n) { return (n + 15) / 16 * 16; }

typedef struct {
    int l0, l1, emb, head;
} Owned;

static Owned owned_of(const ModelConfig *c, const ModelShard *sh)
{
    int last = sh->last_block < 0 ? c->n_layer + 1 : sh->last_block;
    Owned o;
    o.emb = sh->first_block == 0;
    o.head = last == c->n_layer + 1;
    o.l0 = sh->first_block > 1 ? sh->first_block - 1 : 0;
    o.l1 = last < c->n_layer ? last : c->n_layer;
    if (o.l1 < o.l0) o.l1 = o.l0;
    return o;
}

/* The head's logits are computed HEAD_TILE_FLOATS at a time at most, a
 * vocabulary tile of every row: a forward-only pass keeps one tile (32 MB)
 * instead of the (N,V) logits (0.8 GB for 4 x 1024 tokens of GPT-2's 50257
 * words), and training computes its full logits by the same tiles, so both
 * round alike. */
enum { HEAD_TILE_FLOATS = 8 << 20 };

static int head_vtile(const ModelConfig *c, int B)
{
    size_t N = (size_t)B * c->seq_len;
    if (N * (size_t)c->vocab <= HEAD_TILE_FLOATS) return c->vocab;
    size_t vt = HEAD_TILE_FLOATS / N / 64 * 64;
    return vt < 64 ? 64 : vt > (size_t)c->vocab ? c->vocab : (int)vt;
}

/* The widths one tensor-parallel rank holds: its q heads, its kv heads (all
 * of them when tp does not divide them), its MLP hidden units. */
typedef struct {
    int NHt, NKVt, Qt, KVt, QKVt, Ft;
} LocalWidths;

static LocalWidths local_widths(const TransformerShape *ts, int tp)
{
    LocalWidths w;
    w.NHt = ts->n_head / tp;
    w.NKVt = kv_split(ts, tp) ? ts->n_kv_head / tp : ts->n_kv_head;
    w.Qt = ts->q_width / tp;
    w.KVt = w.NKVt * ts->head_dim;
    w.QKVt = w.Qt + 2 * w.KVt;
    w.Ft = ts->mlp_hidden / tp;
    return w;
}

/* The adapters on the attention's (mlp 0) or the MLP's (mlp 1) input
 * linears, in LAYER_TENSORS order; returns how many. */
static int lora_cols(const TransformerDesc *d, const TransformerShape *ts, const LocalWidths *w,
                     int mlp, LoraCol *out)
{
    const LoraCol all[2][3] = {
        {{d->grouped_kv ? T_QW : T_QKVW, 0, d->grouped_kv ? w->Qt : w->QKVt, 0},
         {T_KW, w->Qt, w->KVt, 0}, {T_VW, w->Qt + w->KVt, w->KVt, 0}},
        {{d->mlp == MLP_SWIGLU ? T_GATEW : T_FCW, 0, w->Ft, 0}, {T_UPW, 0, w->Ft, 1}, {-1, 0, 0, 0}}};
    int n = 0;
    for (int i = 0; i < 3; i++)
        if (all[mlp][i].k >= 0 && lora_on(d, ts, all[mlp][i].k)) out[n++] = all[mlp][i];
    return n;
}

/* Floats of one layer's gradients that a tp rank sums with the others'
 * (row_tp_summed; under LoRA the weights have none, but the B of a
 * replicated k or v does): set aside during its backward (tp_sum_layer). */
static size_t layer_tp_summed(const ModelConfig *c, int tp)
{
    const TransformerDesc *d = model_transformer(c);
    const TransformerShape ts = transformer_shape(c);
    size_t n = 0;
    for (int k = 0; k < T_PER_LAYER; k++) {
        if (!layer_has(d, &ts, k) || !row_tp_summed(k, &ts, tp)) continue;
        int d0 = width_of(c, &ts, LAYER_TENSORS[k].rows), d1 = width_of(c, &ts, LAYER_TENSORS[k].cols);
        if (!ts.lora) n += (size_t)d0 * (d1 ? d1 : 1);
        if (lora_on(d, &ts, k)) n += (size_t)d0 * ts.lora_rank;
    }
    return n;
}

/* The attention tiles are per thread; sized for the threads the kernels may
 * use now (they never use more than the tiles allow). */
static int att_scratch_threads(void) { return ops_get_threads(); }

/* Hands out consecutive 64-byte aligned pieces of one pool; without a pool
 * it only counts, so sizing and allocation are one layout. */
typedef struct {
    float *base;
    size_t used;
} Carver;

static float *carve(Carver *cv, size_t n)
{
    float *p = cv->base ? cv->base + cv->used : NULL;
    cv->used += pad16(n);
    return p;
}

/* What a layer's buffers are sized by. */
typedef struct {
    size_t N;
    int B, T, C;
    LocalWidths w;
    int rms, swiglu, qk_norm;
    int r, lora_in, lora_attn_out, lora_mlp_out; /* LoRA: rank, input-side adapters (both
                                                  inputs'), the output projections' */
} LayerDims;

/* A training layer keeps every buffer its backward reads. */
static void carve_layer(LayerActs *a, Carver *cv, const LayerDims *d)
{
    const size_t N = d->N, C = d->C;
    a->ln1 = carve(cv, N * C);
    a->ln1_mean = d->rms ? NULL : carve(cv, N);
    a->ln1_rstd = carve(cv, N);
    a->qkv = carve(cv, N * d->w.QKVt);
    a->qkv_pre = d->qk_norm ? carve(cv, N * d->w.QKVt) : a->qkv;
    a->qk_rstd = d->qk_norm ? carve(cv, N * (d->w.NHt + d->w.NKVt)) : NULL;
    a->atty = carve(cv, N * d->w.Qt);
    a->lse = carve(cv, (size_t)d->B * d->w.NHt * d->T);
    a->attproj = carve(cv, N * C + N * d->r * d->lora_attn_out);
    a->res2 = carve(cv, N * C);
    a->ln2 = carve(cv, N * C);
    a->ln2_mean = d->rms ? NULL : carve(cv, N);
    a->ln2_rstd = carve(cv, N);
    a->fch = carve(cv, N * d->w.Ft);
    a->up = d->swiglu ? carve(cv, N * d->w.Ft) : NULL;
    a->fch_gelu = carve(cv, N * d->w.Ft);
    a->fcproj = carve(cv, N * C + N * d->r * d->lora_mlp_out);
    a->res3 = carve(cv, N * C);
    a->lora_u = carve(cv, N * d->r * d->lora_in);
}

/* A forward-only pass runs every layer in one set of buffers, and within a
 * layer a buffer is reused once its value is dead: the second norm takes the
 * first's, the MLP's hidden units take qkv and the attention output (GPT-2:
 * 4C floats a row, like them), the qk-norm, GELU and SwiGLU run in place
 * (SwiGLU into the gate), and the layer's output is added into its input,
 * the slot's residual stream (res3 = NULL). */
static void carve_lean_layer(LayerActs *a, Carver *cv, const LayerDims *d)
{
    const size_t N = d->N, C = d->C;
    const int Ft = d->w.Ft, Qt = d->w.QKVt, Ct = d->w.Qt, mlp = d->swiglu ? 2 * Ft : Ft;
    a->ln1 = a->ln2 = carve(cv, N * C);
    a->ln1_mean = a->ln2_mean = d->rms ? NULL : carve(cv, N);
    a->ln1_rstd = a->ln2_rstd = carve(cv, N);
    int row = mlp > Qt + Ct ? mlp : Qt + Ct;
    float *region = carve(cv, N * row);
    a->qkv = a->qkv_pre = a->fch = a->fch_gelu = region;
    a->qk_rstd = NULL;
    a->atty = region ? region + N * Qt : NULL;
    a->up = region && d->swiglu ? region + N * Ft : NULL;
    a->lse = carve(cv, (size_t)d->B * d->w.NHt * d->T);
    int out_adapters = d->lora_attn_out || d->lora_mlp_out;
    a->attproj = a->fcproj = carve(cv, N * C + N * d->r * out_adapters);
    a->res2 = carve(cv, N * C);
    a->res3 = NULL;
    a->lora_u = carve(cv, N * d->r * d->lora_in);
}

static void carve_head(SlotActs *sa, Carver *cv, size_t N, int C, int rms)
{
    sa->lnf = carve(cv, N * C);
    sa->lnf_mean = rms ? NULL : carve(cv, N);
    sa->lnf_rstd = carve(cv, N);
}

/* The one layout of a shard's activations: with g NULL it only counts
 * (gpt_act_floats), else it carves g's pointers out of g->act_pool. */
static size_t layout_acts(const ModelConfig *c, const ModelShard *sh, int B, GptState *g)
{
    const int T = c->seq_len, C = c->n_embd, tp = sh->tp_size;
    const TransformerDesc *desc = model_transformer(c);
    const TransformerShape ts = transformer_shape(c);
    const LocalWidths w = local_widths(&ts, tp);
    LoraCol cols[3];
    const int in_attn = lora_cols(desc, &ts, &w, 0, cols), in_mlp = lora_cols(desc, &ts, &w, 1, cols);
    const LayerDims ld = {(size_t)B * T, B, T, C, w, desc->norm == NORM_RMS,
                          desc->mlp == MLP_SWIGLU, ts.qk_norm, ts.lora_rank, in_attn + in_mlp,
                          lora_on(desc, &ts, T_PROJW), lora_on(desc, &ts, T_FCPW)};
    const int S = sh->slots > 0 ? sh->slots : 1, lean = sh->forward_only;
    const size_t N = ld.N;
    Owned o = owned_of(c, sh);
    Carver cv = {g ? g->act_pool : NULL, 0};
    SlotActs none_slot = {0};
    LayerActs none_layer;
    for (int s = 0; s < S; s++) {
        SlotActs *sa = g ? &g->slots[s] : &none_slot;
        sa->encoded = carve(&cv, N * C);
        if (lean) continue;
        for (int l = 0; l < o.l1 - o.l0; l++)
            carve_layer(g ? &sa->layers[l] : &none_layer, &cv, &ld);
        if (!o.head) continue;
        carve_head(sa, &cv, N, C, ld.rms);
        sa->logits = carve(&cv, N * c->vocab);
    }
    if (lean) {
        carve_lean_layer(g ? &g->lean_acts : &none_layer, &cv, &ld);
        if (o.head) {
            SlotActs shared = {0};
            carve_head(&shared, &cv, N, C, ld.rms);
            float *tile = carve(&cv, N * head_vtile(c, B));
            for (int s = 0; g && s < S; s++) {
                g->slots[s].lnf = shared.lnf;
                g->slots[s].lnf_mean = shared.lnf_mean;
                g->slots[s].lnf_rstd = shared.lnf_rstd;
            }
            if (g) g->head_tile = tile;
        }
    } else {
        /* dln is followed by the input-side adapters' dU, summed over tp with it */
        float *d[6];
        size_t du = N * ld.r * (in_attn > in_mlp ? in_attn : in_mlp);
        size_t n[6] = {N * C, N * C + du, N * w.QKVt, N * w.Qt, N * w.Ft, N * w.Ft};
        for (int k = 0; k < 6; k++) d[k] = carve(&cv, n[k]);
        float *dup = ld.swiglu ? carve(&cv, N * w.Ft) : NULL;
        float *dpre = ld.qk_norm ? carve(&cv, N * w.QKVt) : NULL;
        size_t summed = o.l1 > o.l0 ? layer_tp_summed(c, tp) : 0;
        float *saved = summed ? carve(&cv, summed) : NULL;
        float *lora_du = ld.lora_attn_out || ld.lora_mlp_out ? carve(&cv, N * ld.r) : NULL;
        if (g) {
            g->dres = d[0], g->dln = d[1], g->dqkv = d[2], g->datty = d[3];
            g->dfch = d[4], g->dfch_gelu = d[5];
            g->dup = dup, g->dqkv_pre = dpre, g->tp_saved = saved, g->lora_du = lora_du;
        }
    }
    if (o.head) {
        float *mx = carve(&cv, N), *tg = carve(&cv, N), *sum = carve(&cv, 2 * N);
        if (g) g->xt = (XentTiles){mx, tg, (double *)(void *)sum};
    }
    float *att = carve(&cv, attention_scratch_floats(T, att_scratch_threads()));
    if (g) g->att_scratch = att;
    if (ts.lora && ts.lora_dropout > 0) {
        int widest = w.Qt > C ? w.Qt : C;
        size_t n = N * (size_t)(w.Ft > widest ? w.Ft : widest);
        float *drop = carve(&cv, 3 * n);
        if (g) g->lora_drop = drop, g->drop_floats = n;
    }
    return cv.used;
}

static size_t gpt_act_floats(const ModelConfig *c, const ModelShard *sh, int B)
{
    return layout_acts(c, sh, B, NULL);
}

static int gpt_alloc_acts(Model *m, Err *e)
{
    GptState *g = gst(m);
    const int B = m->max_batch, S = m->shard.slots, nl = g->l1 - g->l0;
    size_t total = gpt_act_floats(&m->cfg, &m->shard, B);
    g->act_pool = model_calloc(total, sizeof(float));
    g->slots = calloc(S, sizeof *g->slots);
    LayerActs *layers = calloc((size_t)S * (nl ? nl : 1), sizeof *layers);
    g->iota = calloc((size_t)B * m->cfg.seq_len, sizeof *g->iota);
    g->pos_pool = calloc((size_t)S * B * m->cfg.seq_len, sizeof *g->pos_pool);
    if (!g->act_pool || !g->slots || !layers || !g->iota || !g->pos_pool) {
        free(layers);
        return err_set(e, "out of memory: activations need %.1f MB for batch %d x seq %d",
                       total * 4.0 / 1e6, B, m->cfg.seq_len);
    }
    for (int i = 0; i < B * m->cfg.seq_len; i++) g->iota[i] = i;
    for (int s = 0; s < S; s++) {
        g->slots[s].layers = layers + (size_t)s * (nl ? nl : 1);
        g->slots[s].pos = g->pos_pool + (size_t)s * B * m->cfg.seq_len;
    }
    m->act_floats = total;
    g->att_threads = att_scratch_threads();
    g->vtile = head_vtile(&m->cfg, B);
    layout_acts(&m->cfg, &m->shard, B, g);
    const TransformerShape *ts = &g->ts;
    if (m->arch->transformer->pos == POS_ROPE && g->l1 > g->l0 &&
        rope_table_init(&g->rope, m->cfg.seq_len, ts->head_dim, ts->rope_theta, ts->rope_factor,
                        ts->rope_low_freq, ts->rope_high_freq, ts->rope_orig_ctx))
        return err_set(e, "out of memory for the rotary table (%d positions x %d)",
                       m->cfg.seq_len, ts->head_dim);
    return 0;
}

/* One transformer layer's local parameters: its tensors (LAYER_TENSORS)
 * as add_layer_tensors declares them, each its tensor-parallel slice. */
static size_t layer_params(const ModelConfig *c, int tp)
{
    const TransformerShape ts = transformer_shape(c);
    size_t n = 0;
    for (int k = 0; k < T_PER_LAYER; k++) {
        if (!layer_has(model_transformer(c), &ts, k)) continue;
        int d1 = width_of(c, &ts, LAYER_TENSORS[k].cols);
        TpSlice sl = {(SplitKind)row_split(k, &ts, tp), LAYER_TENSORS[k].groups,
                      width_of(c, &ts, LAYER_TENSORS[k].rows), d1 ? d1 : 1, 0, tp};
        n += (size_t)tp_local_rows(&sl) * tp_local_cols(&sl);
    }
    return n;
}

static size_t most_of(size_t a, size_t b) { return a > b ? a : b; }

/* The weight view's scratch (model_set_weight_view): the largest of what a
 * kernel reads at a time. A layer: one weight and its bias (layer_group;
 * separate q, k, v as one), the MLP's the largest for GPT-2. The embedding:
 * the position table and the batch's token rows (rotary positions: the rows
 * go straight into the residual stream). The head: one vocabulary tile of
 * its weights. */
static size_t gpt_view_floats(const ModelConfig *c, const ModelShard *sh, int B)
{
    const size_t C = c->n_embd, T = c->seq_len, N = (size_t)B * T;
    const TransformerShape ts = transformer_shape(c);
    const LocalWidths w = local_widths(&ts, sh->tp_size);
    const size_t F = w.Ft, Q = w.QKVt, A = w.Qt;
    Owned o = owned_of(c, sh);
    size_t most = 0;
    if (o.l1 > o.l0) {
        size_t fc = pad16(F * C) + pad16(F), proj = pad16(C * F) + pad16(C);
        most = most_of(most_of(fc, proj), pad16(Q * C) + pad16(Q));
        most = most_of(most, pad16(C * A) + pad16(C));
        /* under LoRA the weights are frozen (never in the view) and an
         * adapter's A and B come in alone */
        if (ts.lora) most = most_of(most, pad16((size_t)ts.lora_rank * (Q > F ? Q : F)) * 2 +
                                              pad16((size_t)ts.lora_rank * C) * 2);
    }
    size_t emb = model_transformer(c)->pos == POS_LEARNED ? pad16(T * C) + pad16(N * C) : 0;
    if (o.emb) most = most_of(most, emb);
    size_t head = pad16((size_t)head_vtile(c, B) * C);
    if (o.head && head > most) most = head;
    return most;
}

/* ---- building ------------------------------------------------------------ */

/* The widths and heads this shard computes. */
static void shard_widths(GptState *g, const Model *m)
{
    const TransformerDesc *d = m->arch->transformer;
    const TransformerShape ts = transformer_shape(&m->cfg);
    const int tp = m->shard.tp_size, r = m->shard.tp_rank;
    const LocalWidths w = local_widths(&ts, tp);
    g->F_tp = w.Ft;
    g->QKV_tp = w.QKVt;
    g->Q_tp = w.Qt;
    g->heads = (AttnHeads){.NH = w.NHt, .NKV = w.NKVt, .hs = ts.head_dim,
                           .group = ts.n_head / ts.n_kv_head, .h0 = r * w.NHt,
                           .kv0 = kv_split(&ts, tp) ? r * w.NKVt : 0};
    g->rms = d->norm == NORM_RMS;
    g->swiglu = d->mlp == MLP_SWIGLU;
    g->qk_norm = ts.qk_norm;
    g->eps = ts.norm_eps;
    g->ts = ts;
    g->ncols[0] = lora_cols(d, &ts, &w, 0, g->cols[0]);
    g->ncols[1] = lora_cols(d, &ts, &w, 1, g->cols[1]);
}

/* State and tensor table; model.c allocates params and grads from it. */
static int gpt_declare(Model *m, Err *e)
{
    const ModelConfig *c = &m->cfg;
    const TransformerDesc *d = m->arch->transformer;
    const TransformerShape ts = transformer_shape(c);
    GptState *g = m->state = calloc(1, sizeof *g);
    if (!g) return err_set(e, "out of memory");
    Owned o = owned_of(c, &m->shard);
    g->l0 = o.l0;
    g->l1 = o.l1;
    g->emb = o.emb;
    g->head = o.head;
    shard_widths(g, m);
    const size_t nl = (size_t)(o.l1 - o.l0) * T_PER_LAYER;
    g->lid = malloc((nl ? nl : 1) * sizeof *g->lid);
    g->lora_a = malloc((nl ? nl : 1) * sizeof *g->lora_a);
    g->lora_b = malloc((nl ? nl : 1) * sizeof *g->lora_b);
    if (!g->lid || !g->lora_a || !g->lora_b) return err_set(e, "out of memory");
    for (size_t i = 0; i < nl; i++) g->lid[i] = g->lora_a[i] = g->lora_b[i] = -1;
    /* under LoRA every weight is frozen: the adapters are what trains */
    m->declaring_base = ts.lora != 0;
    size_t wte_global = m->declaring_base ? m->base.global_params : m->global_params;
    g->i_wte = model_add_tensor(m, "wte", 2, c->vocab, c->n_embd, 0, 1, TP_REPLICATED, 1, 0.02f);
    /* all the positions are kept; a context of seq_len reads the first rows */
    g->i_wpe = -1;
    if (d->pos == POS_LEARNED)
        g->i_wpe = model_add_tensor(m, "wpe", 2, model_positions(c), c->n_embd, 0, 1,
                                    TP_REPLICATED, 1, 0.01f);
    if (g->i_wpe >= 0) ((ParamInfo *)model_tensor(m, g->i_wpe))->live = (size_t)c->seq_len * c->n_embd;
    layer_slots(d, &ts, g->slot);
    for (int l = 0; l < c->n_layer; l++) add_layer_tensors(m, l);
    g->i_lnf = model_add_tensor(m, "lnf.w", 1, c->n_embd, 0, c->n_layer + 1, 0, TP_REPLICATED, 1, -1);
    g->i_lnfb = -1;
    if (ts.biases & BIAS_NORM)
        g->i_lnfb = model_add_tensor(m, "lnf.b", 1, c->n_embd, 0, c->n_layer + 1, 0,
                                     TP_REPLICATED, 1, 0);
    /* a tied head reads wte: a stage holding the head but not the embedding
     * keeps its own copy, kept equal by summing the two gradients; an
     * untied one has its own weights */
    g->i_head = g->i_wte;
    if (!ts.tied_head)
        g->i_head = model_add_tensor(m, "head.w", 2, c->vocab, c->n_embd, c->n_layer + 1, 1,
                                     TP_REPLICATED, 1, 0.02f);
    else if (g->head && !g->emb)
        g->i_head = model_add_tied_copy(m, "wte", 2, c->vocab, c->n_embd, c->n_layer + 1, 1,
                                        0.02f, wte_global);
    m->declaring_base = 0;
    return 0;
}

static void gpt_free(Model *m)
{
    GptState *g = gst(m);
    rope_table_free(&g->rope);
    free(g->lid);
    free(g->lora_a);
    free(g->lora_b);
    free(g->iota);
    free(g->pos_pool);
    if (g->slots) free(g->slots[0].layers);
    free(g->slots);
    free(g->act_pool);
    free(g);
    m->state = NULL;
}

/* ---- forward ------------------------------------------------------------- */

static int lean(const Model *m) { return m->shard.forward_only; }

static const int *slot_pos(const SlotActs *sa) { return sa->has_pos ? sa->pos : NULL; }

/* The caller's doc positions for this forward (Model.positions), into the
 * slot for its backward. */
static void keep_positions(Model *m, SlotActs *sa, int N)
{
    sa->has_pos = m->positions != NULL;
    if (sa->has_pos) memcpy(sa->pos, m->positions, (size_t)N * sizeof *sa->pos);
}

static const float *layer_input(const Model *m, const SlotActs *sa, int l)
{
    const GptState *g = gst(m);
    return lean(m) || l == g->l0 ? sa->encoded : sa->layers[l - 1 - g->l0].res3;
}

static LayerActs *layer_acts(Model *m, SlotActs *sa, int l)
{
    return lean(m) ? &gst(m)->lean_acts : &sa->layers[l - gst(m)->l0];
}

/* Tensors [k, k + n) of layer l, consecutive in the table and so in params,
 * as one array (NULL: the family has none): a pointer into params, or
 * through a weight view each tensor into the scratch after the one before. */
static const float *layer_run(const Model *m, int l, int k, int n, float **scratch)
{
    int i = layer_tensor(m, l, k);
    if (i < 0) return NULL;
    /* frozen weights never go through the view */
    if (n == 1 || !m->view || model_is_base(i))
        return model_weights(m, i, 0, model_tensor(m, i)->numel, scratch);
    float *dst = *scratch;
    size_t off = 0;
    for (int j = i; j < i + n; j++) {
        float *at = dst + off;
        size_t numel = model_tensor(m, j)->numel;
        const float *r = model_weights(m, j, 0, numel, &at);
        if (r != dst + off) memcpy(dst + off, r, numel * sizeof(float));
        off += numel;
    }
    *scratch = dst + pad16(off);
    return dst;
}

/* Tensors [k, k + n) of layer l and the n after them (weights and their
 * biases, or a norm's pair; b NULL when the family has no such bias) as
 * this pass sees them. Through a weight view they come into the start of
 * the view scratch, over the group before them, whose kernel is done: the
 * scratch holds one group, not a layer. */
static void layer_group(const Model *m, int l, int k, int n, const float **w, const float **b)
{
    float *scratch = m->view_scratch;
    *w = layer_run(m, l, k, n, &scratch);
    *b = layer_run(m, l, k + n, n, &scratch);
}

/* The first of the layer's q, k, v weights and how many there are: GPT-2's
 * one packed tensor, or q, k and v (their biases follow as many). */
static int qkv_first(const GptState *g, int *n)
{
    *n = g->slot[T_QKVW] >= 0 ? 1 : 3;
    return g->slot[T_QKVW] >= 0 ? T_QKVW : T_QW;
}

static void norm_forward(const GptState *g, float *out, float *mean, float *rstd,
                         const float *inp, const float *w, const float *b, int N, int C)
{
    if (g->rms)
        rmsnorm_forward(out, rstd, inp, w, N, C, C, g->eps);
    else
        layernorm_forward(out, mean, rstd, inp, w, b, N, C);
}

static void norm_backward(const GptState *g, float *dinp, float *dw, float *db, const float *dout,
                          const float *inp, const float *w, const float *mean, const float *rstd,
                          int N, int C)
{
    if (g->rms)
        rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C, C);
    else
        layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
}

/* Columns [c0, c0 + n) of N rows ld floats apart, from src to dst. */
static void copy_cols(float *dst, const float *src, int N, int ld, int c0, int n)
{
    for (int r = 0; r < N; r++)
        memcpy(dst + (size_t)r * ld + c0, src + (size_t)r * ld + c0, (size_t)n * sizeof(float));
}

/* The q and k heads of qkv_pre RMS-normalized into qkv (in place when they
 * are one buffer), q's by q_norm's weights, k's by k_norm's; v copied. */
static void qk_norm_forward(Model *m, LayerActs *a, int l, int N)
{
    GptState *g = gst(m);
    const int hd = g->heads.hs, ld = g->QKV_tp, nq = g->heads.NH, nh = nq + g->heads.NKV;
    float *scratch = m->view_scratch; /* the projections' weights are done with */
    const float *wq = model_weights(m, layer_tensor(m, l, T_QNORM), 0, hd, &scratch);
    const float *wk = model_weights(m, layer_tensor(m, l, T_KNORM), 0, hd, &scratch);
    for (int h = 0; h < nh; h++)
        rmsnorm_forward(a->qkv + h * hd, a->qk_rstd ? a->qk_rstd + (size_t)h * N : NULL,
                        a->qkv_pre + h * hd, h < nq ? wq : wk, N, hd, ld, g->eps);
    if (a->qkv != a->qkv_pre) copy_cols(a->qkv, a->qkv_pre, N, ld, nh * hd, ld - nh * hd);
}

/* Weight k's adapters in layer l as this pass sees them (through a weight
 * view: into the start of the scratch, the frozen weight being read in
 * place). */
static void lora_ab(const Model *m, int l, int k, const float **A, const float **B)
{
    const GptState *g = gst(m);
    int a = g->lora_a[layer_at(g, l, k)], b = g->lora_b[layer_at(g, l, k)];
    float *scratch = m->view_scratch;
    *A = model_weights(m, a, 0, model_tensor(m, a)->numel, &scratch);
    *B = model_weights(m, b, 0, model_tensor(m, b)->numel, &scratch);
}

/* What weight k's adapter in layer l reads of its input x (N rows of `in`
 * columns, the first being the whole input's column col0): x, or under
 * LoRA dropout x with the pass's mask applied (the scales and the dropped
 * input go to the dropout scratch, where a backward finds them). */
static const float *lora_dropped(Model *m, int l, int k, const float *x, int N, int in, int col0)
{
    GptState *g = gst(m);
    if (!g->drop_key) return x;
    float *s = g->lora_drop, *xd = s + g->drop_floats;
    dropout_scales(s, N, in, g->drop_key, g->drop_row0, (uint32_t)(l * T_PER_LAYER + k),
                   (uint64_t)col0, g->ts.lora_dropout);
    scale_rows(xd, x, s, (size_t)N * in);
    return xd;
}

/* The down projection's backward for weight k's adapter: dA += dU^T x' and
 * dx += dU A, x' being what the forward read (lora_dropped), so that a
 * dropped input gets no gradient and a kept one its scale. */
static void lora_down_backward(Model *m, int l, int k, float *dx, const float *du, const float *x,
                               int N, int in, int col0)
{
    GptState *g = gst(m);
    int a = g->lora_a[layer_at(g, l, k)];
    const int r = g->ts.lora_rank;
    const float *xa = lora_dropped(m, l, k, x, N, in, col0);
    if (xa == x) {
        matmul_backward(dx, grad_of(m, a), NULL, du, x, data_of(m, a), N, in, r);
        return;
    }
    const float *s = g->lora_drop;
    float *dxa = g->lora_drop + 2 * g->drop_floats;
    memset(dxa, 0, (size_t)N * in * sizeof(float));
    matmul_backward(dxa, grad_of(m, a), NULL, du, xa, data_of(m, a), N, in, r);
    scale_add(dx, dxa, s, (size_t)N * in);
}

/* The input-side adapters (lora_cols of the attention, mlp 0, or the MLP)
 * of layer l: u = x A^T kept in a->lora_u, s u B^T added into their columns
 * of out (qkv, or fc/gate) or up, rows ld floats apart. */
static void lora_cols_forward(Model *m, LayerActs *a, int l, int mlp, const float *x, float *out,
                              float *up, int ld, int N)
{
    const GptState *g = gst(m);
    const int r = g->ts.lora_rank, C = m->cfg.n_embd;
    float *u = a->lora_u + (mlp ? (size_t)g->ncols[0] * N * r : 0);
    for (int i = 0; i < g->ncols[mlp]; i++, u += (size_t)N * r) {
        const LoraCol *lc = &g->cols[mlp][i];
        const float *A, *B;
        lora_ab(m, l, lc->k, &A, &B);
        matmul_forward_ld(u, r, lora_dropped(m, l, lc->k, x, N, C, 0), A, N, C, r);
        lora_up((lc->up ? up : out) + lc->col, ld, u, B, N, r, lc->width, g->ts.lora_scale);
    }
}

/* An output projection's product y (N,C) = x W^T, partial over tp, made
 * whole: with an adapter on weight k its u = x A^T (partial too) is kept
 * after y and summed in the same all-reduce, then s u B^T is added. */
static void output_projection_sum(Model *m, int l, int k, const float *x, int in, float *y, int N)
{
    const GptState *g = gst(m);
    const size_t n = (size_t)N * m->cfg.n_embd;
    if (g->lora_a[layer_at(g, l, k)] < 0) {
        model_tp_allreduce(m, y, n);
        return;
    }
    const int r = g->ts.lora_rank, C = m->cfg.n_embd;
    const float *A, *B;
    lora_ab(m, l, k, &A, &B);
    matmul_forward_ld(y + n, r, lora_dropped(m, l, k, x, N, in, m->shard.tp_rank * in), A, N, in, r);
    model_tp_allreduce(m, y, n + (size_t)N * r);
    lora_up(y, C, y + n, B, N, r, C, g->ts.lora_scale);
}

/* The packed [q | k | v] of this rank's heads, qk-normalized and rotated
 * as the family has it, then causal attention (within documents, given
 * pos) into atty. */
static void attention_forward_block(Model *m, LayerActs *a, const int *pos, int l, int B, int T)
{
    GptState *g = gst(m);
    const int C = m->cfg.n_embd, N = B * T;
    const float *w, *b;
    int n, k = qkv_first(g, &n);
    layer_group(m, l, k, n, &w, &b);
    matmul_forward(a->qkv_pre, a->ln1, w, b, N, C, g->QKV_tp);
    lora_cols_forward(m, a, l, 0, a->ln1, a->qkv_pre, NULL, g->QKV_tp, N);
    if (g->qk_norm) qk_norm_forward(m, a, l, N);
    if (g->rope.cos)
        rope_forward(a->qkv, &g->rope, pos, B, T, g->QKV_tp, 0, g->heads.NH + g->heads.NKV,
                     g->heads.hs, 0);
    attention_forward_gqa(a->atty, a->lse, a->qkv, pos, B, T, &g->heads, g->att_scratch,
                          g->att_threads);
}

/* The MLP's hidden units: GELU(fc) or SwiGLU(gate, up) into fch_gelu. */
static void mlp_hidden_forward(Model *m, LayerActs *a, int l, int N)
{
    GptState *g = gst(m);
    const int C = m->cfg.n_embd, Ft = g->F_tp;
    const float *w, *b;
    if (!g->swiglu) {
        layer_group(m, l, T_FCW, 1, &w, &b);
        matmul_forward(a->fch, a->ln2, w, b, N, C, Ft);
        lora_cols_forward(m, a, l, 1, a->ln2, a->fch, NULL, Ft, N);
        gelu_forward(a->fch_gelu, a->fch, (size_t)N * Ft);
        return;
    }
    layer_group(m, l, T_GATEW, 1, &w, &b);
    matmul_forward(a->fch, a->ln2, w, b, N, C, Ft);
    layer_group(m, l, T_UPW, 1, &w, &b);
    matmul_forward(a->up, a->ln2, w, b, N, C, Ft);
    lora_cols_forward(m, a, l, 1, a->ln2, a->fch, a->up, Ft, N);
    swiglu_forward(a->fch_gelu, a->fch, a->up, (size_t)N * Ft);
}

static void layer_forward(Model *m, SlotActs *sa, int l, int B, int T)
{
    GptState *g = gst(m);
    const int C = m->cfg.n_embd, N = B * T, Ct = g->Q_tp, Ft = g->F_tp;
    LayerActs *a = layer_acts(m, sa, l);
    const float *inp = layer_input(m, sa, l), *w, *b;
    float *out = lean(m) ? sa->encoded : a->res3; /* lean: added into the input */
    layer_group(m, l, T_LN1W, 1, &w, &b);
    norm_forward(g, a->ln1, a->ln1_mean, a->ln1_rstd, inp, w, b, N, C);
    attention_forward_block(m, a, slot_pos(sa), l, B, T);
    layer_group(m, l, T_PROJW, 1, &w, &b);
    matmul_forward(a->attproj, a->atty, w, NULL, N, Ct, C);
    output_projection_sum(m, l, T_PROJW, a->atty, Ct, a->attproj, N);
    if (b) bias_forward(a->attproj, b, N, C);
    residual_forward(a->res2, inp, a->attproj, (size_t)N * C);
    layer_group(m, l, T_LN2W, 1, &w, &b);
    norm_forward(g, a->ln2, a->ln2_mean, a->ln2_rstd, a->res2, w, b, N, C);
    mlp_hidden_forward(m, a, l, N);
    layer_group(m, l, T_FCPW, 1, &w, &b);
    matmul_forward(a->fcproj, a->fch_gelu, w, NULL, N, Ft, C);
    output_projection_sum(m, l, T_FCPW, a->fch_gelu, Ft, a->fcproj, N);
    if (b) bias_forward(a->fcproj, b, N, C);
    residual_forward(out, a->res2, a->fcproj, (size_t)N * C);
}

static const float *stage_out(const Model *m, const SlotActs *sa)
{
    const GptState *g = gst(m);
    return lean(m) || g->l1 == g->l0 ? sa->encoded : sa->layers[g->l1 - 1 - g->l0].res3;
}

/* The token rows of wte for N tokens into dst (N,C), each read through the
 * weight view when there is one (it serves rows, not the whole table). */
static void gather_tokens(const Model *m, float *dst, const int *tokens, int N)
{
    const int C = m->cfg.n_embd, i = gst(m)->i_wte;
    for (int n = 0; n < N; n++) {
        float *row = dst + (size_t)n * C, *at = row;
        const float *r = model_weights(m, i, (size_t)tokens[n] * C, C, &at);
        if (r != row) memcpy(row, r, (size_t)C * sizeof(float));
    }
}

/* Token (and position) embedding. Through a weight view the batch's token
 * rows are gathered first, and the sum is taken over the gathered rows by
 * the same kernel; rotary positions have no table: the rows are the
 * embedding. */
static void embed_forward(Model *m, SlotActs *sa, const int *inputs, int B, int T)
{
    GptState *g = gst(m);
    const int C = m->cfg.n_embd;
    if (g->i_wpe < 0) {
        gather_tokens(m, sa->encoded, inputs, B * T);
        return;
    }
    if (!m->view) {
        embedding_forward(sa->encoded, inputs, slot_pos(sa), model_tensor_data(m, g->i_wte),
                          model_tensor_data(m, g->i_wpe), B, T, C);
        return;
    }
    float *scratch = m->view_scratch;
    const float *wpe = model_weights(m, g->i_wpe, 0, model_tensor(m, g->i_wpe)->live, &scratch);
    gather_tokens(m, scratch, inputs, B * T);
    embedding_forward(sa->encoded, g->iota, slot_pos(sa), scratch, wpe, B, T, C);
}

static void head_norm(Model *m, SlotActs *sa, int N)
{
    GptState *g = gst(m);
    float *scratch = m->view_scratch;
    const int C = m->cfg.n_embd;
    const float *w = model_weights(m, g->i_lnf, 0, C, &scratch);
    const float *b = g->i_lnfb < 0 ? NULL : model_weights(m, g->i_lnfb, 0, C, &scratch);
    norm_forward(g, sa->lnf, sa->lnf_mean, sa->lnf_rstd, stage_out(m, sa), w, b, N, C);
}

/* Logits of rows [r0, r0 + nr) a vocabulary tile at a time: into the slot's
 * (N,V) logits when training (backward needs them), else into the one tile.
 * With targets, each tile feeds the tiled loss. Returns where row r0's
 * logits are when there are no targets (sampling: nr = 1, laid out whole). */
static const float *head_logits(Model *m, SlotActs *sa, const int *targets, int r0, int nr)
{
    GptState *g = gst(m);
    const int C = m->cfg.n_embd, V = m->cfg.vocab;
    float *row0 = sa->logits ? sa->logits + (size_t)r0 * V : g->head_tile;
    for (int v0 = 0; v0 < V; v0 += g->vtile) {
        int vn = V - v0 < g->vtile ? V - v0 : g->vtile;
        float *scratch = m->view_scratch; /* the norm's weights are done with */
        const float *w = model_weights(m, g->i_head, (size_t)v0 * C, (size_t)vn * C, &scratch);
        int tile_only = !sa->logits && targets; /* ld = vn: the tile holds nr rows of vn */
        float *dst = tile_only ? g->head_tile : row0 + v0;
        size_t ld = tile_only ? (size_t)vn : (size_t)V;
        matmul_forward_ld(dst, (int)ld, sa->lnf + (size_t)r0 * C, w, nr, C, vn);
        if (targets) xent_tiles_update(&g->xt, dst, ld, targets + r0, nr, v0, vn);
    }
    return row0;
}

static double gpt_forward(Model *m, int slot, const int *inputs, const int *targets, int B)
{
    GptState *g = gst(m);
    SlotActs *sa = &g->slots[slot];
    const int T = m->cfg.seq_len;
    /* the pass's dropout mask, kept with the slot for its backward */
    sa->drop_key = g->lora_drop ? m->dropout_key : 0;
    sa->drop_row0 = m->dropout_row0;
    m->dropout_key = 0;
    g->drop_key = sa->drop_key;
    g->drop_row0 = sa->drop_row0;
    keep_positions(m, sa, B * T);
    if (g->emb) embed_forward(m, sa, inputs, B, T);
    for (int l = g->l0; l < g->l1; l++) layer_forward(m, sa, l, B, T);
    if (!g->head || !targets) return 0.0;
    head_norm(m, sa, B * T);
    head_logits(m, sa, targets, 0, B * T);
    return xent_tiles_loss(&g->xt, targets, B * T);
}

/* ---- backward ------------------------------------------------------------ */

/* Gradients that each tp rank holds only a part of (row_tp_summed: the qk
 * norms, replicated k and v): before the layer's backward (end 0) what
 * earlier backwards accumulated is set aside and the gradient zeroed; after
 * it (end 1) this backward's part is summed over the tp group and the rest
 * added back, so micro-batches are not summed twice. */
static void tp_sum_layer(Model *m, int l, int end)
{
    GptState *g = gst(m);
    if (m->shard.tp_size <= 1) return;
    float *saved = g->tp_saved;
    for (int k = 0; k < T_PER_LAYER; k++) {
        if (!row_tp_summed(k, &g->ts, m->shard.tp_size)) continue;
        /* the weight's gradient (none when frozen) and its adapter B's */
        const int ids[2] = {layer_tensor(m, l, k), g->lora_b[layer_at(g, l, k)]};
        for (int j = 0; j < 2; j++) {
            float *gk = grad_of(m, ids[j]);
            if (!gk) continue;
            const size_t n = model_tensor(m, ids[j])->numel;
            if (!end) {
                memcpy(saved, gk, n * sizeof(float));
                memset(gk, 0, n * sizeof(float));
            } else {
                model_tp_allreduce(m, gk, n);
                for (size_t i = 0; i < n; i++) gk[i] += saved[i];
            }
            saved += n;
        }
    }
}

/* The input-side adapters' backward, in two halves around the all-reduce
 * of the input's gradient: first each dU = s dy B (partial over tp, as
 * dy's columns are this rank's) after dln's N*C, and dB += s dy^T u; then,
 * dU summed, dln += dU A and dA += dU^T x (A whole on every rank, so its
 * gradient is too). dy: the gradient of qkv (or fc/gate), dup that of up,
 * rows ld apart. Returns the floats after dln's that the all-reduce sums. */
static size_t lora_cols_backward_up(Model *m, LayerActs *a, int l, int mlp, const float *dy,
                                    const float *dup, int ld, int N)
{
    GptState *g = gst(m);
    const int r = g->ts.lora_rank;
    const float *u = a->lora_u + (mlp ? (size_t)g->ncols[0] * N * r : 0);
    float *du = g->dln + (size_t)N * m->cfg.n_embd;
    for (int i = 0; i < g->ncols[mlp]; i++, u += (size_t)N * r, du += (size_t)N * r) {
        const LoraCol *lc = &g->cols[mlp][i];
        int b = g->lora_b[layer_at(g, l, lc->k)];
        lora_up_backward(du, grad_of(m, b), (lc->up ? dup : dy) + lc->col, ld, u, data_of(m, b), N,
                         r, lc->width, g->ts.lora_scale);
    }
    return (size_t)g->ncols[mlp] * N * r;
}

static void lora_cols_backward_down(Model *m, int l, int mlp, const float *x, int N)
{
    GptState *g = gst(m);
    const int r = g->ts.lora_rank, C = m->cfg.n_embd;
    const float *du = g->dln + (size_t)N * C;
    for (int i = 0; i < g->ncols[mlp]; i++, du += (size_t)N * r)
        lora_down_backward(m, l, g->cols[mlp][i].k, g->dln, du, x, N, C, 0);
}

/* The gradient of an input-side group's input, made whole: dln's part and
 * the adapters' dU summed over tp in one all-reduce, then the adapters'
 * share added. */
static void input_grad_sum(Model *m, LayerActs *a, int l, int mlp, const float *dy,
                           const float *dup, int ld, const float *x, int N)
{
    size_t extra = lora_cols_backward_up(m, a, l, mlp, dy, dup, ld, N);
    model_tp_allreduce(m, gst(m)->dln, (size_t)N * m->cfg.n_embd + extra);
    lora_cols_backward_down(m, l, mlp, x, N);
}

/* An output projection adapter's backward (weight k, reading x of width
 * in, its u after y's N*C): dB += s dy^T u, dU = s dy B, dA += dU^T x,
 * dx += dU A. dy is whole on every rank: no all-reduce. */
static void output_projection_backward(Model *m, int l, int k, const float *y, const float *x,
                                       int in, float *dx, int N)
{
    GptState *g = gst(m);
    int a = g->lora_a[layer_at(g, l, k)], b = g->lora_b[layer_at(g, l, k)];
    if (a < 0) return;
    const int r = g->ts.lora_rank, C = m->cfg.n_embd;
    lora_up_backward(g->lora_du, grad_of(m, b), g->dres, C, y + (size_t)N * C, data_of(m, b), N, r,
                     C, g->ts.lora_scale);
    lora_down_backward(m, l, k, dx, g->lora_du, x, N, in, m->shard.tp_rank * in);
}

/* From the gradient of the MLP's hidden units (dfch_gelu) to that of its
 * input, partial over tp, into dln. */
static void mlp_hidden_backward(Model *m, LayerActs *a, int l, int N)
{
    GptState *g = gst(m);
    const int C = m->cfg.n_embd, Ft = g->F_tp;
    const size_t NF = (size_t)N * Ft;
    memset(g->dfch, 0, NF * sizeof(float));
    if (g->swiglu) {
        memset(g->dup, 0, NF * sizeof(float));
        swiglu_backward(g->dfch, g->dup, a->fch, a->up, g->dfch_gelu, NF);
    } else {
        gelu_backward(g->dfch, a->fch, g->dfch_gelu, NF);
    }
    memset(g->dln, 0, (size_t)N * C * sizeof(float));
    int k = g->swiglu ? T_GATEW : T_FCW;
    matmul_backward(g->dln, lg(m, l, k), lg(m, l, k + 1), g->dfch, a->ln2, lw(m, l, k), N, C, Ft);
    if (g->swiglu)
        matmul_backward(g->dln, lg(m, l, T_UPW), lg(m, l, T_UPB), g->dup, a->ln2, lw(m, l, T_UPW),
                        N, C, Ft);
}

/* The qk-norm's backward: dqkv (after the norm) into dqkv_pre (before it),
 * v's columns as they are; the norms' weights get their gradient. */
static void qk_norm_backward(Model *m, LayerActs *a, int l, int N)
{
    GptState *g = gst(m);
    const int hd = g->heads.hs, ld = g->QKV_tp, nq = g->heads.NH, nh = nq + g->heads.NKV;
    memset(g->dqkv_pre, 0, (size_t)N * ld * sizeof(float));
    for (int h = 0; h < nh; h++) {
        int k = h < nq ? T_QNORM : T_KNORM;
        rmsnorm_backward(g->dqkv_pre + h * hd, lg(m, l, k), g->dqkv + h * hd, a->qkv_pre + h * hd,
                         lw(m, l, k), a->qk_rstd + (size_t)h * N, N, hd, ld);
    }
    copy_cols(g->dqkv_pre, g->dqkv, N, ld, nh * hd, ld - nh * hd);
}

/* From the gradient of atty (datty) to that of the attention's input,
 * whole, into dln. */
static void attention_backward_block(Model *m, LayerActs *a, const int *pos, int l, int B, int T)
{
    GptState *g = gst(m);
    const int C = m->cfg.n_embd, N = B * T;
    memset(g->dqkv, 0, (size_t)N * g->QKV_tp * sizeof(float));
    attention_backward_gqa(g->dqkv, g->datty, a->atty, a->qkv, a->lse, pos, B, T, &g->heads,
                           g->att_scratch, g->att_threads);
    if (g->rope.cos)
        rope_backward(g->dqkv, &g->rope, pos, B, T, g->QKV_tp, 0, g->heads.NH + g->heads.NKV,
                      g->heads.hs, 0);
    const float *dpre = g->dqkv;
    if (g->qk_norm) {
        qk_norm_backward(m, a, l, N);
        dpre = g->dqkv_pre;
    }
    memset(g->dln, 0, (size_t)N * C * sizeof(float));
    int n, k = qkv_first(g, &n);
    matmul_backward(g->dln, lg(m, l, k), lg(m, l, k + n), dpre, a->ln1, lw(m, l, k), N, C,
                    g->QKV_tp);
    input_grad_sum(m, a, l, 0, dpre, NULL, g->QKV_tp, a->ln1, N);
}

/* dres holds d(res3) on entry and d(input) on exit */
/* Mid-layer: every gradient of the blocks above layer l's (l + 2 and up) is
 * final, as it was at the end of layer l + 1. Telling the caller again lets
 * its all-reduces of those blocks move on while this layer computes (MPI
 * moves a non-blocking collective only inside its calls): with one call per
 * layer a small bucket (LoRA's) had only a few progress calls before
 * backward ended. */
static void progress_point(Model *m, int l) { model_block_done(m, l + 2); }

static void layer_backward(Model *m, SlotActs *sa, int l, int B, int T)
{
    GptState *g = gst(m);
    const int C = m->cfg.n_embd, N = B * T, Ct = g->Q_tp, Ft = g->F_tp;
    LayerActs *a = &sa->layers[l - g->l0];
    const float *inp = layer_input(m, sa, l);

    tp_sum_layer(m, l, 0);
    memset(g->dfch_gelu, 0, (size_t)N * Ft * sizeof(float));
    matmul_backward(g->dfch_gelu, lg(m, l, T_FCPW), lg(m, l, T_FCPB), g->dres, a->fch_gelu,
                    lw(m, l, T_FCPW), N, Ft, C);
    output_projection_backward(m, l, T_FCPW, a->fcproj, a->fch_gelu, Ft, g->dfch_gelu, N);
    progress_point(m, l);
    mlp_hidden_backward(m, a, l, N);
    input_grad_sum(m, a, l, 1, g->dfch, g->dup, Ft, a->ln2, N);
    norm_backward(g, g->dres, lg(m, l, T_LN2W), lg(m, l, T_LN2B), g->dln, a->res2, lw(m, l, T_LN2W),
                  a->ln2_mean, a->ln2_rstd, N, C);
    progress_point(m, l);
    memset(g->datty, 0, (size_t)N * Ct * sizeof(float));
    matmul_backward(g->datty, lg(m, l, T_PROJW), lg(m, l, T_PROJB), g->dres, a->atty,
                    lw(m, l, T_PROJW), N, Ct, C);
    output_projection_backward(m, l, T_PROJW, a->attproj, a->atty, Ct, g->datty, N);
    progress_point(m, l);
    attention_backward_block(m, a, slot_pos(sa), l, B, T);
    norm_backward(g, g->dres, lg(m, l, T_LN1W), lg(m, l, T_LN1B), g->dln, inp, lw(m, l, T_LN1W),
                  a->ln1_mean, a->ln1_rstd, N, C);
    tp_sum_layer(m, l, 1);
}

static void head_backward(Model *m, SlotActs *sa, const int *targets, int B, int T, float scale)
{
    GptState *g = gst(m);
    const int C = m->cfg.n_embd, V = m->cfg.vocab, N = B * T;
    float *dlogits = sa->logits; /* in place: the logits are not needed again */
    softmax_xent(dlogits, sa->logits, targets, N, V, scale);
    memset(g->dln, 0, (size_t)N * C * sizeof(float));
    matmul_backward(g->dln, grad_of(m, g->i_head), NULL, dlogits, sa->lnf, data_of(m, g->i_head), N,
                    C, V);
    memset(g->dres, 0, (size_t)N * C * sizeof(float));
    norm_backward(g, g->dres, grad_of(m, g->i_lnf), grad_of(m, g->i_lnfb), g->dln, stage_out(m, sa),
                  data_of(m, g->i_lnf), sa->lnf_mean, sa->lnf_rstd, N, C);
}

static void gpt_backward(Model *m, int slot, const int *inputs, const int *targets, int B,
                  float grad_scale, const float *dout)
{
    GptState *g = gst(m);
    SlotActs *sa = &g->slots[slot];
    const int T = m->cfg.seq_len, C = m->cfg.n_embd;
    g->drop_key = sa->drop_key;
    g->drop_row0 = sa->drop_row0;
    if (g->head) {
        head_backward(m, sa, targets, B, T, grad_scale);
        model_block_done(m, m->cfg.n_layer + 1);
    } else {
        memcpy(g->dres, dout, (size_t)B * T * C * sizeof(float));
    }
    for (int l = g->l1 - 1; l >= g->l0; l--) {
        layer_backward(m, sa, l, B, T);
        model_block_done(m, l + 1);
    }
    if (!g->emb) return;
    float *dwte = grad_of(m, g->i_wte), *dwpe = grad_of(m, g->i_wpe);
    if (dwte || dwpe) embedding_backward(dwte, dwpe, g->dres, inputs, slot_pos(sa), B, T, C);
    model_block_done(m, 0);
}

/* ---- stage boundaries and sampling ------------------------------------------ */

static size_t gpt_boundary_floats(const ModelConfig *c, int B)
{
    return (size_t)B * c->seq_len * c->n_embd;
}

static float *gpt_stage_input(Model *m, int slot) { return gst(m)->slots[slot].encoded; }

static const float *gpt_stage_output(const Model *m, int slot)
{
    return stage_out(m, &gst(m)->slots[slot]);
}

static const float *gpt_stage_dinput(const Model *m) { return gst(m)->dres; }

static const float *gpt_next_logits(Model *m, const int *tokens, int t)
{
    /* run the full context length; causal attention means positions after t
     * do not affect position t-1, so pad with token 0 */
    GptState *g = gst(m);
    const int T = m->cfg.seq_len;
    if (t < 1 || t > T || !g->emb || !g->head) return NULL;
    int *buf = calloc(T, sizeof(int));
    if (!buf) return NULL;
    memcpy(buf, tokens, (size_t)t * sizeof(int));
    gpt_forward(m, 0, buf, NULL, 1);
    free(buf);
    head_norm(m, &g->slots[0], T);
    return head_logits(m, &g->slots[0], NULL, t - 1, 1);
}

/* W += s B A for every adapter of every layer, then B = 0 (a whole model:
 * the weights and adapters are unsplit). */
static void gpt_merge_adapters(Model *m)
{
    GptState *g = gst(m);
    const int r = g->ts.lora_rank;
    for (int l = g->l0; l < g->l1; l++)
        for (int k = 0; k < T_PER_LAYER; k++) {
            int a = g->lora_a[layer_at(g, l, k)], b = g->lora_b[layer_at(g, l, k)];
            if (a < 0) continue;
            const ParamInfo *w = model_tensor(m, layer_tensor(m, l, k));
            int out = w->local_shape[0], in = w->local_shape[1];
            float *B = model_tensor_data(m, b);
            lora_merge(model_tensor_data(m, layer_tensor(m, l, k)), data_of(m, a), B, out, in, r,
                       g->ts.lora_scale);
            memset(B, 0, (size_t)out * r * sizeof(float));
        }
}

/* ---- configuration and costs ------------------------------------------------ */

static int gpt_validate(const ModelConfig *c, Err *e)
{
    /* an explicit head size frees the width from the heads (Qwen3) */
    if (c->n_head < 1 || (!c->head_dim && c->n_embd % c->n_head != 0))
        return err_set(e, "--heads %d does not divide --embd %d; pick heads that divide the width",
                       c->n_head, c->n_embd);
    return 0;
}

/* Heads and the MLP's hidden units are split over tp ranks; key/value
 * heads too when tp divides them, else every rank holds them all. */
static int gpt_validate_shard(const ModelConfig *c, const ModelShard *sh, Err *e)
{
    if (sh->tp_size <= 1) return 0;
    if (c->n_head % sh->tp_size)
        return err_set(e, "--tp %d does not divide --heads %d: attention heads are split "
                          "across tensor-parallel ranks; pick a --tp that divides %d",
                       sh->tp_size, c->n_head, c->n_head);
    const TransformerShape ts = transformer_shape(c);
    if (ts.mlp_hidden % sh->tp_size == 0) return 0;
    if (c->mlp_hidden)
        return err_set(e, "--tp %d does not divide --mlp-hidden %d: the MLP's hidden units are "
                          "split across tensor-parallel ranks", sh->tp_size, ts.mlp_hidden);
    return err_set(e, "--tp %d does not divide the MLP width %d x --embd = %d", sh->tp_size,
                   model_transformer(c)->mlp_mult, ts.mlp_hidden);
}

/* embedding, the layers, final norm + head */
static int gpt_n_blocks(const ModelConfig *c) { return c->n_layer + 2; }

static int gpt_preds_per_seq(const ModelConfig *c) { return c->seq_len; }

static void gpt_block_costs(const ModelConfig *c, double *cost)
{
    int n = gpt_n_blocks(c);
    const TransformerShape ts = transformer_shape(c);
    double C = c->n_embd, T = c->seq_len, V = c->vocab, Qw = ts.q_width;
    /* a layer's matmul weights per unit of width: qkv, proj, the MLP's two
     * (GPT-2: 3C + C + 4C + 4C = 12C) or three (SwiGLU) */
    int mlps = model_transformer(c)->mlp == MLP_SWIGLU ? 3 : 2;
    int widths = ts.qkv_rows + ts.q_width + mlps * ts.mlp_hidden;
    double W = c->n_embd > 0 ? (double)widths / c->n_embd : 0;
    /* forward+backward FLOPs per sequence; element-wise work is counted as
     * a few FLOPs per element, which matters for the embedding block */
    cost[0] = 10 * T * C;
    for (int b = 1; b <= c->n_layer; b++) cost[b] = 6 * T * W * C * C + 12 * T * T * Qw + 60 * T * C;
    cost[n - 1] = 6 * T * C * V + 20 * T * V;
}

/* The floats of the model's own weights a shard holds (no adapters). */
static size_t gpt_weight_params(const ModelConfig *c, const ModelShard *sh)
{
    const TransformerShape ts = transformer_shape(c);
    size_t C = c->n_embd, V = c->vocab, T = model_positions(c);
    int learned = model_transformer(c)->pos == POS_LEARNED;
    Owned o = owned_of(c, sh);
    size_t n = (size_t)(o.l1 - o.l0) * layer_params(c, sh->tp_size);
    if (o.emb) n += V * C + (learned ? T * C : 0); /* wte, wpe */
    /* lnf (and its bias), the head: its own weights, or the tied wte's copy */
    if (o.head) n += (ts.biases & BIAS_NORM ? 2 : 1) * C + (!ts.tied_head || !o.emb ? V * C : 0);
    return n;
}

/* What trains: the adapters under LoRA, else every weight. */
static size_t gpt_shard_params(const ModelConfig *c, const ModelShard *sh)
{
    if (!transformer_shape(c).lora) return gpt_weight_params(c, sh);
    Owned o = owned_of(c, sh);
    return (size_t)(o.l1 - o.l0) * layer_lora_params(c, sh->tp_size);
}

/* The frozen base: every weight under LoRA, else none. */
static size_t gpt_shard_base_params(const ModelConfig *c, const ModelShard *sh)
{
    return transformer_shape(c).lora ? gpt_weight_params(c, sh) : 0;
}

/* 2 FLOPs per weight of every matmul (a tied head reuses wte; the position
 * table is a lookup, counted anyway as it is small; an untied head's
 * embedding is a lookup not counted) plus attention's two T x T products,
 * 2 T q_width each per layer: 2 N + 4 L C T, the usual Kaplan/PaLM count
 * (training, 3x: 6 N + 12 L C T). */
static double gpt_fwd_flops_per_token(const ModelConfig *c)
{
    const TransformerShape ts = transformer_shape(c);
    ModelShard whole = {.tp_size = 1, .last_block = c->n_layer + 1, .slots = 1};
    double N = (double)gpt_weight_params(c, &whole);
    if (!ts.tied_head) N -= (double)c->vocab * c->n_embd;
    return 2.0 * N + 4.0 * c->n_layer * ts.q_width * c->seq_len;
}

static const ModelOps GPT_OPS = {
    .declare = gpt_declare,
    .alloc_acts = gpt_alloc_acts,
    .free = gpt_free,
    .forward = gpt_forward,
    .backward = gpt_backward,
    .stage_input = gpt_stage_input,
    .stage_output = gpt_stage_output,
    .stage_dinput = gpt_stage_dinput,
    .next_logits = gpt_next_logits,
    .merge_adapters = gpt_merge_adapters,
};

/* A transformer family: its name and description, these functions. */
#define TRANSFORMER_ARCH(name_, desc_)                                                     \
    {                                                                                      \
        .name = name_, .transformer = desc_, .validate = gpt_validate,                     \
        .validate_shard = gpt_validate_shard, .n_blocks = gpt_n_blocks,                    \
        .preds_per_seq = gpt_preds_per_seq, .shard_params = gpt_shard_params,              \
        .shard_base_params = gpt_shard_base_params,                                        \
        .act_floats = gpt_act_floats, .view_floats = gpt_view_floats,                      \
        .fwd_flops_per_token = gpt_fwd_flops_per_token, .block_costs = gpt_block_costs,    \
        .boundary_floats = gpt_boundary_floats, .ops = &GPT_OPS,                           \
    }

const ModelArch GPT_ARCH = TRANSFORMER_ARCH("gpt", &GPT2_TRANSFORMER);
const ModelArch LLAMA_ARCH = TRANSFORMER_ARCH("llama", &LLAMA_TRANSFORMER);
