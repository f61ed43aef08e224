/* The llama family's Hugging Face directories (llamaio.h). */
#include "worker/ckpt/llamaio.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/json.h"
#include "worker/data/bpe.h"

/* ---- the classes ------------------------------------------------------------- */

/* What each class does that its config.json does not say (the defaults of
 * transformers' configuration_<type>.py and the modeling code's fixed
 * choices). */
typedef struct {
    const char *model_type, *arch;
    int kv_heads;      /* num_key_value_heads when absent; 0 = num_attention_heads */
    int head_dim;      /* head_dim when absent; 0 = hidden_size / num_attention_heads */
    int qkv_bias;      /* q, k, v always carry biases (Qwen2) */
    int attention_bias_key; /* attention_bias sets q, k, v and o biases */
    int mlp_bias_key;  /* mlp_bias sets gate, up and down biases */
    int qk_norm;       /* q_norm and k_norm (Qwen3) */
    int window;        /* sliding_window when absent; 0 = none */
    int window_flag;   /* the window applies only with use_sliding_window, from
                          layer max_window_layers on (Qwen) */
} LlamaClass;

static const LlamaClass CLASSES[] = {
    {"llama", "LlamaForCausalLM", 0, 0, 0, 1, 1, 0, 0, 0},
    {"mistral", "MistralForCausalLM", 8, 0, 0, 0, 0, 0, 4096, 0},
    {"qwen2", "Qwen2ForCausalLM", 32, 0, 1, 0, 0, 0, 4096, 1},
    {"qwen3", "Qwen3ForCausalLM", 32, 128, 0, 1, 0, 1, 4096, 1},
};
enum { N_CLASSES = sizeof CLASSES / sizeof CLASSES[0] };

static const LlamaClass *class_of(const char *model_type)
{
    for (int i = 0; model_type && i < N_CLASSES; i++)
        if (!strcmp(CLASSES[i].model_type, model_type)) return &CLASSES[i];
    return NULL;
}

int llama_model_type(const char *model_type) { return class_of(model_type) != NULL; }

/* Whether cls's modeling code computes c's options. */
static int class_holds(const LlamaClass *cls, const ModelConfig *c)
{
    int biases = cls->qkv_bias ? c->qkv_bias && !c->attn_out_bias
                 : cls->attention_bias_key ? c->qkv_bias == c->attn_out_bias
                                           : !c->qkv_bias && !c->attn_out_bias;
    return biases && !c->qk_norm == !cls->qk_norm && (cls->mlp_bias_key || !c->mlp_bias);
}

const char *llama_default_arch(const ModelConfig *c)
{
    if (c->qk_norm) return "Qwen3ForCausalLM";
    if (c->qkv_bias && !c->attn_out_bias) return "Qwen2ForCausalLM";
    return "LlamaForCausalLM";
}

static const LlamaClass *class_of_arch(const char *arch)
{
    for (int i = 0; i < N_CLASSES; i++)
        if (!strcmp(CLASSES[i].arch, arch)) return &CLASSES[i];
    return NULL;
}

/* ---- config.json ------------------------------------------------------------- */

#define UNSET (-1LL)

/* config.json's values as read (UNSET / NAN: absent; null is kept apart
 * where it means something: sliding_window). */
typedef struct {
    const char *path;
    const LlamaClass *cls;
    Err *e;
    long long n_layer, n_head, n_kv, n_embd, head_dim, mlp, positions, vocab;
    long long window, window_layers;
    int window_null;
    int attention_bias, mlp_bias, tie, use_window; /* -1 absent */
    double eps, theta;
    /* rope_scaling / rope_parameters */
    double factor, low, high;
    long long orig_ctx;
    int sliding_layers; /* layer_types entries that are sliding_attention */
    char arch[48];
} LlamaCfg;

/* How a key's value is read. */
typedef enum {
    K_INT,     /* a size: whole, >= 0 (null: stays absent) */
    K_FLOAT,   /* a number */
    K_BOOL,
    K_FN,      /* its own reader */
    K_SAME,    /* read by the class, but the products are the same whatever it holds */
} KeyKind;

typedef struct ConfigKey ConfigKey;
struct ConfigKey {
    const char *key;
    KeyKind kind;
    size_t off; /* into LlamaCfg */
    int (*fn)(LlamaCfg *h, const ConfigKey *k, const char *v, int quoted);
    const char *why; /* K_FN: what mpitrain computes, for the refusal */
};

static int refuse(LlamaCfg *h, const char *key, const char *v, const char *why)
{
    err_set(h->e, "%s: %s %s: %s; mpitrain would not compute this model exactly", h->path, key,
            v ? v : "null", why);
    return 1;
}

static int read_int(LlamaCfg *h, const char *key, const char *v, int quoted, long long *out)
{
    if (!v) return 0;
    char *end = NULL;
    errno = 0;
    long long x = quoted ? -1 : strtoll(v, &end, 10);
    if (quoted || !end || end == v || *end || errno || x < 0 || x > MODEL_MAX_VOCAB)
        return err_set(h->e, "%s: %s must be a whole number from 0 to %d, not %s%s%s", h->path,
                       key, MODEL_MAX_VOCAB, quoted ? "the string \"" : "", v, quoted ? "\"" : ""), 1;
    *out = x;
    return 0;
}

