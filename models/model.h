#ifndef MPITRAIN_MODEL_H
#define MPITRAIN_MODEL_H
/* A model = a table of named parameter tensors carved out of ONE contiguous
 * float buffer (and the same carving of the gradient buffer), laid out in
 * canonical order block by block: block 0 = embedding (GPT) / input layer
 * (MLP), blocks 1..L = layers, block L+1 = final norm + head. A pipeline
 * stage owns a contiguous block range; each tensor records its full shape
 * and how tensor parallelism would split it. What a model is before it is
 * built (its configuration, shards, family description and counts) is
 * models/arch.h; this file builds and runs it. */
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"
#include "models/arch.h"

typedef enum { TP_REPLICATED = 0, TP_COLUMN = 1, TP_ROW = 2 } TpSplit;

#define MODEL_MAX_NAME 48
typedef struct {
    char name[MODEL_MAX_NAME];
    int ndim;
    int shape[2];        /* full (unsharded) shape; ndim 1 uses shape[0], shape[1] = 1 */
    int local_shape[2];  /* this process's tensor-parallel slice */
    size_t offset;       /* in floats, into this process's params/grads */
    size_t numel;        /* local elements */
    size_t live;         /* the leading local elements a forward reads: numel, but
                            for wpe only its first seq_len rows (the others get no
                            gradient and no zeroth-order step) */
    size_t global_offset; /* where the FULL tensor starts in the canonical flat order */
    int block;           /* owning block, 0..n_blocks-1 */
    int decay;           /* AdamW weight decay applies (matrices, not biases/norms) */
    TpSplit split;
    int groups;          /* column-parallel packing: 3 for qkv, else 1 */
    int tied_copy;       /* a second copy of a tied tensor (the head's wte on the
                            last pipeline stage): not counted twice, not saved twice */
    float init_std;      /* > 0: normal(0, std); 0: zeros; < 0: ones */
    float init_bound;    /* > 0: uniform(-bound, bound) instead (LoRA's A, as PEFT's
                            Kaiming-uniform), from its own stream */
} ParamInfo;

/* Tensor ids at and above this are the frozen base's (Model.base). */
#define MODEL_BASE_ID (1 << 28)

typedef struct Model Model;

/* Where a forward pass reads its weights (model_set_weight_view). A view
 * serves tensor k's local elements [first, first + n) as this pass should
 * see them: a pointer into params when they are unchanged, or dst (n
 * floats of the model's view scratch) filled. Zeroth-order training
 * perturbs this way, block by block, and never writes params. */
typedef const float *(*WeightViewFn)(void *ctx, const Model *m, int k, size_t first, size_t n,
                                     float *dst);

struct Model {
    ModelConfig cfg;
    ModelShard shard;
    int n_blocks;           /* of the whole model */
    int n_tensors;
    ParamInfo *tensors;
    int tensors_cap;        /* allocated entries of tensors (it grows) */
    int tensors_failed;     /* growing the table ran out of memory */
    size_t n_params;        /* held by this process */
    size_t global_params;   /* of the whole, unsharded model */
    float *params;
    float *grads;
    /* LoRA (cfg.lora_rank > 0): the frozen base weights, in a table and a
     * buffer of their own, reached through tensor ids MODEL_BASE_ID + k
     * (model_tensor). The table above (tensors, params, grads) then holds
     * only the adapters, so every optimizer, method, reduction and
     * checkpoint sees what trains and nothing else: none can update,
     * perturb, reduce or store the base by mistake. Empty (n_tensors 0)
     * when every weight trains. */
    struct {
        ParamInfo *tensors;
        int n_tensors, cap;
        size_t n_params, global_params;
        float *params;
    } base;
    int declaring_base;     /* the builder's next tensors go to base */
    int adapters_merged;    /* model_merge_adapters ran: the base holds them */
    /* LoRA dropout (cfg.lora_dropout > 0): the next forward drops the
     * adapters' input elements by a mask drawn from dropout_key and each
     * element's global token row (dropout_row0 + its row in the batch),
     * column, layer and linear: every layout draws the single rank's mask,
     * and the backward (or zeroth-order training's second forward, given
     * the same key) draws it again. A forward consumes the key (sets it to
     * 0), so a forward nobody keyed (evaluation, sampling) drops nothing. */
    uint64_t dropout_key;
    uint64_t dropout_row0;
    /* Documents packed in a row (ops.h DOC POSITIONS): the next forward's
     * tokens' positions in their documents, B*T ints. The forward keeps a
     * copy for its backward and consumes the pointer (sets it to NULL), as
     * it does dropout_key: a forward given none (a task's scoring, sampling)
     * attends across its whole row. An mlp has no positions to reset. */
    const int *positions;
    int max_batch;          /* activations are sized for this many sequences */
    size_t act_floats;      /* activation memory, for accounting */
    const ModelArch *arch;  /* chosen once from cfg.kind; its ops build and run it */
    void *state;            /* the architecture's own (activations, indices) */
    /* Called by backward as soon as every gradient of `block` is final
     * (blocks finish in descending order), so a caller can start reducing
     * them while backward goes on. NULL = no calls. */
    void (*on_block_grads)(void *ctx, int block);
    void *hook_ctx;
    /* Tensor parallelism: sums a partial activation or input gradient over
     * the tensor-parallel group, in place. Needed when shard.tp_size > 1. */
    void (*tp_allreduce)(void *ctx, float *buf, size_t n);
    void *tp_ctx;
    /* The weight view in force (NULL: the forward reads params) and the
     * scratch it fills: one block's worth (view_floats), not a model's. */
    WeightViewFn view;
    void *view_ctx;
    float *view_scratch;
    size_t view_floats;
};

