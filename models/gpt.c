/* The transformer families' decoder (models/arch.h describes them; GPT-2's
 * is the one with kernels): token + position embedding, L pre-LN
 * transformer blocks, final layernorm, head tied to the token embedding.
 * The widths come from the configuration's TransformerShape.
 * Blocks: 0 = embedding, 1..L = transformer layers, L+1 = final norm + head.
 * A shard holds a block range (a pipeline stage) as a tensor-parallel slice:
 * attention heads and the MLP's hidden units are split over TP ranks
 * (qkv and fc column-parallel, the two output projections row-parallel). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "models/model.h"
#include "models/ops.h"
#include "sharding/tpsplit.h"

enum { T_LN1W, T_LN1B, T_QKVW, T_QKVB, T_PROJW, T_PROJB, T_LN2W, T_LN2B, T_FCW, T_FCB,
       T_FCPW, T_FCPB, T_PER_LAYER };

/* The tensors of one transformer layer, in canonical order (their names,
 * offsets and init draws follow it), as the family's description shapes
 * them: widths from its TransformerShape, a bias only where its biases
 * have the bit. Each weight is followed by its bias (layer_pair reads
 * them together). */
typedef enum { W_NONE, W_C, W_QKV, W_MLP } Width;
typedef enum { INIT_ONES, INIT_ZEROS, INIT_STD, INIT_PROJ } Init;
static const struct {
    const char *suffix;
    Width rows, cols;  /* cols W_NONE: a vector */
    int decay;
    TpSplit split;
    int groups;
    Init init;
    unsigned bias;     /* the BIAS_* bit that keeps it; 0: always there */
} LAYER_TENSORS[T_PER_LAYER] = {
    [T_LN1W] = {"ln1.w", W_C, W_NONE, 0, TP_REPLICATED, 1, INIT_ONES, 0},
    [T_LN1B] = {"ln1.b", W_C, W_NONE, 0, TP_REPLICATED, 1, INIT_ZEROS, BIAS_NORM},
    [T_QKVW] = {"attn.qkv.w", W_QKV, W_C, 1, TP_COLUMN, 3, INIT_STD, 0},
    [T_QKVB] = {"attn.qkv.b", W_QKV, W_NONE, 0, TP_COLUMN, 3, INIT_ZEROS, BIAS_QKV},
    [T_PROJW] = {"attn.proj.w", W_C, W_C, 1, TP_ROW, 1, INIT_PROJ, 0},
    [T_PROJB] = {"attn.proj.b", W_C, W_NONE, 0, TP_REPLICATED, 1, INIT_ZEROS, BIAS_ATTN_PROJ},
    [T_LN2W] = {"ln2.w", W_C, W_NONE, 0, TP_REPLICATED, 1, INIT_ONES, 0},
    [T_LN2B] = {"ln2.b", W_C, W_NONE, 0, TP_REPLICATED, 1, INIT_ZEROS, BIAS_NORM},
    [T_FCW] = {"mlp.fc.w", W_MLP, W_C, 1, TP_COLUMN, 1, INIT_STD, 0},
    [T_FCB] = {"mlp.fc.b", W_MLP, W_NONE, 0, TP_COLUMN, 1, INIT_ZEROS, BIAS_MLP_IN},
    [T_FCPW] = {"mlp.proj.w", W_C, W_MLP, 1, TP_ROW, 1, INIT_PROJ, 0},
    [T_FCPB] = {"mlp.proj.b", W_C, W_NONE, 0, TP_REPLICATED, 1, INIT_ZEROS, BIAS_MLP_OUT},
};

static int layer_has(const TransformerDesc *d, int k)
{
    return !LAYER_TENSORS[k].bias || (d->biases & LAYER_TENSORS[k].bias);
}

/* slot[k]: where tensor k sits among its layer's declared tensors (-1: the
 * family has none); returns how many a layer declares. */
static int layer_slots(const TransformerDesc *d, int *slot)
{
    int n = 0;
    for (int k = 0; k < T_PER_LAYER; k++) slot[k] = layer_has(d, k) ? n++ : -1;
    return n;
}