static int read_float(LlamaCfg *h, const char *key, const char *v, int quoted, double *out)
{
    if (!v) return 0;
    char *end = NULL;
    double x = quoted ? NAN : strtod(v, &end);
    if (quoted || !end || end == v || *end || !isfinite(x))
        return err_set(h->e, "%s: %s must be a number, not %s", h->path, key, v), 1;
    *out = x;
    return 0;
}

static int read_bool(LlamaCfg *h, const char *key, const char *v, int quoted, int *out)
{
    if (!v) return 0;
    if (quoted || (strcmp(v, "true") && strcmp(v, "false")))
        return err_set(h->e, "%s: %s must be true or false, not %s", h->path, key, v), 1;
    *out = !strcmp(v, "true");
    return 0;
}

static int key_string_is(LlamaCfg *h, const ConfigKey *k, const char *v, int quoted)
{
    /* hidden_act: silu (swish is its other name in transformers) */
    if (quoted == 1 && (!strcmp(v, "silu") || !strcmp(v, "swish"))) return 0;
    return refuse(h, k->key, v, k->why);
}

static int key_zero(LlamaCfg *h, const ConfigKey *k, const char *v, int quoted)
{
    double x = 0;
    if (read_float(h, k->key, v, quoted, &x)) return 1;
    return x != 0 ? refuse(h, k->key, v, k->why) : 0;
}

static int key_one(LlamaCfg *h, const ConfigKey *k, const char *v, int quoted)
{
    double x = 1;
    if (read_float(h, k->key, v, quoted, &x)) return 1;
    return x != 1 ? refuse(h, k->key, v, k->why) : 0;
}

static int key_refused(LlamaCfg *h, const ConfigKey *k, const char *v, int quoted)
{
    (void)quoted;
    return v ? refuse(h, k->key, quoted == JSON_RAW ? "(set)" : v, k->why) : 0;
}

static int key_model_type(LlamaCfg *h, const ConfigKey *k, const char *v, int quoted)
{
    (void)quoted;
    return class_of(v) == h->cls ? 0 : refuse(h, k->key, v, k->why);
}

static int key_window(LlamaCfg *h, const ConfigKey *k, const char *v, int quoted)
{
    h->window_null = !v;
    return read_int(h, k->key, v, quoted, &h->window);
}

/* The first string of a JSON array of strings (class names need no escapes). */
static int first_string(const char *raw, char *out, size_t n)
{
    const char *a = strchr(raw, '"'), *b = a ? strchr(a + 1, '"') : NULL;
    if (!b || (size_t)(b - a - 1) >= n) return -1;
    memcpy(out, a + 1, (size_t)(b - a - 1));
    out[b - a - 1] = 0;
    return 0;
}

static int key_architectures(LlamaCfg *h, const ConfigKey *k, const char *v, int quoted)
{
    if (!v) return 0;
    char first[48];
    if (quoted != JSON_RAW || v[0] != '[' || first_string(v, first, sizeof first))
        return err_set(h->e, "%s: architectures must be a list of class names", h->path), 1;
    if (class_of_arch(first) != h->cls || strchr(strchr(v, '"') + 1 + strlen(first) + 1, '"')) {
        char why[160];
        snprintf(why, sizeof why, "model_type %s is read as [\"%s\"] only", h->cls->model_type,
                 h->cls->arch);
        return refuse(h, k->key, first, why);
    }
    snprintf(h->arch, sizeof h->arch, "%s", first);
    return 0;
}

static int key_layer_types(LlamaCfg *h, const ConfigKey *k, const char *v, int quoted)
{
    (void)k;
    if (!v) return 0;
    if (quoted != JSON_RAW || v[0] != '[')
        return err_set(h->e, "%s: layer_types must be a list", h->path), 1;
    for (const char *p = v; (p = strstr(p, "sliding_attention")); p++) h->sliding_layers++;
    return 0;
}

/* ---- rope_scaling (and transformers 5's rope_parameters) ---- */

typedef struct {
    LlamaCfg *h;
    const char *key;
    char type[32];
} RopeRead;

static int rope_pair(void *ctx, const char *key, const char *v, int quoted, size_t at)
{
    (void)at;
    RopeRead *r = ctx;
    LlamaCfg *h = r->h;
    char name[96];
    snprintf(name, sizeof name, "%s.%s", r->key, key);
    if (!strcmp(key, "rope_type") || !strcmp(key, "type")) {
        snprintf(r->type, sizeof r->type, "%s", v && quoted == 1 ? v : "?");
        return 0;
    }
    if (!strcmp(key, "factor")) return read_float(h, name, v, quoted, &h->factor);
    if (!strcmp(key, "low_freq_factor")) return read_float(h, name, v, quoted, &h->low);
    if (!strcmp(key, "high_freq_factor")) return read_float(h, name, v, quoted, &h->high);
    if (!strcmp(key, "original_max_position_embeddings"))
        return read_int(h, name, v, quoted, &h->orig_ctx);
    if (!strcmp(key, "rope_theta")) return read_float(h, name, v, quoted, &h->theta);
    if (!strcmp(key, "partial_rotary_factor")) {
        double x = 1;
        if (read_float(h, name, v, quoted, &x)) return 1;
        return x != 1 ? refuse(h, name, v, "mpitrain rotates the whole head") : 0;
    }
    return 0; /* another type's parameters: that type is refused below */
}

