/* Gradient checks of every kernel in models/ops.c.
 *
 * Method: for each kernel the test carries its own straightforward DOUBLE
 * precision reference forward. With random inputs x (philox_normal, so the
 * values are the same on every machine) and a random projection r, the
 * scalar objective is f(x) = sum(r * forward(x)) evaluated in double; the
 * numerical gradient is the central difference (f(x+h) - f(x-h)) / 2h with
 * h = 1e-3, accurate to ~1e-7 relative. The analytic gradient is the float
 * kernel's backward with dout = r. They must agree to GRAD_TOL relative to
 * the largest gradient entry (and elementwise, see check_grad). Float
 * rounding in the kernels gives errors of ~1e-6; a wrong term in a backward
 * gives errors of order 1 (see the report that came with this file: a
 * flipped sign in any backward fails these checks by 100x or more). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/ops.h"
#include "models/philox.h"

#define FD_H 1e-3
#define GRAD_TOL 1e-4 /* max|an - fd| / (max|fd| + 1e-6) */

/* ---- helpers ----------------------------------------------------------- */

static float *fnew(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    cr_assert_not_null(p);
    return p;
}

static double *dnew(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof(double));
    cr_assert_not_null(p);
    return p;
}

/* x[i] = offset + scale * N(0,1), deterministic in (seed, i) */
static void randn(float *x, size_t n, uint64_t seed, float scale, float offset)
{
    for (size_t i = 0; i < n; i++) x[i] = offset + scale * philox_normal(seed, RNG_SAMPLE, i);
}

static double *to_double(const float *x, size_t n)
{
    double *d = dnew(n);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* A scalar objective of the reference forward, read from ctx. */
typedef double (*ObjFn)(void *ctx);

/* Central differences of obj with respect to every element of var (which
 * obj reads through ctx). */
static void fd_grad(double *g, double *var, size_t n, ObjFn obj, void *ctx)
{
    for (size_t i = 0; i < n; i++) {
        double x0 = var[i];
        var[i] = x0 + FD_H;
        double fp = obj(ctx);
        var[i] = x0 - FD_H;
        double fm = obj(ctx);
        var[i] = x0;
        g[i] = (fp - fm) / (2.0 * FD_H);
    }
}

/* Returns max|an - fd| / (max|fd| + 1e-6) and asserts it is below GRAD_TOL;
 * additionally every element must satisfy
 * |an - fd| <= 1e-2 |fd| + GRAD_TOL * max|fd|, so a wrong small entry
 * cannot hide behind a large one. */
static double check_grad(const char *what, const float *an, const double *fd, size_t n)
{
    double maxerr = 0.0, maxg = 0.0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)an[i] - fd[i]);
        if (e > maxerr) {
            maxerr = e;
            worst = i;
        }
        if (fabs(fd[i]) > maxg) maxg = fabs(fd[i]);
    }
    double ratio = maxerr / (maxg + 1e-6);
    cr_log_info("%s: max abs err %.3g, max |grad| %.3g, ratio %.3g", what, maxerr, maxg, ratio);
    cr_expect(maxg > 1e-3, "%s: the numerical gradient is ~0 (max %.3g): a vacuous test", what,
              maxg);
    cr_expect(ratio < GRAD_TOL,
              "%s: analytic vs finite-difference gradient: max abs err %.4g at [%zu] "
              "(analytic %.6g, numeric %.6g), max |grad| %.4g, ratio %.4g >= %.1g",
              what, maxerr, worst, (double)an[worst], fd[worst], maxg, ratio, GRAD_TOL);
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)an[i] - fd[i]);
        if (e > 1e-2 * fabs(fd[i]) + GRAD_TOL * maxg) {
            cr_expect(0, "%s[%zu]: analytic %.6g vs numeric %.6g", what, i, (double)an[i], fd[i]);
            break;
        }
    }
    return ratio;
}

/* Forward of the float kernel vs the double reference: max abs error over
 * max |ref| (or absolute when the reference is small). */
static void check_close(const char *what, const float *got, const double *ref, size_t n,
                        double tol)
{
    double maxerr = 0.0, maxr = 0.0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - ref[i]);
        if (e > maxerr) {
            maxerr = e;
            worst = i;
        }
        if (fabs(ref[i]) > maxr) maxr = fabs(ref[i]);
    }
    cr_expect(maxerr <= tol * (maxr > 1.0 ? maxr : 1.0),
              "%s: forward differs from the double reference: max err %.4g at [%zu] "
              "(got %.8g, ref %.8g)",
              what, maxerr, worst, (double)got[worst], ref[worst]);
}

/* b == 2a elementwise (backward called twice into zeroed buffers must give
 * twice the gradient of one call: the kernels accumulate with +=). */
static void check_twice(const char *what, const float *once, const float *twice, size_t n)
{
    double maxa = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs(once[i]) > maxa) maxa = fabs(once[i]);
    cr_expect(maxa > 0.0, "%s: gradient is all zero", what);
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)twice[i] - 2.0 * (double)once[i]);
        if (e > 1e-5 * maxa) {
            cr_expect(0, "%s[%zu]: backward twice gave %.8g, once %.8g: not accumulating (+=)",
                      what, i, (double)twice[i], (double)once[i]);
            return;
        }
    }
}

/* ---- elementary functions -------------------------------------------- */

Test(ops, fast_tanhf_accuracy)
{
    double maxerr = 0.0, at = 0.0;
    const int n = 2000000;
    for (int i = 0; i <= n; i++) {
        float x = -10.0f + 20.0f * (float)i / (float)n;
        double e = fabs((double)fast_tanhf(x) - tanh((double)x));
        if (e > maxerr) {
            maxerr = e;
            at = x;
        }
    }
    /* a few special points */
    const float special[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-4f, 7.9f, 7.91f, 8.0f, -8.0f, 30.0f,
                             -30.0f};
    for (size_t i = 0; i < sizeof special / sizeof *special; i++) {
        double e = fabs((double)fast_tanhf(special[i]) - tanh((double)special[i]));
        if (e > maxerr) {
            maxerr = e;
            at = special[i];
        }
    }
    cr_log_info("fast_tanhf max abs err %.3g at %.6g", maxerr, at);
    cr_expect(maxerr < 2e-6, "fast_tanhf: max abs error %.3g at x = %.8g", maxerr, at);
    cr_expect(fast_tanhf(0.0f) == 0.0f);
    cr_expect(fast_tanhf(3.0f) == -fast_tanhf(-3.0f), "fast_tanhf must be odd");
}

Test(ops, fast_expf_accuracy)
{
    double maxrel = 0.0, at = 0.0;
    const int n = 2000000;
    for (int i = 0; i <= n; i++) {
        float x = -80.0f + 160.0f * (float)i / (float)n;
        double ref = exp((double)x);
        double e = fabs((double)fast_expf(x) - ref) / ref;
        if (e > maxrel) {
            maxrel = e;
            at = x;
        }
    }
    cr_log_info("fast_expf max rel err %.3g at %.6g", maxrel, at);
    cr_expect(maxrel < 2e-6, "fast_expf: max relative error %.3g at x = %.8g", maxrel, at);
    cr_expect(fast_expf(0.0f) == 1.0f, "fast_expf(0) = %.9g", (double)fast_expf(0.0f));
    /* far outside the range it saturates instead of returning inf/nan/garbage */
    cr_expect(isfinite(fast_expf(1000.0f)) && fast_expf(1000.0f) > 1e38f);
    cr_expect(fast_expf(-1000.0f) >= 0.0f && fast_expf(-1000.0f) < 1e-37f);
}

/* ---- matmul ------------------------------------------------------------- */

typedef struct {
    int N, C, OC;
    double *inp, *w, *bias, *r;
    double *out;
} MatmulCtx;

static void matmul_ref(double *out, const double *inp, const double *w, const double *bias, int N,
                       int C, int OC)
{
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int c = 0; c < C; c++) s += inp[n * C + c] * w[o * C + c];
            out[n * OC + o] = s;
        }
}

static double matmul_obj(void *p)
{
    MatmulCtx *c = p;
    matmul_ref(c->out, c->inp, c->w, c->bias, c->N, c->C, c->OC);
    return dot(c->r, c->out, (size_t)c->N * c->OC);
}

