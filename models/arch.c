#include "models/arch.h"

#include <stdio.h>
#include <string.h>

/* ---- the transformers ---------------------------------------------------------------- */

const TransformerDesc GPT2_TRANSFORMER = {
    .norm = NORM_LAYER,
    .pos = POS_LEARNED,
    .mlp = MLP_GELU,
    .mlp_mult = 4,
    .grouped_kv = 0,
    .biases = BIAS_ALL,
    .tied_head = 1,
    .scaled_proj_init = 1,
};

const TransformerDesc LLAMA_TRANSFORMER = {
    .norm = NORM_RMS,
    .pos = POS_ROPE,
    .mlp = MLP_SWIGLU,
    .mlp_mult = 0, /* the configuration's mlp_hidden */
    .grouped_kv = 1,
    .biases = 0,
    .tied_head = 1,
};

/* The biases a configuration adds to its family's. */
static unsigned config_biases(const ModelConfig *c)
{
    return (c->qkv_bias ? BIAS_QKV : 0u) | (c->attn_out_bias ? BIAS_ATTN_PROJ : 0u) |
           (c->mlp_bias ? BIAS_MLP_IN | BIAS_MLP_OUT : 0u);
}

TransformerShape transformer_shape(const ModelConfig *c)
{
    const TransformerDesc *d = model_transformer(c);
    TransformerShape s = {0};
    s.n_head = c->n_head;
    s.head_dim = c->head_dim > 0 ? c->head_dim : c->n_head > 0 ? c->n_embd / c->n_head : 0;
    s.n_kv_head = c->n_kv_head > 0 ? c->n_kv_head : c->n_head;
    s.q_width = s.n_head * s.head_dim;
    s.kv_width = s.n_kv_head * s.head_dim;
    s.qkv_rows = s.q_width + 2 * s.kv_width;
    s.mlp_hidden = c->mlp_hidden > 0 ? c->mlp_hidden : (d && d->mlp_mult ? d->mlp_mult : 4) * c->n_embd;
    s.biases = (d ? d->biases : 0u) | config_biases(c);
    s.tied_head = d ? d->tied_head && !c->untied_head : 1;
    s.qk_norm = c->qk_norm;
    s.norm_eps = c->norm_eps > 0 ? c->norm_eps : 1e-5f;
    s.rope_theta = c->rope_theta > 0 ? c->rope_theta : 10000.0;
    s.rope_factor = c->rope_factor;
    s.rope_low_freq = c->rope_low_freq;
    s.rope_high_freq = c->rope_high_freq;
    s.rope_orig_ctx = c->rope_orig_ctx;
    if (c->lora_rank > 0 && lora_target_mask(c, &s.lora, NULL) == 0) {
        s.lora_rank = c->lora_rank;
        s.lora_scale = (c->lora_alpha > 0 ? c->lora_alpha : 8.0f) / (float)c->lora_rank;
        s.lora_dropout = c->lora_dropout;
    } else {
        s.lora = 0;
    }
    return s;
}

/* ---- LoRA targets ------------------------------------------------------------- */

/* Each family's linears by their Hugging Face module names (PEFT's
 * target_modules), and PEFT's default targets when none are given. */
typedef struct {
    const char *name;
    unsigned bits;
} LinearName;
static const LinearName LLAMA_LINEARS[] = {
    {"q_proj", LORA_Q}, {"k_proj", LORA_K}, {"v_proj", LORA_V}, {"o_proj", LORA_ATTN_OUT},
    {"gate_proj", LORA_GATE}, {"up_proj", LORA_UP}, {"down_proj", LORA_MLP_OUT}, {NULL, 0}};
static const LinearName GPT2_LINEARS[] = {
    {"c_attn", LORA_QKV}, {"c_proj", LORA_ATTN_OUT | LORA_MLP_OUT}, {"c_fc", LORA_FC},
    {NULL, 0}};

static const LinearName *linears_of(const ModelConfig *c)
{
    const TransformerDesc *d = model_transformer(c);
    return d && d->grouped_kv ? LLAMA_LINEARS : GPT2_LINEARS;
}

const char *lora_target_name(const ModelConfig *c, unsigned bit)
{
    for (const LinearName *t = linears_of(c); t->name; t++)
        if (t->bits & bit) return t->name;
    return "?";
}

const char *lora_targets_spec(const ModelConfig *c)
{
    if (c->lora_targets[0]) return c->lora_targets;
    return linears_of(c) == LLAMA_LINEARS ? "q_proj,v_proj" : "c_attn";
}

