#ifndef MPITRAIN_ARCH_H
#define MPITRAIN_ARCH_H
/* An architecture is one table of functions (models/gpt.c, models/mlp.c).
 * models/model.c picks the table once from cfg->kind and never asks the
 * kind again, so adding an architecture is one new table plus its line in
 * model_arch(). Optional entries are NULL; the generic wrappers in
 * model.c turn a missing one into a clear refusal instead of a crash. */
#include "models/model.h"

struct ModelArch {
    const char *name; /* as in --model */

    /* ---- configuration (architecture-specific checks only; model.c does
     * the shared ranges first) */
    int (*validate)(const ModelConfig *c, Err *e);
    int (*validate_shard)(const ModelConfig *c, const ModelShard *sh, Err *e);
    int (*n_blocks)(const ModelConfig *c);
    int (*preds_per_seq)(const ModelConfig *c);

    /* ---- sizes and costs, without building (models/cost.c composes them
     * into the memory and FLOP estimates; each sits next to the builder
     * whose allocations it must match; shards come normalized: last_block
     * >= 0, slots >= 1) */
    size_t (*shard_params)(const ModelConfig *c, const ModelShard *sh); /* floats held */
    size_t (*act_floats)(const ModelConfig *c, const ModelShard *sh, int B);
    size_t (*view_floats)(const ModelConfig *c, const ModelShard *sh, int B); /* view scratch */
    double (*fwd_flops_per_token)(const ModelConfig *c); /* whole model, one forward */
    void (*block_costs)(const ModelConfig *c, double *cost); /* stage balancing */

    /* ---- building: declare allocates the state and declares every tensor
     * (model.c then allocates params and grads from the table); alloc_acts
     * sizes the activations; free releases the state */
    int (*declare)(Model *m, Err *e);
    int (*alloc_acts)(Model *m, Err *e);
    void (*free)(Model *m);

    /* ---- running */
    double (*forward)(Model *m, int slot, const int *inputs, const int *targets, int B);
    void (*backward)(Model *m, int slot, const int *inputs, const int *targets, int B,
                     float grad_scale, const float *dout);

    /* ---- pipeline stage boundary (NULL: the architecture has no stages) */
    size_t (*boundary_floats)(const ModelConfig *c, int B);
    float *(*stage_input)(Model *m, int slot);
    const float *(*stage_output)(const Model *m, int slot);
    const float *(*stage_dinput)(const Model *m);

    /* ---- sampling (NULL: cannot sample) */
    const float *(*next_logits)(Model *m, const int *tokens, int t);
};

extern const ModelArch GPT_ARCH;
extern const ModelArch MLP_ARCH;

/* The table of an architecture, or NULL when kind names none. */
const ModelArch *model_arch(ModelKind kind);
/* "gpt", "mlp", or "unknown" for a kind no table has (a corrupt manifest). */
const char *model_kind_name(ModelKind kind);

#endif