Test(ops, matmul_grad)
{
    const int N = 6, C = 5, OC = 4;
    float *inp = fnew(N * C), *w = fnew(OC * C), *bias = fnew(OC), *r = fnew(N * OC);
    float *out = fnew(N * OC), *dinp = fnew(N * C), *dw = fnew(OC * C), *db = fnew(OC);
    randn(inp, N * C, 11, 1.0f, 0.0f);
    randn(w, OC * C, 12, 0.7f, 0.0f);
    randn(bias, OC, 13, 0.5f, 0.0f);
    randn(r, N * OC, 14, 1.0f, 0.0f);

    matmul_forward(out, inp, w, bias, N, C, OC);
    MatmulCtx c = {N, C, OC, to_double(inp, N * C), to_double(w, OC * C), to_double(bias, OC),
                   to_double(r, N * OC), dnew(N * OC)};
    matmul_ref(c.out, c.inp, c.w, c.bias, N, C, OC);
    check_close("matmul out", out, c.out, N * OC, 1e-5);

    matmul_backward(dinp, dw, db, r, inp, w, N, C, OC);
    double *g = dnew(N * C);
    fd_grad(g, c.inp, N * C, matmul_obj, &c);
    check_grad("matmul dinp", dinp, g, N * C);
    fd_grad(g, c.w, OC * C, matmul_obj, &c);
    check_grad("matmul dw", dw, g, OC * C);
    fd_grad(g, c.bias, OC, matmul_obj, &c);
    check_grad("matmul dbias", db, g, OC);

    /* without a bias the forward is the plain product */
    matmul_forward(out, inp, w, NULL, N, C, OC);
    matmul_ref(c.out, c.inp, c.w, NULL, N, C, OC);
    check_close("matmul out (no bias)", out, c.out, N * OC, 1e-5);

    free(g);
    free(c.inp); free(c.w); free(c.bias); free(c.r); free(c.out);
    free(inp); free(w); free(bias); free(r); free(out); free(dinp); free(dw); free(db);
}

Test(ops, matmul_accumulates)
{
    const int N = 7, C = 3, OC = 5;
    float *inp = fnew(N * C), *w = fnew(OC * C), *r = fnew(N * OC);
    randn(inp, N * C, 21, 1.0f, 0.0f);
    randn(w, OC * C, 22, 1.0f, 0.0f);
    randn(r, N * OC, 23, 1.0f, 0.0f);
    float *di1 = fnew(N * C), *dw1 = fnew(OC * C), *db1 = fnew(OC);
    float *di2 = fnew(N * C), *dw2 = fnew(OC * C), *db2 = fnew(OC);
    matmul_backward(di1, dw1, db1, r, inp, w, N, C, OC);
    matmul_backward(di2, dw2, db2, r, inp, w, N, C, OC);
    matmul_backward(di2, dw2, db2, r, inp, w, N, C, OC);
    check_twice("matmul dinp", di1, di2, N * C);
    check_twice("matmul dw", dw1, dw2, OC * C);
    check_twice("matmul dbias", db1, db2, OC);

    /* NULL outputs are skipped and do not disturb the others */
    float *dw3 = fnew(OC * C);
    matmul_backward(NULL, dw3, NULL, r, inp, w, N, C, OC);
    cr_expect(memcmp(dw3, dw1, OC * C * sizeof(float)) == 0, "dw alone differs from dw with all");
    free(dw3);
    free(inp); free(w); free(r);
    free(di1); free(dw1); free(db1); free(di2); free(dw2); free(db2);
}

/* ---- layernorm ------------------------------------------------------------ */

typedef struct {
    int N, C;
    double *inp, *w, *b, *r, *out;
} LnCtx;

static void layernorm_ref(double *out, const double *inp, const double *w, const double *b, int N,
                          int C)
{
    for (int n = 0; n < N; n++) {
        const double *x = inp + (size_t)n * C;
        double m = 0.0, v = 0.0;
        for (int i = 0; i < C; i++) m += x[i];
        m /= C;
        for (int i = 0; i < C; i++) v += (x[i] - m) * (x[i] - m);
        v /= C;
        double rs = 1.0 / sqrt(v + 1e-5);
        for (int i = 0; i < C; i++) out[(size_t)n * C + i] = (x[i] - m) * rs * w[i] + b[i];
    }
}

static double ln_obj(void *p)
{
    LnCtx *c = p;
    layernorm_ref(c->out, c->inp, c->w, c->b, c->N, c->C);
    return dot(c->r, c->out, (size_t)c->N * c->C);
}

Test(ops, layernorm_grad)
{
    const int N = 4, C = 7;
    float *inp = fnew(N * C), *w = fnew(C), *b = fnew(C), *r = fnew(N * C);
    float *out = fnew(N * C), *mean = fnew(N), *rstd = fnew(N);
    float *dinp = fnew(N * C), *dw = fnew(C), *db = fnew(C);
    randn(inp, N * C, 31, 1.5f, 0.8f); /* nonzero mean: the centring matters */
    randn(w, C, 32, 0.5f, 1.0f);
    randn(b, C, 33, 0.5f, 0.0f);
    randn(r, N * C, 34, 1.0f, 0.0f);

    layernorm_forward(out, mean, rstd, inp, w, b, N, C);
    LnCtx c = {N, C, to_double(inp, N * C), to_double(w, C), to_double(b, C),
               to_double(r, N * C), dnew(N * C)};
    layernorm_ref(c.out, c.inp, c.w, c.b, N, C);
    check_close("layernorm out", out, c.out, N * C, 1e-5);
    for (int n = 0; n < N; n++) {
        double m = 0.0;
        for (int i = 0; i < C; i++) m += c.inp[n * C + i];
        m /= C;
        cr_expect(fabs(mean[n] - m) < 1e-5, "layernorm mean[%d] %.8g vs %.8g", n, (double)mean[n], m);
    }

    layernorm_backward(dinp, dw, db, r, inp, w, mean, rstd, N, C);
    double *g = dnew(N * C);
    fd_grad(g, c.inp, N * C, ln_obj, &c);
    check_grad("layernorm dinp", dinp, g, N * C);
    fd_grad(g, c.w, C, ln_obj, &c);
    check_grad("layernorm dw", dw, g, C);
    fd_grad(g, c.b, C, ln_obj, &c);
    check_grad("layernorm db", db, g, C);

    free(g);
    free(c.inp); free(c.w); free(c.b); free(c.r); free(c.out);
    free(inp); free(w); free(b); free(r); free(out); free(mean); free(rstd);
    free(dinp); free(dw); free(db);
}

Test(ops, layernorm_accumulates)
{
    const int N = 5, C = 6;
    float *inp = fnew(N * C), *w = fnew(C), *b = fnew(C), *r = fnew(N * C);
    float *out = fnew(N * C), *mean = fnew(N), *rstd = fnew(N);
    randn(inp, N * C, 41, 1.0f, -0.3f);
    randn(w, C, 42, 0.5f, 1.0f);
    randn(b, C, 43, 0.5f, 0.0f);
    randn(r, N * C, 44, 1.0f, 0.0f);
    layernorm_forward(out, mean, rstd, inp, w, b, N, C);
    float *di1 = fnew(N * C), *dw1 = fnew(C), *db1 = fnew(C);
    float *di2 = fnew(N * C), *dw2 = fnew(C), *db2 = fnew(C);
    layernorm_backward(di1, dw1, db1, r, inp, w, mean, rstd, N, C);
    layernorm_backward(di2, dw2, db2, r, inp, w, mean, rstd, N, C);
    layernorm_backward(di2, dw2, db2, r, inp, w, mean, rstd, N, C);
    check_twice("layernorm dinp", di1, di2, N * C);
    check_twice("layernorm dw", dw1, dw2, C);
    check_twice("layernorm db", db1, db2, C);

    float *di3 = fnew(N * C), *db3 = fnew(C);
    layernorm_backward(di3, NULL, NULL, r, inp, w, mean, rstd, N, C);
    layernorm_backward(NULL, NULL, db3, r, inp, w, mean, rstd, N, C);
    cr_expect(memcmp(di3, di1, N * C * sizeof(float)) == 0, "dinp alone differs");
    cr_expect(memcmp(db3, db1, C * sizeof(float)) == 0, "db alone differs");
    free(di3); free(db3);
    free(inp); free(w); free(b); free(r); free(out); free(mean); free(rstd);
    free(di1); free(dw1); free(db1); free(di2); free(dw2); free(db2);
}

/* ---- GELU ------------------------------------------------------------------- */

static double gelu_ref(double x)
{
    const double k = sqrt(2.0 / M_PI);
    return 0.5 * x * (1.0 + tanh(k * (x + 0.044715 * x * x * x)));
}

typedef struct {
    size_t n;
    double *inp, *r;
} GeluCtx;

static double gelu_obj(void *p)
{
    GeluCtx *c = p;
    double s = 0.0;
    for (size_t i = 0; i < c->n; i++) s += c->r[i] * gelu_ref(c->inp[i]);
    return s;
}

