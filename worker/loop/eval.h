#ifndef MPITRAIN_EVAL_H
#define MPITRAIN_EVAL_H
/* Validation loss: the batches the trainer's periodic evaluation reads and
 * the windows `mpitrain eval` reads come from this one place, so the two
 * report the same number for the same checkpoint and windows. */
#include <stdint.h>
#include "base/err.h"
#include "models/model.h"
#include "worker/data/data.h"

/* The loss of one batch (inputs/targets as the loader filled them), SUMMED
 * over its predictions: model_forward, or a pipeline stage's share. */
typedef double (*EvalBatchFn)(void *ctx, const int *inputs, const int *targets);

/* Where a batch is loaded: inputs and targets, and its doc positions
 * (models/ops.h DOC POSITIONS) when pos is not NULL; one slice each. */
typedef struct {
    int *inputs, *targets, *pos;
} EvalBuffers;

/* The sum of fn over global batches 0..n_batches-1 of val, each as
 * loader_batch gives this rank its slice, loaded into buf (fn's ctx reads
 * buf->pos if it needs them). */
double eval_loss_sum(const Loader *val, int n_batches, EvalBatchFn fn, void *ctx,
                     const EvalBuffers *buf);

typedef struct {
    double mean_loss;   /* per prediction (a gpt predicts every token of a window) */
    uint64_t windows;   /* sequences evaluated */
    uint64_t tokens;    /* predictions: windows * T (a masked file: those it counts) */
} EvalResult;

/* One process, a whole model built for at least B sequences: the mean loss
 * over validation windows 0..n_windows-1 of val, in order, B at a time
 * (the last batch may be shorter). val must read batches of B on one rank
 * (loader_init(..., SPLIT_VAL, T, B, 0, 1, e)), so that its first batches
 * are the trainer's first batches at a global batch of B. */
/* doc_attention: examples in a window stay apart (train --doc-attention). */
int eval_mean_loss(Model *m, const Loader *val, uint64_t n_windows, int doc_attention,
                   EvalResult *r, Err *e);

#endif
