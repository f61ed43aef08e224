#ifndef MPITRAIN_GRADSYNC_H
#define MPITRAIN_GRADSYNC_H
/* Data-parallel gradient reduction in buckets that start while backward is
 * still running. Buckets are whole blocks in reverse layer order; the model's
 * on_block_grads hook launches each bucket's non-blocking all-reduce (ZeRO 0
 * and 1) or reduce-scatter into this rank's shard (ZeRO 2) as soon as its
 * last block is done, and tests outstanding requests to drive progress. */
#include "comm/mpi/comm.h"
#include "models/model.h"
#include "sharding/partition.h"

typedef struct {
    Model *m;
    Group *dp;
    int zero, overlap;
    int nb;              /* buckets */
    Range *bucket;       /* flat ranges, bucket 0 = the end of the buffer */
    int *first_block;    /* bucket i is complete once this block is done */
    int *counts;         /* nb x dp: reduce-scatter counts (ZeRO 2) */
    CommRequest *req;
    int next;            /* next bucket to launch */
    int armed;           /* hook active (last micro-batch only) */
    Range shard;         /* this rank's ZeRO shard of the flat buffer */
    float *shard_grads;  /* ZeRO 2: reduced gradient of the shard */
} GradSync;

int gradsync_init(GradSync *s, Model *m, Group *dp, int zero, size_t bucket_bytes, int overlap,
                  Err *e);
void gradsync_free(GradSync *s);
/* Arms the hook for the backward pass that completes the step's gradients. */
void gradsync_arm(GradSync *s);
/* Launches what is left and waits for all buckets. */
void gradsync_finish(GradSync *s);
/* Reduced gradient of flat element shard.lo (ZeRO 1/2) or 0 (ZeRO 0). */
const float *gradsync_grads(const GradSync *s);
/* Range the optimizer updates on this rank. */
Range gradsync_update_range(const GradSync *s);

#endif