static int key_rope(LlamaCfg *h, const ConfigKey *k, const char *v, int quoted)
{
    if (!v) return 0;
    if (quoted != JSON_RAW || v[0] != '{')
        return err_set(h->e, "%s: %s must be an object or null", h->path, k->key), 1;
    RopeRead r = {h, k->key, "default"};
    size_t off;
    Err sub = {{0}};
    int rc = json_read_object(v, rope_pair, &r, &off, &sub);
    if (rc < 0) return err_set(h->e, "%s: %s: %s", h->path, k->key, sub.msg), 1;
    if (rc) return rc;
    char name[64];
    snprintf(name, sizeof name, "%s type", k->key);
    if (!strcmp(r.type, "default")) {
        h->factor = NAN; /* a default rope's factor means nothing */
        return 0;
    }
    if (strcmp(r.type, "llama3"))
        return refuse(h, name, r.type, "mpitrain's rotary scaling is llama3's (or none)");
    if (isnan(h->factor) || isnan(h->low) || isnan(h->high) || h->orig_ctx == UNSET)
        return err_set(h->e, "%s: %s llama3 needs factor, low_freq_factor, high_freq_factor and "
                             "original_max_position_embeddings", h->path, k->key), 1;
    if (!(h->factor > 0) || !(h->low > 0) || !(h->high > h->low) || h->orig_ctx < 1)
        return err_set(h->e, "%s: %s llama3 needs factor > 0, 0 < low_freq_factor < "
                             "high_freq_factor and original_max_position_embeddings >= 1", h->path,
                       k->key), 1;
    return 0;
}

#define AT(f) offsetof(LlamaCfg, f)

/* Every key that matters to one of the classes. A key the table lacks is
 * one transformers' class does not read (token ids, torch_dtype,
 * transformers_version, initializer_range, use_cache, a task's settings):
 * it changes nothing mpitrain computes. */
static const ConfigKey KEYS[] = {
    {"model_type", K_FN, 0, key_model_type, "the llama family is llama, qwen2, qwen3 or mistral"},
    {"architectures", K_FN, 0, key_architectures, NULL},
    {"num_hidden_layers", K_INT, AT(n_layer), NULL, NULL},
    {"num_attention_heads", K_INT, AT(n_head), NULL, NULL},
    {"num_key_value_heads", K_INT, AT(n_kv), NULL, NULL},
    {"hidden_size", K_INT, AT(n_embd), NULL, NULL},
    {"head_dim", K_INT, AT(head_dim), NULL, NULL},
    {"intermediate_size", K_INT, AT(mlp), NULL, NULL},
    {"max_position_embeddings", K_INT, AT(positions), NULL, NULL},
    {"vocab_size", K_INT, AT(vocab), NULL, NULL},
    {"rms_norm_eps", K_FLOAT, AT(eps), NULL, NULL},
    {"rope_theta", K_FLOAT, AT(theta), NULL, NULL},
    {"rope_scaling", K_FN, 0, key_rope, NULL},
    {"rope_parameters", K_FN, 0, key_rope, NULL},
    {"attention_bias", K_BOOL, AT(attention_bias), NULL, NULL},
    {"mlp_bias", K_BOOL, AT(mlp_bias), NULL, NULL},
    {"tie_word_embeddings", K_BOOL, AT(tie), NULL, NULL},
    {"use_sliding_window", K_BOOL, AT(use_window), NULL, NULL},
    {"sliding_window", K_FN, 0, key_window, NULL},
    {"max_window_layers", K_INT, AT(window_layers), NULL, NULL},
    {"layer_types", K_FN, 0, key_layer_types, NULL},
    {"hidden_act", K_FN, 0, key_string_is, "mpitrain's MLP is SwiGLU with silu"},
    {"attention_dropout", K_FN, 0, key_zero, "mpitrain trains without dropout"},
    {"pretraining_tp", K_SAME, 0, NULL, NULL}, /* the same products, sliced */
    {"partial_rotary_factor", K_FN, 0, key_one, "mpitrain rotates the whole head"},
    {"quantization_config", K_FN, 0, key_refused, "mpitrain reads unquantized F32, F16 or BF16 weights"},
};
enum { N_KEYS = sizeof KEYS / sizeof KEYS[0] };

static int config_pair(void *ctx, const char *key, const char *v, int quoted, size_t at)
{
    (void)at;
    LlamaCfg *h = ctx;
    for (int i = 0; i < N_KEYS; i++) {
        const ConfigKey *k = &KEYS[i];
        if (strcmp(k->key, key)) continue;
        char *f = (char *)h + k->off;
        switch (k->kind) {
        case K_INT: return read_int(h, key, v, quoted, (long long *)f);
        case K_FLOAT: return read_float(h, key, v, quoted, (double *)f);
        case K_BOOL: return read_bool(h, key, v, quoted, (int *)f);
        case K_FN: return k->fn(h, k, v, quoted);
        case K_SAME: return 0;
        }
    }
    return 0;
}

/* The window's refusal: a sliding window shorter than the context makes
 * attention local, which mpitrain does not compute. */
