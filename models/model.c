#include "models/model.h"

#include "models/cost.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/sysinfo.h"
#include "models/philox.h"
#include "sharding/tpsplit.h"

void *model_calloc(size_t n, size_t size)
{
    /* 64-byte alignment for AVX-512 loads in BLAS and our loops */
    size_t bytes = n * size;
    bytes = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p) memset(p, 0, bytes ? bytes : 64);
    return p;
}

static int holds_block(const Model *m, int block)
{
    return block >= m->shard.first_block && block <= m->shard.last_block;
}


/* One of the model's two tensor tables: the trained one (tensors, params)
 * or the frozen base's. */
typedef struct {
    ParamInfo **tensors;
    int *n, *cap;
    size_t *n_params, *global_params;
} TableRef;

static TableRef table_ref(Model *m, int base)
{
    if (base)
        return (TableRef){&m->base.tensors, &m->base.n_tensors, &m->base.cap, &m->base.n_params,
                          &m->base.global_params};
    return (TableRef){&m->tensors, &m->n_tensors, &m->tensors_cap, &m->n_params, &m->global_params};
}

/* Room for one more tensor: the table doubles as the builder declares
 * tensors, so any accepted --layers fits. A failure is remembered (the
 * build checks tensors_ok once after the declarations). */
static int reserve_tensor(Model *m, TableRef t)
{
    if (m->tensors_failed) return -1;
    if (*t.n < *t.cap) return 0;
    int cap = *t.cap ? 2 * (*t.cap < INT_MAX / 2 ? *t.cap : 0) : 64;
    ParamInfo *p = cap ? realloc(*t.tensors, (size_t)cap * sizeof *p) : NULL;
    if (!p) {
        m->tensors_failed = 1;
        return -1;
    }
    *t.tensors = p;
    *t.cap = cap;
    return 0;
}

static int tensors_ok(const Model *m, Err *e)
{
    if (!m->tensors_failed) return 0;
    return err_set(e, "out of memory for the tensor table (%d tensors declared)",
                   m->n_tensors + m->base.n_tensors);
}

/* Appends to the table the builder declares into (m->declaring_base);
 * returns the tensor's id. */
static int append_tensor(Model *m, const char *name, int ndim, int d0, int d1, int block,
                         int decay, TpSplit split, int groups, float init_std, size_t global)
{
    TableRef tab = table_ref(m, m->declaring_base);
    if (reserve_tensor(m, tab)) return -1;
    ParamInfo *t = &(*tab.tensors)[*tab.n];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim > 1 ? d1 : 1;
    TpSlice sl = {(SplitKind)split, groups, t->shape[0], t->shape[1], m->shard.tp_rank,
                  m->shard.tp_size};
    t->local_shape[0] = tp_local_rows(&sl);
    t->local_shape[1] = tp_local_cols(&sl);
    t->numel = (size_t)t->local_shape[0] * t->local_shape[1];
    t->live = t->numel;
    t->offset = *tab.n_params;
    t->global_offset = global;
    t->block = block;
    t->decay = decay;
    t->split = split;
    t->groups = groups;
    t->init_std = init_std;
    *tab.n_params += t->numel;
    return (m->declaring_base ? MODEL_BASE_ID : 0) + (*tab.n)++;
}

int model_add_tensor(Model *m, const char *name, int ndim, int d0, int d1, int block,
                     int decay, TpSplit split, int groups, float init_std)
{
    TableRef tab = table_ref(m, m->declaring_base);
    size_t global = *tab.global_params;
    *tab.global_params += (size_t)d0 * (ndim > 1 ? (size_t)d1 : 1);
    if (!holds_block(m, block)) return -1;
    return append_tensor(m, name, ndim, d0, d1, block, decay, split, groups, init_std, global);
}

int model_add_tied_copy(Model *m, const char *name, int ndim, int d0, int d1, int block,
                        int decay, float init_std, size_t global_offset)
{
    if (!holds_block(m, block)) return -1;
    int k = append_tensor(m, name, ndim, d0, d1, block, decay, TP_REPLICATED, 1, init_std,
                          global_offset);
    if (k >= 0) ((ParamInfo *)model_tensor(m, k))->tied_copy = 1;
    return k;
}