/* A family's building and running functions (ModelArch.ops). */
struct ModelOps {
    /* declare allocates the state and declares every tensor (model.c then
     * allocates params and grads from the table); alloc_acts sizes the
     * activations; free releases the state */
    int (*declare)(Model *m, Err *e);
    int (*alloc_acts)(Model *m, Err *e);
    void (*free)(Model *m);

    double (*forward)(Model *m, int slot, const int *inputs, const int *targets, int B);
    void (*backward)(Model *m, int slot, const int *inputs, const int *targets, int B,
                     float grad_scale, const float *dout);

    /* pipeline stage boundary (NULL: the architecture has no stages) */
    float *(*stage_input)(Model *m, int slot);
    const float *(*stage_output)(const Model *m, int slot);
    const float *(*stage_dinput)(const Model *m);

    /* sampling (NULL: cannot sample) */
    const float *(*next_logits)(Model *m, const int *tokens, int t);
    /* LoRA: model_merge_adapters (NULL: the family has no adapters) */
    void (*merge_adapters)(Model *m);
};

/* Allocates params, grads and activations for max_batch sequences and
 * initializes the weights deterministically from seed (the whole model). */
int model_init(Model *m, const ModelConfig *cfg, int max_batch, uint64_t seed, Err *e);
/* The same for one shard: weights equal the matching slice of the whole
 * model's (initialization is keyed by each element's global index). */
int model_init_shard(Model *m, const ModelConfig *cfg, const ModelShard *shard, int max_batch,
                     uint64_t seed, Err *e);
/* The same with every weight left zero, for a caller that loads them all
 * (a checkpoint, an --init-from source): the random init of 124M weights
 * takes seconds. */
int model_build_shard(Model *m, const ModelConfig *cfg, const ModelShard *shard, int max_batch,
                      Err *e);
/* The tensor table of a shard (names, shapes, offsets, blocks) with no
 * buffers allocated: for questions about the layout (which tensors a
 * --zo-params spec selects). model_free releases it. */
int model_declare_shard(Model *m, const ModelConfig *cfg, const ModelShard *shard, Err *e);
/* Tensor id's entry (an index into tensors, or MODEL_BASE_ID + k for the
 * base's), its weights (params or the base's) and its gradient (NULL for
 * a frozen base tensor, or without a gradient buffer). */
const ParamInfo *model_tensor(const Model *m, int id);
float *model_tensor_data(const Model *m, int id);
float *model_tensor_grad(const Model *m, int id);
static inline int model_is_base(int id) { return id >= MODEL_BASE_ID; }
/* The weights a pretrained source holds (what --init-from loads and an
 * export writes): the base's table under LoRA, else the trained one. */
typedef struct {
    ParamInfo *tensors;
    int n_tensors;
    float *params;
    size_t n_params;
    int base;            /* ids are MODEL_BASE_ID + index */
} WeightTable;
WeightTable model_weight_table(const Model *m);
/* Canonical (global) flat index of local element i of tensor t. */
size_t model_global_index(const Model *m, const ParamInfo *t, size_t i);
void model_free(Model *m);
/* Every weight from seed (the base's too); model_init_trainable: only the
 * trained tensors (LoRA's adapters after a base is loaded). */
void model_init_weights(Model *m, uint64_t seed);
void model_init_trainable(Model *m, uint64_t seed);