static int check_window(const LlamaCfg *h, int ctx)
{
    const LlamaClass *c = h->cls;
    long long w = h->window_null ? 0 : h->window != UNSET ? h->window : c->window;
    int active = w > 0 && (!c->window_flag || h->use_window == 1);
    if (active && c->window_flag && h->sliding_layers == 0) {
        long long from = h->window_layers != UNSET ? h->window_layers : 28;
        active = from < h->n_layer; /* Qwen: layers from max_window_layers on slide */
    }
    if (h->sliding_layers && !active && w > 0 && w < ctx)
        active = 1; /* layer_types asks for sliding layers outright */
    if (!active || w >= ctx) return 0;
    return err_set(h->e, "%s: sliding_window %lld is shorter than the context "
                         "(max_position_embeddings %d)%s: mpitrain attends to the whole context, so "
                         "it would not compute this model exactly", h->path, w, ctx,
                   c->window_flag ? " with use_sliding_window true" : "");
}

/* The checked shape into mc. */
static int llama_config_model(LlamaCfg *h, ModelConfig *mc)
{
    const struct { const char *key; long long v; } need[] = {
        {"num_hidden_layers", h->n_layer}, {"num_attention_heads", h->n_head},
        {"hidden_size", h->n_embd}, {"intermediate_size", h->mlp}, {"vocab_size", h->vocab},
    };
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (need[i].v == UNSET)
            return err_set(h->e, "%s: no %s: the model's shape is incomplete", h->path, need[i].key);
    const LlamaClass *c = h->cls;
    /* the ranges mpitrain builds (model_config_validate's, checked again
     * at the end), here so the tensor table's sizes cannot overflow */
    const struct { const char *key; long long v, lo, hi; } range[] = {
        {"num_hidden_layers", h->n_layer, 1, 1024}, {"hidden_size", h->n_embd, 1, 65536},
        {"num_attention_heads", h->n_head, 1, 65536}, {"intermediate_size", h->mlp, 1, 1 << 22},
        {"head_dim", h->head_dim == UNSET ? 1 : h->head_dim, 1, 65536},
        {"vocab_size", h->vocab, 2, MODEL_MAX_VOCAB}};
    for (size_t i = 0; i < sizeof range / sizeof range[0]; i++)
        if (range[i].v < range[i].lo || range[i].v > range[i].hi)
            return err_set(h->e, "%s: %s %lld is outside what mpitrain builds (%lld..%lld)", h->path,
                           range[i].key, range[i].v, range[i].lo, range[i].hi);
    long long kv = h->n_kv != UNSET ? h->n_kv : c->kv_heads ? c->kv_heads : h->n_head;
    long long hd = h->head_dim != UNSET ? h->head_dim : c->head_dim ? c->head_dim : h->n_embd / h->n_head;
    if (h->head_dim == UNSET && !c->head_dim && h->n_embd % h->n_head)
        return err_set(h->e, "%s: num_attention_heads %lld does not divide hidden_size %lld (and "
                             "no head_dim)", h->path, h->n_head, h->n_embd);
    if (hd < 1 || h->n_head * hd > 1 << 22)
        return err_set(h->e, "%s: num_attention_heads %lld x head_dim %lld is outside what mpitrain "
                             "builds (1..%d)", h->path, h->n_head, hd, 1 << 22);
    if (kv < 1 || h->n_head % kv)
        return err_set(h->e, "%s: num_key_value_heads %lld does not divide num_attention_heads %lld",
                       h->path, kv, h->n_head);
    /* the context: max_position_embeddings (the class's default when
     * absent), at most what mpitrain's configuration takes */
    long long pos = h->positions != UNSET ? h->positions : !strcmp(c->model_type, "llama") ? 2048
                    : !strcmp(c->model_type, "mistral") ? 131072 : 32768;
    if (pos < 1) return err_set(h->e, "%s: max_position_embeddings must be at least 1", h->path);
    if (check_window(h, (int)(pos > MODEL_MAX_VOCAB ? MODEL_MAX_VOCAB : pos))) return -1;
    if (pos > MODEL_MAX_ROPE_POSITIONS)
        return err_set(h->e, "%s: max_position_embeddings %lld: mpitrain takes at most %d", h->path,
                       pos, MODEL_MAX_ROPE_POSITIONS);
    /* rotary positions keep no table: the model keeps them all and trains
     * at a context up to MODEL_MAX_SEQ_LEN (--seq-len shortens it) */
    long long ctx = pos > MODEL_MAX_SEQ_LEN ? MODEL_MAX_SEQ_LEN : pos;
    int scaled = !isnan(h->factor);
    int bias = h->attention_bias == 1 && c->attention_bias_key;
    *mc = (ModelConfig){
        .kind = MODEL_LLAMA, .n_layer = (int)h->n_layer, .n_head = (int)h->n_head,
        .n_embd = (int)h->n_embd, .seq_len = (int)ctx, .positions = (int)pos, .vocab = (int)h->vocab,
        .n_kv_head = (int)kv, .head_dim = (int)hd, .mlp_hidden = (int)h->mlp,
        .norm_eps = (float)(isnan(h->eps) ? 1e-6 : h->eps),
        .rope_theta = (float)(isnan(h->theta) ? 10000.0 : h->theta),
        .rope_factor = scaled ? (float)h->factor : 0, .rope_low_freq = scaled ? (float)h->low : 0,
        .rope_high_freq = scaled ? (float)h->high : 0, .rope_orig_ctx = scaled ? (int)h->orig_ctx : 0,
        .qkv_bias = c->qkv_bias || bias, .attn_out_bias = bias,
        .mlp_bias = h->mlp_bias == 1 && c->mlp_bias_key, .qk_norm = c->qk_norm,
        .untied_head = h->tie != 1};
    return 0;
}

