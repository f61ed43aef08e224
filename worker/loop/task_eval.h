#ifndef MPITRAIN_TASK_EVAL_H
#define MPITRAIN_TASK_EVAL_H
/* A multiple-choice task's accuracy (docs/task.md): each choice scored by
 * the log-likelihood of its tokens after the context, summed (accuracy) and
 * divided by the choice's length in characters (accuracy_norm), as
 * lm-evaluation-harness scores acc and acc_norm. */
#include <stddef.h>
#include "base/err.h"
#include "models/model.h"
#include "worker/data/task.h"

typedef struct {
    double accuracy, accuracy_norm;
    double stderr_acc, stderr_norm; /* of the mean over items: sqrt(p (1 - p) / (n - 1)) */
    size_t items;
} TaskScore;

/* The log-likelihoods of the requests of items lo, lo + stride, ... below
 * hi into ll[r] (the others untouched). A transformer whose weights are its
 * own scores them through a key/value cache: an item's context once, then
 * each choice's tokens (LoRA adapters merged into a copy of the weights);
 * any other model (an MLP, a split one, no memory for the copy), and a
 * request longer than the window, by a forward of m over a window of
 * T: its last T+1 tokens (the context cut from the left, as the harness
 * does), the loss on the choice's tokens alone (m needs a batch of 1). */
int task_logliks(Model *m, const Task *t, size_t lo, size_t hi, size_t stride, double *ll, Err *e);
/* The accuracies from every request's log-likelihood. */
void task_score(const Task *t, const double *ll, TaskScore *s);

#endif