Test(ops, gelu_grad)
{
    enum { NR = 40 };
    const float special[] = {0.0f, 1e-3f, -1e-3f, 0.5f, -0.5f, 1.0f, -1.0f, 2.0f, -2.0f,
                             -0.75f, 3.0f, -3.0f, 5.0f, -5.0f, 10.0f, -10.0f};
    const size_t ns = sizeof special / sizeof *special, n = NR + ns;
    float *inp = fnew(n), *out = fnew(n), *r = fnew(n), *dinp = fnew(n);
    randn(inp, NR, 51, 2.0f, 0.0f);
    memcpy(inp + NR, special, sizeof special);
    randn(r, n, 52, 1.0f, 0.0f);

    gelu_forward(out, inp, n);
    double maxerr = 0.0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)out[i] - gelu_ref((double)inp[i]));
        if (e > maxerr) {
            maxerr = e;
            worst = i;
        }
    }
    cr_log_info("gelu forward max abs err %.3g", maxerr);
    cr_expect(maxerr < 1e-5, "gelu forward: max abs err %.3g at x = %.8g (got %.8g, exact %.8g)",
              maxerr, (double)inp[worst], (double)out[worst], gelu_ref(inp[worst]));
    /* a dense sweep of the forward too */
    enum { NS = 200001 };
    float *xs = fnew(NS), *ys = fnew(NS);
    for (int i = 0; i < NS; i++) xs[i] = -12.0f + 24.0f * (float)i / (float)(NS - 1);
    gelu_forward(ys, xs, NS);
    for (int i = 0; i < NS; i++) {
        double e = fabs((double)ys[i] - gelu_ref(xs[i]));
        if (e >= 1e-5) {
            cr_expect(0, "gelu(%.8g) = %.8g, exact %.8g", (double)xs[i], (double)ys[i],
                      gelu_ref(xs[i]));
            break;
        }
    }
    free(xs);
    free(ys);

    gelu_backward(dinp, inp, r, n);
    GeluCtx c = {n, to_double(inp, n), to_double(r, n)};
    double *g = dnew(n);
    fd_grad(g, c.inp, n, gelu_obj, &c);
    check_grad("gelu dinp", dinp, g, n);

    /* accumulation */
    float *d2 = fnew(n);
    gelu_backward(d2, inp, r, n);
    gelu_backward(d2, inp, r, n);
    check_twice("gelu dinp", dinp, d2, n);

    free(g); free(c.inp); free(c.r);
    free(inp); free(out); free(r); free(dinp); free(d2);
}

/* ---- attention ---------------------------------------------------------- */

static AttnHeads mha(int NH, int hs) { return (AttnHeads){.NH = NH, .NKV = NH, .hs = hs, .group = 1}; }

static int is_mha(const AttnHeads *ah)
{
    return ah->NKV == ah->NH && ah->group == 1 && ah->h0 == 0 && ah->kv0 == 0;
}

static size_t att_ld(const AttnHeads *ah) { return (size_t)(ah->NH + 2 * ah->NKV) * ah->hs; }

typedef struct {
    int B, T;
    AttnHeads ah;
    double *qkv, *r, *out;
} AttCtx;

/* Causal softmax(q k^T / sqrt(hs)) v per batch and q head, qkv rows laid
 * out as [q heads | k heads | v heads], q head h reading kv head
 * (h0 + h) / group - kv0. lse (may be NULL) gets each query's log-sum-exp
 * of scaled scores (B,NH,T). */
static void attention_ref(double *out, double *lse, const double *qkv, int B, int T,
                          const AttnHeads *ah)
{
    const int NH = ah->NH, hs = ah->hs, C = NH * hs;
    const size_t ld = att_ld(ah);
    double *p = malloc((size_t)T * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const int g = (ah->h0 + h) / ah->group - ah->kv0;
            const size_t ko = (size_t)(NH + g) * hs, vo = (size_t)(NH + ah->NKV + g) * hs;
            for (int i = 0; i < T; i++) {
                const double *q = qkv + ((size_t)b * T + i) * ld + h * hs;
                double mx = -INFINITY, z = 0.0;
                for (int j = 0; j <= i; j++) {
                    const double *k = qkv + ((size_t)b * T + j) * ld + ko;
                    double s = 0.0;
                    for (int d = 0; d < hs; d++) s += q[d] * k[d];
                    p[j] = s / sqrt((double)hs);
                    if (p[j] > mx) mx = p[j];
                }
                for (int j = 0; j <= i; j++) {
                    p[j] = exp(p[j] - mx);
                    z += p[j];
                }
                if (lse) lse[((size_t)b * NH + h) * T + i] = mx + log(z);
                double *o = out + ((size_t)b * T + i) * C + h * hs;
                for (int d = 0; d < hs; d++) o[d] = 0.0;
                for (int j = 0; j <= i; j++) {
                    p[j] /= z;
                    const double *v = qkv + ((size_t)b * T + j) * ld + vo;
                    for (int d = 0; d < hs; d++) o[d] += p[j] * v[d];
                }
            }
        }
    free(p);
}

static double att_obj(void *p)
{
    AttCtx *c = p;
    attention_ref(c->out, NULL, c->qkv, c->B, c->T, &c->ah);
    return dot(c->r, c->out, (size_t)c->B * c->T * c->ah.NH * c->ah.hs);
}

/* Forward against the double reference, and the analytic dqkv (q, k and v
 * parts separately, so one cannot hide behind another) against finite
 * differences of it. T above the kernel's 64-query block covers several
 * blocks, a partial last one and keys reaching across blocks. With NKV = NH
 * the MHA entry points must give the _gqa kernels' bits. */
static void check_attention(int B, int T, AttnHeads ah, uint64_t seed)
{
    const int NH = ah.NH, hs = ah.hs, C = NH * hs, threads = 2;
    const size_t ld = att_ld(&ah), kvw = (size_t)ah.NKV * hs;
    const size_t nqkv = (size_t)B * T * ld, nout = (size_t)B * T * C, nlse = (size_t)B * NH * T;
    float *qkv = fnew(nqkv), *out = fnew(nout), *lse = fnew(nlse), *r = fnew(nout);
    float *dqkv = fnew(nqkv), *scratch = fnew(attention_scratch_floats(T, threads));
    randn(qkv, nqkv, seed, 1.0f, 0.0f);
    randn(r, nout, seed + 1, 1.0f, 0.0f);

    attention_forward_gqa(out, lse, qkv, NULL, B, T, &ah, scratch, threads);
    AttCtx c = {B, T, ah, to_double(qkv, nqkv), to_double(r, nout), dnew(nout)};
    double *lse_ref = dnew(nlse);
    attention_ref(c.out, lse_ref, c.qkv, B, T, &ah);
    check_close("attention out", out, c.out, nout, 1e-5);
    check_close("attention log-sum-exp", lse, lse_ref, nlse, 1e-5);

    attention_backward_gqa(dqkv, r, out, qkv, lse, NULL, B, T, &ah, scratch, threads);
    double *g = dnew(nqkv);
    fd_grad(g, c.qkv, nqkv, att_obj, &c);
    check_grad("attention dqkv", dqkv, g, nqkv);
    float *an_part = fnew(nqkv);
    double *fd_part = dnew(nqkv);
    const char *names[3] = {"attention dq", "attention dk", "attention dv"};
    const size_t off[3] = {0, (size_t)C, C + kvw}, width[3] = {(size_t)C, kvw, kvw};
    for (int part = 0; part < 3; part++) {
        size_t m = 0;
        for (int bt = 0; bt < B * T; bt++)
            for (size_t i = 0; i < width[part]; i++) {
                size_t idx = (size_t)bt * ld + off[part] + i;
                an_part[m] = dqkv[idx];
                fd_part[m++] = g[idx];
            }
        check_grad(names[part], an_part, fd_part, m);
    }

    /* accumulation, with garbage in the scratch tiles on entry, and one
     * thread giving the same bits as two */
    float *d2 = fnew(nqkv);
    size_t ns = attention_scratch_floats(T, threads);
    for (size_t i = 0; i < ns; i++) scratch[i] = 1e30f;
    attention_backward_gqa(d2, r, out, qkv, lse, NULL, B, T, &ah, scratch, 1);
    for (size_t i = 0; i < ns; i++) scratch[i] = -7.0f;
    attention_backward_gqa(d2, r, out, qkv, lse, NULL, B, T, &ah, scratch, threads);
    check_twice("attention dqkv", dqkv, d2, nqkv);
    float *out1 = fnew(nout);
    attention_forward_gqa(out1, lse, qkv, NULL, B, T, &ah, scratch, 1);
    cr_expect(memcmp(out, out1, nout * sizeof(float)) == 0,
              "attention out differs between 1 and %d threads", threads);
    if (is_mha(&ah)) {
        float *lse1 = fnew(nlse), *d3 = fnew(nqkv);
        attention_forward(out1, lse1, qkv, B, T, NH, hs, scratch, threads);
        cr_expect(memcmp(out, out1, nout * sizeof(float)) == 0,
                  "attention_forward differs from attention_forward_gqa with NKV = NH");
        cr_expect(memcmp(lse, lse1, nlse * sizeof(float)) == 0);
        attention_backward(d3, r, out, qkv, lse, B, T, NH, hs, scratch, threads);
        cr_expect(memcmp(dqkv, d3, nqkv * sizeof(float)) == 0,
                  "attention_backward differs from attention_backward_gqa with NKV = NH");
        free(lse1);
        free(d3);
    }

    free(an_part); free(fd_part); free(d2); free(out1);
    free(g); free(lse_ref); free(c.qkv); free(c.r); free(c.out);
    free(qkv); free(out); free(lse); free(r); free(dqkv); free(scratch);
}