/* model_type (read first: it picks the class whose defaults the rest
 * reads with) and the rest. */
static int read_config(const char *path, const char *text, const char *type, LlamaCfg *h, Err *e)
{
    size_t off;
    Err sub = {{0}};
    *h = (LlamaCfg){.path = path, .cls = class_of(type), .e = e, .n_layer = UNSET, .n_head = UNSET,
                    .n_kv = UNSET, .n_embd = UNSET, .head_dim = UNSET, .mlp = UNSET,
                    .positions = UNSET, .vocab = UNSET, .window = UNSET, .window_layers = UNSET,
                    .attention_bias = -1, .mlp_bias = -1, .tie = -1, .use_window = -1,
                    .eps = NAN, .theta = NAN, .factor = NAN, .low = NAN, .high = NAN,
                    .orig_ctx = UNSET};
    if (!h->cls) return err_set(e, "%s: model_type %s is not of the llama family", path, type);
    snprintf(h->arch, sizeof h->arch, "%s", h->cls->arch);
    int rc = json_read_object(text, config_pair, h, &off, &sub);
    if (rc < 0) return err_set(e, "%s:%d: %s", path, json_line_of(text, off), sub.msg);
    return rc ? -1 : 0;
}

/* ---- the tensors ------------------------------------------------------------- */

/* One layer's tensors: mpitrain's suffix, HF's, rows and cols as a width
 * (W_*), and when it is there. */
enum { W_ONE, W_C, W_Q, W_KV, W_F, W_HD };
enum { IF_ALWAYS, IF_QKV_BIAS, IF_OUT_BIAS, IF_MLP_BIAS, IF_QK_NORM };

static const struct {
    const char *mp, *hf;
    int rows, cols, when;
} LAYER[] = {
    {"ln1.w", "input_layernorm.weight", W_C, W_ONE, IF_ALWAYS},
    {"attn.q.w", "self_attn.q_proj.weight", W_Q, W_C, IF_ALWAYS},
    {"attn.q.b", "self_attn.q_proj.bias", W_Q, W_ONE, IF_QKV_BIAS},
    {"attn.k.w", "self_attn.k_proj.weight", W_KV, W_C, IF_ALWAYS},
    {"attn.k.b", "self_attn.k_proj.bias", W_KV, W_ONE, IF_QKV_BIAS},
    {"attn.v.w", "self_attn.v_proj.weight", W_KV, W_C, IF_ALWAYS},
    {"attn.v.b", "self_attn.v_proj.bias", W_KV, W_ONE, IF_QKV_BIAS},
    {"attn.q_norm.w", "self_attn.q_norm.weight", W_HD, W_ONE, IF_QK_NORM},
    {"attn.k_norm.w", "self_attn.k_norm.weight", W_HD, W_ONE, IF_QK_NORM},
    {"attn.proj.w", "self_attn.o_proj.weight", W_C, W_Q, IF_ALWAYS},
    {"attn.proj.b", "self_attn.o_proj.bias", W_C, W_ONE, IF_OUT_BIAS},
    {"ln2.w", "post_attention_layernorm.weight", W_C, W_ONE, IF_ALWAYS},
    {"mlp.gate.w", "mlp.gate_proj.weight", W_F, W_C, IF_ALWAYS},
    {"mlp.gate.b", "mlp.gate_proj.bias", W_F, W_ONE, IF_MLP_BIAS},
    {"mlp.up.w", "mlp.up_proj.weight", W_F, W_C, IF_ALWAYS},
    {"mlp.up.b", "mlp.up_proj.bias", W_F, W_ONE, IF_MLP_BIAS},
    {"mlp.proj.w", "mlp.down_proj.weight", W_C, W_F, IF_ALWAYS},
    {"mlp.proj.b", "mlp.down_proj.bias", W_C, W_ONE, IF_MLP_BIAS},
};
enum { N_LAYER_T = sizeof LAYER / sizeof LAYER[0] };

static int width(const ModelConfig *c, int w)
{
    int hd = c->head_dim ? c->head_dim : c->n_embd / c->n_head;
    int kv = c->n_kv_head ? c->n_kv_head : c->n_head;
    switch (w) {
    case W_C: return c->n_embd;
    case W_Q: return c->n_head * hd;
    case W_KV: return kv * hd;
    case W_F: return c->mlp_hidden;
    case W_HD: return hd;
    default: return 1;
    }
}

static int present(const ModelConfig *c, int when)
{
    return when == IF_ALWAYS || (when == IF_QKV_BIAS && c->qkv_bias) ||
           (when == IF_OUT_BIAS && c->attn_out_bias) || (when == IF_MLP_BIAS && c->mlp_bias) ||
           (when == IF_QK_NORM && c->qk_norm);
}

static void add_slot(LlamaSlot *s, int *n, const char *mp, const char *hf, int rows, int cols)
{
    LlamaSlot *t = &s[(*n)++];
    snprintf(t->mp, sizeof t->mp, "%s", mp);
    snprintf(t->hf, sizeof t->hf, "%s", hf);
    t->rows = rows;
    t->cols = cols;
    t->ndim = cols > 1 ? 2 : 1;
}

