/* sharding/partition.c: the rank grid, even splits, gradient buckets and
 * shard counts. Pure arithmetic: no MPI. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sharding/partition.h"

/* ---- mesh ----------------------------------------------------------------- */

static void check_mesh_round_trip(MeshDims d)
{
    int world = d.dp * d.tp * d.pp;
    char *seen = calloc((size_t)world, 1);
    cr_assert_not_null(seen);
    for (int r = 0; r < world; r++) {
        MeshCoord c = mesh_coord_of(d, r);
        cr_assert(c.dp >= 0 && c.dp < d.dp, "dims %dx%dx%d rank %d: dp coord %d out of range", d.dp,
                  d.tp, d.pp, r, c.dp);
        cr_assert(c.tp >= 0 && c.tp < d.tp, "dims %dx%dx%d rank %d: tp coord %d out of range", d.dp,
                  d.tp, d.pp, r, c.tp);
        cr_assert(c.pp >= 0 && c.pp < d.pp, "dims %dx%dx%d rank %d: pp coord %d out of range", d.dp,
                  d.tp, d.pp, r, c.pp);
        cr_assert_eq(mesh_rank_of(d, c), r, "dims %dx%dx%d: rank %d -> (dp %d tp %d pp %d) -> %d",
                     d.dp, d.tp, d.pp, r, c.dp, c.tp, c.pp, mesh_rank_of(d, c));
        /* the documented formula */
        cr_assert_eq(r, c.tp + c.dp * d.tp + c.pp * d.tp * d.dp);
    }
    /* and the other way: every coordinate maps to a distinct rank */
    for (int p = 0; p < d.pp; p++)
        for (int q = 0; q < d.dp; q++)
            for (int t = 0; t < d.tp; t++) {
                MeshCoord c = {q, t, p};
                int r = mesh_rank_of(d, c);
                cr_assert(r >= 0 && r < world);
                cr_assert_not(seen[r], "dims %dx%dx%d: rank %d reached twice", d.dp, d.tp, d.pp, r);
                seen[r] = 1;
                MeshCoord back = mesh_coord_of(d, r);
                cr_assert(back.dp == q && back.tp == t && back.pp == p);
            }
    free(seen);
}

Test(mesh, round_trip_all_ranks)
{
    const MeshDims dims[] = {
        {1, 1, 1}, {2, 2, 2}, {1, 4, 2}, {3, 1, 2}, {4, 1, 1}, {1, 1, 4},
        {2, 3, 5}, {5, 2, 3}, {3, 4, 2}, {8, 2, 1}, {1, 8, 1},
    };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) check_mesh_round_trip(dims[i]);
}

Test(mesh, tp_is_fastest_varying)
{
    MeshDims d = {2, 2, 2}; /* dp, tp, pp */
    MeshCoord c = mesh_coord_of(d, 1);
    cr_assert(c.tp == 1 && c.dp == 0 && c.pp == 0, "rank 1: dp %d tp %d pp %d", c.dp, c.tp, c.pp);
    c = mesh_coord_of(d, 2);
    cr_assert(c.tp == 0 && c.dp == 1 && c.pp == 0, "rank 2: dp %d tp %d pp %d", c.dp, c.tp, c.pp);
    c = mesh_coord_of(d, 4);
    cr_assert(c.tp == 0 && c.dp == 0 && c.pp == 1, "rank 4: dp %d tp %d pp %d", c.dp, c.tp, c.pp);
    c = mesh_coord_of(d, 7);
    cr_assert(c.tp == 1 && c.dp == 1 && c.pp == 1, "rank 7: dp %d tp %d pp %d", c.dp, c.tp, c.pp);
    /* a TP group is a run of consecutive ranks */
    MeshDims d2 = {2, 4, 1};
    for (int r = 0; r < 8; r++) {
        MeshCoord cc = mesh_coord_of(d2, r);
        cr_assert_eq(cc.tp, r % 4);
        cr_assert_eq(cc.dp, r / 4);
    }
}

/* ---- split_even ----------------------------------------------------------- */

