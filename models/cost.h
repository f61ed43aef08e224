#ifndef MPITRAIN_COST_H
#define MPITRAIN_COST_H
/* The cost model: how many parameters, how many bytes and how many FLOPs a
 * configuration takes, answered without building it. The plan's memory
 * check, the planner, the optimizer and the GFLOP/s reports all ask here,
 * so the estimate they act on is the one the model actually allocates
 * (tests/unit/test_cost.c holds the two together). Each architecture's own
 * counts sit next to its builder (models/gpt.c, models/mlp.c) and are
 * reached through its ModelArch table; this file composes them. The layout
 * comes in as plain numbers: no MPI down here. */
#include <stddef.h>
#include "models/arch.h"

/* Trained parameters of the whole model, a tied tensor counted once
 * (= Model.global_params: under LoRA the adapters). 0 for an unknown kind. */
size_t cost_param_count(const ModelConfig *c);
/* Floats of parameters one shard trains (= Model.n_params), including a
 * tied copy it keeps for itself (the GPT head on a later pipeline stage):
 * every weight, or under LoRA the adapters. */
size_t cost_shard_params(const ModelConfig *c, const ModelShard *sh);
/* Floats of frozen weights one shard holds (= Model.base.n_params): LoRA's
 * base, else 0. */
size_t cost_shard_base_params(const ModelConfig *c, const ModelShard *sh);
/* Activation floats of one shard for micro-batches of B sequences, all its
 * pipeline slots (= Model.act_floats). */
size_t cost_act_floats(const ModelConfig *c, const ModelShard *sh, int B);

/* Floats of the weight view's scratch (model_set_weight_view): the largest
 * block the shard runs, not the model (= Model.view_floats once installed). */
size_t cost_view_floats(const ModelConfig *c, const ModelShard *sh, int B);

/* Model FLOPs per token of one forward pass over the whole model (matmuls
 * 2 per weight, plus attention); training = forward + backward = 3 times
 * that (backward computes two products per forward one). The figures the
 * GFLOP/s reports use. */
double cost_fwd_flops_per_token(const ModelConfig *c);
double cost_train_flops_per_token(const ModelConfig *c);

/* Where one rank sits, as numbers. */
typedef struct {
    ModelShard shard; /* tp slice, block range, pipeline slots, forward_only */
    int micro_batch;  /* sequences per forward */
    int dp;           /* data-parallel ranks; ZeRO shards over them */
    int zero;         /* 0; 1 = optimizer state sharded; 2 = also a gradient shard */
    int moments;      /* the optimizer's state buffers per parameter */
} CostLayout;

/* Bytes one rank needs; total is the sum of the parts. */
typedef struct {
    size_t weights, grads, optim, acts, view, total; /* view: forward-only shards */
} CostMemory;

CostMemory cost_memory(const ModelConfig *c, const CostLayout *l);

#endif