int lora_target_mask(const ModelConfig *c, unsigned *mask, Err *e)
{
    const LinearName *table = linears_of(c);
    const char *spec = lora_targets_spec(c);
    *mask = 0;
    char buf[sizeof c->lora_targets];
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *save = NULL, *name = strtok_r(buf, ", ", &save); name; name = strtok_r(NULL, ", ", &save)) {
        unsigned bits = 0;
        for (const LinearName *t = table; t->name; t++)
            if (!strcmp(name, "all-linear") || !strcmp(name, t->name)) bits |= t->bits;
        if (!bits) {
            char known[128] = "";
            for (const LinearName *t = table; t->name; t++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s",
                         known[0] ? ", " : "", t->name);
            return e ? err_set(e, "--lora-targets: --model %s has no linear named '%s' (it has %s, "
                                  "or all-linear)", model_kind_name(c->kind), name, known)
                     : -1;
        }
        *mask |= bits;
    }
    return 0;
}

/* LoRA's settings: a rank on a transformer, targets it has, a dropout
 * below 1. */
static int lora_check(const ModelConfig *c, const ModelArch *a, Err *e)
{
    if (c->lora_rank < 0) return err_set(e, "--lora-rank %d: must be >= 0 (0 = off)", c->lora_rank);
    if (!c->lora_rank) {
        if (c->lora_targets[0] || c->lora_dropout != 0)
            return err_set(e, "--lora-targets and --lora-dropout need --lora-rank R > 0");
        return 0;
    }
    if (!a->transformer)
        return err_set(e, "--lora-rank applies to the transformer families (gpt, llama), not "
                          "--model %s", a->name);
    if (c->lora_alpha < 0) return err_set(e, "--lora-alpha %g: must be > 0", c->lora_alpha);
    if (c->lora_dropout < 0 || c->lora_dropout >= 1)
        return err_set(e, "--lora-dropout %g: must be in [0, 1)", c->lora_dropout);
    if (c->lora_dropout > 0)
        return err_set(e, "--lora-dropout %g: dropout on the adapters' input is not built yet; "
                          "train with --lora-dropout 0", c->lora_dropout);
    unsigned mask;
    return lora_target_mask(c, &mask, e);
}

int transformer_check(const TransformerDesc *d, const char *family, Err *e)
{
    /* models/gpt.c builds any mix of the pieces but this one */
    if (d->norm == NORM_RMS && (d->biases & BIAS_NORM))
        return err_set(e, "--model %s: RMSNorm has no shift (a norm bias)", family);
    return 0;
}

/* ---- the families ------------------------------------------------------------- */

const ModelArch *model_arch(ModelKind kind)
{
    /* the one place a kind becomes an architecture */
    switch (kind) {
    case MODEL_GPT: return &GPT_ARCH;
    case MODEL_MLP: return &MLP_ARCH;
    case MODEL_LLAMA: return &LLAMA_ARCH;
    }
    return NULL;
}

const char *model_kind_name(ModelKind kind)
{
    const ModelArch *a = model_arch(kind);
    return a ? a->name : "unknown";
}

static const ModelArch *arch_of(const ModelConfig *c) { return model_arch(c->kind); }

const TransformerDesc *model_transformer(const ModelConfig *c)
{
    const ModelArch *a = arch_of(c);
    return a ? a->transformer : NULL;
}

/* ---- configuration ------------------------------------------------------------ */

/* The llama family's options: set on another transformer they are refused
 * by name rather than ignored, and their ranges are checked here. */