/* The tensors a configuration has, in mpitrain's canonical order. */
static LlamaSlot *make_slots(const ModelConfig *c, int *n)
{
    LlamaSlot *s = calloc((size_t)N_LAYER_T * c->n_layer + 3, sizeof *s);
    if (!s) return NULL;
    *n = 0;
    add_slot(s, n, "wte", "model.embed_tokens.weight", c->vocab, c->n_embd);
    for (int l = 0; l < c->n_layer; l++)
        for (int k = 0; k < N_LAYER_T; k++) {
            if (!present(c, LAYER[k].when)) continue;
            char mp[MODEL_MAX_NAME], hf[96];
            snprintf(mp, sizeof mp, "h.%d.%s", l, LAYER[k].mp);
            snprintf(hf, sizeof hf, "model.layers.%d.%s", l, LAYER[k].hf);
            add_slot(s, n, mp, hf, width(c, LAYER[k].rows), width(c, LAYER[k].cols));
        }
    add_slot(s, n, "lnf.w", "model.norm.weight", c->n_embd, 1);
    if (c->untied_head) add_slot(s, n, "head.w", "lm_head.weight", c->vocab, c->n_embd);
    return s;
}

int llama_slot_of(const WeightSource *s, const char *name)
{
    for (int i = 0; i < s->n_slots; i++)
        if (!strcmp(s->slots[i].mp, name)) return i;
    return -1;
}

/* Buffers some exports hold that are not weights. */
static int ignored_tensor(const char *name)
{
    const char *p = strstr(name, "rotary_emb.inv_freq");
    return p && !p[strlen("rotary_emb.inv_freq")];
}

/* Each header entry to its slot: unknown and doubled ones refused; a tied
 * model's lm_head (written by some exporters) kept aside in *lm. */
static int map_entries(WeightSource *s, int *lm, Err *e)
{
    *lm = -1;
    for (int i = 0; i < s->n_slots; i++) s->slot_entry[i] = -1;
    for (int i = 0; i < s->ix.n; i++) {
        const StEntry *t = &s->ix.t[i];
        if (ignored_tensor(t->name)) continue;
        int slot = -1;
        for (int k = 0; slot < 0 && k < s->n_slots; k++)
            if (!strcmp(s->slots[k].hf, t->name)) slot = k;
        int *dst = slot >= 0 ? &s->slot_entry[slot] : !strcmp(t->name, "lm_head.weight") ? lm : NULL;
        if (!dst)
            return err_set(e, "%s: unknown tensor '%s': not part of %s as config.json describes it "
                              "(%d layers%s%s%s)", safetensors_file_of(&s->ix, t), t->name, s->arch,
                           s->model.n_layer, s->model.qkv_bias ? ", q/k/v biases" : "",
                           s->model.mlp_bias ? ", MLP biases" : "", s->model.qk_norm ? ", q/k norms" : "");
        if (*dst >= 0)
            return err_set(e, "%s: tensor '%s' appears twice", safetensors_file_of(&s->ix, t), t->name);
        *dst = i;
    }
    return 0;
}

static int check_shapes(const WeightSource *s, Err *e)
{
    for (int k = 0; k < s->n_slots; k++) {
        const LlamaSlot *sl = &s->slots[k];
        if (s->slot_entry[k] < 0)
            return err_set(e, "%s: missing tensor '%s', which config.json needs", s->path, sl->hf);
        const StEntry *t = &s->ix.t[s->slot_entry[k]];
        if (t->ndim != sl->ndim || t->shape[0] != sl->rows || (sl->ndim > 1 && t->shape[1] != sl->cols)) {
            char got[64];
            safetensors_shape_text(t, got, sizeof got);
            return err_set(e, "%s: tensor '%s' has shape %s; config.json needs %d%s%.0d",
                           safetensors_file_of(&s->ix, t), t->name, got, sl->rows,
                           sl->ndim > 1 ? " x " : "", sl->ndim > 1 ? sl->cols : 0);
        }
        if (strcmp(t->dtype, "F32") && strcmp(t->dtype, "F16") && strcmp(t->dtype, "BF16"))
            return err_set(e, "%s: tensor '%s' has dtype %s; F32, F16 or BF16 expected",
                           safetensors_file_of(&s->ix, t), t->name, t->dtype);
    }
    return 0;
}

/* A tied model's stored lm_head must be the embedding itself. */
static int check_tied_head(const WeightSource *s, int lm, Err *e)
{
    if (lm < 0) return 0;
    const StEntry *h = &s->ix.t[lm], *w = &s->ix.t[s->slot_entry[0]];
    const char *file = safetensors_file_of(&s->ix, h);
    if (h->ndim != 2 || h->shape[0] != w->shape[0] || h->shape[1] != w->shape[1])
        return err_set(e, "%s: lm_head.weight's shape differs from the embedding's, but "
                          "config.json ties them (tie_word_embeddings)", file);
    int same = safetensors_same_values(&s->ix, w, h, e);
    if (same < 0) return -1;
    if (!same)
        return err_set(e, "%s: lm_head.weight differs from model.embed_tokens.weight, but "
                          "config.json ties them (tie_word_embeddings true): set it false to keep "
                          "the head's own weights", file);
    return 0;
}

