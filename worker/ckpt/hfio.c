/* The weight sources (hfio.h); GPT-2's weights from and to Hugging Face
 * and llm.c layouts (the llama family's: llamaio.c).
 * Every tensor of the GPT has a "slot" in mpitrain's canonical order:
 * wte, wpe, then per layer the 12 tensors of LAYER[] (which is also llm.c's
 * order of its per-kind arrays), then lnf.w, lnf.b. */
#include "worker/ckpt/hfio.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "base/json.h"
#include "base/le.h"
#include "worker/ckpt/llamaio.h"
#include "worker/data/bpe.h"

/* One transformer layer's tensors: mpitrain's name, HF's name, the
 * mpitrain shape in units of the width C (cols 0 = a vector), and whether
 * HF stores it transposed (GPT-2's Conv1D keeps (in, out)). */
typedef struct {
    const char *mp, *hf;
    int rows, cols, transpose;
} LayerName;

static const LayerName LAYER[] = {
    {"ln1.w", "ln_1.weight", 1, 0, 0},          {"ln1.b", "ln_1.bias", 1, 0, 0},
    {"attn.qkv.w", "attn.c_attn.weight", 3, 1, 1}, {"attn.qkv.b", "attn.c_attn.bias", 3, 0, 0},
    {"attn.proj.w", "attn.c_proj.weight", 1, 1, 1}, {"attn.proj.b", "attn.c_proj.bias", 1, 0, 0},
    {"ln2.w", "ln_2.weight", 1, 0, 0},          {"ln2.b", "ln_2.bias", 1, 0, 0},
    {"mlp.fc.w", "mlp.c_fc.weight", 4, 1, 1},   {"mlp.fc.b", "mlp.c_fc.bias", 4, 0, 0},
    {"mlp.proj.w", "mlp.c_proj.weight", 1, 4, 1}, {"mlp.proj.b", "mlp.c_proj.bias", 1, 0, 0},
};
enum { N_LAYER_T = sizeof LAYER / sizeof LAYER[0] };

/* The tensors outside the layers, by (mpitrain, HF) name: slots 0, 1 and
 * the last two. */
static const char *const TOP[][2] = {
    {"wte", "wte.weight"}, {"wpe", "wpe.weight"}, {"lnf.w", "ln_f.weight"}, {"lnf.b", "ln_f.bias"}};

#define HF_PREFIX "transformer."

typedef struct {
    char mp[MODEL_MAX_NAME], hf[64];
    int ndim, rows, cols, transpose; /* mpitrain's shape; cols 1 for a vector */
} SlotInfo;

static int n_slots(const ModelConfig *c) { return 4 + N_LAYER_T * c->n_layer; }

static void slot_info(const ModelConfig *c, int slot, SlotInfo *si)
{
    const int C = c->n_embd, L = c->n_layer;
    memset(si, 0, sizeof *si);
    si->ndim = 2;
    si->cols = C;
    if (slot < 2 || slot >= 2 + N_LAYER_T * L) {
        int i = slot < 2 ? slot : 2 + slot - (2 + N_LAYER_T * L);
        snprintf(si->mp, sizeof si->mp, "%s", TOP[i][0]);
        snprintf(si->hf, sizeof si->hf, "%s", TOP[i][1]);
        si->rows = i == 0 ? c->vocab : i == 1 ? model_positions(c) : C;
        if (i >= 2) si->ndim = 1, si->cols = 1;
    } else {
        int l = (slot - 2) / N_LAYER_T;
        const LayerName *ln = &LAYER[(slot - 2) % N_LAYER_T];
        snprintf(si->mp, sizeof si->mp, "h.%d.%s", l, ln->mp);
        snprintf(si->hf, sizeof si->hf, "h.%d.%s", l, ln->hf);
        si->ndim = ln->cols ? 2 : 1;
        si->rows = ln->rows * C;
        si->cols = ln->cols ? ln->cols * C : 1;
        si->transpose = ln->transpose;
    }
}

/* "h.<l>.<rest>": the layer and the rest, or -1. */
static int layer_of(const char *name, const char **rest)
{
    if (strncmp(name, "h.", 2)) return -1;
    char *end;
    errno = 0;
    long l = strtol(name + 2, &end, 10);
    if (end == name + 2 || *end != '.' || errno || l < 0 || l > 1 << 20) return -1;
    *rest = end + 1;
    return (int)l;
}

/* Slot of a top-level name (hf: HF's names), or -1. */
static int top_slot(const ModelConfig *c, const char *name, int hf)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, TOP[i][hf])) return i < 2 ? i : 2 + N_LAYER_T * c->n_layer + (i - 2);
    return -1;
}

/* Slot of an mpitrain tensor name, or -1. */
static int slot_of_mp(const ModelConfig *c, const char *name)
{
    int top = top_slot(c, name, 0);
    if (top >= 0) return top;
    const char *rest;
    int l = layer_of(name, &rest);
    for (int k = 0; l >= 0 && l < c->n_layer && k < N_LAYER_T; k++)
        if (!strcmp(rest, LAYER[k].mp)) return 2 + N_LAYER_T * l + k;
    return -1;
}

enum { HF_UNKNOWN = -1, HF_IGNORED = -2, HF_LM_HEAD = -3, HF_BAD_LAYER = -4 };