static int width_of(const ModelConfig *c, const TransformerShape *ts, Width w)
{
    return w == W_C ? c->n_embd : w == W_QKV ? ts->qkv_rows : w == W_MLP ? ts->mlp_hidden : 0;
}

typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd; /* (N,C) (N) (N) */
    float *qkv;                      /* (N,3C/tp) */
    float *atty;                     /* (N,C/tp) */
    float *lse;                      /* (B,NH/tp,T) attention log-sum-exp */
    float *attproj;                  /* (N,C) */
    float *res2;                     /* (N,C) */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch, *fch_gelu;           /* (N,4C/tp) */
    float *fcproj;                   /* (N,C) */
    float *res3;                     /* (N,C) = input of the next layer */
} LayerActs;

typedef struct {
    float *encoded;      /* (N,C): the embedding, or the stage's received input */
    LayerActs *layers;   /* owned layers */
    float *lnf, *lnf_mean, *lnf_rstd;
    float *logits;       /* (N,V) */
} SlotActs;

typedef struct {
    int l0, l1;          /* owned transformer layers [l0, l1) */
    int emb, head;       /* owns block 0 / block L+1 */
    int i_wte, i_wpe, i_layer0, i_lnf, i_head_wte; /* table indices, -1 = not held */
    int per_layer, slot[T_PER_LAYER];              /* layer_slots */
    int C_tp, NH_tp, F_tp, QKV_tp;                 /* local widths */
    int head_dim;
    SlotActs *slots;
    /* backward scratch, reused by every layer and slot; the head's logits
     * gradient is taken in place of the logits */
    float *dres, *dln, *dqkv, *datty, *dfch, *dfch_gelu;
    float *att_scratch;  /* the attention kernels' per-thread tiles */
    int att_threads;     /* threads att_scratch is sized for */
    LayerActs lean_acts; /* forward only: every layer's buffers (layout_acts) */
    int vtile;           /* vocabulary rows of one head tile (head_vtile) */
    float *head_tile;    /* forward only: one tile of logits */
    XentTiles xt;        /* the tiled loss's per-row state */
    int *iota;           /* 0..N-1: token ids of rows gathered through a weight view */
    float *act_pool;
} GptState;

static GptState *gst(const Model *m) { return m->state; }

static float *tensor_at(const Model *m, const float *buf, int k)
{
    return (float *)buf + m->tensors[k].offset;
}

/* Table index of tensor k of owned layer l, -1 when the family has none. */
static int layer_tensor(const Model *m, int l, int k)
{
    const GptState *g = gst(m);
    return g->slot[k] < 0 ? -1 : g->i_layer0 + (l - g->l0) * g->per_layer + g->slot[k];
}

/* tensor k of owned layer l in buf (params or grads); NULL: no such bias */
static float *lt(const Model *m, const float *buf, int l, int k)
{
    int i = layer_tensor(m, l, k);
    return i < 0 ? NULL : tensor_at(m, buf, i);
}