static void check_split(size_t n, int parts)
{
    size_t expect_lo = 0, min = SIZE_MAX, max = 0;
    for (int i = 0; i < parts; i++) {
        Range r = split_even(n, parts, i);
        cr_assert_eq(r.lo, expect_lo, "n %zu parts %d: part %d starts at %zu, expected %zu", n,
                     parts, i, r.lo, expect_lo);
        cr_assert_geq(r.hi, r.lo, "n %zu parts %d: part %d is [%zu,%zu)", n, parts, i, r.lo, r.hi);
        size_t sz = r.hi - r.lo;
        if (sz < min) min = sz;
        if (sz > max) max = sz;
        /* the first n % parts get one more */
        size_t want = n / parts + ((size_t)i < n % (size_t)parts ? 1 : 0);
        cr_assert_eq(sz, want, "n %zu parts %d: part %d has %zu, expected %zu", n, parts, i, sz, want);
        expect_lo = r.hi;
    }
    cr_assert_eq(expect_lo, n, "n %zu parts %d: split ends at %zu", n, parts, expect_lo);
    cr_assert_leq(max - min, 1, "n %zu parts %d: sizes %zu..%zu", n, parts, min, max);
}

Test(split_even, covers_exactly_and_balanced)
{
    const size_t ns[] = {0, 1, 2, 3, 5, 7, 8, 10, 16, 17, 100, 1000, 1001, 123457};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (int parts = 1; parts <= 13; parts++) check_split(ns[a], parts);
    check_split((size_t)5000000000ull, 7); /* beyond 32 bits */
}

Test(split_even, more_parts_than_items_gives_empty_ranges)
{
    check_split(3, 8);
    int empty = 0;
    for (int i = 0; i < 8; i++) {
        Range r = split_even(3, 8, i);
        if (r.hi == r.lo) empty++;
        if (i < 3) cr_assert_eq(r.hi - r.lo, 1);
        else cr_assert_eq(r.lo, 3, "empty part %d sits at %zu, not at the end", i, r.lo);
    }
    cr_assert_eq(empty, 5);
    for (int i = 0; i < 4; i++) {
        Range r = split_even(0, 4, i);
        cr_assert(r.lo == 0 && r.hi == 0);
    }
}

Test(split_even, dp_batch_slice_matches)
{
    for (int dp = 1; dp <= 8; dp++) {
        int B = 8 * dp;
        int next = 0;
        for (int r = 0; r < dp; r++) {
            Range s = dp_batch_slice(B, dp, r);
            cr_assert_eq(s.lo, (size_t)next);
            cr_assert_eq(s.hi - s.lo, (size_t)(B / dp));
            next = (int)s.hi;
        }
        cr_assert_eq(next, B);
    }
}

/* ---- make_buckets --------------------------------------------------------- */

/* Checks every documented property of a bucketing; returns the count. */
static int check_buckets(const size_t *block_lo, int n_blocks, size_t bucket_floats)
{
    Range *ranges = calloc((size_t)n_blocks + 1, sizeof *ranges);
    int *first = calloc((size_t)n_blocks + 1, sizeof *first);
    cr_assert(ranges && first);
    int nb = make_buckets(block_lo, n_blocks, bucket_floats, ranges, first);
    size_t total = block_lo[n_blocks] - block_lo[0];
    cr_assert(nb >= 0 && nb <= n_blocks, "%d buckets for %d blocks", nb, n_blocks);
    if (total == 0) {
        cr_assert_eq(nb, 0, "an empty buffer has %d buckets", nb);
        goto out;
    }
    cr_assert_geq(nb, 1);
    /* reverse order, contiguous, covering the buffer exactly once */
    cr_assert_eq(ranges[0].hi, block_lo[n_blocks], "bucket 0 ends at %zu, buffer at %zu",
                 ranges[0].hi, block_lo[n_blocks]);
    cr_assert_eq(ranges[nb - 1].lo, block_lo[0], "last bucket starts at %zu, buffer at %zu",
                 ranges[nb - 1].lo, block_lo[0]);
    size_t covered = 0;
    for (int k = 0; k < nb; k++) {
        Range r = ranges[k];
        cr_assert_gt(r.hi, r.lo, "bucket %d is empty [%zu,%zu)", k, r.lo, r.hi);
        covered += r.hi - r.lo;
        if (k + 1 < nb)
            cr_assert_eq(ranges[k + 1].hi, r.lo, "bucket %d ends at %zu, bucket %d starts at %zu",
                         k + 1, ranges[k + 1].hi, k, r.lo);
        /* all but possibly the lowest hold at least bucket_floats */
        if (k + 1 < nb)
            cr_assert_geq(r.hi - r.lo, bucket_floats, "bucket %d holds %zu < %zu floats", k,
                          r.hi - r.lo, bucket_floats);
        /* whole blocks only: both ends are block boundaries */
        int lo_ok = 0, hi_ok = 0;
        for (int b = 0; b <= n_blocks; b++) {
            if (block_lo[b] == r.lo) lo_ok = 1;
            if (block_lo[b] == r.hi) hi_ok = 1;
        }
        cr_assert(lo_ok && hi_ok, "bucket %d [%zu,%zu) cuts a block", k, r.lo, r.hi);
        /* first_block: the lowest block in the bucket */
        int fb = first[k];
        cr_assert(fb >= 0 && fb < n_blocks, "bucket %d first_block %d", k, fb);
        cr_assert_eq(block_lo[fb], r.lo, "bucket %d [%zu,%zu): first_block %d starts at %zu", k,
                     r.lo, r.hi, fb, block_lo[fb]);
        for (int b = 0; b < n_blocks; b++) {
            int nonempty = block_lo[b + 1] > block_lo[b];
            int inside = block_lo[b] >= r.lo && block_lo[b + 1] <= r.hi;
            if (nonempty && inside)
                cr_assert_geq(b, fb, "bucket %d: block %d lies inside but first_block is %d", k, b,
                              fb);
        }
        if (k + 1 < nb) cr_assert_gt(fb, first[k + 1], "first_block not decreasing at %d", k);
    }
    cr_assert_eq(covered, total, "buckets cover %zu of %zu floats", covered, total);
out:
    free(ranges);
    free(first);
    return nb;
}