/* Slot of a HF tensor name (prefix already stripped), or a HF_* code. */
static int slot_of_hf(const ModelConfig *c, const char *name)
{
    int top = top_slot(c, name, 1);
    if (top >= 0) return top;
    if (!strcmp(name, "lm_head.weight")) return HF_LM_HEAD;
    const char *rest;
    int l = layer_of(name, &rest);
    if (l < 0) return HF_UNKNOWN;
    /* the causal mask and its fill value: buffers, not weights */
    int slot = !strcmp(rest, "attn.bias") || !strcmp(rest, "attn.masked_bias") ? HF_IGNORED : HF_UNKNOWN;
    for (int k = 0; slot == HF_UNKNOWN && k < N_LAYER_T; k++)
        if (!strcmp(rest, LAYER[k].hf)) slot = 2 + N_LAYER_T * l + k;
    return slot != HF_UNKNOWN && l >= c->n_layer ? HF_BAD_LAYER : slot;
}

const char *wsource_kind_name(WeightSrcKind k)
{
    return k == WSRC_HF ? "Hugging Face GPT-2" : k == WSRC_LLMC ? "llm.c"
           : k == WSRC_HF_LLAMA ? "Hugging Face Llama/Qwen/Mistral" : "mpitrain checkpoint";
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- Hugging Face config.json -------------------------------------------- */

typedef struct {
    const char *path;
    long long n_layer, n_head, n_embd, n_positions, n_ctx, vocab, n_inner;
    Err *e;
} HfConfig;

static int is_true(const char *v, int quoted) { return !quoted && v && !strcmp(v, "true"); }

/* A config key whose value mpitrain's GPT does not compute: refused. */
static int refuse_key(HfConfig *h, const char *key, const char *value, const char *why)
{
    err_set(h->e, "%s: %s %s: %s; mpitrain's GPT would not compute this model exactly", h->path,
            key, value ? value : "null", why);
    return 1;
}

#define HF_INT_MAX (1 << 30)

/* A size of the model: a JSON number, whole, from 0 to HF_INT_MAX; the
 * message shows a string as a string and says when a number is too large. */
static int config_int(HfConfig *h, const char *key, const char *v, int quoted, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long x = v && !quoted ? strtoll(v, &end, 10) : 0;
    int whole = v && !quoted && end && end != v && !*end;
    if (whole && (x > HF_INT_MAX || errno == ERANGE) && v[0] != '-') {
        err_set(h->e, "%s: %s %s is too large: at most %d", h->path, key, v, HF_INT_MAX);
        return 1;
    }
    if (!whole || errno || x < 0) {
        if (quoted)
            err_set(h->e, "%s: %s must be a non-negative integer, not the string \"%s\"", h->path,
                    key, v);
        else
            err_set(h->e, "%s: %s must be a non-negative integer, not %s", h->path, key,
                    v ? v : "null");
        return 1;
    }
    *out = x;
    return 0;
}

static int config_pair(void *ctx, const char *key, const char *v, int quoted, size_t at)
{
    (void)at;
    HfConfig *h = ctx;
    if (!strcmp(key, "n_layer")) return config_int(h, key, v, quoted, &h->n_layer);
    if (!strcmp(key, "n_head")) return config_int(h, key, v, quoted, &h->n_head);
    if (!strcmp(key, "n_embd")) return config_int(h, key, v, quoted, &h->n_embd);
    if (!strcmp(key, "n_positions")) return config_int(h, key, v, quoted, &h->n_positions);
    if (!strcmp(key, "n_ctx")) return config_int(h, key, v, quoted, &h->n_ctx);
    if (!strcmp(key, "vocab_size")) return config_int(h, key, v, quoted, &h->vocab);
    if (!strcmp(key, "n_inner")) return v ? config_int(h, key, v, quoted, &h->n_inner) : 0;
    if (!strcmp(key, "model_type") && (!v || strcmp(v, "gpt2")))
        return refuse_key(h, key, v, "mpitrain reads model_type gpt2, llama, qwen2, qwen3 or mistral");
    if (!strcmp(key, "activation_function") && (!v || strcmp(v, "gelu_new")))
        return refuse_key(h, key, v, "mpitrain's MLP uses gelu_new (GELU, tanh approximation)");
    if (!strcmp(key, "layer_norm_epsilon") && (!v || quoted || fabs(strtod(v, NULL) - 1e-5) > 1e-12))
        return refuse_key(h, key, v, "mpitrain's layernorm uses epsilon 1e-5");
    if (!strcmp(key, "scale_attn_by_inverse_layer_idx") && is_true(v, quoted))
        return refuse_key(h, key, v, "mpitrain scales attention by 1/sqrt(head size) only");
    if (!strcmp(key, "reorder_and_upcast_attn") && is_true(v, quoted))
        return refuse_key(h, key, v, "mpitrain computes attention in plain f32 order");
    if (!strcmp(key, "add_cross_attention") && is_true(v, quoted))
        return refuse_key(h, key, v, "mpitrain's GPT is a decoder without cross-attention");
    if (!strcmp(key, "scale_attn_weights") && !is_true(v, quoted))
        return refuse_key(h, key, v, "mpitrain always scales attention by 1/sqrt(head size)");
    if (!strcmp(key, "tie_word_embeddings") && !is_true(v, quoted))
        return refuse_key(h, key, v, "mpitrain's head is tied to wte");
    return 0; /* dropout rates, token ids, task settings: nothing the forward computes */
}

/* config.json's model_type ("" when absent or not a string). */
static int type_pair(void *ctx, const char *key, const char *v, int quoted, size_t at)
{
    (void)at;
    if (!strcmp(key, "model_type") && v && quoted == 1) snprintf(ctx, 32, "%s", v);
    return 0;
}

static int read_hf_config(const char *path, const char *text, ModelConfig *mc, Err *e)
{
    HfConfig h = {path, -1, -1, -1, -1, -1, -1, -1, e};
    size_t off;
    Err sub = {{0}};
    int rc = json_read_object(text, config_pair, &h, &off, &sub);
    if (rc < 0 && sub.msg[0])
        err_set(e, "%s:%d: %s", path, json_line_of(text, off), sub.msg);
    if (rc) return -1;
    if (h.n_positions < 0) h.n_positions = h.n_ctx;
    const struct { const char *key; long long v, lo, hi; } need[] = {
        {"n_layer", h.n_layer, 1, 1024},        {"n_head", h.n_head, 1, 1024},
        {"n_embd", h.n_embd, 1, 65536},         {"n_positions (or n_ctx)", h.n_positions, 1, 65536},
        {"vocab_size", h.vocab, 2, 65536},
    };
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        if (need[i].v < 0) return err_set(e, "%s: no %s: the model's shape is incomplete", path, need[i].key);
        if (need[i].v < need[i].lo || need[i].v > need[i].hi)
            return err_set(e, "%s: %s %lld is outside what mpitrain builds (%lld..%lld)", path,
                           need[i].key, need[i].v, need[i].lo, need[i].hi);
    }
    if (h.n_embd % h.n_head)
        return err_set(e, "%s: n_head %lld does not divide n_embd %lld", path, h.n_head, h.n_embd);
    if (h.n_inner >= 0 && h.n_inner != 4 * h.n_embd)
        return err_set(e, "%s: n_inner %lld: mpitrain's MLP is 4 x n_embd = %lld wide; mpitrain's "
                          "GPT would not compute this model exactly", path, h.n_inner, 4 * h.n_embd);
    *mc = (ModelConfig){.kind = MODEL_GPT, .n_layer = (int)h.n_layer, .n_head = (int)h.n_head,
                        .n_embd = (int)h.n_embd, .seq_len = (int)h.n_positions,
                        .vocab = (int)h.vocab, .positions = (int)h.n_positions};
    return 0;
}