static void add_layer_tensors(Model *m, int l)
{
    const ModelConfig *c = &m->cfg;
    const TransformerShape ts = transformer_shape(c);
    const float std = 0.02f, proj_std = 0.02f / sqrtf(2.0f * c->n_layer);
    const float init[] = {[INIT_ONES] = -1, [INIT_ZEROS] = 0, [INIT_STD] = std,
                          [INIT_PROJ] = proj_std};
    char n[MODEL_MAX_NAME];
    for (int k = 0; k < T_PER_LAYER; k++) {
        if (!layer_has(m->arch->transformer, k)) continue;
        int d0 = width_of(c, &ts, LAYER_TENSORS[k].rows);
        int d1 = width_of(c, &ts, LAYER_TENSORS[k].cols);
        snprintf(n, sizeof n, "h.%d.%s", l, LAYER_TENSORS[k].suffix);
        model_add_tensor(m, n, d1 ? 2 : 1, d0, d1, l + 1, LAYER_TENSORS[k].decay,
                         LAYER_TENSORS[k].split, LAYER_TENSORS[k].groups,
                         init[LAYER_TENSORS[k].init]);
    }
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

/* The packed q, k, v columns one tensor-parallel rank holds: its heads'
 * queries, keys and values. */
static int qkv_local(const TransformerShape *ts, int C, int tp)
{
    return C / tp + 2 * (ts->kv_width / tp);
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

/* A training layer keeps every buffer its backward reads. */
static void carve_layer(LayerActs *a, Carver *cv, size_t N, int B, int T, int C, int Qt, int Ct,
                        int NHt, int Ft)
{
    a->ln1 = carve(cv, N * C);
    a->ln1_mean = carve(cv, N);
    a->ln1_rstd = carve(cv, N);
    a->qkv = carve(cv, N * Qt);
    a->atty = carve(cv, N * Ct);
    a->lse = carve(cv, (size_t)B * NHt * T);
    a->attproj = carve(cv, N * C);
    a->res2 = carve(cv, N * C);
    a->ln2 = carve(cv, N * C);
    a->ln2_mean = carve(cv, N);
    a->ln2_rstd = carve(cv, N);
    a->fch = carve(cv, N * Ft);
    a->fch_gelu = carve(cv, N * Ft);
    a->fcproj = carve(cv, N * C);
    a->res3 = carve(cv, N * C);
}

/* A forward-only pass runs every layer in one set of buffers, and within a
 * layer a buffer is reused once its value is dead: the second norm takes the
 * first's, the MLP's hidden units take qkv and the attention output (GPT-2:
 * 4C floats a row, like them), GELU runs in place, and the layer's output is
 * added into its input, the slot's residual stream (res3 = NULL). */
static void carve_lean_layer(LayerActs *a, Carver *cv, size_t N, int B, int T, int C, int Qt,
                             int Ct, int NHt, int Ft)
{
    a->ln1 = a->ln2 = carve(cv, N * C);
    a->ln1_mean = a->ln2_mean = carve(cv, N);
    a->ln1_rstd = a->ln2_rstd = carve(cv, N);
    int row = Ft > Qt + Ct ? Ft : Qt + Ct;
    float *region = carve(cv, N * row);
    a->qkv = a->fch = a->fch_gelu = region;
    a->atty = region ? region + N * Qt : NULL;
    a->lse = carve(cv, (size_t)B * NHt * T);
    a->attproj = a->fcproj = carve(cv, N * C);
    a->res2 = carve(cv, N * C);
    a->res3 = NULL;
}

static void carve_head(SlotActs *sa, Carver *cv, size_t N, int C)
{
    sa->lnf = carve(cv, N * C);
    sa->lnf_mean = carve(cv, N);
    sa->lnf_rstd = carve(cv, N);
}

/* The one layout of a shard's activations: with g NULL it only counts
 * (gpt_act_floats), else it carves g's pointers out of g->act_pool. */
static size_t layout_acts(const ModelConfig *c, const ModelShard *sh, int B, GptState *g)
{
    const int T = c->seq_len, C = c->n_embd, tp = sh->tp_size;
    const TransformerShape ts = transformer_shape(c);
    const int Ct = C / tp, NHt = ts.n_head / tp, Ft = ts.mlp_hidden / tp;
    const int Qt = qkv_local(&ts, C, tp);
    const int S = sh->slots > 0 ? sh->slots : 1, lean = sh->forward_only;
    const size_t N = (size_t)B * T;
    Owned o = owned_of(c, sh);
    Carver cv = {g ? g->act_pool : NULL, 0};
    SlotActs none_slot = {0};
    LayerActs none_layer;
    for (int s = 0; s < S; s++) {
        SlotActs *sa = g ? &g->slots[s] : &none_slot;
        sa->encoded = carve(&cv, N * C);
        if (lean) continue;
        for (int l = 0; l < o.l1 - o.l0; l++)
            carve_layer(g ? &sa->layers[l] : &none_layer, &cv, N, B, T, C, Qt, Ct, NHt, Ft);
        if (!o.head) continue;
        carve_head(sa, &cv, N, C);
        sa->logits = carve(&cv, N * c->vocab);
    }
    if (lean) {
        carve_lean_layer(g ? &g->lean_acts : &none_layer, &cv, N, B, T, C, Qt, Ct, NHt, Ft);
        if (o.head) {
            SlotActs shared = {0};
            carve_head(&shared, &cv, N, C);
            float *tile = carve(&cv, N * head_vtile(c, B));
            for (int s = 0; g && s < S; s++) {
                g->slots[s].lnf = shared.lnf;
                g->slots[s].lnf_mean = shared.lnf_mean;
                g->slots[s].lnf_rstd = shared.lnf_rstd;
            }
            if (g) g->head_tile = tile;
        }
    } else {
        float *d[6];
        size_t n[6] = {N * C, N * C, N * Qt, N * Ct, N * Ft, N * Ft};
        for (int k = 0; k < 6; k++) d[k] = carve(&cv, n[k]);
        if (g) {
            g->dres = d[0], g->dln = d[1], g->dqkv = d[2], g->datty = d[3];
            g->dfch = d[4], g->dfch_gelu = d[5];
        }
    }
    if (o.head) {
        float *mx = carve(&cv, N), *tg = carve(&cv, N), *sum = carve(&cv, 2 * N);
        if (g) g->xt = (XentTiles){mx, tg, (double *)(void *)sum};
    }
    float *att = carve(&cv, attention_scratch_floats(T, att_scratch_threads()));
    if (g) g->att_scratch = att;
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
    if (!g->act_pool || !g->slots || !layers || !g->iota) {
        free(layers);
        return err_set(e, "out of memory: activations need %.1f MB for batch %d x seq %d",
                       total * 4.0 / 1e6, B, m->cfg.seq_len);
    }
    for (int i = 0; i < B * m->cfg.seq_len; i++) g->iota[i] = i;
    for (int s = 0; s < S; s++) g->slots[s].layers = layers + (size_t)s * (nl ? nl : 1);
    m->act_floats = total;
    g->att_threads = att_scratch_threads();
    g->vtile = head_vtile(&m->cfg, B);
    layout_acts(&m->cfg, &m->shard, B, g);
    return 0;
}

/* One transformer layer's local parameters: its tensors (LAYER_TENSORS)
 * as add_layer_tensors declares them, each its tensor-parallel slice. */
static size_t layer_params(const ModelConfig *c, int tp)
{
    const TransformerShape ts = transformer_shape(c);
    size_t n = 0;
    for (int k = 0; k < T_PER_LAYER; k++) {
        if (!layer_has(model_transformer(c), k)) continue;
        int d1 = width_of(c, &ts, LAYER_TENSORS[k].cols);
        TpSlice sl = {(SplitKind)LAYER_TENSORS[k].split, LAYER_TENSORS[k].groups,
                      width_of(c, &ts, LAYER_TENSORS[k].rows), d1 ? d1 : 1, 0, tp};
        n += (size_t)tp_local_rows(&sl) * tp_local_cols(&sl);
    }
    return n;
}

/* The weight view's scratch (model_set_weight_view): the largest of what a
 * kernel reads at a time. A layer: one weight and its bias (layer_pair), the
 * MLP's the largest. The embedding: the position table and the batch's
 * token rows. The head: one vocabulary tile of the tied embedding. */
static size_t gpt_view_floats(const ModelConfig *c, const ModelShard *sh, int B)
{
    const size_t C = c->n_embd, T = c->seq_len, N = (size_t)B * T;
    const size_t F = (size_t)transformer_shape(c).mlp_hidden / sh->tp_size;
    Owned o = owned_of(c, sh);
    size_t most = 0;
    if (o.l1 > o.l0) {
        size_t fc = pad16(F * C) + pad16(F), proj = pad16(C * F) + pad16(C);
        most = fc > proj ? fc : proj;
    }
    if (o.emb && pad16(T * C) + pad16(N * C) > most) most = pad16(T * C) + pad16(N * C);
    size_t head = pad16((size_t)head_vtile(c, B) * C);
    if (o.head && head > most) most = head;
    return most;
}

/* ---- building ------------------------------------------------------------ */

/* State and tensor table; model.c allocates params and grads from it. */
static int gpt_declare(Model *m, Err *e)
{
    const ModelConfig *c = &m->cfg;
    GptState *g = m->state = calloc(1, sizeof *g);
    if (!g) return err_set(e, "out of memory");
    Owned o = owned_of(c, &m->shard);
    g->l0 = o.l0;
    g->l1 = o.l1;
    g->emb = o.emb;
    g->head = o.head;
    const TransformerShape ts = transformer_shape(c);
    g->C_tp = c->n_embd / m->shard.tp_size;
    g->NH_tp = ts.n_head / m->shard.tp_size;
    g->F_tp = ts.mlp_hidden / m->shard.tp_size;
    g->QKV_tp = qkv_local(&ts, c->n_embd, m->shard.tp_size);
    g->head_dim = ts.head_dim;
    size_t wte_global = m->global_params;
    g->i_wte = model_add_tensor(m, "wte", 2, c->vocab, c->n_embd, 0, 1, TP_REPLICATED, 1, 0.02f);
    /* all the positions are kept; a context of seq_len reads the first rows */
    g->i_wpe = model_add_tensor(m, "wpe", 2, model_positions(c), c->n_embd, 0, 1, TP_REPLICATED, 1, 0.01f);
    if (g->i_wpe >= 0) m->tensors[g->i_wpe].live = (size_t)c->seq_len * c->n_embd;
    g->per_layer = layer_slots(m->arch->transformer, g->slot);
    g->i_layer0 = m->n_tensors;
    for (int l = 0; l < c->n_layer; l++) add_layer_tensors(m, l);
    g->i_lnf = model_add_tensor(m, "lnf.w", 1, c->n_embd, 0, c->n_layer + 1, 0, TP_REPLICATED, 1, -1);
    model_add_tensor(m, "lnf.b", 1, c->n_embd, 0, c->n_layer + 1, 0, TP_REPLICATED, 1, 0);
    /* the head is tied to wte (transformer_check refuses an untied one): a
     * stage holding the head but not the embedding keeps its own copy, kept
     * equal by summing the two gradients */
    g->i_head_wte = g->i_wte;
    if (m->arch->transformer->tied_head && g->head && !g->emb)
        g->i_head_wte = model_add_tied_copy(m, "wte", 2, c->vocab, c->n_embd, c->n_layer + 1, 1,
                                            0.02f, wte_global);
    return 0;
}

static void gpt_free(Model *m)
{
    GptState *g = gst(m);
    free(g->iota);
    if (g->slots) free(g->slots[0].layers);
    free(g->slots);
    free(g->act_pool);
    free(g);
    m->state = NULL;
}

/* ---- forward ------------------------------------------------------------- */

static int lean(const Model *m) { return m->shard.forward_only; }

static const float *layer_input(const Model *m, const SlotActs *sa, int l)
{
    const GptState *g = gst(m);
    return lean(m) || l == g->l0 ? sa->encoded : sa->layers[l - 1 - g->l0].res3;
}

static LayerActs *layer_acts(Model *m, SlotActs *sa, int l)
{
    return lean(m) ? &gst(m)->lean_acts : &sa->layers[l - gst(m)->l0];
}

/* Tensors k and k + 1 of layer l (a weight and its bias, or a norm's pair;
 * b NULL when the family has no such bias) as this pass sees them. Through a weight view they come into the start of
 * the view scratch, over the pair before them, whose kernel is done: the
 * scratch holds one pair, not a layer. */
static void layer_pair(const Model *m, int l, int k, const float **w, const float **b)
{
    float *scratch = m->view_scratch;
    int i = layer_tensor(m, l, k), j = layer_tensor(m, l, k + 1);
    *w = model_weights(m, i, 0, m->tensors[i].numel, &scratch);
    *b = j < 0 ? NULL : model_weights(m, j, 0, m->tensors[j].numel, &scratch);
}

static void layer_forward(Model *m, SlotActs *sa, int l, int B, int T)
{
    GptState *g = gst(m);
    const int C = m->cfg.n_embd, N = B * T, Ct = g->C_tp, Ft = g->F_tp;
    LayerActs *a = layer_acts(m, sa, l);
    const float *inp = layer_input(m, sa, l), *w, *b;
    float *out = lean(m) ? sa->encoded : a->res3; /* lean: added into the input */
    layer_pair(m, l, T_LN1W, &w, &b);
    layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, inp, w, b, N, C);
    layer_pair(m, l, T_QKVW, &w, &b);
    matmul_forward(a->qkv, a->ln1, w, b, N, C, g->QKV_tp);
    attention_forward(a->atty, a->lse, a->qkv, B, T, g->NH_tp, g->head_dim, g->att_scratch,
                      g->att_threads);
    layer_pair(m, l, T_PROJW, &w, &b);
    matmul_forward(a->attproj, a->atty, w, NULL, N, Ct, C);
    model_tp_allreduce(m, a->attproj, (size_t)N * C);
    if (b) bias_forward(a->attproj, b, N, C);
    residual_forward(a->res2, inp, a->attproj, (size_t)N * C);
    layer_pair(m, l, T_LN2W, &w, &b);
    layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res2, w, b, N, C);
    layer_pair(m, l, T_FCW, &w, &b);
    matmul_forward(a->fch, a->ln2, w, b, N, C, Ft);
    gelu_forward(a->fch_gelu, a->fch, (size_t)N * Ft);
    layer_pair(m, l, T_FCPW, &w, &b);
    matmul_forward(a->fcproj, a->fch_gelu, w, NULL, N, Ft, C);
    model_tp_allreduce(m, a->fcproj, (size_t)N * C);
    if (b) bias_forward(a->fcproj, b, N, C);
    residual_forward(out, a->res2, a->fcproj, (size_t)N * C);
}

