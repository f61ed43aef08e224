/* bench_ops: the llama family's kernels at SmolLM2-135M's shape (T = 1024,
 * width 576, 9 heads and 3 kv heads of 64, MLP 1536) or, with --qwen,
 * Qwen2.5-0.5B's (width 896, 14 heads, 2 kv heads of 64, MLP 4864):
 * grouped-query attention forward and backward in GFLOP/s (the useful
 * causal FLOPs: 4 hs per (query, key) pair forward, 10 backward, which
 * recomputes the scores), next to plain attention of as many kv heads as q
 * heads, and RMSNorm, SwiGLU and rope in GB/s (the bytes each must move
 * at least once); grouped attention again over packed documents of
 * --doc-len tokens (256; 0 = not). Usage: bench_ops [--threads K]
 * [--batch B] [--qwen] [--cpu-time] [--doc-len L].
 * Best of 5 reps. */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/ops.h"
#include "models/philox.h"

/* --cpu-time: one thread's CPU seconds, the honest figure on a machine
 * other jobs share (wall time is theirs too); with more threads, wall time */
static clockid_t clock_id = CLOCK_MONOTONIC;

static double seconds(void)
{
    struct timespec t;
    clock_gettime(clock_id, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* n floats, uniform in [-1, 1), the same on every run */
static float *buf(size_t n, uint64_t key)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) {
        fprintf(stderr, "bench_ops: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) p[i] = (float)(2.0 * philox_uniform(key, RNG_SAMPLE, i) - 1.0);
    return p;
}

typedef struct {
    int B, T, C, NH, NKV, hs, F;
    float *scratch;
    int threads;
    AttnHeads ah;
    float *qkv, *out, *lse, *dout, *dqkv;
    float *x, *y, *w, *rstd, *dx, *dw;
    float *gate, *up, *act, *dgate, *dup;
    RopeTable rope;
    int *pos;            /* doc positions (--doc-attention), or NULL: causal rows */
} Bench;

typedef void (*KernelFn)(Bench *b);

/* best seconds of one call over 5 reps of enough calls for ~0.2 s */
static double best_time(KernelFn fn, Bench *b)
{
    fn(b);
    double t0 = seconds();
    fn(b);
    double one = seconds() - t0;
    int iters = one > 0.2 ? 1 : (int)(0.2 / (one + 1e-9)) + 1;
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        t0 = seconds();
        for (int i = 0; i < iters; i++) fn(b);
        double t = (seconds() - t0) / iters;
        if (t < best) best = t;
    }
    return best;
}

static void att_fwd(Bench *b)
{
    attention_forward_gqa(b->out, b->lse, b->qkv, b->pos, b->B, b->T, &b->ah, b->scratch, b->threads);
}
static void att_bwd(Bench *b)
{
    attention_backward_gqa(b->dqkv, b->dout, b->out, b->qkv, b->lse, b->pos, b->B, b->T, &b->ah,
                           b->scratch, b->threads);
}
static void rms_fwd(Bench *b)
{
    rmsnorm_forward(b->y, b->rstd, b->x, b->w, b->B * b->T, b->C, b->C, 1e-5f);
}
static void rms_bwd(Bench *b)
{
    rmsnorm_backward(b->dx, b->dw, b->y, b->x, b->w, b->rstd, b->B * b->T, b->C, b->C);
}
static void swi_fwd(Bench *b) { swiglu_forward(b->act, b->gate, b->up, (size_t)b->B * b->T * b->F); }
static void swi_bwd(Bench *b)
{
    swiglu_backward(b->dgate, b->dup, b->gate, b->up, b->act, (size_t)b->B * b->T * b->F);
}
static void rope_fwd(Bench *b)
{
    rope_forward(b->qkv, &b->rope, NULL, b->B, b->T, (b->NH + 2 * b->NKV) * b->hs, 0, b->NH + b->NKV,
                 b->hs, 0);
}

/* attention of NKV kv heads: forward and backward GFLOP/s; then, packed
 * documents of doc_len tokens (--doc-attention's positions), the time
 * against the whole row's and the fraction of its (query, key) pairs they
 * need */
static void bench_attention(Bench *b, int NKV, int doc_len)
{
    b->ah = (AttnHeads){.NH = b->NH, .NKV = NKV, .hs = b->hs, .group = b->NH / NKV};
    size_t rows = (size_t)b->B * b->T, ld = (size_t)(b->NH + 2 * NKV) * b->hs;
    b->qkv = buf(rows * ld, 1);
    b->dqkv = buf(rows * ld, 2);
    double pairs = (double)b->B * b->NH * b->T * (b->T + 1) / 2.0;
    double tf = best_time(att_fwd, b), tb = best_time(att_bwd, b);
    printf("attention NH=%d NKV=%d hs=%d T=%d B=%d: forward %.2f ms %.1f GFLOP/s, backward %.2f "
           "ms %.1f GFLOP/s\n",
           b->NH, NKV, b->hs, b->T, b->B, tf * 1e3, 4.0 * b->hs * pairs / tf * 1e-9, tb * 1e3,
           10.0 * b->hs * pairs / tb * 1e-9);
    if (doc_len > 0) {
        b->pos = malloc(rows * sizeof *b->pos);
        if (!b->pos) {
            fprintf(stderr, "bench_ops: out of memory\n");
            exit(1);
        }
        double doc_pairs = 0;
        for (size_t i = 0; i < rows; i++) {
            b->pos[i] = (int)(i % (size_t)b->T % (size_t)doc_len);
            doc_pairs += b->pos[i] + 1;
        }
        double df = best_time(att_fwd, b), db = best_time(att_bwd, b);
        printf("  documents of %d tokens: forward %.2f ms (%.2f of the row's), backward %.2f ms "
               "(%.2f); they need %.2f of its pairs\n",
               doc_len, df * 1e3, df / tf, db * 1e3, db / tb, doc_pairs * b->NH / pairs);
        free(b->pos);
        b->pos = NULL;
    }
    free(b->qkv);
    free(b->dqkv);
}

static void report_bw(const char *what, KernelFn fn, Bench *b, double bytes)
{
    double t = best_time(fn, b);
    printf("%-32s %8.3f ms %6.1f GB/s\n", what, t * 1e3, bytes / t * 1e-9);
}

int main(int argc, char **argv)
{
    Bench b = {.B = 1, .T = 1024, .C = 576, .NH = 9, .NKV = 3, .hs = 64, .F = 1536};
    b.threads = omp_get_num_procs();
    int doc_len = 256;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            b.threads = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
            b.B = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--cpu-time")) {
            clock_id = CLOCK_PROCESS_CPUTIME_ID;
        } else if (!strcmp(argv[i], "--qwen")) {
            b.C = 896, b.NH = 14, b.NKV = 2, b.F = 4864;
        } else if (!strcmp(argv[i], "--doc-len") && i + 1 < argc) {
            doc_len = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--threads K] [--batch B] [--qwen] [--cpu-time] "
                            "[--doc-len L]\n", argv[0]);
            return 2;
        }
    }
    if (b.threads < 1) b.threads = 1;
    if (b.B < 1) b.B = 1;
    ops_set_threads(b.threads);
    printf("threads=%d\n", b.threads);
    size_t rows = (size_t)b.B * b.T, nc = rows * b.C, nf = rows * b.F;
    b.scratch = buf(attention_scratch_floats(b.T, b.threads), 3);
    b.out = buf(rows * b.NH * b.hs, 4);
    b.dout = buf(rows * b.NH * b.hs, 5);
    b.lse = buf((size_t)b.B * b.NH * b.T, 6);
    bench_attention(&b, b.NKV, doc_len);
    bench_attention(&b, b.NH, 0);

    b.x = buf(nc, 7), b.y = buf(nc, 8), b.dx = buf(nc, 9), b.w = buf(b.C, 10);
    b.dw = buf(b.C, 11), b.rstd = buf(rows, 12);
    b.gate = buf(nf, 13), b.up = buf(nf, 14), b.act = buf(nf, 15);
    b.dgate = buf(nf, 16), b.dup = buf(nf, 17);
    /* bytes: each operand read or written once (backward's dinp += is a
     * read and a write; rmsnorm's dw pass rereads dout and inp) */
    report_bw("rmsnorm_forward (N,C)", rms_fwd, &b, 8.0 * nc);
    report_bw("rmsnorm_backward (N,C)", rms_bwd, &b, 24.0 * nc);
    report_bw("swiglu_forward (N,F)", swi_fwd, &b, 12.0 * nf);
    report_bw("swiglu_backward (N,F)", swi_bwd, &b, 28.0 * nf);
    if (rope_table_init(&b.rope, b.T, b.hs, 1e4, 0, 0, 0, 0)) return 1;
    b.qkv = buf(rows * (b.NH + 2 * b.NKV) * b.hs, 18);
    report_bw("rope_forward (q and k heads)", rope_fwd, &b, 8.0 * rows * (b.NH + b.NKV) * b.hs);
    rope_table_free(&b.rope);
    float *bufs[] = {b.scratch, b.out, b.dout, b.lse, b.x, b.y, b.dx, b.w, b.dw, b.rstd,
                     b.gate, b.up, b.act, b.dgate, b.dup, b.qkv};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    return 0;
}