/* ---- Hugging Face tensors -------------------------------------------------- */

static const char *hf_short(const char *name)
{
    return strncmp(name, HF_PREFIX, strlen(HF_PREFIX)) ? name : name + strlen(HF_PREFIX);
}

/* Assigns every header entry to its slot; refuses unknown and doubled ones. */
static int map_hf_entries(WeightSource *s, int *lm_head, Err *e)
{
    const ModelConfig *c = &s->model;
    *lm_head = -1;
    for (int i = 0; i < n_slots(c); i++) s->slot_entry[i] = -1;
    for (int i = 0; i < s->ix.n; i++) {
        const char *name = s->ix.t[i].name;
        int slot = slot_of_hf(c, hf_short(name));
        if (slot == HF_IGNORED) continue;
        if (slot == HF_UNKNOWN)
            return err_set(e, "%s: unknown tensor '%s': not part of GPT-2 as mpitrain computes it",
                           s->path, name);
        if (slot == HF_BAD_LAYER)
            return err_set(e, "%s: tensor '%s' belongs to a layer beyond config.json's n_layer %d",
                           s->path, name, c->n_layer);
        int *dst = slot == HF_LM_HEAD ? lm_head : &s->slot_entry[slot];
        if (*dst >= 0)
            return err_set(e, "%s: tensors '%s' and '%s' are the same weight twice", s->path,
                           s->ix.t[*dst].name, name);
        *dst = i;
    }
    return 0;
}

/* Each slot present, with HF's shape of it and a float dtype. */
static int check_hf_shapes(const WeightSource *s, Err *e)
{
    const ModelConfig *c = &s->model;
    for (int slot = 0; slot < n_slots(c); slot++) {
        SlotInfo si;
        slot_info(c, slot, &si);
        if (s->slot_entry[slot] < 0)
            return err_set(e, "%s: missing tensor '%s' (with or without the '" HF_PREFIX "' prefix), "
                              "which config.json's n_layer %d needs", s->path, si.hf, c->n_layer);
        const StEntry *t = &s->ix.t[s->slot_entry[slot]];
        int64_t want[2] = {si.transpose ? si.cols : si.rows, si.transpose ? si.rows : si.cols};
        if (t->ndim != si.ndim || t->shape[0] != want[0] || (si.ndim > 1 && t->shape[1] != want[1])) {
            char got[64];
            safetensors_shape_text(t, got, sizeof got);
            return err_set(e, "%s: tensor '%s' has shape %s; config.json (n_embd %d, vocab_size %d, "
                              "n_positions %d) needs %lld%s%lld", s->path, t->name, got, c->n_embd,
                           c->vocab, model_positions(c), (long long)want[0], si.ndim > 1 ? " x " : "",
                           si.ndim > 1 ? (long long)want[1] : 0LL);
        }
        if (strcmp(t->dtype, "F32") && strcmp(t->dtype, "F16") && strcmp(t->dtype, "BF16"))
            return err_set(e, "%s: tensor '%s' has dtype %s; F32, F16 or BF16 expected", s->path,
                           t->name, t->dtype);
    }
    return 0;
}

