#include "models/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "models/philox.h"

#define MAX_TENSORS 4096

int model_config_validate(const ModelConfig *c, Err *e)
{
    if (c->kind != MODEL_GPT && c->kind != MODEL_MLP)
        return err_set(e, "model kind %d is not gpt or mlp", (int)c->kind);
    if (c->n_layer < 1 || c->n_layer > 1024)
        return err_set(e, "--layers %d: must be between 1 and 1024", c->n_layer);
    if (c->n_embd < 1 || c->n_embd > 65536)
        return err_set(e, "--embd %d: must be between 1 and 65536", c->n_embd);
    if (c->seq_len < 1 || c->seq_len > 65536)
        return err_set(e, "--seq-len %d: must be between 1 and 65536", c->seq_len);
    if (c->vocab < 2 || c->vocab > 65536)
        return err_set(e, "--vocab %d: must be between 2 and 65536", c->vocab);
    if (c->kind == MODEL_GPT) {
        if (c->n_head < 1 || c->n_embd % c->n_head != 0)
            return err_set(e, "--heads %d does not divide --embd %d; pick heads that divide the width",
                           c->n_head, c->n_embd);
    }
    if (c->in_dim < 0) return err_set(e, "mlp input dimension %d is negative", c->in_dim);
    return 0;
}

void *model_calloc(size_t n, size_t size)
{
    /* 64-byte alignment for AVX-512 loads in BLAS and our loops */
    size_t bytes = n * size;
    bytes = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p) memset(p, 0, bytes ? bytes : 64);
    return p;
}

void model_add_tensor(Model *m, const char *name, int ndim, int d0, int d1, int block,
                      int decay, TpSplit split, float init_std)
{
    ParamInfo *t = &m->tensors[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim > 1 ? d1 : 1;
    t->numel = (size_t)d0 * (ndim > 1 ? (size_t)d1 : 1);
    t->offset = m->n_params;
    t->block = block;
    t->decay = decay;
    t->split = split;
    t->init_std = init_std;
    m->n_params += t->numel;
}

void model_init_weights(Model *m, uint64_t seed)
{
    for (int k = 0; k < m->n_tensors; k++) {
        const ParamInfo *t = &m->tensors[k];
        float *p = m->params + t->offset;
        /* keyed by the GLOBAL element index, so a shard can generate its slice */
        for (size_t i = 0; i < t->numel; i++) {
            if (t->init_std > 0)
                p[i] = t->init_std * philox_normal(seed, RNG_INIT, t->offset + i);
            else
                p[i] = t->init_std < 0 ? 1.0f : 0.0f;
        }
    }
}

int model_init(Model *m, const ModelConfig *cfg, int max_batch, uint64_t seed, Err *e)
{
    memset(m, 0, sizeof *m);
    if (model_config_validate(cfg, e)) return -1;
    if (max_batch < 1) return err_set(e, "batch %d: must be at least 1", max_batch);
    m->cfg = *cfg;
    m->max_batch = max_batch;
    m->tensors = calloc(MAX_TENSORS, sizeof *m->tensors);
    if (!m->tensors) return err_set(e, "out of memory for the tensor table");
    int rc = cfg->kind == MODEL_GPT ? gpt_build(m, e) : mlp_build(m, e);
    if (rc) {
        model_free(m);
        return -1;
    }
    model_init_weights(m, seed);
    return 0;
}

void model_free(Model *m)
{
    if (m->gpt) gpt_free(m);
    if (m->mlp) mlp_free(m);
    free(m->params);
    free(m->grads);
    free(m->tensors);
    memset(m, 0, sizeof *m);
}

double model_forward(Model *m, const int *inputs, const int *targets, int B)
{
    if (m->cfg.kind == MODEL_GPT) return gpt_forward(m, inputs, targets, B, m->cfg.seq_len);
    return mlp_forward_tokens(m, inputs, targets, B);
}

void model_backward(Model *m, const int *inputs, const int *targets, int B, float grad_scale)
{
    if (m->cfg.kind == MODEL_GPT)
        gpt_backward(m, inputs, targets, B, grad_scale);
    else
        mlp_backward_tokens(m, inputs, targets, B, grad_scale);
}

void model_zero_grad(Model *m) { memset(m->grads, 0, m->n_params * sizeof(float)); }

int model_preds_per_seq(const ModelConfig *cfg)
{
    return cfg->kind == MODEL_GPT ? cfg->seq_len : 1;
}

double model_train_flops_per_seq(const Model *m)
{
    const ModelConfig *c = &m->cfg;
    if (c->kind == MODEL_MLP) return 6.0 * (double)m->n_params;
    /* 6 N per token for the matmuls plus 12 L C T per token for attention
     * (the usual Kaplan/PaLM count; position embeddings are no FLOPs but
     * are small) */
    double per_token = 6.0 * (double)m->n_params + 12.0 * c->n_layer * c->n_embd * c->seq_len;
    return per_token * c->seq_len;
}

const ParamInfo *model_find_tensor(const Model *m, const char *name)
{
    for (int k = 0; k < m->n_tensors; k++)
        if (!strcmp(m->tensors[k].name, name)) return &m->tensors[k];
    return NULL;
}
