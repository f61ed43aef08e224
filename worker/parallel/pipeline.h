#ifndef MPITRAIN_PIPELINE_H
#define MPITRAIN_PIPELINE_H
/* Runs one step's micro-batches through this rank's pipeline stage in GPipe
 * or 1F1B order, sending activations forward and their gradients back with
 * non-blocking p2p. Sends never block and each receive is awaited only when
 * its data is needed, so no stage can wait on another in a cycle: any
 * p >= 1 and M >= 1 completes. With p = 1 it is plain gradient
 * accumulation over M micro-batches. */
#include <stdint.h>
#include "comm/mpi/comm.h"
#include "models/model.h"
#include "sharding/stages.h"
#include "worker/parallel/gradsync.h"

typedef struct {
    Model *m;
    Group *pp;
    int stage, p, M, micro_b, T;
    Schedule sched;
    int slots;
    size_t act_n;          /* floats in one boundary message */
    float *dsend;          /* slots x act_n: input gradients on their way back */
    float *dout;           /* act_n: output gradient just received */
    CommRequest *fwd_send, *bwd_send, recv;
    PipeOp *ops;
    uint64_t drop_key;     /* LoRA dropout of the next train/eval (0: none) */
    uint64_t drop_row0;    /* the global token row of its first micro-batch */
    const int *pos;        /* doc positions beside every train/eval's inputs, or NULL */
} Pipeline;

int pipeline_init(Pipeline *pl, Model *m, Group *pp, int stage, int p, int M, int micro_b,
                  Schedule sched, Err *e);
void pipeline_free(Pipeline *pl);
/* Forward + backward of the step's M micro-batches (inputs/targets: this
 * DP rank's M*micro_b sequences). Arms sync before the last backward.
 * Returns the loss sum on the last stage, 0 elsewhere. */
double pipeline_train(Pipeline *pl, const int *inputs, const int *targets, float grad_scale,
                      GradSync *sync);
/* Forward only (evaluation, and zeroth-order training's losses). */
double pipeline_eval(Pipeline *pl, const int *inputs, const int *targets);
/* The next pipeline_train or pipeline_eval (only that one) applies LoRA
 * dropout: each micro-batch's forward is keyed with key and its first
 * token's global row (row0, the rank's first, plus the rows before it). */
void pipeline_set_dropout(Pipeline *pl, uint64_t key, uint64_t row0);
/* Every pipeline_train and pipeline_eval from now on reads the inputs' doc
 * positions (models/ops.h DOC POSITIONS) from pos, laid out as the inputs
 * (the caller refills it with each batch); NULL: none. */
void pipeline_set_positions(Pipeline *pl, const int *pos);

#endif