static const float *stage_out(const Model *m, const SlotActs *sa)
{
    const GptState *g = gst(m);
    return lean(m) || g->l1 == g->l0 ? sa->encoded : sa->layers[g->l1 - 1 - g->l0].res3;
}

/* Token and position embedding. Through a weight view the batch's token
 * rows are gathered first (the view serves rows, not the whole table), and
 * the sum is taken over the gathered rows by the same kernel. */
static void embed_forward(Model *m, SlotActs *sa, const int *inputs, int B, int T)
{
    GptState *g = gst(m);
    const int C = m->cfg.n_embd;
    if (!m->view) {
        embedding_forward(sa->encoded, inputs, m->params + m->tensors[g->i_wte].offset,
                          m->params + m->tensors[g->i_wpe].offset, B, T, C);
        return;
    }
    float *scratch = m->view_scratch;
    const float *wpe = model_weights(m, g->i_wpe, 0, m->tensors[g->i_wpe].live, &scratch);
    float *rows = scratch;
    for (int n = 0; n < B * T; n++) {
        float *dst = rows + (size_t)n * C, *at = dst;
        const float *r = model_weights(m, g->i_wte, (size_t)inputs[n] * C, C, &at);
        if (r != dst) memcpy(dst, r, (size_t)C * sizeof(float));
    }
    embedding_forward(sa->encoded, g->iota, rows, wpe, B, T, C);
}

