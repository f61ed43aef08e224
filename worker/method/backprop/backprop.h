#ifndef MPITRAIN_BACKPROP_H
#define MPITRAIN_BACKPROP_H
/* The backprop step strategy, and the step it takes for a method built on
 * backprop steps (DiLoCo's inner steps, worker/method/diloco/). */
#include "worker/loop/strategy.h"

extern const StepStrategy BACKPROP_STRATEGY;

/* A backprop step's state. A method that takes backprop steps puts one
 * first in its own state, and hands that state to backprop_compute and
 * backprop_apply. */
typedef struct {
    double grad_norm;  /* of the step being taken: the clip coefficient's input */
    double grad_scale; /* the gradient of the mean loss over the batch the
                        * step reduces: 1 / its predictions */
    Group *norm_group; /* the gradient norm is summed over it */
    int replica_norm;  /* every data-parallel rank counts its own gradient
                        * (a replica's own norm), not rank 0 of each shard */
} Backprop;

/* The global batch's gradient, reduced across data-parallel ranks: one
 * norm over the world. */
void backprop_init(Backprop *b, Trainer *t);
/* Each replica's own gradient (its share of the global batch; the set-up
 * reduced none across replicas): each replica its own norm. */
void backprop_init_replica(Backprop *b, Trainer *t);

/* The StepStrategy hooks, state a Backprop (or a state that starts with one). */
int backprop_compute(Trainer *t, void *state, long step, StepOutcome *o, Err *e);
int backprop_apply(Trainer *t, void *state, long step, int skip, Err *e);
double backprop_flops(const Trainer *t);

/* The token embedding whose copy the head's pipeline stage holds when the
 * head's weights are the embedding's ("wte"): its two stages keep the
 * copies equal. NULL when the head has its own weights (an untied head) or
 * the model has no such embedding (mlp). The configuration answers, so the
 * first and the last stage answer alike. */
const ParamInfo *backprop_tied_embedding(const Model *m);

#endif
