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

typedef struct {
    int B, T, NH, hs;
    double *qkv, *r, *out;
} AttCtx;

/* Causal softmax(q k^T / sqrt(hs)) v, per batch and head, qkv rows laid out
 * as [q heads | k heads | v heads]. lse (may be NULL) gets each query's
 * log-sum-exp of scaled scores (B,NH,T). */
static void attention_ref(double *out, double *lse, const double *qkv, int B, int T, int NH,
                          int hs)
{
    const int C = NH * hs, C3 = 3 * C;
    double *p = malloc((size_t)T * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < T; i++) {
                const double *q = qkv + ((size_t)b * T + i) * C3 + h * hs;
                double mx = -INFINITY, z = 0.0;
                for (int j = 0; j <= i; j++) {
                    const double *k = qkv + ((size_t)b * T + j) * C3 + C + h * hs;
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
                    const double *v = qkv + ((size_t)b * T + j) * C3 + 2 * C + h * hs;
                    for (int d = 0; d < hs; d++) o[d] += p[j] * v[d];
                }
            }
    free(p);
}

static double att_obj(void *p)
{
    AttCtx *c = p;
    attention_ref(c->out, NULL, c->qkv, c->B, c->T, c->NH, c->hs);
    return dot(c->r, c->out, (size_t)c->B * c->T * c->NH * c->hs);
}

/* Forward against the double reference, and the analytic dqkv (q, k and v
 * parts separately, so one cannot hide behind another) against finite
 * differences of it. T above the kernel's 64-query block covers several
 * blocks, a partial last one and keys reaching across blocks. */
static void check_attention(int B, int T, int NH, int hs, uint64_t seed)
{
    const int C = NH * hs, threads = 2;
    const size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, nlse = (size_t)B * NH * T;
    float *qkv = fnew(nqkv), *out = fnew(nout), *lse = fnew(nlse), *r = fnew(nout);
    float *dqkv = fnew(nqkv), *scratch = fnew(attention_scratch_floats(T, threads));
    randn(qkv, nqkv, seed, 1.0f, 0.0f);
    randn(r, nout, seed + 1, 1.0f, 0.0f);

    attention_forward(out, lse, qkv, B, T, NH, hs, scratch, threads);
    AttCtx c = {B, T, NH, hs, to_double(qkv, nqkv), to_double(r, nout), dnew(nout)};
    double *lse_ref = dnew(nlse);
    attention_ref(c.out, lse_ref, c.qkv, B, T, NH, hs);
    check_close("attention out", out, c.out, nout, 1e-5);
    check_close("attention log-sum-exp", lse, lse_ref, nlse, 1e-5);

    attention_backward(dqkv, r, out, qkv, lse, B, T, NH, hs, scratch, threads);
    double *g = dnew(nqkv);
    fd_grad(g, c.qkv, nqkv, att_obj, &c);
    check_grad("attention dqkv", dqkv, g, nqkv);
    float *an_part = fnew(nqkv);
    double *fd_part = dnew(nqkv);
    const char *names[3] = {"attention dq", "attention dk", "attention dv"};
    for (int part = 0; part < 3; part++) {
        size_t m = 0;
        for (int bt = 0; bt < B * T; bt++)
            for (int i = 0; i < C; i++) {
                size_t idx = (size_t)bt * 3 * C + part * C + i;
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
    attention_backward(d2, r, out, qkv, lse, B, T, NH, hs, scratch, 1);
    for (size_t i = 0; i < ns; i++) scratch[i] = -7.0f;
    attention_backward(d2, r, out, qkv, lse, B, T, NH, hs, scratch, threads);
    check_twice("attention dqkv", dqkv, d2, nqkv);
    float *out1 = fnew(nout);
    attention_forward(out1, lse, qkv, B, T, NH, hs, scratch, 1);
    cr_expect(memcmp(out, out1, nout * sizeof(float)) == 0,
              "attention out differs between 1 and %d threads", threads);

    free(an_part); free(fd_part); free(d2); free(out1);
    free(g); free(lse_ref); free(c.qkv); free(c.r); free(c.out);
    free(qkv); free(out); free(lse); free(r); free(dqkv); free(scratch);
}

Test(ops, attention_grad) { check_attention(2, 5, 2, 3, 61); }

Test(ops, attention_grad_blocks) { check_attention(1, 150, 2, 4, 71); }

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

    embedding_forward(out, tokens, wte, wpe, B, T, C);
    EmbCtx c = {B, T, C, tokens, to_double(wte, V * C), to_double(wpe, T * C), to_double(r, nout),
                dnew(nout)};
    embedding_ref(c.out, tokens, c.wte, c.wpe, B, T, C);
    check_close("embedding out", out, c.out, nout, 1e-6);

    embedding_backward(dwte, dwpe, r, tokens, B, T, C);
    double *g = dnew(V * C);
    fd_grad(g, c.wte, V * C, emb_obj, &c);
    check_grad("embedding dwte", dwte, g, V * C);
    for (int i = 0; i < C; i++)
        cr_expect(dwte[5 * C + i] == 0.0f, "an unused token got a gradient");
    fd_grad(g, c.wpe, T * C, emb_obj, &c);
    check_grad("embedding dwpe", dwpe, g, T * C);

    float *e2 = fnew(V * C), *p2 = fnew(T * C);
    embedding_backward(e2, p2, r, tokens, B, T, C);
    embedding_backward(e2, p2, r, tokens, B, T, C);
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