Test(ops, attention_grad) { check_attention(2, 5, mha(2, 3), 61); }

Test(ops, attention_grad_blocks) { check_attention(1, 150, mha(2, 4), 71); }

Test(ops, attention_gqa_grad)
{
    check_attention(2, 5, (AttnHeads){.NH = 4, .NKV = 2, .hs = 3, .group = 2}, 65);
}

Test(ops, attention_gqa_grad_blocks)
{
    check_attention(1, 80, (AttnHeads){.NH = 6, .NKV = 2, .hs = 4, .group = 3}, 67);
}

/* a tensor-parallel slice whose kv heads are replicated: q heads 3..5 of 6,
 * all 3 kv heads, group 2 */
Test(ops, attention_gqa_grad_offsets)
{
    check_attention(1, 70, (AttnHeads){.NH = 3, .NKV = 3, .hs = 4, .group = 2, .h0 = 3}, 69);
}

/* Doc positions (ops.h DOC POSITIONS): B rows of documents whose lengths
 * len[b][...] (0-ended) fill T. The kernels with pos against each document
 * alone: the forward against the double reference run on the document's
 * rows (out and log-sum-exp), the backward against the kernel's own
 * backward of the document alone (pos NULL), dq, dk and dv, their rows
 * only; and 1 thread gives 2 threads' bits. */
static void check_doc_attention(int B, int T, const int len[][5], AttnHeads ah, uint64_t seed)
{
    const int NH = ah.NH, C = NH * ah.hs, threads = 2;
    const size_t ld = att_ld(&ah), nqkv = (size_t)B * T * ld, nout = (size_t)B * T * C;
    float *qkv = fnew(nqkv), *out = fnew(nout), *lse = fnew((size_t)B * NH * T), *r = fnew(nout);
    float *dqkv = fnew(nqkv), *scratch = fnew(attention_scratch_floats(T, threads));
    int *pos = malloc((size_t)B * T * sizeof *pos);
    randn(qkv, nqkv, seed, 1.0f, 0.0f);
    randn(r, nout, seed + 1, 1.0f, 0.0f);
    for (int b = 0; b < B; b++)
        for (int d = 0, t = 0; len[b][d]; d++)
            for (int i = 0; i < len[b][d]; i++, t++) pos[b * T + t] = i;
    attention_forward_gqa(out, lse, qkv, pos, B, T, &ah, scratch, threads);
    attention_backward_gqa(dqkv, r, out, qkv, lse, pos, B, T, &ah, scratch, threads);
    for (int b = 0; b < B; b++)
        for (int d = 0, t0 = 0; len[b][d]; t0 += len[b][d], d++) {
            const int n = len[b][d];
            const size_t rows = (size_t)b * T + t0;
            double *dq = to_double(qkv + rows * ld, (size_t)n * ld), *dout = dnew((size_t)n * C);
            double *dlse = dnew((size_t)NH * n);
            attention_ref(dout, dlse, dq, 1, n, &ah);
            check_close("doc attention out", out + rows * C, dout, (size_t)n * C, 1e-5);
            for (int h = 0; h < NH; h++)
                check_close("doc attention log-sum-exp", lse + ((size_t)b * NH + h) * T + t0,
                            dlse + (size_t)h * n, (size_t)n, 1e-5);
            /* the document alone through the kernels: its forward, backward */
            float *o1 = fnew((size_t)n * C), *l1 = fnew((size_t)NH * n), *g1 = fnew((size_t)n * ld);
            attention_forward_gqa(o1, l1, qkv + rows * ld, NULL, 1, n, &ah, scratch, threads);
            attention_backward_gqa(g1, r + rows * C, o1, qkv + rows * ld, l1, NULL, 1, n, &ah,
                                   scratch, threads);
            double *g1d = to_double(g1, (size_t)n * ld);
            check_close("doc attention dqkv", dqkv + rows * ld, g1d, (size_t)n * ld, 1e-5);
            free(dq); free(dout); free(dlse); free(o1); free(l1); free(g1); free(g1d);
        }
    float *out1 = fnew(nout), *d1 = fnew(nqkv);
    attention_forward_gqa(out1, lse, qkv, pos, B, T, &ah, scratch, 1);
    attention_backward_gqa(d1, r, out1, qkv, lse, pos, B, T, &ah, scratch, 1);
    cr_expect(!memcmp(out, out1, nout * sizeof(float)) && !memcmp(dqkv, d1, nqkv * sizeof(float)),
              "doc attention: 1 thread differs from %d", threads);
    free(out1); free(d1); free(pos);
    free(qkv); free(out); free(lse); free(r); free(dqkv); free(scratch);
}

/* Two rows across the 64-query blocks: a single-token document, a
 * document ending on a block boundary, one that fills its row; grouped kv
 * heads, and all heads on one kv head. */
Test(ops, attention_doc_positions)
{
    static const int len[2][5] = {{70, 1, 45, 34, 0}, {64, 64, 22, 0, 0}};
    check_doc_attention(2, 150, len, (AttnHeads){.NH = 4, .NKV = 2, .hs = 8, .group = 2}, 81);
    static const int whole[1][5] = {{150, 0, 0, 0, 0}};
    check_doc_attention(1, 150, whole, (AttnHeads){.NH = 3, .NKV = 1, .hs = 8, .group = 3}, 83);
}

/* Position i must not see positions after it: changing the last position's
 * k and v leaves all earlier outputs bit-identical. */
Test(ops, attention_is_causal)
{
    const int B = 1, T = 70, NH = 2, hs = 4, C = NH * hs;
    const size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C;
    float *qkv = fnew(nqkv), *o1 = fnew(nout), *o2 = fnew(nout), *lse = fnew((size_t)NH * T);
    float *scratch = fnew(attention_scratch_floats(T, 2));
    randn(qkv, nqkv, 63, 1.0f, 0.0f);
    attention_forward(o1, lse, qkv, B, T, NH, hs, scratch, 2);
    for (int i = C; i < 3 * C; i++) qkv[(size_t)(T - 1) * 3 * C + i] += 5.0f;
    attention_forward(o2, lse, qkv, B, T, NH, hs, scratch, 2);
    cr_expect(memcmp(o1, o2, (size_t)(T - 1) * C * sizeof(float)) == 0,
              "earlier positions changed when only the last k/v did");
    cr_expect(memcmp(o1 + (T - 1) * C, o2 + (T - 1) * C, C * sizeof(float)) != 0);
    free(qkv); free(o1); free(o2); free(lse); free(scratch);
}

/* GQA is MHA over kv heads repeated: expand each kv head to the q heads of
 * its group (HF's repeat_kv), run attention_forward/backward, and sum the
 * expanded heads' dk, dv over each group. */
static void check_gqa_vs_repeated(int B, int T, int NH, int NKV, int hs, uint64_t seed)
{
    const int group = NH / NKV, C = NH * hs, threads = 2;
    const AttnHeads ah = {.NH = NH, .NKV = NKV, .hs = hs, .group = group};
    const size_t ld = att_ld(&ah), nqkv = (size_t)B * T * ld, nout = (size_t)B * T * C;
    const size_t nfull = (size_t)B * T * 3 * C, nlse = (size_t)B * NH * T;
    float *qkv = fnew(nqkv), *full = fnew(nfull), *r = fnew(nout);
    float *out = fnew(nout), *out_f = fnew(nout), *lse = fnew(nlse), *lse_f = fnew(nlse);
    float *dqkv = fnew(nqkv), *dfull = fnew(nfull), *dsum = fnew(nqkv);
    float *scratch = fnew(attention_scratch_floats(T, threads));
    randn(qkv, nqkv, seed, 1.0f, 0.0f);
    randn(r, nout, seed + 1, 1.0f, 0.0f);
    for (int bt = 0; bt < B * T; bt++) {
        const float *src = qkv + (size_t)bt * ld;
        float *dst = full + (size_t)bt * 3 * C;
        memcpy(dst, src, (size_t)C * sizeof(float));
        for (int h = 0; h < NH; h++) {
            memcpy(dst + C + h * hs, src + C + (h / group) * hs, hs * sizeof(float));
            memcpy(dst + 2 * C + h * hs, src + C + (NKV + h / group) * hs, hs * sizeof(float));
        }
    }
    attention_forward_gqa(out, lse, qkv, NULL, B, T, &ah, scratch, threads);
    attention_forward(out_f, lse_f, full, B, T, NH, hs, scratch, threads);
    double *ref = to_double(out_f, nout), *lref = to_double(lse_f, nlse);
    check_close("gqa out vs repeated kv", out, ref, nout, 1e-6);
    check_close("gqa lse vs repeated kv", lse, lref, nlse, 1e-6);

    attention_backward_gqa(dqkv, r, out, qkv, lse, NULL, B, T, &ah, scratch, threads);
    attention_backward(dfull, r, out_f, full, lse_f, B, T, NH, hs, scratch, threads);
    for (int bt = 0; bt < B * T; bt++) {
        const float *src = dfull + (size_t)bt * 3 * C;
        float *dst = dsum + (size_t)bt * ld;
        memcpy(dst, src, (size_t)C * sizeof(float));
        for (int h = 0; h < NH; h++)
            for (int d = 0; d < hs; d++) {
                dst[C + (h / group) * hs + d] += src[C + h * hs + d];
                dst[C + (NKV + h / group) * hs + d] += src[2 * C + h * hs + d];
            }
    }
    double *dref = to_double(dsum, nqkv);
    check_close("gqa dqkv vs repeated kv", dqkv, dref, nqkv, 1e-5);
    free(ref); free(lref); free(dref);
    free(qkv); free(full); free(r); free(out); free(out_f); free(lse); free(lse_f);
    free(dqkv); free(dfull); free(dsum); free(scratch);
}