int llama_source_open(WeightSource *s, const char *cfg_path, const char *text,
                      const char *model_type, Err *e)
{
    LlamaCfg h;
    if (read_config(cfg_path, text, model_type, &h, e) || llama_config_model(&h, &s->model)) return -1;
    s->kind = WSRC_HF_LLAMA;
    snprintf(s->arch, sizeof s->arch, "%s", h.arch);
    int rc = s->path[0] ? safetensors_read_index(s->path, &s->ix, e)
                        : safetensors_open_model(s->dir, &s->ix, e);
    if (rc) return -1;
    if (!s->path[0]) snprintf(s->path, sizeof s->path, "%s", s->ix.n_files > 1 ? s->dir : s->ix.files[0]);
    s->slots = make_slots(&s->model, &s->n_slots);
    s->slot_entry = s->slots ? malloc((size_t)s->n_slots * sizeof *s->slot_entry) : NULL;
    if (!s->slot_entry) return err_set(e, "%s: out of memory", s->path);
    int lm;
    if (map_entries(s, &lm, e) || check_shapes(s, e)) return -1;
    snprintf(s->dtype, sizeof s->dtype, "%s", s->ix.t[s->slot_entry[0]].dtype);
    if (check_tied_head(s, lm, e)) return -1;
    /* last: what the files hold is checked even where the model is refused */
    Err sub = {{0}};
    if (model_config_validate(&s->model, &sub)) return err_set(e, "%s: %s", cfg_path, sub.msg);
    return 0;
}

int llama_read_slot(const WeightSource *s, int slot, float *out, Err *e)
{
    return safetensors_entry_f32(&s->ix, &s->ix.t[s->slot_entry[slot]], out, e);
}

/* ---- export -------------------------------------------------------------------- */

/* The shortest decimal that reads back as the same float (1e-06, not
 * 9.99999997e-07): config.json's values as they were written. */
static void json_float(JsonOut *j, float v)
{
    for (int d = 6; d <= 9; d++) {
        char buf[32];
        snprintf(buf, sizeof buf, "%.*g", d, (double)v);
        if ((float)strtod(buf, NULL) == v || d == 9) {
            json_sig(j, strtod(buf, NULL), d);
            return;
        }
    }
}

typedef struct {
    const ModelConfig *c;
    const LlamaClass *cls;
    const char *dtype;
    int bos, eos; /* -1: not known */
} HfOut;

/* The ids the tokenizer names as bos_token and eos_token; the class's
 * defaults (Llama's 1 and 2) would be wrong for most vocabularies, so an
 * id not known is written as null. */
static void write_token_ids(JsonOut *j, const HfOut *h)
{
    if (h->bos >= 0) json_int(json_key(j, "bos_token_id"), h->bos);
    else json_null(json_key(j, "bos_token_id"));
    if (h->eos >= 0) json_int(json_key(j, "eos_token_id"), h->eos);
    else json_null(json_key(j, "eos_token_id"));
}

static void write_rope(JsonOut *j, const ModelConfig *c)
{
    json_float(json_key(j, "rope_theta"), c->rope_theta ? c->rope_theta : 10000.0f);
    if (!c->rope_factor) {
        json_null(json_key(j, "rope_scaling"));
        return;
    }
    json_begin_object(json_key(j, "rope_scaling"));
    json_str(json_key(j, "rope_type"), "llama3");
    json_float(json_key(j, "factor"), c->rope_factor);
    json_float(json_key(j, "low_freq_factor"), c->rope_low_freq);
    json_float(json_key(j, "high_freq_factor"), c->rope_high_freq);
    json_int(json_key(j, "original_max_position_embeddings"), c->rope_orig_ctx);
    json_end_object(j);
}

static void write_config(JsonOut *j, const void *ctx)
{
    const HfOut *h = ctx;
    const ModelConfig *c = h->c;
    const LlamaClass *cls = h->cls;
    json_begin_object(j);
    json_newline(j);
    json_begin_array(json_key(j, "architectures"));
    json_str(j, cls->arch);
    json_end_array(j);
    json_str(json_key(j, "model_type"), cls->model_type);
    json_newline(j);
    json_int(json_key(j, "num_hidden_layers"), c->n_layer);
    json_int(json_key(j, "num_attention_heads"), c->n_head);
    json_int(json_key(j, "num_key_value_heads"), c->n_kv_head ? c->n_kv_head : c->n_head);
    json_int(json_key(j, "hidden_size"), c->n_embd);
    json_int(json_key(j, "head_dim"), c->head_dim ? c->head_dim : c->n_embd / c->n_head);
    json_int(json_key(j, "intermediate_size"), c->mlp_hidden);
    json_newline(j);
    json_int(json_key(j, "max_position_embeddings"), model_positions(c));
    json_int(json_key(j, "vocab_size"), c->vocab);
    json_float(json_key(j, "rms_norm_eps"), c->norm_eps ? c->norm_eps : 1e-5f);
    json_newline(j);
    write_rope(j, c);
    json_newline(j);
    if (cls->attention_bias_key) json_bool(json_key(j, "attention_bias"), c->attn_out_bias);
    if (cls->mlp_bias_key) json_bool(json_key(j, "mlp_bias"), c->mlp_bias);
    json_bool(json_key(j, "tie_word_embeddings"), !c->untied_head);
    json_str(json_key(j, "hidden_act"), "silu");
    json_sig(json_key(j, "attention_dropout"), 0.0, 1);
    if (cls->window) json_null(json_key(j, "sliding_window"));
    if (cls->window_flag) json_bool(json_key(j, "use_sliding_window"), 0);
    json_newline(j);
    json_sig(json_key(j, "initializer_range"), 0.02, 6);
    json_bool(json_key(j, "use_cache"), 1);
    json_str(json_key(j, "torch_dtype"), hf_torch_dtype(h->dtype));
    write_token_ids(j, h);
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
    write_token_ids(j, h);
    json_newline(j);
    json_end_object(j);
    json_newline(j);
}

