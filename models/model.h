#ifndef MPITRAIN_MODEL_H
#define MPITRAIN_MODEL_H
/* A model = a table of named parameter tensors carved out of ONE contiguous
 * float buffer (and the same carving of the gradient buffer), laid out in
 * canonical order block by block: block 0 = embedding (GPT) / input layer
 * (MLP), blocks 1..L = layers, block L+1 = final norm + head. A pipeline
 * stage owns a contiguous block range; each tensor records its full shape
 * and how tensor parallelism would split it. */
#include <stddef.h>
#include <stdint.h>
#include "models/err.h"

typedef enum { MODEL_GPT = 0, MODEL_MLP = 1 } ModelKind;

typedef struct {
    ModelKind kind;
    int n_layer;  /* gpt: transformer blocks; mlp: hidden layers */
    int n_head;   /* gpt only */
    int n_embd;   /* gpt: width C; mlp: hidden width */
    int seq_len;  /* gpt: context T; mlp: context tokens fed as one-hot */
    int vocab;    /* gpt: vocabulary; mlp: classes (and token alphabet) */
    int in_dim;   /* mlp: input features; 0 = seq_len*vocab (one-hot tokens) */
} ModelConfig;

typedef enum { TP_REPLICATED = 0, TP_COLUMN = 1, TP_ROW = 2 } TpSplit;

#define MODEL_MAX_NAME 48
typedef struct {
    char name[MODEL_MAX_NAME];
    int ndim;
    int shape[2];   /* full (unsharded) shape; ndim 1 uses shape[0] */
    size_t offset;  /* in floats, into params/grads */
    size_t numel;
    int block;      /* owning block, 0..n_blocks-1 */
    int decay;      /* AdamW weight decay applies (matrices, not biases/norms) */
    TpSplit split;
    float init_std; /* > 0: normal(0, std); 0: zeros; < 0: ones */
} ParamInfo;

typedef struct GptState GptState;
typedef struct MlpState MlpState;

typedef struct {
    ModelConfig cfg;
    int n_blocks;
    int n_tensors;
    ParamInfo *tensors;
    size_t n_params;
    float *params;
    float *grads;
    int max_batch;          /* activations are sized for this many sequences */
    size_t act_floats;      /* activation memory, for accounting */
    GptState *gpt;
    MlpState *mlp;
    /* Called by backward as soon as every gradient of `block` is final
     * (blocks finish in descending order), so a caller can start reducing
     * them while backward goes on. NULL = no calls. */
    void (*on_block_grads)(void *ctx, int block);
    void *hook_ctx;
} Model;

/* Checks the configuration; the message names the field and the fix. */
int model_config_validate(const ModelConfig *cfg, Err *e);
/* Allocates params, grads and activations for max_batch sequences and
 * initializes the weights deterministically from seed. */
int model_init(Model *m, const ModelConfig *cfg, int max_batch, uint64_t seed, Err *e);
void model_free(Model *m);
void model_init_weights(Model *m, uint64_t seed);

/* Forward over B sequences (inputs/targets: B*T ints for gpt; B*seq_len for
 * mlp, whose target is the token after each context). Returns the SUM of the
 * per-prediction losses and keeps the activations for backward. */
double model_forward(Model *m, const int *inputs, const int *targets, int B);
/* Accumulates d(loss_sum * grad_scale)/dparams into grads. */
void model_backward(Model *m, const int *inputs, const int *targets, int B, float grad_scale);
void model_zero_grad(Model *m);
/* Predictions per sequence that contribute to the loss (T for gpt, 1 for mlp). */
int model_preds_per_seq(const ModelConfig *cfg);
/* Model FLOPs of forward+backward per sequence (6*params*tokens plus
 * attention), the figure GFLOP/s reports use. */
double model_train_flops_per_seq(const Model *m);
/* Logits at the last position of a single sequence of length t (gpt) for
 * sampling; returns a pointer into the activations (vocab floats), or NULL
 * when t is outside 1..seq_len or the model is not a GPT. */
const float *model_next_logits(Model *m, const int *tokens, int t);
const ParamInfo *model_find_tensor(const Model *m, const char *name);
/* Flat offset of the first parameter of each block; block_lo[n_blocks] =
 * n_params (the array has n_blocks + 1 entries). */
void model_block_offsets(const Model *m, size_t *block_lo);
/* Internal: fires the gradient hook. */
void model_block_done(Model *m, int block);

/* Float-feature MLP interface (the synthetic classification task): x is
 * (B, in_dim), labels (B). */
double mlp_forward_features(Model *m, const float *x, const int *labels, int B);
void mlp_backward_features(Model *m, const float *x, const int *labels, int B, float grad_scale);

/* Sizes without building: parameter count and activation floats for a
 * micro-batch of B sequences (the plan's memory estimate). */
size_t model_count_params(const ModelConfig *cfg);
size_t model_act_floats(const ModelConfig *cfg, int B);

/* Internal: the per-architecture builders (models/gpt.c, models/mlp.c). */
int gpt_build(Model *m, Err *e);
size_t gpt_act_floats(const ModelConfig *c, int B);
void gpt_free(Model *m);
double gpt_forward(Model *m, const int *inputs, const int *targets, int B, int T);
void gpt_backward(Model *m, const int *inputs, const int *targets, int B, float grad_scale);
int mlp_build(Model *m, Err *e);
void mlp_free(Model *m);
double mlp_forward_tokens(Model *m, const int *inputs, const int *targets, int B);
void mlp_backward_tokens(Model *m, const int *inputs, const int *targets, int B, float grad_scale);

/* Tensor-table construction helpers used by the builders. */
void model_add_tensor(Model *m, const char *name, int ndim, int d0, int d1, int block,
                      int decay, TpSplit split, float init_std);
void *model_calloc(size_t n, size_t size);

#endif
