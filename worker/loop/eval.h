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

/* The sum of fn over global batches 0..n_batches-1 of val, each as
 * loader_batch gives this rank its slice; inputs/targets hold one slice. */
double eval_loss_sum(const Loader *val, int n_batches, EvalBatchFn fn, void *ctx, int *inputs,
                     int *targets);

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
int eval_mean_loss(Model *m, const Loader *val, uint64_t n_windows, EvalResult *r, Err *e);

#endif