/* A stored lm_head must be wte itself: mpitrain's head is tied. */
static int check_lm_head(const WeightSource *s, int lm, Err *e)
{
    if (lm < 0) return 0;
    const StEntry *h = &s->ix.t[lm], *w = &s->ix.t[s->slot_entry[0]];
    if (h->ndim != 2 || h->shape[0] != w->shape[0] || h->shape[1] != w->shape[1])
        return err_set(e, "%s: lm_head.weight's shape differs from wte's: mpitrain's head is tied "
                          "to wte", s->path);
    int same = safetensors_same_values(&s->ix, w, h, e);
    if (same < 0) return -1;
    if (!same)
        return err_set(e, "%s: lm_head.weight differs from wte.weight: mpitrain's head is tied to "
                          "the token embedding, so this untied model cannot be imported exactly",
                       s->path);
    return 0;
}

static int open_gpt2(WeightSource *s, const char *cfg, const char *text, Err *e)
{
    if (read_hf_config(cfg, text, &s->model, e)) return -1;
    if (s->path[0] ? safetensors_read_index(s->path, &s->ix, e) : safetensors_open_model(s->dir, &s->ix, e))
        return -1;
    if (!s->path[0]) snprintf(s->path, sizeof s->path, "%s", s->ix.n_files > 1 ? s->dir : s->ix.files[0]);
    s->slot_entry = malloc((size_t)n_slots(&s->model) * sizeof *s->slot_entry);
    if (!s->slot_entry) return err_set(e, "%s: out of memory", s->path);
    int lm;
    if (map_hf_entries(s, &lm, e) || check_hf_shapes(s, e)) return -1;
    snprintf(s->dtype, sizeof s->dtype, "%s", s->ix.t[s->slot_entry[0]].dtype);
    return check_lm_head(s, lm, e);
}

/* A Hugging Face directory (or one .safetensors in it): config.json's
 * model_type picks the family's reader. */
static int open_hf(const char *path, WeightSource *s, Err *e)
{
    s->kind = WSRC_HF;
    if (is_dir(path)) {
        snprintf(s->dir, sizeof s->dir, "%s", path);
    } else {
        snprintf(s->path, sizeof s->path, "%s", path);
        snprintf(s->dir, sizeof s->dir, "%s", path);
        char *slash = strrchr(s->dir, '/');
        if (slash) *slash = 0;
        else snprintf(s->dir, sizeof s->dir, ".");
    }
    char cfg[PATH_BUF], type[32] = "";
    char *text = NULL;
    if (path_fmt(cfg, sizeof cfg, e, "%s/config.json", s->dir) || hf_json_file(cfg, 16u << 20, &text, e))
        return -1;
    size_t off;
    Err sub = {{0}};
    (void)json_read_object(text, type_pair, type, &off, &sub); /* a malformed file: its reader says */
    int rc = llama_model_type(type) ? llama_source_open(s, cfg, text, type, e) : open_gpt2(s, cfg, text, e);
    free(text);
    return rc;
}

/* ---- llm.c model files ----------------------------------------------------- */

static size_t slot_numel(const ModelConfig *c, int slot)
{
    SlotInfo si;
    slot_info(c, slot, &si);
    return (size_t)si.rows * si.cols;
}

/* Element offset of a slot in llm.c's parameter order: wte (Vp rows), wpe,
 * each of the 12 layer kinds for all layers in turn, lnf.w, lnf.b. */
static size_t llmc_offset(const ModelConfig *c, int vp, int slot)
{
    const size_t C = c->n_embd, L = c->n_layer;
    if (slot == 0) return 0;
    size_t off = (size_t)vp * C;
    if (slot == 1) return off;
    off += (size_t)model_positions(c) * C;
    int lin = slot - 2, kind = lin % N_LAYER_T, layer = lin / N_LAYER_T;
    if (layer >= c->n_layer) kind = N_LAYER_T, layer = 0;
    for (int k = 0; k < kind; k++) off += L * slot_numel(c, 2 + k);
    if (kind < N_LAYER_T) return off + layer * slot_numel(c, 2 + kind);
    return off + (size_t)(lin - N_LAYER_T * c->n_layer) * C;
}

static size_t llmc_total(const ModelConfig *c, int vp)
{
    return llmc_offset(c, vp, n_slots(c) - 1) + c->n_embd;
}