Test(ops, attention_gqa_group2_vs_repeated_kv) { check_gqa_vs_repeated(2, 70, 4, 2, 8, 101); }

Test(ops, attention_gqa_group3_vs_repeated_kv) { check_gqa_vs_repeated(1, 130, 6, 2, 8, 103); }

/* Tensor parallelism over heads: rank k of tp holds q heads [k NH/tp, (k+1)
 * NH/tp) and, when tp divides NKV, its share of the kv heads (else all of
 * them). Each rank's slice must compute the whole's out, lse and dq for its
 * heads, and the dk, dv of the whole once summed over the ranks that hold
 * a kv head. */
static void check_gqa_tp_slices(int NH, int NKV, int tp, uint64_t seed)
{
    const int B = 2, T = 70, hs = 4, group = NH / NKV, C = NH * hs, threads = 2;
    const int split = NKV % tp == 0, nh = NH / tp, nkv = split ? NKV / tp : NKV;
    const AttnHeads whole = {.NH = NH, .NKV = NKV, .hs = hs, .group = group};
    const size_t ld = att_ld(&whole), nqkv = (size_t)B * T * ld, nout = (size_t)B * T * C;
    float *qkv = fnew(nqkv), *out = fnew(nout), *lse = fnew((size_t)B * NH * T), *r = fnew(nout);
    float *dqkv = fnew(nqkv), *dsum = fnew(nqkv);
    float *scratch = fnew(attention_scratch_floats(T, threads));
    randn(qkv, nqkv, seed, 1.0f, 0.0f);
    randn(r, nout, seed + 1, 1.0f, 0.0f);
    attention_forward_gqa(out, lse, qkv, NULL, B, T, &whole, scratch, threads);
    attention_backward_gqa(dqkv, r, out, qkv, lse, NULL, B, T, &whole, scratch, threads);

    for (int k = 0; k < tp; k++) {
        const AttnHeads ah = {.NH = nh, .NKV = nkv, .hs = hs, .group = group, .h0 = k * nh,
                              .kv0 = split ? k * nkv : 0};
        const size_t lld = att_ld(&ah), lc = (size_t)nh * hs, n = (size_t)B * T;
        float *lq = fnew(n * lld), *lo = fnew(n * lc), *ll = fnew((size_t)B * nh * T);
        float *lr = fnew(n * lc), *lg = fnew(n * lld);
        /* the rank's columns: its q heads, then its kv heads' k and v */
        for (size_t bt = 0; bt < n; bt++) {
            const float *src = qkv + bt * ld;
            memcpy(lq + bt * lld, src + (size_t)k * nh * hs, lc * sizeof(float));
            memcpy(lq + bt * lld + lc, src + C + (size_t)ah.kv0 * hs, (size_t)nkv * hs * sizeof(float));
            memcpy(lq + bt * lld + lc + (size_t)nkv * hs, src + C + (size_t)(NKV + ah.kv0) * hs,
                   (size_t)nkv * hs * sizeof(float));
            memcpy(lr + bt * lc, r + bt * C + (size_t)k * nh * hs, lc * sizeof(float));
        }
        attention_forward_gqa(lo, ll, lq, NULL, B, T, &ah, scratch, threads);
        attention_backward_gqa(lg, lr, lo, lq, ll, NULL, B, T, &ah, scratch, threads);
        for (size_t bt = 0; bt < n; bt++) {
            double *ref = to_double(out + bt * C + (size_t)k * nh * hs, lc);
            check_close("tp slice out", lo + bt * lc, ref, lc, 1e-6);
            free(ref);
            ref = to_double(dqkv + bt * ld + (size_t)k * nh * hs, lc);
            check_close("tp slice dq", lg + bt * lld, ref, lc, 1e-6);
            free(ref);
            float *dst = dsum + bt * ld;
            for (size_t i = 0; i < (size_t)nkv * hs; i++) {
                dst[C + (size_t)ah.kv0 * hs + i] += lg[bt * lld + lc + i];
                dst[C + (size_t)(NKV + ah.kv0) * hs + i] += lg[bt * lld + lc + nkv * hs + i];
            }
        }
        for (int b = 0; b < B; b++) {
            double *ref = to_double(lse + ((size_t)b * NH + (size_t)k * nh) * T, (size_t)nh * T);
            check_close("tp slice lse", ll + (size_t)b * nh * T, ref, (size_t)nh * T, 1e-6);
            free(ref);
        }
        free(lq); free(lo); free(ll); free(lr); free(lg);
    }
    /* dk, dv of the whole = their sum over the ranks */
    float *kv_an = fnew((size_t)B * T * 2 * NKV * hs);
    double *kv_ref = dnew((size_t)B * T * 2 * NKV * hs);
    for (size_t bt = 0, m = 0; bt < (size_t)B * T; bt++)
        for (size_t i = C; i < ld; i++, m++) {
            kv_an[m] = dsum[bt * ld + i];
            kv_ref[m] = dqkv[bt * ld + i];
        }
    check_close("tp slices' dk, dv summed", kv_an, kv_ref, (size_t)B * T * 2 * NKV * hs, 1e-5);
    free(kv_an); free(kv_ref);
    free(qkv); free(out); free(lse); free(r); free(dqkv); free(dsum); free(scratch);
}

/* kv heads split over tp (tp divides them) */
Test(ops, attention_gqa_tp_split) { check_gqa_tp_slices(6, 2, 2, 111); }

/* kv heads replicated (tp does not divide them): NH 6, NKV 3, tp 2 */
Test(ops, attention_gqa_tp_replicated) { check_gqa_tp_slices(6, 3, 2, 113); }

/* ---- RMSNorm ---------------------------------------------------------------- */

typedef struct {
    int N, C, ld;
    double *inp, *w, *r, *out;
} RmsCtx;

static void rmsnorm_ref(double *out, double *rstd, const double *inp, const double *w, int N,
                        int C, int ld, double eps)
{
    for (int n = 0; n < N; n++) {
        const double *x = inp + (size_t)n * ld;
        double ms = 0.0;
        for (int i = 0; i < C; i++) ms += x[i] * x[i];
        double rs = 1.0 / sqrt(ms / C + eps);
        if (rstd) rstd[n] = rs;
        for (int i = 0; i < C; i++) out[(size_t)n * ld + i] = x[i] * rs * w[i];
    }
}

#define RMS_EPS 1e-5f

static double rms_obj(void *p)
{
    RmsCtx *c = p;
    rmsnorm_ref(c->out, NULL, c->inp, c->w, c->N, c->C, c->ld, RMS_EPS);
    return dot(c->r, c->out, (size_t)c->N * c->ld);
}