const ParamInfo *model_tensor(const Model *m, int id)
{
    return model_is_base(id) ? &m->base.tensors[id - MODEL_BASE_ID] : &m->tensors[id];
}

float *model_tensor_data(const Model *m, int id)
{
    return (model_is_base(id) ? m->base.params : m->params) + model_tensor(m, id)->offset;
}

float *model_tensor_grad(const Model *m, int id)
{
    return model_is_base(id) || !m->grads ? NULL : m->grads + m->tensors[id].offset;
}

WeightTable model_weight_table(const Model *m)
{
    if (m->base.n_tensors)
        return (WeightTable){m->base.tensors, m->base.n_tensors, m->base.params, m->base.n_params, 1};
    return (WeightTable){m->tensors, m->n_tensors, m->params, m->n_params, 0};
}

size_t model_global_index(const Model *m, const ParamInfo *t, size_t i)
{
    TpSlice sl = {(SplitKind)t->split, t->groups, t->shape[0], t->shape[1], m->shard.tp_rank,
                  m->shard.tp_size};
    return t->global_offset + tp_global_index(&sl, i);
}

/* Tensor t's local elements into p from seed, keyed by each element's
 * GLOBAL index: a shard generates its slice of the whole model's. */
static void init_tensor(const Model *m, const ParamInfo *t, float *p, uint64_t seed)
{
    for (size_t i = 0; i < t->numel; i++) {
        uint64_t g = model_global_index(m, t, i);
        if (t->init_bound > 0)
            p[i] = t->init_bound * (float)(2.0 * philox_uniform(seed, RNG_LORA_INIT, g) - 1.0);
        else if (t->init_std > 0)
            p[i] = t->init_std * philox_normal(seed, RNG_INIT, g);
        else
            p[i] = t->init_std < 0 ? 1.0f : 0.0f;
    }
}

void model_init_trainable(Model *m, uint64_t seed)
{
    for (int k = 0; k < m->n_tensors; k++)
        init_tensor(m, &m->tensors[k], m->params + m->tensors[k].offset, seed);
}

void model_init_weights(Model *m, uint64_t seed)
{
    /* the base draws what the same model without adapters would */
    for (int k = 0; k < m->base.n_tensors; k++)
        init_tensor(m, &m->base.tensors[k], m->base.params + m->base.tensors[k].offset, seed);
    model_init_trainable(m, seed);
}

void model_tp_allreduce(Model *m, float *buf, size_t n)
{
    if (m->shard.tp_size > 1) m->tp_allreduce(m->tp_ctx, buf, n);
}

/* A configuration (from flags or a manifest) that cannot fit in this
 * machine's memory is an error before anything is allocated. */
static int check_fits_in_memory(const ModelConfig *cfg, const ModelShard *shard, int B, Err *e)
{
    double have = (double)sys_total_bytes();
    if (have <= 0) return 0;
    /* the model alone: no optimizer state, no data parallelism */
    CostLayout l = {*shard, B, 1, 0, 0};
    double need = (double)cost_memory(cfg, &l).total;
    if (need <= have) return 0;
    return err_set(e, "the model (%d layers x %d wide, vocab %d, seq %d: %.3g parameters) needs "
                      "about %.3g GB, more than this machine's %.3g GB of memory",
                   cfg->n_layer, cfg->n_embd, cfg->vocab, cfg->seq_len,
                   (double)cost_param_count(cfg), need / 1e9, have / 1e9);
}

int model_init(Model *m, const ModelConfig *cfg, int max_batch, uint64_t seed, Err *e)
{
    ModelShard whole = model_shard_whole(0);
    return model_init_shard(m, cfg, &whole, max_batch, seed, e);
}

/* The shard's fields and the architecture's tensor table, no buffers. */
static int declare(Model *m, const ModelConfig *cfg, const ModelShard *shard, Err *e)
{
    m->cfg = *cfg;
    m->arch = model_arch(cfg->kind);
    m->shard = *shard;
    m->n_blocks = model_n_blocks(cfg);
    if (m->shard.last_block < 0) m->shard.last_block = m->n_blocks - 1;
    if (m->shard.slots < 1) m->shard.slots = 1;
    return m->arch->ops->declare(m, e) || tensors_ok(m, e) ? -1 : 0;
}

