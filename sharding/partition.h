#ifndef MPITRAIN_PARTITION_H
#define MPITRAIN_PARTITION_H
/* Pure arithmetic of how work and tensors split over ranks: no MPI here, so
 * every rule can be unit-tested directly. */
#include <stddef.h>
#include <stdint.h>

/* The rank grid, TP fastest-varying: rank = tp + dp*TP + pp*TP*DP. */
typedef struct { int dp, tp, pp; } MeshDims;
typedef struct { int dp, tp, pp; } MeshCoord;

MeshCoord mesh_coord_of(MeshDims d, int rank);
int mesh_rank_of(MeshDims d, MeshCoord c);

/* A half-open range [lo, hi). */
typedef struct { size_t lo, hi; } Range;

/* Even split of n items over parts, the first n % parts getting one more:
 * any n and parts work (parts may exceed n; some ranges are then empty). */
Range split_even(size_t n, int parts, int index);

/* Sequences of each global batch read by DP rank r (requires B % dp == 0). */
Range dp_batch_slice(int global_batch, int dp, int dp_rank);

/* Gradient buckets over blocks laid out in ascending order in one flat
 * buffer (block b = [block_lo[b], block_lo[b+1])). Buckets are formed in
 * REVERSE block order (the order backward produces them), each closing once
 * it holds at least bucket_floats; a bucket is whole blocks only. Returns the
 * number of buckets (<= n_blocks) and fills ranges and first_block (the
 * lowest block in it: once backward has finished that block, the bucket is
 * complete). Bucket 0 is the LAST range of the buffer. */
int make_buckets(const size_t *block_lo, int n_blocks, size_t bucket_floats, Range *ranges,
                 int *first_block);

/* Counts of a range [lo,hi) that fall in each of `parts` contiguous shards
 * of an even split of n; returns 0 if counts fit in int. */
int shard_counts(size_t n, int parts, Range r, int *counts);

#endif