static int count_nonempty(const size_t *block_lo, int n_blocks)
{
    int n = 0;
    for (int b = 0; b < n_blocks; b++) n += block_lo[b + 1] > block_lo[b];
    return n;
}

static void blocks_from_sizes(const size_t *sizes, int n, size_t *block_lo)
{
    block_lo[0] = 0;
    for (int b = 0; b < n; b++) block_lo[b + 1] = block_lo[b] + sizes[b];
}

Test(make_buckets, fixed_layouts)
{
    /* a GPT-like layout: big embedding, equal layers, small head */
    const size_t gpt[] = {10000, 3000, 3000, 3000, 3000, 500};
    size_t lo[16];
    blocks_from_sizes(gpt, 6, lo);
    const size_t floats[] = {1, 500, 2999, 3000, 3001, 6000, 9000, 12500, 22500, 22501, 1u << 30};
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) check_buckets(lo, 6, floats[i]);

    /* 3000-float buckets: head + layer 4 close together (3500), then one per layer */
    Range r[8];
    int fb[8];
    int nb = make_buckets(lo, 6, 3000, r, fb);
    cr_assert_eq(nb, 5);
    cr_assert(r[0].lo == 19000 && r[0].hi == 22500 && fb[0] == 4);
    cr_assert(r[4].lo == 0 && r[4].hi == 10000 && fb[4] == 0);
}

Test(make_buckets, huge_bucket_is_one_bucket)
{
    const size_t sizes[] = {7, 1, 0, 13, 2, 0, 5};
    size_t lo[8];
    blocks_from_sizes(sizes, 7, lo);
    Range r[7];
    int fb[7];
    int nb = make_buckets(lo, 7, (size_t)1 << 40, r, fb);
    cr_assert_eq(nb, 1);
    cr_assert(r[0].lo == 0 && r[0].hi == lo[7]);
    cr_assert_eq(fb[0], 0);
    check_buckets(lo, 7, (size_t)1 << 40);
    check_buckets(lo, 7, lo[7]); /* exactly the buffer: still one */
    cr_assert_eq(make_buckets(lo, 7, lo[7], r, fb), 1);
}