int model_declare_shard(Model *m, const ModelConfig *cfg, const ModelShard *shard, Err *e)
{
    memset(m, 0, sizeof *m);
    if (model_config_validate(cfg, e) || model_shard_validate(cfg, shard, e)) return -1;
    if (declare(m, cfg, shard, e)) {
        model_free(m);
        return -1;
    }
    return 0;
}

/* The buffers the declared tensors are carved from are the same for every
 * architecture, so they are allocated here. */
static int build(Model *m, Err *e)
{
    m->params = model_calloc(m->n_params, sizeof(float));
    if (!m->shard.forward_only) m->grads = model_calloc(m->n_params, sizeof(float));
    if (m->base.n_tensors) m->base.params = model_calloc(m->base.n_params, sizeof(float));
    if (!m->params || (!m->grads && !m->shard.forward_only) ||
        (m->base.n_tensors && !m->base.params))
        return err_set(e, "out of memory: %zu parameters", m->n_params + m->base.n_params);
    return m->arch->ops->alloc_acts(m, e);
}

int model_init_shard(Model *m, const ModelConfig *cfg, const ModelShard *shard, int max_batch,
                     uint64_t seed, Err *e)
{
    if (model_build_shard(m, cfg, shard, max_batch, e)) return -1;
    model_init_weights(m, seed);
    return 0;
}

int model_build_shard(Model *m, const ModelConfig *cfg, const ModelShard *shard, int max_batch,
                      Err *e)
{
    memset(m, 0, sizeof *m);
    if (model_config_validate(cfg, e) || model_shard_validate(cfg, shard, e)) return -1;
    if (max_batch < 1) return err_set(e, "batch %d: must be at least 1", max_batch);
    if (check_fits_in_memory(cfg, shard, max_batch, e)) return -1;
    m->max_batch = max_batch;
    if (declare(m, cfg, shard, e) || build(m, e)) {
        model_free(m);
        return -1;
    }
    return 0;
}

void model_free(Model *m)
{
    if (m->arch && m->state) m->arch->ops->free(m);
    free(m->view_scratch);
    free(m->params);
    free(m->grads);
    free(m->tensors);
    free(m->base.params);
    free(m->base.tensors);
    memset(m, 0, sizeof *m);
}

/* Batches larger than the activations were sized for are a caller bug:
 * stop loudly rather than overrun the buffers. */
static void check_batch(const Model *m, int B)
{
    if (B < 1 || B > m->max_batch) {
        fprintf(stderr, "mpitrain: internal error: batch %d outside 1..%d\n", B, m->max_batch);
        abort();
    }
}

/* Doc positions the kernels can trust (ops.h DOC POSITIONS): each row
 * starts at 0 and every later one is 0 or the previous + 1, so no query
 * reaches before its row. Anything else is a caller's bug. */
static void check_positions(const Model *m, int B)
{
    const int T = m->cfg.seq_len, *p = m->positions;
    for (int i = 0; p && i < B * T; i++)
        if (p[i] != 0 && (i % T == 0 || p[i] != p[i - 1] + 1)) {
            fprintf(stderr, "mpitrain: internal error: doc position %d at row %d, token %d\n",
                    p[i], i / T, i % T);
            abort();
        }
}

double model_forward_slot(Model *m, int slot, const int *inputs, const int *targets, int B)
{
    check_batch(m, B);
    check_positions(m, B);
    double loss = m->arch->ops->forward(m, slot, inputs, targets, B);
    m->positions = NULL;
    return loss;
}

void model_backward_slot(Model *m, int slot, const int *inputs, const int *targets, int B,
                         float grad_scale, const float *dout)
{
    check_batch(m, B);
    m->arch->ops->backward(m, slot, inputs, targets, B, grad_scale, dout);
}

double model_forward(Model *m, const int *inputs, const int *targets, int B)
{
    return model_forward_slot(m, 0, inputs, targets, B);
}

void model_backward(Model *m, const int *inputs, const int *targets, int B, float grad_scale)
{
    model_backward_slot(m, 0, inputs, targets, B, grad_scale, NULL);
}

/* ---- pipeline stage boundary ------------------------------------------------ */

/* Stage I/O on an architecture without stages is a caller bug (the plan
 * refuses --pp > 1 for it): stop with a message, not a wild pointer. */