static int open_llmc(const char *path, WeightSource *s, Err *e)
{
    s->kind = WSRC_LLMC;
    snprintf(s->path, sizeof s->path, "%s", path);
    uint64_t size;
    FILE *f = fopen_input(path, &size, e);
    if (!f) return -1;
    unsigned char hb[LLMC_MODEL_HEADER_BYTES];
    size_t got = fread(hb, 1, sizeof hb, f);
    fclose(f);
    if (got < 4 || (int32_t)le_get32(hb) != LLMC_MODEL_MAGIC)
        return err_set(e, "%s: neither an llm.c GPT-2 model file (magic %d expected, found %d) nor "
                          "a .safetensors file nor a checkpoint directory", path, LLMC_MODEL_MAGIC,
                       got >= 4 ? (int)le_get32(hb) : -1);
    if (got < sizeof hb)
        return err_set(e, "%s: truncated: %zu bytes, the llm.c header alone is %d", path, got,
                       LLMC_MODEL_HEADER_BYTES);
    int h[8];
    for (int i = 0; i < 8; i++) h[i] = (int32_t)le_get32(hb + 4 * i);
    if (h[1] != 3 && h[1] != 5)
        return err_set(e, "%s: llm.c version %d; this build reads 3 (f32) and 5 (bf16)", path, h[1]);
    const char *names[] = {"", "", "max_seq_len", "vocab_size", "num_layers", "num_heads",
                           "channels", "padded_vocab_size"};
    const int lo[] = {0, 0, 1, 2, 1, 1, 1, 2}, hi[] = {0, 0, 65536, 65536, 1024, 1024, 65536, 1 << 20};
    for (int i = 2; i < 8; i++)
        if (h[i] < lo[i] || h[i] > hi[i])
            return err_set(e, "%s: header %s %d is out of range (%d..%d)", path, names[i], h[i], lo[i], hi[i]);
    if (h[7] < h[3])
        return err_set(e, "%s: padded_vocab_size %d is below vocab_size %d", path, h[7], h[3]);
    if (h[6] % h[5])
        return err_set(e, "%s: num_heads %d does not divide channels %d", path, h[5], h[6]);
    s->llmc_version = h[1];
    snprintf(s->dtype, sizeof s->dtype, "%s", h[1] == 5 ? "BF16" : "F32");
    s->llmc_vp = h[7];
    s->model = (ModelConfig){.kind = MODEL_GPT, .n_layer = h[4], .n_head = h[5], .n_embd = h[6],
                             .seq_len = h[2], .vocab = h[3], .positions = h[2]};
    uint64_t want = LLMC_MODEL_HEADER_BYTES + (uint64_t)llmc_total(&s->model, h[7]) * (h[1] == 3 ? 4 : 2);
    if (size != want)
        return err_set(e, "%s: %llu bytes, but its header (L %d, C %d, maxT %d, Vp %d, version %d) "
                          "needs exactly %llu: %s", path, (unsigned long long)size, h[4], h[6], h[2],
                       h[7], h[1], (unsigned long long)want, size < want ? "truncated" : "trailing bytes");
    return 0;
}

/* ---- opening any source ---------------------------------------------------- */

static int has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

int wsource_open(const char *path, WeightSource *s, Err *e)
{
    memset(s, 0, sizeof *s);
    char st[PATH_BUF];
    if (is_dir(path)) {
        Err sub = {{0}};
        char ix[PATH_BUF];
        if (path_fmt(st, sizeof st, e, "%s/" ST_SINGLE_NAME, path) ||
            path_fmt(ix, sizeof ix, e, "%s/" ST_INDEX_NAME, path))
            return -1;
        if (access(st, F_OK) != 0 && access(ix, F_OK) != 0) {
            CkptMeta meta;
            s->kind = WSRC_CKPT;
            if (ckpt_resolve(path, s->path, sizeof s->path, &sub) ||
                ckpt_load_meta(s->path, &meta, &sub))
                return err_set(e, "%s: %s; nor a Hugging Face GPT-2 directory (config.json + "
                                  "model.safetensors)", path, sub.msg);
            if (meta.cfg.model.lora_rank > 0)
                return err_set(e, "%s is a LoRA run's checkpoint (adapters on a base): continue it "
                                  "with --resume, or export the merged model (mpitrain ckpt export "
                                  "--format hf --merge-lora) and start from that", path);
            s->model = meta.cfg.model;
            snprintf(s->dtype, sizeof s->dtype, "%s", meta.source_dtype);
            snprintf(s->arch, sizeof s->arch, "%s", meta.source_arch);
            return 0;
        }
        return open_hf(path, s, e);
    }
    /* what is there but no regular file (a named pipe) is refused by name
     * when it is opened */
    if (access(path, F_OK) != 0) return err_set(e, "%s: no such file or directory", path);
    return has_suffix(path, ".safetensors") ? open_hf(path, s, e) : open_llmc(path, s, e);
}

void wsource_close(WeightSource *s)
{
    safetensors_index_free(&s->ix);
    free(s->slot_entry);
    free(s->slots);
    s->slot_entry = NULL;
    s->slots = NULL;
}

/* ---- loading into a model (any shard) -------------------------------------- */

/* Scratch floats of a load, grown on first need (NULL: out of memory). */
typedef struct {
    float *p;
    size_t n;
} Scratch;

static float *scratch(Scratch *s, size_t n)
{
    if (s->n < n) {
        free(s->p);
        s->n = (s->p = malloc(n * sizeof *s->p)) ? n : 0;
    }
    return s->p;
}

/* The slot's full tensor in mpitrain's layout (rows of `rows`, the first
 * ones when the model keeps fewer positions), into out. Stored as mpitrain
 * keeps it (llm.c's files; HF's tensors but the transposed Conv1D weights
 * and a longer position table), it is read straight into out, 2-byte types
 * widened in place; else through tmp, the source tensor's size. */
static int read_slot(const WeightSource *s, int slot, int rows, float *out, Scratch *tmp, Err *e)
{
    SlotInfo si;
    slot_info(&s->model, slot, &si);
    size_t n = (size_t)rows * si.cols;
    if (s->kind == WSRC_LLMC) {
        int v5 = s->llmc_version == 5;
        uint64_t off = LLMC_MODEL_HEADER_BYTES + (uint64_t)llmc_offset(&s->model, s->llmc_vp, slot) * (v5 ? 2 : 4);
        return read_floats_at(s->path, off, n, v5 ? "BF16" : "F32", si.mp, out, e);
    }
    const StEntry *en = &s->ix.t[s->slot_entry[slot]];
    if (!si.transpose && safetensors_numel(en) == n) return safetensors_entry_f32(&s->ix, en, out, e);
    float *t = scratch(tmp, (size_t)safetensors_numel(en));
    if (!t) return err_set(e, "%s: out of memory loading tensor '%s'", s->path, en->name);
    if (safetensors_entry_f32(&s->ix, en, t, e)) return -1;
    if (!si.transpose) {
        memcpy(out, t, n * sizeof *out);
        return 0;
    }
    /* HF holds (in, out) = (cols, rows); mpitrain (rows, cols) */
    for (size_t r = 0; r < (size_t)si.rows; r++)
        for (size_t c = 0; c < (size_t)si.cols; c++) out[r * si.cols + c] = t[c * si.rows + r];
    return 0;
}