/* rows ld > C apart: the columns between rows are neither read nor written */
Test(ops, rmsnorm_grad)
{
    const int N = 5, C = 19, ld = 23;
    const size_t n = (size_t)N * ld;
    float *inp = fnew(n), *w = fnew(C), *r = fnew(n), *out = fnew(n), *rstd = fnew(N);
    float *dinp = fnew(n), *dw = fnew(C);
    randn(inp, n, 121, 1.5f, 0.4f);
    randn(w, C, 122, 0.5f, 1.0f);
    randn(r, n, 123, 1.0f, 0.0f);
    for (int k = 0; k < N; k++)
        for (int i = C; i < ld; i++) {
            r[(size_t)k * ld + i] = 0.0f; /* the objective ignores the gaps */
            out[(size_t)k * ld + i] = 42.0f;
            dinp[(size_t)k * ld + i] = 42.0f;
        }

    rmsnorm_forward(out, rstd, inp, w, N, C, ld, RMS_EPS);
    RmsCtx c = {N, C, ld, to_double(inp, n), to_double(w, C), to_double(r, n), dnew(n)};
    double *rs_ref = dnew(N);
    rmsnorm_ref(c.out, rs_ref, c.inp, c.w, N, C, ld, RMS_EPS);
    for (int k = 0; k < N; k++)
        for (int i = C; i < ld; i++) c.out[(size_t)k * ld + i] = 42.0;
    check_close("rmsnorm out", out, c.out, n, 1e-6);
    check_close("rmsnorm rstd", rstd, rs_ref, N, 1e-6);

    rmsnorm_backward(dinp, dw, r, inp, w, rstd, N, C, ld);
    double *g = dnew(n);
    fd_grad(g, c.inp, n, rms_obj, &c);
    for (int k = 0; k < N; k++)
        for (int i = C; i < ld; i++) {
            cr_expect(dinp[(size_t)k * ld + i] == 42.0f, "rmsnorm_backward wrote a gap");
            dinp[(size_t)k * ld + i] = 0.0f;
        }
    check_grad("rmsnorm dinp", dinp, g, n);
    fd_grad(g, c.w, C, rms_obj, &c);
    check_grad("rmsnorm dw", dw, g, C);

    /* accumulation; NULL outputs skipped */
    float *di2 = fnew(n), *dw2 = fnew(C), *dw3 = fnew(C);
    rmsnorm_backward(di2, dw2, r, inp, w, rstd, N, C, ld);
    rmsnorm_backward(di2, dw2, r, inp, w, rstd, N, C, ld);
    check_twice("rmsnorm dinp", dinp, di2, n);
    check_twice("rmsnorm dw", dw, dw2, C);
    rmsnorm_backward(NULL, dw3, r, inp, w, rstd, N, C, ld);
    cr_expect(memcmp(dw3, dw, C * sizeof(float)) == 0, "dw alone differs");
    /* in place, without rstd: the same output */
    float *io = fnew(n);
    memcpy(io, inp, n * sizeof(float));
    rmsnorm_forward(io, NULL, io, w, N, C, ld, RMS_EPS);
    for (int k = 0; k < N; k++)
        cr_expect(memcmp(io + (size_t)k * ld, out + (size_t)k * ld, C * sizeof(float)) == 0,
                  "in-place rmsnorm row %d differs", k);

    free(io); free(di2); free(dw2); free(dw3); free(g); free(rs_ref);
    free(c.inp); free(c.w); free(c.r); free(c.out);
    free(inp); free(w); free(r); free(out); free(rstd); free(dinp); free(dw);
}

/* ---- SwiGLU ----------------------------------------------------------------- */

static double silu_ref(double x) { return x / (1.0 + exp(-x)); }

typedef struct {
    size_t n;
    double *gate, *up, *r;
} SwigluCtx;

static double swiglu_obj(void *p)
{
    SwigluCtx *c = p;
    double s = 0.0;
    for (size_t i = 0; i < c->n; i++) s += c->r[i] * silu_ref(c->gate[i]) * c->up[i];
    return s;
}

Test(ops, swiglu_grad)
{
    enum { NR = 40 };
    const float special[] = {0.0f, 1e-3f, -1e-3f, 0.5f, -1.278f, 3.0f, -3.0f, 10.0f, -10.0f,
                             30.0f, -30.0f, 90.0f, -90.0f};
    const size_t ns = sizeof special / sizeof *special, n = NR + ns;
    float *gate = fnew(n), *up = fnew(n), *out = fnew(n), *r = fnew(n);
    float *dg = fnew(n), *du = fnew(n);
    randn(gate, NR, 131, 2.0f, 0.0f);
    memcpy(gate + NR, special, sizeof special);
    randn(up, n, 132, 1.0f, 0.0f);
    randn(r, n, 133, 1.0f, 0.0f);

    swiglu_forward(out, gate, up, n);
    double *ref = dnew(n);
    for (size_t i = 0; i < n; i++) ref[i] = silu_ref(gate[i]) * up[i];
    check_close("swiglu out", out, ref, n, 1e-6);
    for (size_t i = 0; i < n; i++) cr_expect(isfinite(out[i]), "swiglu out[%zu] not finite", i);

    swiglu_backward(dg, du, gate, up, r, n);
    SwigluCtx c = {n, to_double(gate, n), to_double(up, n), to_double(r, n)};
    double *g = dnew(n);
    fd_grad(g, c.gate, n, swiglu_obj, &c);
    check_grad("swiglu dgate", dg, g, n);
    fd_grad(g, c.up, n, swiglu_obj, &c);
    check_grad("swiglu dup", du, g, n);

    float *dg2 = fnew(n), *du2 = fnew(n);
    swiglu_backward(dg2, du2, gate, up, r, n);
    swiglu_backward(dg2, du2, gate, up, r, n);
    check_twice("swiglu dgate", dg, dg2, n);
    check_twice("swiglu dup", du, du2, n);
    free(dg2); free(du2); free(g); free(ref); free(c.gate); free(c.up); free(c.r);
    free(gate); free(up); free(out); free(r); free(dg); free(du);
}

/* ---- rotary position embedding ------------------------------------------- */

/* Llama 3.2's rope: theta 500000, llama3 scaling factor 32, low 1, high 4,
 * original context 8192; head_dim 64 */
#define L3_THETA 500000.0
#define L3_FACTOR 32.0
#define L3_LOW 1.0
#define L3_HIGH 4.0
#define L3_ORIG 8192

/* HF's inverse frequencies written out directly, in double */
static double rope_inv_freq_ref(int i, int hd, double theta, double factor)
{
    double f = 1.0 / pow(theta, 2.0 * i / hd);
    if (factor <= 0.0) return f;
    double wl = 2.0 * M_PI / f, lo_wl = L3_ORIG / L3_LOW, hi_wl = L3_ORIG / L3_HIGH;
    if (wl < hi_wl) return f;
    if (wl > lo_wl) return f / factor;
    double sm = ((double)L3_ORIG / wl - L3_LOW) / (L3_HIGH - L3_LOW);
    return (1.0 - sm) * f / factor + sm * f;
}

typedef struct {
    int B, T, ld, col0, nh, hd, pos0;
    double theta, factor;
    double *x, *r, *out;
} RopeCtx;

static void rope_ref(double *out, const double *x, const RopeCtx *c)
{
    const int half = c->hd / 2;
    memcpy(out, x, (size_t)c->B * c->T * c->ld * sizeof(double));
    for (int bt = 0; bt < c->B * c->T; bt++)
        for (int h = 0; h < c->nh; h++)
            for (int i = 0; i < half; i++) {
                double a = (bt % c->T + c->pos0) * rope_inv_freq_ref(i, c->hd, c->theta, c->factor);
                size_t j = (size_t)bt * c->ld + c->col0 + (size_t)h * c->hd + i;
                out[j] = x[j] * cos(a) - x[j + half] * sin(a);
                out[j + half] = x[j + half] * cos(a) + x[j] * sin(a);
            }
}

static double rope_obj(void *p)
{
    RopeCtx *c = p;
    rope_ref(c->out, c->x, c);
    return dot(c->r, c->out, (size_t)c->B * c->T * c->ld);
}

/* The table's angles against hand-computed llama3 frequencies (python, in
 * double: the high band kept, the low band divided by 32, one in the smooth
 * band), recovered as atan2(sin, cos) at position 1. */
Test(ops, rope_table_llama3)
{
    RopeTable rt;
    cr_assert_eq(rope_table_init(&rt, 4, 64, L3_THETA, L3_FACTOR, L3_LOW, L3_HIGH, L3_ORIG), 0);
    cr_expect_eq(rt.T, 4);
    cr_expect_eq(rt.half, 32);
    const struct { int i; double f; } want[] = {
        {0, 1.0},                     /* wavelen 2 pi < 8192/4: kept */
        {10, 0.016560440080994446},   /* 500000^(-20/64), wavelen 379: kept */
        {15, 0.001290547928209264},   /* wavelen 2948: smooth 0.592849 */
        {16, 0.00042955679655936815}, /* wavelen 4443: smooth 0.281283 */
        {18, 1.9461638184831125e-05}, /* wavelen 10089 > 8192: / 32 */
        {31, 9.418306725434909e-08},  /* 500000^(-62/64) / 32 */
    };
    for (size_t k = 0; k < sizeof want / sizeof *want; k++) {
        int i = want[k].i;
        double got = atan2(rt.sin[rt.half + i], rt.cos[rt.half + i]);
        cr_expect(fabs(got - want[k].f) <= 1e-6 * want[k].f,
                  "llama3 inv_freq[%d] = %.10g, want %.10g", i, got, want[k].f);
        cr_expect(fabs(rope_inv_freq_ref(i, 64, L3_THETA, L3_FACTOR) - want[k].f) <= 1e-12 * want[k].f,
                  "the test's own formula disagrees with the hand value at %d", i);
    }
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < 32; i++) {
            double a = t * rope_inv_freq_ref(i, 64, L3_THETA, L3_FACTOR);
            cr_expect(fabs(rt.cos[t * 32 + i] - cos(a)) < 1e-7 && fabs(rt.sin[t * 32 + i] - sin(a)) < 1e-7,
                      "table at t %d, i %d", t, i);
        }
    rope_table_free(&rt);
    cr_expect(rt.cos == NULL && rt.sin == NULL);
    rope_table_free(&rt); /* a zeroed table may be freed again */
    cr_expect_eq(rope_table_init(&rt, 4, 63, 1e4, 0, 0, 0, 0), -1, "odd head_dim accepted");
    cr_expect_eq(rope_table_init(&rt, 4, 64, 1e4, 8, 4, 1, 8192), -1, "high <= low accepted");
}