static void head_norm(Model *m, SlotActs *sa, int N)
{
    GptState *g = gst(m);
    float *scratch = m->view_scratch;
    const int C = m->cfg.n_embd;
    const float *w = model_weights(m, g->i_lnf, 0, C, &scratch);
    const float *b = model_weights(m, g->i_lnf + 1, 0, C, &scratch);
    layernorm_forward(sa->lnf, sa->lnf_mean, sa->lnf_rstd, stage_out(m, sa), w, b, N, C);
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
        const float *w = model_weights(m, g->i_head_wte, (size_t)v0 * C, (size_t)vn * C, &scratch);
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
    if (g->emb) embed_forward(m, sa, inputs, B, T);
    for (int l = g->l0; l < g->l1; l++) layer_forward(m, sa, l, B, T);
    if (!g->head || !targets) return 0.0;
    head_norm(m, sa, B * T);
    head_logits(m, sa, targets, 0, B * T);
    return xent_tiles_loss(&g->xt, B * T);
}

/* ---- backward ------------------------------------------------------------ */

/* dres holds d(res3) on entry and d(input) on exit */
static void layer_backward(Model *m, SlotActs *sa, int l, int B, int T)
{
    GptState *g = gst(m);
    const int C = m->cfg.n_embd, N = B * T, Ct = g->C_tp, Ft = g->F_tp;
    LayerActs *a = &sa->layers[l - g->l0];
    const float *p = m->params, *gr = m->grads, *inp = layer_input(m, sa, l);
    size_t NC = (size_t)N * C;

    memset(g->dfch_gelu, 0, (size_t)N * Ft * sizeof(float));
    matmul_backward(g->dfch_gelu, lt(m, gr, l, T_FCPW), lt(m, gr, l, T_FCPB), g->dres,
                    a->fch_gelu, lt(m, p, l, T_FCPW), N, Ft, C);
    memset(g->dfch, 0, (size_t)N * Ft * sizeof(float));
    gelu_backward(g->dfch, a->fch, g->dfch_gelu, (size_t)N * Ft);
    memset(g->dln, 0, NC * sizeof(float));
    matmul_backward(g->dln, lt(m, gr, l, T_FCW), lt(m, gr, l, T_FCB), g->dfch, a->ln2,
                    lt(m, p, l, T_FCW), N, C, Ft);
    model_tp_allreduce(m, g->dln, NC);
    layernorm_backward(g->dres, lt(m, gr, l, T_LN2W), lt(m, gr, l, T_LN2B), g->dln, a->res2,
                       lt(m, p, l, T_LN2W), a->ln2_mean, a->ln2_rstd, N, C);
    memset(g->datty, 0, (size_t)N * Ct * sizeof(float));
    matmul_backward(g->datty, lt(m, gr, l, T_PROJW), lt(m, gr, l, T_PROJB), g->dres, a->atty,
                    lt(m, p, l, T_PROJW), N, Ct, C);
    memset(g->dqkv, 0, (size_t)N * g->QKV_tp * sizeof(float));
    attention_backward(g->dqkv, g->datty, a->atty, a->qkv, a->lse, B, T, g->NH_tp, g->head_dim,
                       g->att_scratch, g->att_threads);
    memset(g->dln, 0, NC * sizeof(float));
    matmul_backward(g->dln, lt(m, gr, l, T_QKVW), lt(m, gr, l, T_QKVB), g->dqkv, a->ln1,
                    lt(m, p, l, T_QKVW), N, C, g->QKV_tp);
    model_tp_allreduce(m, g->dln, NC);
    layernorm_backward(g->dres, lt(m, gr, l, T_LN1W), lt(m, gr, l, T_LN1B), g->dln, inp,
                       lt(m, p, l, T_LN1W), a->ln1_mean, a->ln1_rstd, N, C);
}

