/* bench_sgemm: cblas_sgemm GFLOP/s for a square n=2048 product and for the
 * GPT training shapes (B*T = 2048 rows, C = 256), in the three forms that
 * models/ops.c uses for a Linear layer (inp (M,K), w (N,K) as torch):
 *   forward  out = inp @ w^T      M=2048 N=OC K=C      ta=N tb=T
 *   backward dinp += dout @ w     M=2048 N=C  K=OC     ta=N tb=N
 *   backward dw += dout^T @ inp   M=OC   N=C  K=2048   ta=T tb=N
 * --gpt2 takes GPT-2 124M's shapes instead (B*T = 1024 rows, C = 768, and
 * the head with the vocabulary 50257 and padded to 50304, llm.c's padding,
 * to see whether padding pays).
 * Usage: bench_sgemm [--threads K] [--gpt2]   (default: all cores). Best of 5 reps. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *rand_buf(size_t n)
{
    float *p = malloc(n * sizeof *p);
    if (!p) {
        perror("malloc");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) p[i] = (float)rand() / RAND_MAX - 0.5f;
    return p;
}

/* Row-major C (M,N) = op(A) op(B) (+ C if beta); returns best GFLOP/s. */
static double bench(int M, int N, int K, int ta, int tb, float beta)
{
    float *a = rand_buf((size_t)M * K), *b = rand_buf((size_t)K * N);
    float *c = rand_buf((size_t)M * N);
    int lda = ta ? M : K, ldb = tb ? K : N;
    enum CBLAS_TRANSPOSE opa = ta ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE opb = tb ? CblasTrans : CblasNoTrans;
    double flops = 2.0 * M * N * K;
    int iters = (int)(2e9 / flops) + 1; /* ~20 ms per rep at 100 GFLOP/s */
    double best = 0;

    cblas_sgemm(CblasRowMajor, opa, opb, M, N, K, 1.0f, a, lda, b, ldb, beta, c, N);
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now();
        for (int i = 0; i < iters; i++)
            cblas_sgemm(CblasRowMajor, opa, opb, M, N, K, 1.0f, a, lda, b, ldb, beta, c, N);
        double g = flops * iters / (now() - t0) * 1e-9;
        if (g > best) best = g;
    }
    printf("sgemm M=%d N=%d K=%d ta=%c tb=%c gflops=%.1f\n", M, N, K, ta ? 'T' : 'N',
           tb ? 'T' : 'N', best);
    fflush(stdout);
    free(a);
    free(b);
    free(c);
    return best;
}

int main(int argc, char **argv)
{
    int threads = omp_get_num_procs(), gpt2 = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--gpt2")) {
            gpt2 = 1;
        } else {
            fprintf(stderr, "usage: %s [--threads K] [--gpt2]\n", argv[0]);
            return 2;
        }
    }
    if (threads < 1) threads = 1;
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    printf("threads=%d openblas_threads=%d\n", threads, openblas_get_num_threads());

    double peak = bench(2048, 2048, 2048, 0, 0, 0.0f);
    const int M = gpt2 ? 1024 : 2048;            /* B*T rows */
    const int ref[][2] = {{256, 768}, {256, 256}, {256, 1024}, {1024, 256}}; /* {C, OC} */
    const int g2[][2] = {{768, 2304}, {768, 768}, {768, 3072}, {3072, 768}, {768, 50257},
                         {768, 50304}};
    const int(*lin)[2] = gpt2 ? g2 : ref;
    size_t n_lin = gpt2 ? sizeof g2 / sizeof g2[0] : sizeof ref / sizeof ref[0];
    for (size_t l = 0; l < n_lin; l++) {
        int C = lin[l][0], OC = lin[l][1];
        bench(M, OC, C, 0, 1, 0.0f);  /* forward: inp @ w^T */
        bench(M, C, OC, 0, 0, 1.0f);  /* dinp += dout @ w */
        bench(OC, C, M, 1, 0, 1.0f);  /* dw += dout^T @ inp */
    }
    printf("sgemm_peak_gflops=%.1f\n", peak);
    return 0;
}