/* Forward against the direct formula, with heads in the middle of wider
 * rows (col0, ld) and positions from pos0; backward against finite
 * differences; the columns outside the heads untouched. */
static void check_rope(double factor, uint64_t seed)
{
    const int B = 2, T = 5, hd = 8, nh = 3, col0 = 4, ld = 32, pos0 = 3;
    const double theta = factor > 0 ? L3_THETA : 10000.0;
    const size_t n = (size_t)B * T * ld;
    RopeTable rt;
    cr_assert_eq(rope_table_init(&rt, T + pos0, hd, theta, factor, L3_LOW, L3_HIGH, L3_ORIG), 0);
    float *x = fnew(n), *r = fnew(n), *y = fnew(n), *dx = fnew(n);
    randn(x, n, seed, 1.0f, 0.0f);
    randn(r, n, seed + 1, 1.0f, 0.0f);
    memcpy(y, x, n * sizeof(float));
    rope_forward(y, &rt, NULL, B, T, ld, col0, nh, hd, pos0);
    RopeCtx c = {B, T, ld, col0, nh, hd, pos0, theta, factor, to_double(x, n), to_double(r, n),
                 dnew(n)};
    rope_ref(c.out, c.x, &c);
    check_close("rope out", y, c.out, n, 1e-6);
    for (size_t j = 0; j < n; j++) {
        size_t col = j % ld;
        if (col < (size_t)col0 || col >= (size_t)(col0 + nh * hd))
            cr_expect(y[j] == x[j], "rope changed column %zu outside the heads", col);
    }
    /* backward: the gradient of r . rope(x) is rope_backward(r) */
    memcpy(dx, r, n * sizeof(float));
    rope_backward(dx, &rt, NULL, B, T, ld, col0, nh, hd, pos0);
    double *g = dnew(n);
    fd_grad(g, c.x, n, rope_obj, &c);
    check_grad("rope dx", dx, g, n);
    free(g); free(c.x); free(c.r); free(c.out);
    free(x); free(r); free(y); free(dx);
    rope_table_free(&rt);
}

Test(ops, rope_vs_formula) { check_rope(0.0, 141); }

Test(ops, rope_llama3_vs_formula) { check_rope(L3_FACTOR, 143); }

/* position 0 turns nothing (bit for bit); backward undoes forward */
Test(ops, rope_identity_and_inverse)
{
    const int B = 2, T = 300, hd = 64, nh = 3, ld = 3 * 64 + 16;
    const size_t n = (size_t)B * T * ld;
    RopeTable rt;
    cr_assert_eq(rope_table_init(&rt, T, hd, 1e6, 0, 0, 0, 0), 0);
    float *x = fnew(n), *y = fnew(n);
    randn(x, n, 151, 1.0f, 0.0f);
    memcpy(y, x, n * sizeof(float));
    rope_forward(y, &rt, NULL, B, 1, ld, 16, nh, hd, 0); /* the first rows of both sequences */
    cr_expect(memcmp(x, y, n * sizeof(float)) == 0, "rope at position 0 is not the identity");
    rope_forward(y, &rt, NULL, B, T, ld, 16, nh, hd, 0);
    cr_expect(memcmp(x, y, (size_t)ld * sizeof(float)) == 0, "row 0 moved");
    cr_expect(memcmp(x + ld, y + ld, (size_t)ld * sizeof(float)) != 0, "row 1 did not turn");
    rope_backward(y, &rt, NULL, B, T, ld, 16, nh, hd, 0);
    double *xd = to_double(x, n);
    check_close("rope_backward(rope_forward(x))", y, xd, n, 1e-6);
    free(xd); free(x); free(y);
    rope_table_free(&rt);
}

/* ---- embedding ------------------------------------------------------------- */

typedef struct {
    int B, T, C;
    const int *tokens;
    double *wte, *wpe, *r, *out;
} EmbCtx;

static void embedding_ref(double *out, const int *tokens, const double *wte, const double *wpe,
                          int B, int T, int C)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int i = 0; i < C; i++)
                out[((size_t)b * T + t) * C + i] =
                    wte[(size_t)tokens[b * T + t] * C + i] + wpe[(size_t)t * C + i];
}

static double emb_obj(void *p)
{
    EmbCtx *c = p;
    embedding_ref(c->out, c->tokens, c->wte, c->wpe, c->B, c->T, c->C);
    return dot(c->r, c->out, (size_t)c->B * c->T * c->C);
}

Test(ops, embedding_grad)
{
    const int B = 2, T = 3, C = 4, V = 6;
    /* token 1 appears three times (twice in one sequence), token 5 never */
    const int tokens[] = {1, 3, 1, 4, 1, 0};
    const size_t nout = (size_t)B * T * C;
    float *wte = fnew(V * C), *wpe = fnew(T * C), *r = fnew(nout), *out = fnew(nout);
    float *dwte = fnew(V * C), *dwpe = fnew(T * C);
    randn(wte, V * C, 71, 1.0f, 0.0f);
    randn(wpe, T * C, 72, 1.0f, 0.0f);
    randn(r, nout, 73, 1.0f, 0.0f);

    embedding_forward(out, tokens, NULL, wte, wpe, B, T, C);
    EmbCtx c = {B, T, C, tokens, to_double(wte, V * C), to_double(wpe, T * C), to_double(r, nout),
                dnew(nout)};
    embedding_ref(c.out, tokens, c.wte, c.wpe, B, T, C);
    check_close("embedding out", out, c.out, nout, 1e-6);

    embedding_backward(dwte, dwpe, r, tokens, NULL, B, T, C);
    double *g = dnew(V * C);
    fd_grad(g, c.wte, V * C, emb_obj, &c);
    check_grad("embedding dwte", dwte, g, V * C);
    for (int i = 0; i < C; i++)
        cr_expect(dwte[5 * C + i] == 0.0f, "an unused token got a gradient");
    fd_grad(g, c.wpe, T * C, emb_obj, &c);
    check_grad("embedding dwpe", dwpe, g, T * C);

    float *e2 = fnew(V * C), *p2 = fnew(T * C);
    embedding_backward(e2, p2, r, tokens, NULL, B, T, C);
    embedding_backward(e2, p2, r, tokens, NULL, B, T, C);
    check_twice("embedding dwte", dwte, e2, V * C);
    check_twice("embedding dwpe", dwpe, p2, T * C);

    free(e2); free(p2); free(g);
    free(c.wte); free(c.wpe); free(c.r); free(c.out);
    free(wte); free(wpe); free(r); free(out); free(dwte); free(dwpe);
}

/* ---- softmax cross-entropy -------------------------------------------- */

typedef struct {
    int N, V;
    const int *targets;
    double *logits;
    double scale;
} XentCtx;

static double xent_ref(const double *logits, const int *targets, int N, int V)
{
    double total = 0.0;
    for (int n = 0; n < N; n++) {
        const double *l = logits + (size_t)n * V;
        double mx = l[0], z = 0.0;
        for (int j = 1; j < V; j++) mx = l[j] > mx ? l[j] : mx;
        for (int j = 0; j < V; j++) z += exp(l[j] - mx);
        total += log(z) + mx - l[targets[n]];
    }
    return total;
}

static double xent_obj(void *p)
{
    XentCtx *c = p;
    return c->scale * xent_ref(c->logits, c->targets, c->N, c->V);
}