/* The model's tensors under HF's names, in canonical order. */
static int weights_list(const Model *m, LlamaSlot *slots, int n, StTensor *list, Err *e)
{
    for (int k = 0; k < n; k++) {
        /* a merged LoRA model's weights are its base's */
        int id = model_find_id(m, slots[k].mp);
        const ParamInfo *t = id < 0 ? NULL : model_tensor(m, id);
        if (!t || t->numel != (size_t)slots[k].rows * slots[k].cols)
            return err_set(e, "internal: tensor '%s' is not the whole %s tensor", slots[k].mp, slots[k].hf);
        list[k] = (StTensor){slots[k].hf, slots[k].ndim, {slots[k].rows, slots[k].cols},
                             model_tensor_data(m, id), 0};
    }
    return 0;
}

/* The tokenizer's beginning- and end-of-text ids inside the vocabulary
 * (-1: none, or no tokenizer). */
static void text_ends(const ModelConfig *c, const char *tokenizer_dir, HfOut *h)
{
    h->bos = h->eos = -1;
    if (!tokenizer_dir) return;
    Err ignored;
    Bpe *b = bpe_load(tokenizer_dir, &ignored);
    if (!b) return;
    if (bpe_bos(b) < c->vocab) h->bos = bpe_bos(b);
    if (bpe_eot(b) < c->vocab) h->eos = bpe_eot(b);
    bpe_free(b);
}

static int export_files(const Model *m, const LlamaExport *x, const HfOut *h, const char *out_dir,
                        Err *e)
{
    int n;
    LlamaSlot *slots = make_slots(&m->cfg, &n);
    StTensor *list = slots ? calloc((size_t)n, sizeof *list) : NULL;
    int rc = !list ? err_set(e, "%s: out of memory", out_dir) : weights_list(m, slots, n, list, e);
    const char *meta[] = {"exported_by", "mpitrain"};
    if (!rc) rc = safetensors_write_model(out_dir, list, n, x->dtype, meta, 1, x->max_shard_bytes, e);
    if (!rc) rc = hf_write_json(out_dir, "generation_config.json", write_generation_config, h, e);
    if (!rc && x->tokenizer_dir) rc = bpe_export_hf(x->tokenizer_dir, out_dir, e);
    /* last: a directory with config.json is a whole model */
    if (!rc) rc = hf_write_json(out_dir, "config.json", write_config, h, e);
    free(list);
    free(slots);
    return rc;
}

int llama_export_hf(const Model *m, const LlamaExport *x, const char *out_dir, Err *e)
{
    const ModelConfig *c = &m->cfg;
    if (model_transformer(c) != &LLAMA_TRANSFORMER)
        return err_set(e, "the checkpoint holds a --model %s, not a llama-family model",
                       model_kind_name(c->kind));
    const LlamaClass *cls = class_of_arch(x->arch ? x->arch : "");
    /* the class the model came as, when it can hold what it is now */
    if (!cls || !class_holds(cls, c)) cls = class_of_arch(llama_default_arch(c));
    if (!class_holds(cls, c))
        return err_set(e, "no Hugging Face class holds this model's options (q/k/v bias %d, output "
                          "bias %d, MLP bias %d, q/k norms %d): Llama has q/k/v and output biases "
                          "together, Qwen2 q/k/v biases alone, Qwen3 q/k norms without MLP biases",
                       c->qkv_bias, c->attn_out_bias, c->mlp_bias, c->qk_norm);
    const char *tok = x->tokenizer_dir && bpe_present(x->tokenizer_dir) ? x->tokenizer_dir : NULL;
    HfOut h = {c, cls, x->dtype, -1, -1};
    text_ends(c, tok, &h);
    LlamaExport xx = *x;
    xx.tokenizer_dir = tok;
    if (mkdir_p(out_dir, e)) return -1;
    char cfg[PATH_BUF];
    if (path_fmt(cfg, sizeof cfg, e, "%s/config.json", out_dir)) return -1;
    /* an older export's config.json would vouch for weights half replaced */
    if (unlink(cfg) != 0 && errno != ENOENT)
        return err_set(e, "%s: cannot remove the previous export's file: %s", cfg, strerror(errno));
    int rc = export_files(m, &xx, &h, out_dir, e);
    if (rc) {
        unlink(cfg);
        char why[sizeof e->msg];
        snprintf(why, sizeof why, "%s", e->msg);
        err_set(e, "%s (%s is left without config.json: not a whole model)", why, out_dir);
    }
    return rc;
}
