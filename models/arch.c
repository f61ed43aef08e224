#include "models/arch.h"

/* ---- the transformers ---------------------------------------------------------------- */

const TransformerDesc GPT2_TRANSFORMER = {
    .norm = NORM_LAYER,
    .pos = POS_LEARNED,
    .mlp = MLP_GELU,
    .mlp_mult = 4,
    .grouped_kv = 0,
    .biases = BIAS_ALL,
    .tied_head = 1,
};

TransformerShape transformer_shape(const ModelConfig *c)
{
    const TransformerDesc *d = model_transformer(c);
    TransformerShape s;
    s.n_head = c->n_head;
    s.head_dim = c->n_head > 0 ? c->n_embd / c->n_head : 0;
    /* every head its own keys and values; grouped ones will come from the
     * config */
    s.n_kv_head = c->n_head;
    s.kv_width = c->n_embd;
    s.qkv_rows = c->n_embd + 2 * s.kv_width;
    s.mlp_hidden = (d ? d->mlp_mult : 4) * c->n_embd;
    return s;
}

int transformer_check(const TransformerDesc *d, const char *family, Err *e)
{
    /* the kernels models/gpt.c and models/gpt_decode.c have today */
    if (d->norm != NORM_LAYER)
        return err_set(e, "--model %s: RMSNorm blocks have no kernel yet", family);
    if (d->pos != POS_LEARNED)
        return err_set(e, "--model %s: rotary positions have no kernel yet", family);
    if (d->mlp != MLP_GELU)
        return err_set(e, "--model %s: the SwiGLU MLP has no kernel yet", family);
    if (d->mlp_mult != 4)
        return err_set(e, "--model %s: a GELU MLP %d x --embd wide is not built yet (4 x)",
                       family, d->mlp_mult);
    if (d->grouped_kv)
        return err_set(e, "--model %s: grouped key/value heads have no kernel yet", family);
    if (d->biases != BIAS_ALL)
        return err_set(e, "--model %s: linears without biases are not built yet", family);
    if (!d->tied_head)
        return err_set(e, "--model %s: an untied head is not built yet", family);
    return 0;
}

/* ---- the families ------------------------------------------------------------- */

const ModelArch *model_arch(ModelKind kind)
{
    /* the one place a kind becomes an architecture */
    switch (kind) {
    case MODEL_GPT: return &GPT_ARCH;
    case MODEL_MLP: return &MLP_ARCH;
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

int model_config_validate(const ModelConfig *c, Err *e)
{
    const ModelArch *a = arch_of(c);
    if (!a) return err_set(e, "model kind %d is not gpt or mlp", (int)c->kind);
    if (c->n_layer < 1 || c->n_layer > 1024)
        return err_set(e, "--layers %d: must be between 1 and 1024", c->n_layer);
    if (c->n_embd < 1 || c->n_embd > 65536)
        return err_set(e, "--embd %d: must be between 1 and 65536", c->n_embd);
    if (c->seq_len < 1 || c->seq_len > 65536)
        return err_set(e, "--seq-len %d: must be between 1 and 65536", c->seq_len);
    if (c->vocab < 2 || c->vocab > 65536)
        return err_set(e, "--vocab %d: must be between 2 and 65536", c->vocab);
    if (c->in_dim < 0) return err_set(e, "mlp input dimension %d is negative", c->in_dim);
    if (c->positions && (c->positions < c->seq_len || c->positions > 65536))
        return err_set(e, "--positions %d: must be between --seq-len %d and 65536 (0 = --seq-len)",
                       c->positions, c->seq_len);
    if (a->transformer && transformer_check(a->transformer, a->name, e)) return -1;
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