/* Forward over B sequences (inputs/targets: B*T ints for gpt; B*seq_len for
 * mlp, whose target is the token after each context). Returns the SUM of the
 * per-prediction losses and keeps the activations for backward. */
double model_forward(Model *m, const int *inputs, const int *targets, int B);
/* Accumulates d(loss_sum * grad_scale)/dparams into grads. It consumes the
 * activations of the forward before it (a GPT's logits become their
 * gradient in place): run forward again before another backward. */
void model_backward(Model *m, const int *inputs, const int *targets, int B, float grad_scale);

/* Installs a weight view for the forward passes that follow (fn NULL: back
 * to params). The first install allocates the view scratch, the largest
 * block's worth (cost_view_floats); it stays until model_free. */
int model_set_weight_view(Model *m, WeightViewFn fn, void *ctx, Err *e);
/* Tensor k's local elements [first, first + n) as this forward sees them:
 * params, or through the view into *scratch, which then moves past them. */
const float *model_weights(const Model *m, int k, size_t first, size_t n, float **scratch);

/* Pipeline stages. A stage that does not own block 0 reads its input
 * activations (B*T*C floats) from model_stage_input(slot), written there by
 * the caller; one that does not own the head leaves its output in
 * model_stage_output(slot) and returns 0 as loss. Its backward takes the
 * gradient of its output in dout, and leaves the gradient of its input in
 * model_stage_dinput() (until the next backward). An architecture without
 * stages (mlp) aborts with a message if asked for stage I/O. */
double model_forward_slot(Model *m, int slot, const int *inputs, const int *targets, int B);
void model_backward_slot(Model *m, int slot, const int *inputs, const int *targets, int B,
                         float grad_scale, const float *dout);
float *model_stage_input(Model *m, int slot);
const float *model_stage_output(const Model *m, int slot);
const float *model_stage_dinput(const Model *m);
void model_zero_grad(Model *m);
/* Logits at the last position of a single sequence of length t (gpt) for
 * sampling; returns a pointer into the activations (vocab floats), or NULL
 * when t is outside 1..seq_len or the model is not a GPT. */
const float *model_next_logits(Model *m, const int *tokens, int t);
/* The trained tensor called name (NULL: none; a frozen base tensor is not
 * one: model_find_id finds both). */
const ParamInfo *model_find_tensor(const Model *m, const char *name);
/* The id of the tensor called name, trained or base; -1 when none. */
int model_find_id(const Model *m, const char *name);
/* LoRA: adds each adapter into its frozen weight, W += (alpha / r) B A, and
 * zeroes B, so the model computes the same with its adapters out of the
 * way (the KV-cache decoder and a merged export read the weights alone).
 * A whole model only (no tp or pp split); -1 with a message otherwise. A
 * model without adapters is left as it is. */
int model_merge_adapters(Model *m, Err *e);
/* Index of the first NaN or infinity in v[0..n), n when every value is
 * finite: loaders refuse such weights (every output would be NaN). */
size_t floats_first_nonfinite(const float *v, size_t n);
/* Flat offset of the first parameter of each block; block_lo[n_blocks] =
 * n_params (the array has n_blocks + 1 entries). */
void model_block_offsets(const Model *m, size_t *block_lo);
/* Internal: fires the gradient hook. */
void model_block_done(Model *m, int block);

/* Float-feature MLP interface (the synthetic classification task): x is
 * (B, in_dim), labels (B). */
double mlp_forward_features(Model *m, const float *x, const int *labels, int B);
void mlp_backward_features(Model *m, const float *x, const int *labels, int B, float grad_scale);

/* Sizes, memory and FLOPs without building: models/cost.h. */

/* Tensor-table construction helpers used by the builders: every tensor of
 * the whole model is declared in canonical order; the ones in the shard's
 * blocks are allocated, as their tensor-parallel slice. Returns the table
 * index, or -1 when the shard does not hold it. */
int model_add_tensor(Model *m, const char *name, int ndim, int d0, int d1, int block,
                     int decay, TpSplit split, int groups, float init_std);
/* A second copy (tied weights) of the tensor declared at global_offset,
 * owned by `block`: allocated when the shard holds that block. */
int model_add_tied_copy(Model *m, const char *name, int ndim, int d0, int d1, int block,
                        int decay, float init_std, size_t global_offset);
void model_tp_allreduce(Model *m, float *buf, size_t n);
void *model_calloc(size_t n, size_t size);

#endif