static int family_options_check(const ModelConfig *c, const ModelArch *a, Err *e)
{
    if (a->transformer != &LLAMA_TRANSFORMER) {
        const struct { const char *flag; int set; } only[] = {
            {"kv-heads", c->n_kv_head != 0}, {"head-dim", c->head_dim != 0},
            {"mlp-hidden", c->mlp_hidden != 0}, {"norm-eps", c->norm_eps != 0},
            {"rope-theta", c->rope_theta != 0}, {"rope-factor", c->rope_factor != 0},
            {"rope-low-freq", c->rope_low_freq != 0}, {"rope-high-freq", c->rope_high_freq != 0},
            {"rope-original-ctx", c->rope_orig_ctx != 0}, {"qkv-bias", c->qkv_bias != 0},
            {"attn-out-bias", c->attn_out_bias != 0}, {"mlp-bias", c->mlp_bias != 0},
            {"qk-norm", c->qk_norm != 0}, {"untied-head", c->untied_head != 0}};
        for (size_t i = 0; i < sizeof only / sizeof only[0]; i++)
            if (only[i].set)
                return err_set(e, "--%s applies to --model llama, not --model %s", only[i].flag,
                               a->name);
        return 0;
    }
    if (c->n_kv_head < 0 || (c->n_kv_head && c->n_head % c->n_kv_head))
        return err_set(e, "--kv-heads %d does not divide --heads %d: each key/value head serves "
                          "a group of query heads", c->n_kv_head, c->n_head);
    if (c->head_dim < 0 || c->head_dim % 2 || (!c->head_dim && c->n_head > 0 && (c->n_embd / c->n_head) % 2))
        return err_set(e, "--head-dim %d: rotary positions need an even head size (0 = --embd / "
                          "--heads = %d)", c->head_dim, c->n_head > 0 ? c->n_embd / c->n_head : 0);
    if (c->mlp_hidden < 1)
        return err_set(e, "--model llama needs --mlp-hidden (the SwiGLU MLP's hidden units, "
                          "intermediate_size in a Hugging Face config)");
    if (c->rope_factor < 0 || (c->rope_factor > 0 && (c->rope_orig_ctx < 1 || c->rope_low_freq <= 0 ||
                                                      c->rope_high_freq <= c->rope_low_freq)))
        return err_set(e, "--rope-factor %g needs --rope-original-ctx >= 1 and 0 < --rope-low-freq "
                          "< --rope-high-freq (llama3 scaling); 0 = no scaling", c->rope_factor);
    return 0;
}

int model_config_validate(const ModelConfig *c, Err *e)
{
    const ModelArch *a = arch_of(c);
    if (!a) return err_set(e, "model kind %d is not gpt, mlp or llama", (int)c->kind);
    if (c->n_layer < 1 || c->n_layer > 1024)
        return err_set(e, "--layers %d: must be between 1 and 1024", c->n_layer);
    if (c->n_embd < 1 || c->n_embd > 65536)
        return err_set(e, "--embd %d: must be between 1 and 65536", c->n_embd);
    if (c->seq_len < 1 || c->seq_len > MODEL_MAX_SEQ_LEN)
        return err_set(e, "--seq-len %d: must be between 1 and %d", c->seq_len, MODEL_MAX_SEQ_LEN);
    if (c->vocab < 2 || c->vocab > MODEL_MAX_VOCAB)
        return err_set(e, "--vocab %d: must be between 2 and %d", c->vocab, MODEL_MAX_VOCAB);
    if (c->in_dim < 0) return err_set(e, "mlp input dimension %d is negative", c->in_dim);
    int most = a->transformer && a->transformer->pos == POS_ROPE ? MODEL_MAX_ROPE_POSITIONS
                                                                 : MODEL_MAX_SEQ_LEN;
    if (c->positions && (c->positions < c->seq_len || c->positions > most))
        return err_set(e, "--positions %d: must be between --seq-len %d and %d (0 = --seq-len)",
                       c->positions, c->seq_len, most);
    if (a->transformer && transformer_check(a->transformer, a->name, e)) return -1;
    if (a->transformer && family_options_check(c, a, e)) return -1;
    if (lora_check(c, a, e)) return -1;
    return a->validate(c, e);
}

int model_positions(const ModelConfig *c) { return c->positions > 0 ? c->positions : c->seq_len; }

int model_n_blocks(const ModelConfig *c)
{
    const ModelArch *a = arch_of(c);
    return a ? a->n_blocks(c) : 0;
}

void model_block_costs(const ModelConfig *c, double *cost)
{
    const ModelArch *a = arch_of(c);
    if (a) a->block_costs(c, cost);
}

int model_shard_validate(const ModelConfig *c, const ModelShard *sh, Err *e)
{
    if (!arch_of(c)) return model_config_validate(c, e); /* names the bad kind */
    int n = model_n_blocks(c);
    if (sh->tp_size < 1 || sh->tp_rank < 0 || sh->tp_rank >= sh->tp_size)
        return err_set(e, "tensor-parallel rank %d of %d is invalid", sh->tp_rank, sh->tp_size);
    if (sh->first_block < 0 || sh->first_block >= n ||
        (sh->last_block >= 0 && (sh->last_block < sh->first_block || sh->last_block >= n)))
        return err_set(e, "blocks %d..%d are outside the model's 0..%d", sh->first_block,
                       sh->last_block, n - 1);
    return arch_of(c)->validate_shard(c, sh, e);
}

int model_preds_per_seq(const ModelConfig *cfg)
{
    const ModelArch *a = arch_of(cfg);
    return a ? a->preds_per_seq(cfg) : 1;
}

size_t model_boundary_floats(const ModelConfig *c, int B)
{
    const ModelArch *a = arch_of(c);
    return a && a->boundary_floats ? a->boundary_floats(c, B) : 0;
}