/* Whether the model built has the tensors of the source's shape (a
 * shorter context than the source's positions is the same model). */
static int built_as_source(const ModelConfig *c, const ModelConfig *sc)
{
    if (c->n_layer != sc->n_layer || c->n_embd != sc->n_embd || c->n_head != sc->n_head ||
        c->vocab != sc->vocab || model_positions(c) > model_positions(sc))
        return 0;
    if (sc->kind != MODEL_LLAMA) return model_transformer(c) == &GPT2_TRANSFORMER;
    if (c->kind != MODEL_LLAMA) return 0;
    TransformerShape a = transformer_shape(c), b = transformer_shape(sc);
    return a.q_width == b.q_width && a.kv_width == b.kv_width && a.head_dim == b.head_dim &&
           a.mlp_hidden == b.mlp_hidden && a.biases == b.biases && a.tied_head == b.tied_head &&
           a.qk_norm == b.qk_norm;
}

/* The source's slot of a model tensor, or -1. */
static int source_slot(const WeightSource *s, const char *name)
{
    return s->kind == WSRC_HF_LLAMA ? llama_slot_of(s, name) : slot_of_mp(&s->model, name);
}

static int source_read(const WeightSource *s, int slot, int rows, float *out, Scratch *tmp, Err *e)
{
    return s->kind == WSRC_HF_LLAMA ? llama_read_slot(s, slot, out, e) : read_slot(s, slot, rows, out, tmp, e);
}

/* A checkpoint's weights (its param/ records) into the weights a source
 * fills: a LoRA model's frozen base, else every weight. */
static int load_checkpoint(const WeightSource *s, Model *m, Err *e)
{
    Mpitrain__Manifest *mf;
    if (ckpt_read_manifest(s->path, &mf, e)) return -1;
    int rc = ckpt_load_weights_as(s->path, mf, "param", m, e);
    mpitrain__manifest__free_unpacked(mf, NULL);
    return rc;
}

int wsource_load(const WeightSource *s, Model *m, Err *e)
{
    if (s->kind == WSRC_CKPT) return load_checkpoint(s, m, e);
    const ModelConfig *c = &m->cfg, *sc = &s->model;
    if (!built_as_source(c, sc))
        return err_set(e, "%s: the model built (%d layers, width %d, vocab %d, positions %d) is not "
                          "the source's shape", s->path, c->n_layer, c->n_embd, c->vocab,
                       model_positions(c));
    Scratch full = {0}, tmp = {0};
    int rc = 0;
    WeightTable w = model_weight_table(m);
    for (int k = 0; !rc && k < w.n_tensors; k++) {
        const ParamInfo *t = &w.tensors[k];
        int slot = source_slot(s, t->name);
        if (slot < 0) {
            rc = err_set(e, "%s: the model has a tensor '%s' %s does not", s->path, t->name,
                         s->kind == WSRC_HF_LLAMA ? s->arch : "GPT-2");
            break;
        }
        /* a whole tensor is read into the weights; a shard's local elements
         * come out of the full tensor, each through its place in it */
        float *dst = w.params + t->offset;
        size_t full_n = (size_t)t->shape[0] * t->shape[1];
        float *into = t->numel == full_n ? dst : scratch(&full, full_n);
        rc = into ? source_read(s, slot, t->shape[0], into, &tmp, e)
                  : err_set(e, "%s: out of memory loading tensor '%s'", s->path, t->name);
        for (size_t i = 0; !rc && into != dst && i < t->numel; i++)
            dst[i] = into[model_global_index(m, t, i) - t->global_offset];
    }
    free(full.p);
    free(tmp.p);
    return rc;
}

/* ---- import ---------------------------------------------------------------- */

void wsource_tokenizer(const WeightSource *s, char *out, size_t n)
{
    out[0] = 0;
    if (s->kind == WSRC_CKPT) ckpt_tokenizer_of(s->path, out, n);
    else if (s->kind != WSRC_LLMC && bpe_present(s->dir)) snprintf(out, n, "%s", s->dir);
}