Test(ops, softmax_xent_grad)
{
    const int N = 6, V = 7;
    const float scale = 0.37f;
    int targets[6];
    for (int n = 0; n < N; n++) targets[n] = (int)(philox_uniform(81, RNG_SAMPLE, n) * V);
    targets[N - 1] = V - 1; /* the last class is a target at least once */
    float *logits = fnew(N * V), *dl = fnew(N * V);
    randn(logits, N * V, 82, 2.0f, 0.0f);
    for (int i = 0; i < N * V; i++) dl[i] = 123.0f; /* SET, not accumulated */

    double loss = softmax_xent(dl, logits, targets, N, V, scale);
    XentCtx c = {N, V, targets, to_double(logits, N * V), scale};
    double ref = xent_ref(c.logits, targets, N, V);
    cr_expect(fabs(loss - ref) <= 1e-6 * fabs(ref), "loss sum %.10g vs reference %.10g", loss, ref);
    cr_expect(ref > 1.0, "the reference loss is degenerate");
    double loss_null = softmax_xent(NULL, logits, targets, N, V, 0.0f);
    cr_expect(loss_null == loss, "the loss depends on whether dlogits is requested");
    /* in place (dlogits = logits, as the GPT head does): same loss, same bits */
    float *inplace = fnew(N * V);
    memcpy(inplace, logits, (size_t)N * V * sizeof(float));
    double l_in = softmax_xent(inplace, inplace, targets, N, V, scale);
    cr_expect(l_in == loss, "in-place loss %.17g != out-of-place %.17g", l_in, loss);
    cr_expect(memcmp(inplace, dl, (size_t)N * V * sizeof(float)) == 0,
              "in-place dlogits differ from out-of-place");
    free(inplace);

    double *g = dnew(N * V);
    fd_grad(g, c.logits, N * V, xent_obj, &c);
    check_grad("softmax_xent dlogits", dl, g, N * V);
    for (int n = 0; n < N; n++) {
        double s = 0.0;
        for (int j = 0; j < V; j++) s += dl[n * V + j];
        cr_expect(fabs(s) < 1e-6, "dlogits row %d sums to %g, not 0", n, s);
    }

    /* numerically stable for huge logits: the same loss as when shifted */
    float *big = fnew(N * V);
    for (int i = 0; i < N * V; i++) big[i] = logits[i] + 1000.0f;
    double *bigd = to_double(big, N * V);
    double lbig = softmax_xent(dl, big, targets, N, V, 1.0f);
    double rbig = xent_ref(bigd, targets, N, V);
    cr_expect(isfinite(lbig) && fabs(lbig - rbig) <= 1e-5 * fabs(rbig) + 1e-4,
              "large logits: loss %.10g vs reference %.10g", lbig, rbig);
    for (int i = 0; i < N * V; i++) cr_expect(isfinite(dl[i]), "dlogits[%d] not finite", i);

    /* an ignored target (a loss mask's): the row adds no loss and gets no
     * gradient; the others are as before */
    int masked[6];
    memcpy(masked, targets, sizeof masked);
    masked[2] = TARGET_IGNORED;
    double row2 = xent_ref(c.logits + 2 * V, targets + 2, 1, V);
    double lm = softmax_xent(dl, logits, masked, N, V, scale);
    cr_expect(fabs(lm - (ref - row2)) <= 1e-6 * fabs(ref), "masked loss %.10g vs %.10g", lm, ref - row2);
    for (int j = 0; j < V; j++) cr_expect(dl[2 * V + j] == 0.0f, "an ignored row's gradient is %g", dl[2 * V + j]);

    free(big); free(bigd); free(g); free(c.logits); free(logits); free(dl);
}

/* The kernels' results must not depend on the thread count where the
 * header promises fixed-order reductions. */
Test(ops, thread_count_invariance)
{
    const int N = 37, C = 70, V = 9;
    float *inp = fnew(N * C), *w = fnew(C), *b = fnew(C), *r = fnew(N * C), *out = fnew(N * C);
    float *mean = fnew(N), *rstd = fnew(N);
    float *di[2] = {fnew(N * C), fnew(N * C)}, *dw[2] = {fnew(C), fnew(C)};
    float *gl[2] = {fnew(N * C), fnew(N * C)};
    const int rows = N * C / V; /* the inputs reread as (rows, V) logits */
    int *tg = calloc(rows, sizeof(int));
    cr_assert_not_null(tg);
    for (int n = 0; n < rows; n++) tg[n] = n % V;
    randn(inp, N * C, 91, 1.0f, 0.0f);
    randn(w, C, 92, 0.5f, 1.0f);
    randn(b, C, 93, 0.5f, 0.0f);
    randn(r, N * C, 94, 1.0f, 0.0f);
    double loss[2];
    int saved = ops_get_threads();
    for (int k = 0; k < 2; k++) {
        ops_set_threads(k + 1);
        layernorm_forward(out, mean, rstd, inp, w, b, N, C);
        layernorm_backward(di[k], dw[k], NULL, r, inp, w, mean, rstd, N, C);
        gelu_backward(gl[k], inp, r, (size_t)N * C);
        loss[k] = softmax_xent(NULL, inp, tg, rows, V, 1.0f);
    }
    ops_set_threads(saved);
    cr_expect(memcmp(di[0], di[1], N * C * sizeof(float)) == 0);
    cr_expect(memcmp(dw[0], dw[1], C * sizeof(float)) == 0);
    cr_expect(memcmp(gl[0], gl[1], N * C * sizeof(float)) == 0);
    cr_expect(loss[0] == loss[1]);
    free(inp); free(w); free(b); free(r); free(out); free(mean); free(rstd); free(tg);
    for (int k = 0; k < 2; k++) {
        free(di[k]);
        free(dw[k]);
        free(gl[k]);
    }
}

/* The llama family's kernels, 1 thread vs 2, bit for bit: RMSNorm's row and
 * column reductions, SwiGLU, rope, and grouped-query attention, whose
 * backward sums a kv head's dk, dv over its group in head order. */
Test(ops, thread_count_invariance_llama)
{
    const int N = 37, C = 70, T = 130, NH = 6, NKV = 2, hs = 8;
    const AttnHeads ah = {.NH = NH, .NKV = NKV, .hs = hs, .group = NH / NKV};
    const size_t nqkv = (size_t)T * att_ld(&ah), nout = (size_t)T * NH * hs, nc = (size_t)N * C;
    float *inp = fnew(nc), *w = fnew(C), *r = fnew(nc), *qkv = fnew(nqkv), *dy = fnew(nout);
    float *scratch = fnew(attention_scratch_floats(T, 2));
    randn(inp, nc, 161, 1.0f, 0.2f);
    randn(w, C, 162, 0.5f, 1.0f);
    randn(r, nc, 163, 1.0f, 0.0f);
    randn(qkv, nqkv, 164, 1.0f, 0.0f);
    randn(dy, nout, 165, 1.0f, 0.0f);
    RopeTable rt;
    cr_assert_eq(rope_table_init(&rt, T, hs, 1e4, 0, 0, 0, 0), 0);
    float *out[2], *rs[2], *di[2], *dw[2], *sw[2], *dg[2], *du[2], *rq[2], *ao[2], *lse[2], *dq[2];
    int saved = ops_get_threads();
    for (int k = 0; k < 2; k++) {
        out[k] = fnew(nc); rs[k] = fnew(N); di[k] = fnew(nc); dw[k] = fnew(C);
        sw[k] = fnew(nc); dg[k] = fnew(nc); du[k] = fnew(nc);
        rq[k] = fnew(nqkv); ao[k] = fnew(nout); lse[k] = fnew((size_t)NH * T); dq[k] = fnew(nqkv);
        ops_set_threads(k + 1);
        rmsnorm_forward(out[k], rs[k], inp, w, N, C, C, 1e-6f);
        rmsnorm_backward(di[k], dw[k], r, inp, w, rs[k], N, C, C);
        swiglu_forward(sw[k], inp, r, nc);
        swiglu_backward(dg[k], du[k], inp, r, out[k], nc);
        memcpy(rq[k], qkv, nqkv * sizeof(float));
        rope_forward(rq[k], &rt, NULL, 1, T, (int)att_ld(&ah), 0, NH + NKV, hs, 0);
        attention_forward_gqa(ao[k], lse[k], rq[k], NULL, 1, T, &ah, scratch, 2);
        attention_backward_gqa(dq[k], dy, ao[k], rq[k], lse[k], NULL, 1, T, &ah, scratch, 2);
        rope_backward(dq[k], &rt, NULL, 1, T, (int)att_ld(&ah), 0, NH + NKV, hs, 0);
    }
    ops_set_threads(saved);
    cr_expect(memcmp(out[0], out[1], nc * sizeof(float)) == 0, "rmsnorm out");
    cr_expect(memcmp(rs[0], rs[1], N * sizeof(float)) == 0, "rmsnorm rstd");
    cr_expect(memcmp(di[0], di[1], nc * sizeof(float)) == 0, "rmsnorm dinp");
    cr_expect(memcmp(dw[0], dw[1], C * sizeof(float)) == 0, "rmsnorm dw");
    cr_expect(memcmp(sw[0], sw[1], nc * sizeof(float)) == 0, "swiglu out");
    cr_expect(memcmp(dg[0], dg[1], nc * sizeof(float)) == 0, "swiglu dgate");
    cr_expect(memcmp(du[0], du[1], nc * sizeof(float)) == 0, "swiglu dup");
    cr_expect(memcmp(rq[0], rq[1], nqkv * sizeof(float)) == 0, "rope");
    cr_expect(memcmp(ao[0], ao[1], nout * sizeof(float)) == 0, "gqa out");
    cr_expect(memcmp(lse[0], lse[1], (size_t)NH * T * sizeof(float)) == 0, "gqa lse");
    cr_expect(memcmp(dq[0], dq[1], nqkv * sizeof(float)) == 0, "gqa dqkv");
    for (int k = 0; k < 2; k++) {
        free(out[k]); free(rs[k]); free(di[k]); free(dw[k]); free(sw[k]); free(dg[k]);
        free(du[k]); free(rq[k]); free(ao[k]); free(lse[k]); free(dq[k]);
    }
    rope_table_free(&rt);
    free(inp); free(w); free(r); free(qkv); free(dy); free(scratch);
}
