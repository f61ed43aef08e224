#ifndef MPITRAIN_DILOCO_H
#define MPITRAIN_DILOCO_H
/* DiLoCo's outer optimizer (Douillard et al. 2023): the data-parallel
 * replicas train alone for H inner steps, then average their pseudo-
 * gradients (the weights they started the round from minus the weights they
 * reached) in one all-reduce and take one Nesterov-momentum SGD step from
 * the shared start:
 *
 *   delta = mean_r(global - params_r)
 *   mom   = mu * mom + delta
 *   global -= lr * (delta + mu * mom)
 *   params_r = global
 *
 * Delayed (overlap): the all-reduce of round k runs behind round k+1's
 * inner steps. At the end of round k+1 its mean is applied to global, and
 * each replica keeps the progress it made meanwhile on top of it:
 *   params_r = global + (params_r - base_r),  base_r = params_r at round start;
 * the round's own progress (base_r - params_r, taken before that merge) is
 * what the next all-reduce averages. The run's last step flushes both, so
 * every replica ends on the same weights. docs/diloco.md has the details.
 *
 * Every buffer is a flat copy of this rank's model shard: replicas are the
 * ranks of one (tp, pp) coordinate across dp. */
#include "comm/mpi/comm.h"
#include "comm/mpi/paced.h"
#include "models/model.h"

typedef struct {
    Model *m;
    Group *dp;            /* the same (tp, pp) shard in every replica */
    Group *emb;           /* the tied embedding's two stages (NULL: none) */
    float lr, mu;
    int overlap;
    size_t n;             /* floats of the shard */
    float *global;        /* the weights of the last outer step */
    float *mom;           /* outer momentum */
    float *base;          /* overlap: this replica's weights at the round's start */
    float *pend;          /* overlap: the pseudo-gradient in flight (its mean once done) */
    PacedSum sum;         /* every all-reduce of a pseudo-gradient (comm/mpi/paced.h) */
    int pending;          /* pend holds a round not yet applied */
    int pend_done;        /* ... and its all-reduce has completed (pend is the mean) */
} Diloco;

/* The outer state starts at the model's current weights, momentum 0. */
int diloco_init(Diloco *d, Model *m, Group *dp, Group *emb, float lr, float mu, int overlap,
                WireFormat wire, Err *e);
void diloco_free(Diloco *d);
/* The end of an outer round: every rank of the dp group together. last:
 * the run's last step, where a delayed round is flushed as well. */
void diloco_outer_step(Diloco *d, int last);
/* Lets the delayed all-reduce progress (called often while computing).
 * Pseudo-gradients go out DILOCO_PIECE floats at a time (comm/mpi/paced.h): a
 * 1 MB piece puts 256 KB messages on each link at dp = 4, 20 ms at
 * 100 Mbit/s, which is what a step's own messages may wait behind; and the
 * sums are the same bits over shared memory and TCP. */
#define DILOCO_PIECE (256u * 1024u)
void diloco_progress(Diloco *d);
/* Completes the all-reduce in flight, if any (the weights do not change:
 * it is applied at the end of the round as always). For a checkpoint. */
void diloco_settle(Diloco *d);
size_t diloco_state_bytes(const Diloco *d);
/* The outer step itself, PyTorch's SGD(nesterov=True) with delta as the
 * gradient: mom = mu mom + delta; global -= lr (delta + mu mom). */
void diloco_nesterov(float *global, float *mom, const float *delta, size_t n, float lr, float mu);

#endif