int wsource_import(const WeightSource *s, const char *root, const CkptMeta *meta, char *written,
                   size_t n, Err *e)
{
    CkptMeta mt = *meta;
    mt.cfg.model = s->model;
    mt.step = mt.opt_t = 0;
    mt.data_pos = 0;
    mt.dp = mt.tp = mt.pp = 1;
    mt.zero = 0;
    Model m;
    /* forward-only: no gradient buffer, the weights are only copied */
    ModelShard whole = model_shard_whole(1);
    if (model_build_shard(&m, &mt.cfg.model, &whole, 1, e)) return err_wrap(e, "%s", s->path);
    int rc = wsource_load(s, &m, e);
    char tmp[PATH_BUF] = "";
    uint8_t *recs = NULL;
    size_t len = 0;
    wsource_tokenizer(s, mt.tokenizer_dir, sizeof mt.tokenizer_dir);
    snprintf(mt.source_dtype, sizeof mt.source_dtype, "%s", s->dtype);
    snprintf(mt.source_arch, sizeof mt.source_arch, "%s", s->arch);
    /* weights only: a training run creates its optimizer state (zeroed
     * moments would triple the checkpoint for nothing) */
    if (!rc) rc = ckpt_begin(root, 0, tmp, sizeof tmp, e);
    if (!rc) rc = ckpt_write_shard(tmp, 0, &m, NULL, (Range){0, m.n_params}, &recs, &len, e);
    if (!rc) rc = ckpt_finish(root, tmp, &mt, &recs, &len, 1, written, n, e);
    if (rc && tmp[0]) remove_tree(tmp);
    free(recs);
    model_free(&m);
    return rc;
}

/* ---- export ---------------------------------------------------------------- */

static const float *param(const Model *m, const char *name)
{
    /* a merged LoRA model's weights are its base's */
    int id = model_find_id(m, name);
    return id < 0 ? NULL : model_tensor_data(m, id);
}

static int check_whole_gpt(const Model *m, Err *e)
{
    if (model_transformer(&m->cfg) != &GPT2_TRANSFORMER)
        return err_set(e, "the checkpoint holds a %s, not a GPT: only a GPT has GPT-2's layout",
                       m->cfg.kind == MODEL_MLP ? "mlp" : "model of another kind");
    for (int slot = 0; slot < n_slots(&m->cfg); slot++) {
        SlotInfo si;
        slot_info(&m->cfg, slot, &si);
        int id = model_find_id(m, si.mp);
        const ParamInfo *t = id < 0 ? NULL : model_tensor(m, id);
        if (!t || t->numel != (size_t)si.rows * si.cols)
            return err_set(e, "internal: tensor '%s' is not the whole GPT-2 tensor", si.mp);
    }
    return 0;
}

/* What an HF export writes besides the weights: the dtype and the
 * end-of-text id (GPT-2 uses it as bos and eos; -1 = none known). */
typedef struct {
    const ModelConfig *c;
    const char *dtype;
    int eot;
} HfOut;

static void write_token_ids(JsonOut *j, int eot)
{
    if (eot < 0) return;
    json_int(json_key(j, "bos_token_id"), eot);
    json_int(json_key(j, "eos_token_id"), eot);
    json_newline(j);
}

static void write_config(JsonOut *j, const void *ctx)
{
    const HfOut *h = ctx;
    const ModelConfig *c = h->c;
    json_begin_object(j);
    json_newline(j);
    json_str(json_key(j, "model_type"), "gpt2");
    json_begin_array(json_key(j, "architectures"));
    json_str(j, "GPT2LMHeadModel");
    json_end_array(j);
    json_newline(j);
    json_int(json_key(j, "n_layer"), c->n_layer);
    json_int(json_key(j, "n_head"), c->n_head);
    json_int(json_key(j, "n_embd"), c->n_embd);
    /* every position kept, not just the context the model last trained at */
    json_int(json_key(j, "n_positions"), model_positions(c));
    json_int(json_key(j, "n_ctx"), model_positions(c));
    json_int(json_key(j, "vocab_size"), c->vocab);
    json_newline(j);
    json_null(json_key(j, "n_inner"));
    json_str(json_key(j, "activation_function"), "gelu_new");
    json_sig(json_key(j, "layer_norm_epsilon"), 1e-5, 6);
    json_sig(json_key(j, "initializer_range"), 0.02, 6);
    json_newline(j);
    /* mpitrain trains without dropout */
    json_sig(json_key(j, "resid_pdrop"), 0.0, 1);
    json_sig(json_key(j, "embd_pdrop"), 0.0, 1);
    json_sig(json_key(j, "attn_pdrop"), 0.0, 1);
    json_newline(j);
    json_bool(json_key(j, "scale_attn_weights"), 1);
    json_bool(json_key(j, "scale_attn_by_inverse_layer_idx"), 0);
    json_bool(json_key(j, "reorder_and_upcast_attn"), 0);
    json_bool(json_key(j, "tie_word_embeddings"), 1);
    json_bool(json_key(j, "use_cache"), 1);
    json_str(json_key(j, "torch_dtype"), hf_torch_dtype(h->dtype));
    json_newline(j);
    write_token_ids(j, h->eot);
    json_end_object(j);
    json_newline(j);
}

/* GPT2Tokenizer's settings: GPT-2 has one special token, <|endoftext|>,
 * that begins, ends and stands for anything unknown. */
static void write_tokenizer_config(JsonOut *j, const void *ctx)
{
    const HfOut *h = ctx;
    json_begin_object(j);
    json_newline(j);
    json_str(json_key(j, "tokenizer_class"), "GPT2Tokenizer");
    json_str(json_key(j, "bos_token"), "<|endoftext|>");
    json_str(json_key(j, "eos_token"), "<|endoftext|>");
    json_str(json_key(j, "unk_token"), "<|endoftext|>");
    json_newline(j);
    json_int(json_key(j, "model_max_length"), model_positions(h->c));
    json_bool(json_key(j, "add_prefix_space"), 0);
    json_bool(json_key(j, "add_bos_token"), 0);
    json_str(json_key(j, "errors"), "replace");
    json_newline(j);
    json_end_object(j);
    json_newline(j);
}