static void head_backward(Model *m, SlotActs *sa, const int *targets, int B, int T, float scale)
{
    GptState *g = gst(m);
    const int C = m->cfg.n_embd, V = m->cfg.vocab, N = B * T;
    float *dlogits = sa->logits; /* in place: the logits are not needed again */
    softmax_xent(dlogits, sa->logits, targets, N, V, scale);
    memset(g->dln, 0, (size_t)N * C * sizeof(float));
    matmul_backward(g->dln, tensor_at(m, m->grads, g->i_head_wte), NULL, dlogits, sa->lnf,
                    tensor_at(m, m->params, g->i_head_wte), N, C, V);
    memset(g->dres, 0, (size_t)N * C * sizeof(float));
    layernorm_backward(g->dres, tensor_at(m, m->grads, g->i_lnf),
                       tensor_at(m, m->grads, g->i_lnf + 1), g->dln, stage_out(m, sa),
                       tensor_at(m, m->params, g->i_lnf), sa->lnf_mean, sa->lnf_rstd, N, C);
}

static void gpt_backward(Model *m, int slot, const int *inputs, const int *targets, int B,
                  float grad_scale, const float *dout)
{
    GptState *g = gst(m);
    SlotActs *sa = &g->slots[slot];
    const int T = m->cfg.seq_len, C = m->cfg.n_embd;
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
    embedding_backward(tensor_at(m, m->grads, g->i_wte), tensor_at(m, m->grads, g->i_wpe),
                       g->dres, inputs, B, T, C);
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

/* ---- configuration and costs ------------------------------------------------ */

static int gpt_validate(const ModelConfig *c, Err *e)
{
    if (c->n_head < 1 || c->n_embd % c->n_head != 0)
        return err_set(e, "--heads %d does not divide --embd %d; pick heads that divide the width",
                       c->n_head, c->n_embd);
    return 0;
}

static int gpt_validate_shard(const ModelConfig *c, const ModelShard *sh, Err *e)
{
    if (sh->tp_size <= 1) return 0;
    if (c->n_head % sh->tp_size)
        return err_set(e, "--tp %d does not divide --heads %d: attention heads are split "
                          "across tensor-parallel ranks; pick a --tp that divides %d",
                       sh->tp_size, c->n_head, c->n_head);
    const TransformerShape ts = transformer_shape(c);
    if (ts.mlp_hidden % sh->tp_size)
        return err_set(e, "--tp %d does not divide the MLP width %d x --embd = %d", sh->tp_size,
                       model_transformer(c)->mlp_mult, ts.mlp_hidden);
    return 0;
}

/* embedding, the layers, final norm + head */
static int gpt_n_blocks(const ModelConfig *c) { return c->n_layer + 2; }

static int gpt_preds_per_seq(const ModelConfig *c) { return c->seq_len; }

static void gpt_block_costs(const ModelConfig *c, double *cost)
{
    int n = gpt_n_blocks(c);
    const TransformerShape ts = transformer_shape(c);
    double C = c->n_embd, T = c->seq_len, V = c->vocab;
    /* a layer's matmul weights per unit of width: qkv, proj, the MLP's two
     * (GPT-2: 3C + C + 4C + 4C = 12C) */
    int widths = ts.qkv_rows + c->n_embd + 2 * ts.mlp_hidden;
    double W = c->n_embd > 0 ? (double)widths / c->n_embd : 0;
    /* forward+backward FLOPs per sequence; element-wise work is counted as
     * a few FLOPs per element, which matters for the embedding block */
    cost[0] = 10 * T * C;
    for (int b = 1; b <= c->n_layer; b++) cost[b] = 6 * T * W * C * C + 12 * T * T * C + 60 * T * C;
    cost[n - 1] = 6 * T * C * V + 20 * T * V;
}

static size_t gpt_shard_params(const ModelConfig *c, const ModelShard *sh)
{
    size_t C = c->n_embd, V = c->vocab, T = model_positions(c);
    Owned o = owned_of(c, sh);
    size_t n = (size_t)(o.l1 - o.l0) * layer_params(c, sh->tp_size);
    if (o.emb) n += V * C + T * C;              /* wte, wpe */
    if (o.head) n += 2 * C + (o.emb ? 0 : V * C); /* lnf, and the tied wte's copy */
    return n;
}

/* 2 FLOPs per weight of every matmul (the head reuses wte; the position
 * table is a lookup, counted anyway as it is small) plus attention's two
 * T x T products, 2 T C each per layer: 2 N + 4 L C T, the usual
 * Kaplan/PaLM count (training, 3x: 6 N + 12 L C T). */
static double gpt_fwd_flops_per_token(const ModelConfig *c)
{
    ModelShard whole = {.tp_size = 1, .last_block = c->n_layer + 1, .slots = 1};
    double N = (double)gpt_shard_params(c, &whole);
    return 2.0 * N + 4.0 * c->n_layer * c->n_embd * c->seq_len;
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
};

/* A transformer family: its name and description, these functions. */
#define TRANSFORMER_ARCH(name_, desc_)                                                     \
    {                                                                                      \
        .name = name_, .transformer = desc_, .validate = gpt_validate,                     \
        .validate_shard = gpt_validate_shard, .n_blocks = gpt_n_blocks,                    \
        .preds_per_seq = gpt_preds_per_seq, .shard_params = gpt_shard_params,              \
        .act_floats = gpt_act_floats, .view_floats = gpt_view_floats,                      \
        .fwd_flops_per_token = gpt_fwd_flops_per_token, .block_costs = gpt_block_costs,    \
        .boundary_floats = gpt_boundary_floats, .ops = &GPT_OPS,                           \
    }

const ModelArch GPT_ARCH = TRANSFORMER_ARCH("gpt", &GPT2_TRANSFORMER);