static void no_stages(const Model *m, const char *what)
{
    fprintf(stderr, "mpitrain: internal error: %s: --model %s has no pipeline stages\n", what,
            m->arch->name);
    abort();
}

float *model_stage_input(Model *m, int slot)
{
    if (!m->arch->ops->stage_input) no_stages(m, "model_stage_input");
    return m->arch->ops->stage_input(m, slot);
}

const float *model_stage_output(const Model *m, int slot)
{
    if (!m->arch->ops->stage_output) no_stages(m, "model_stage_output");
    return m->arch->ops->stage_output(m, slot);
}

const float *model_stage_dinput(const Model *m)
{
    if (!m->arch->ops->stage_dinput) no_stages(m, "model_stage_dinput");
    return m->arch->ops->stage_dinput(m);
}

const float *model_next_logits(Model *m, const int *tokens, int t)
{
    return m->arch->ops->next_logits ? m->arch->ops->next_logits(m, tokens, t) : NULL;
}

int model_set_weight_view(Model *m, WeightViewFn fn, void *ctx, Err *e)
{
    if (fn && !m->view_scratch) {
        size_t n = m->arch->view_floats(&m->cfg, &m->shard, m->max_batch);
        m->view_scratch = model_calloc(n, sizeof(float));
        if (!m->view_scratch)
            return err_set(e, "out of memory for the weight view's scratch (%.1f MB)", n * 4.0 / 1e6);
        m->view_floats = n;
    }
    m->view = fn;
    m->view_ctx = ctx;
    return 0;
}

const float *model_weights(const Model *m, int k, size_t first, size_t n, float **scratch)
{
    const float *p = model_tensor_data(m, k) + first;
    if (!m->view || model_is_base(k)) return p; /* a view changes what trains */
    float *dst = *scratch;
    *scratch += (n + 15) / 16 * 16;
    return m->view(m->view_ctx, m, k, first, n, dst);
}

void model_zero_grad(Model *m)
{
    if (m->grads) memset(m->grads, 0, m->n_params * sizeof(float));
}

const ParamInfo *model_find_tensor(const Model *m, const char *name)
{
    for (int k = 0; k < m->n_tensors; k++)
        if (!strcmp(m->tensors[k].name, name)) return &m->tensors[k];
    return NULL;
}

int model_find_id(const Model *m, const char *name)
{
    for (int k = 0; k < m->n_tensors; k++)
        if (!strcmp(m->tensors[k].name, name)) return k;
    for (int k = 0; k < m->base.n_tensors; k++)
        if (!strcmp(m->base.tensors[k].name, name)) return MODEL_BASE_ID + k;
    return -1;
}

int model_merge_adapters(Model *m, Err *e)
{
    if (!m->base.n_tensors) return 0;
    const ModelShard *s = &m->shard;
    if (s->tp_size > 1 || s->first_block != 0 || s->last_block != m->n_blocks - 1)
        return err_set(e, "merging LoRA adapters needs the whole model, not a tp or pp shard");
    if (!m->arch->ops->merge_adapters)
        return err_set(e, "--model %s has no adapters to merge", m->arch->name);
    m->arch->ops->merge_adapters(m);
    m->adapters_merged = 1;
    return 0;
}

size_t floats_first_nonfinite(const float *v, size_t n)
{
    /* the exponent bits, all ones: what isfinite tests, but exact under any
     * floating-point flags */
    const uint32_t *bits = (const uint32_t *)(const void *)v;
    for (size_t i = 0; i < n; i++)
        if ((bits[i] & 0x7f800000u) == 0x7f800000u) return i;
    return n;
}

void model_block_offsets(const Model *m, size_t *block_lo)
{
    for (int b = 0; b <= m->n_blocks; b++) block_lo[b] = m->n_params;
    for (int k = m->n_tensors - 1; k >= 0; k--) block_lo[m->tensors[k].block] = m->tensors[k].offset;
    /* a block without tensors starts where the next one does */
    for (int b = m->n_blocks - 1; b >= 0; b--)
        if (block_lo[b] > block_lo[b + 1]) block_lo[b] = block_lo[b + 1];
}

void model_block_done(Model *m, int block)
{
    if (m->on_block_grads) m->on_block_grads(m->hook_ctx, block);
}