static void write_generation_config(JsonOut *j, const void *ctx)
{
    const HfOut *h = ctx;
    json_begin_object(j);
    json_newline(j);
    json_bool(json_key(j, "_from_model_config"), 1);
    json_newline(j);
    write_token_ids(j, h->eot);
    json_end_object(j);
    json_newline(j);
}

/* The end-of-text id: the tokenizer's, else GPT-2's 50256 at its
 * vocabulary size; -1 when neither says. */
static int end_of_text(const ModelConfig *c, const char *tokenizer_dir)
{
    if (tokenizer_dir) {
        Err ignored;
        Bpe *b = bpe_load(tokenizer_dir, &ignored);
        int eot = b ? bpe_eot(b) : -1;
        bpe_free(b);
        if (eot >= 0 && eot < c->vocab) return eot;
    }
    return c->vocab == 50257 ? 50256 : -1;
}

static int write_weights_hf(const Model *m, const char *dtype, const char *out_dir, Err *e)
{
    const ModelConfig *c = &m->cfg;
    int n = n_slots(c);
    StTensor *list = calloc((size_t)n, sizeof *list);
    char (*names)[sizeof HF_PREFIX + 64] = calloc((size_t)n, sizeof *names);
    int rc = !list || !names ? err_set(e, "out of memory") : 0;
    for (int slot = 0; !rc && slot < n; slot++) {
        SlotInfo si;
        slot_info(c, slot, &si);
        /* GPT2LMHeadModel's own state-dict names; its tied lm_head is left
         * out, as save_pretrained does */
        snprintf(names[slot], sizeof names[slot], HF_PREFIX "%s", si.hf);
        int r = si.transpose ? si.cols : si.rows, k = si.transpose ? si.rows : si.cols;
        list[slot] = (StTensor){names[slot], si.ndim, {r, k}, param(m, si.mp), si.transpose};
    }
    char path[PATH_BUF];
    const char *meta[] = {"exported_by", "mpitrain"};
    if (!rc) rc = path_fmt(path, sizeof path, e, "%s/model.safetensors", out_dir);
    if (!rc) rc = safetensors_write_list(path, list, n, dtype, meta, 1, e);
    free(list);
    free(names);
    return rc;
}

int gpt2_export_hf(const Model *m, const char *tokenizer_dir, const char *dtype,
                   const char *out_dir, Err *e)
{
    if (check_whole_gpt(m, e) || mkdir_p(out_dir, e)) return -1;
    if (tokenizer_dir && !bpe_present(tokenizer_dir)) tokenizer_dir = NULL;
    HfOut h = {&m->cfg, dtype, end_of_text(&m->cfg, tokenizer_dir)};
    int rc = write_weights_hf(m, dtype, out_dir, e);
    if (!rc) rc = hf_write_json(out_dir, "config.json", write_config, &h, e);
    if (!rc) rc = hf_write_json(out_dir, "generation_config.json", write_generation_config, &h, e);
    /* under HF's names, whichever pair the checkpoint keeps */
    if (!rc && tokenizer_dir) rc = bpe_export_hf(tokenizer_dir, out_dir, e);
    if (!rc && tokenizer_dir)
        rc = hf_write_json(out_dir, "tokenizer_config.json", write_tokenizer_config, &h, e);
    return rc;
}

int gpt2_export_llmc(const Model *m, const char *path, Err *e)
{
    if (check_whole_gpt(m, e)) return -1;
    const ModelConfig *c = &m->cfg;
    const int vp = (c->vocab + 127) / 128 * 128;
    unsigned char hb[LLMC_MODEL_HEADER_BYTES] = {0};
    const int h[8] = {LLMC_MODEL_MAGIC, 3, model_positions(c), c->vocab, c->n_layer, c->n_head, c->n_embd, vp};
    for (int i = 0; i < 8; i++) le_put32(hb + 4 * i, (uint32_t)h[i]);
    float *zeros = calloc((size_t)(vp - c->vocab) * c->n_embd + 1, sizeof *zeros);
    if (!zeros) return err_set(e, "out of memory");
    AtomicFile af;
    int rc = atomic_open(&af, path, e);
    if (!rc) rc = atomic_write(&af, hb, sizeof hb, e);
    /* wte's real rows, then the padding rows as zeros */
    if (!rc) rc = atomic_write(&af, param(m, "wte"), slot_numel(c, 0) * sizeof(float), e);
    if (!rc) rc = atomic_write(&af, zeros, (size_t)(vp - c->vocab) * c->n_embd * sizeof(float), e);
    if (!rc) rc = atomic_write(&af, param(m, "wpe"), slot_numel(c, 1) * sizeof(float), e);
    for (int k = 0; !rc && k < N_LAYER_T; k++)
        for (int l = 0; !rc && l < c->n_layer; l++) {
            int slot = 2 + N_LAYER_T * l + k;
            SlotInfo si;
            slot_info(c, slot, &si);
            rc = atomic_write(&af, param(m, si.mp), slot_numel(c, slot) * sizeof(float), e);
        }
    if (!rc) rc = atomic_write(&af, param(m, "lnf.w"), c->n_embd * sizeof(float), e);
    if (!rc) rc = atomic_write(&af, param(m, "lnf.b"), c->n_embd * sizeof(float), e);
    if (!rc) rc = atomic_commit(&af, e);
    free(zeros);
    return rc;
}
