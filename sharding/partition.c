#include "sharding/partition.h"

#include <limits.h>

MeshCoord mesh_coord_of(MeshDims d, int rank)
{
    MeshCoord c;
    c.tp = rank % d.tp;
    c.dp = (rank / d.tp) % d.dp;
    c.pp = rank / (d.tp * d.dp);
    return c;
}

int mesh_rank_of(MeshDims d, MeshCoord c) { return c.tp + c.dp * d.tp + c.pp * d.tp * d.dp; }

Range split_even(size_t n, int parts, int index)
{
    size_t base = n / parts, extra = n % parts, i = (size_t)index;
    Range r;
    r.lo = i * base + (i < extra ? i : extra);
    r.hi = r.lo + base + (i < extra ? 1 : 0);
    return r;
}

Range dp_batch_slice(int global_batch, int dp, int dp_rank)
{
    return split_even((size_t)global_batch, dp, dp_rank);
}

int make_buckets(const size_t *block_lo, int n_blocks, size_t bucket_floats, Range *ranges,
                 int *first_block)
{
    int nb = 0;
    size_t hi = block_lo[n_blocks];
    for (int b = n_blocks - 1; b >= 0; b--) {
        size_t lo = block_lo[b];
        if (hi - lo >= bucket_floats || b == 0) {
            if (hi > lo) {
                ranges[nb] = (Range){lo, hi};
                first_block[nb] = b;
                nb++;
            }
            hi = lo;
        }
    }
    return nb;
}

int shard_counts(size_t n, int parts, Range r, int *counts)
{
    for (int p = 0; p < parts; p++) {
        Range s = split_even(n, parts, p);
        size_t a = s.lo > r.lo ? s.lo : r.lo, b = s.hi < r.hi ? s.hi : r.hi;
        size_t c = b > a ? b - a : 0;
        if (c > INT_MAX) return -1;
        counts[p] = (int)c;
    }
    return 0;
}