Test(make_buckets, size_one_is_one_bucket_per_nonempty_block)
{
    const size_t layouts[][7] = {
        {7, 1, 0, 13, 2, 0, 5},
        {0, 3, 3, 3, 0, 0, 1},
        {1, 1, 1, 1, 1, 1, 1},
        {0, 0, 0, 9, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
        size_t lo[8];
        blocks_from_sizes(layouts[i], 7, lo);
        int nb = check_buckets(lo, 7, 1);
        cr_assert_eq(nb, count_nonempty(lo, 7), "layout %zu: %d buckets, %d non-empty blocks", i,
                     nb, count_nonempty(lo, 7));
        /* each bucket is exactly its block */
        Range r[7];
        int fb[7];
        make_buckets(lo, 7, 1, r, fb);
        for (int k = 0; k < nb; k++)
            cr_assert(r[k].lo == lo[fb[k]] && r[k].hi == lo[fb[k] + 1],
                      "layout %zu bucket %d is not block %d", i, k, fb[k]);
    }
}

Test(make_buckets, empty_buffer_and_single_block)
{
    size_t zero[4] = {0, 0, 0, 0};
    Range r[3];
    int fb[3];
    cr_assert_eq(make_buckets(zero, 3, 1, r, fb), 0);
    cr_assert_eq(make_buckets(zero, 3, 100, r, fb), 0);
    size_t one[2] = {0, 42};
    for (size_t f = 1; f < 100; f += 7) {
        cr_assert_eq(make_buckets(one, 1, f, r, fb), 1);
        cr_assert(r[0].lo == 0 && r[0].hi == 42 && fb[0] == 0);
    }
    /* a buffer that does not start at 0 */
    size_t off[4] = {100, 110, 130, 131};
    check_buckets(off, 3, 1);
    check_buckets(off, 3, 15);
    check_buckets(off, 3, 1000);
}

Test(make_buckets, random_layouts)
{
    uint64_t s = 0x9e3779b97f4a7c15ull;
#define NEXT() (s ^= s << 13, s ^= s >> 7, s ^= s << 17, s)
    for (int trial = 0; trial < 500; trial++) {
        int n = 1 + (int)(NEXT() % 40);
        size_t sizes[40], lo[41];
        for (int b = 0; b < n; b++) sizes[b] = NEXT() % 4 == 0 ? 0 : NEXT() % 1000;
        blocks_from_sizes(sizes, n, lo);
        size_t f = 1 + NEXT() % 5000;
        check_buckets(lo, n, f);
        int nb1 = check_buckets(lo, n, 1);
        cr_assert_eq(nb1, count_nonempty(lo, n));
        if (lo[n] > 0) cr_assert_eq(check_buckets(lo, n, lo[n] + 1), 1);
    }
#undef NEXT
}

/* ---- shard_counts --------------------------------------------------------- */

static void check_counts(size_t n, int parts, Range r)
{
    int counts[64];
    cr_assert_leq(parts, 64);
    cr_assert_eq(shard_counts(n, parts, r, counts), 0);
    size_t sum = 0;
    for (int p = 0; p < parts; p++) {
        Range s = split_even(n, parts, p);
        size_t a = s.lo > r.lo ? s.lo : r.lo, b = s.hi < r.hi ? s.hi : r.hi;
        size_t want = b > a ? b - a : 0;
        cr_assert_geq(counts[p], 0);
        cr_assert_eq((size_t)counts[p], want,
                     "n %zu parts %d range [%zu,%zu): shard %d count %d, expected %zu", n, parts,
                     r.lo, r.hi, p, counts[p], want);
        sum += (size_t)counts[p];
    }
    size_t hi = r.hi < n ? r.hi : n;
    size_t size = hi > r.lo ? hi - r.lo : 0;
    cr_assert_eq(sum, size, "n %zu parts %d range [%zu,%zu): counts sum to %zu", n, parts, r.lo,
                 r.hi, sum);
}

Test(shard_counts, sums_to_range_and_matches_split)
{
    const size_t ns[] = {0, 1, 5, 16, 17, 100, 1001};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
        size_t n = ns[a];
        for (int parts = 1; parts <= 9; parts++) {
            check_counts(n, parts, (Range){0, n});
            check_counts(n, parts, (Range){0, 0});
            for (size_t lo = 0; lo <= n; lo += (n / 7) + 1)
                for (size_t hi = lo; hi <= n; hi += (n / 5) + 1) check_counts(n, parts, (Range){lo, hi});
            if (n) check_counts(n, parts, (Range){n - 1, n});
        }
    }
    /* a range that is exactly one shard */
    int c[4];
    Range s2 = split_even(103, 4, 2);
    cr_assert_eq(shard_counts(103, 4, s2, c), 0);
    cr_assert(c[0] == 0 && c[1] == 0 && c[3] == 0 && (size_t)c[2] == s2.hi - s2.lo);
}

Test(shard_counts, more_parts_than_items)
{
    check_counts(3, 8, (Range){0, 3});
    check_counts(3, 8, (Range){1, 2});
    check_counts(0, 8, (Range){0, 0});
}

Test(shard_counts, refuses_counts_beyond_int)
{
    int c[2];
    size_t n = (size_t)INT_MAX * 3;
    cr_assert_eq(shard_counts(n, 1, (Range){0, n}, c), -1);
    /* the same range split over enough shards fits */
    int c4[4];
    cr_assert_eq(shard_counts(n, 4, (Range){0, n}, c4), 0);
    size_t sum = 0;
    for (int p = 0; p < 4; p++) sum += (size_t)c4[p];
    cr_assert_eq(sum, n);
}
