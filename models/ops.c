#include "models/ops.h"

#include <cblas.h>
#include <stdint.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "models/philox.h"

/* ---- elementary functions -------------------------------------------- */

static inline float clampf(float x, float lo, float hi)
{
    /* written as two selects so loops that call it if-convert and vectorize */
    x = x < hi ? x : hi;
    return x > lo ? x : lo;
}

/* Rational minimax approximation of tanh on [-7.9, 7.9] (|err| < 1e-6);
 * branch-free so the loops that call it vectorize. */
static inline float tanh_approx(float x)
{
    x = clampf(x, -7.90531110763549805f, 7.90531110763549805f);
    float x2 = x * x;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    p = p * x;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return p / q;
}

float fast_tanhf(float x) { return tanh_approx(x); }

/* exp(x) = 2^n * exp(r), |r| <= ln2/2, Cephes polynomial for exp(r). */
static inline float exp_approx(float x)
{
    x = clampf(x, -87.3f, 88.3f);
    float n = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { int i; float f; } s;
    s.i = ((int)n + 127) << 23;
    return p * s.f;
}

float fast_expf(float x) { return exp_approx(x); }

/* ---- threads ------------------------------------------------------------ */

void ops_set_threads(int n)
{
    if (n < 1) n = 1;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int ops_get_threads(void) { return omp_get_max_threads(); }


/* ---- matmul --------------------------------------------------------------- */

void matmul_forward(float *out, const float *inp, const float *w, const float *bias,
                    int N, int C, int OC)
{
    matmul_forward_ld(out, OC, inp, w, N, C, OC);
    if (bias) bias_forward(out, bias, N, OC);
}

void matmul_forward_ld(float *out, int ldo, const float *inp, const float *w, int N, int C, int OC)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, w, C,
                0.0f, out, ldo);
}

void bias_forward(float *out, const float *bias, int N, int OC)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * OC;
        for (int j = 0; j < OC; j++) o[j] += bias[j];
    }
}

/* Column sums in row order: the same bits for any thread count. */
static void sum_rows_into(float *acc, const float *x, int N, int D)
{
    enum { BLK = 64 };
    int nblk = (D + BLK - 1) / BLK;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < nblk; b++) {
        int j0 = b * BLK, j1 = j0 + BLK < D ? j0 + BLK : D;
        for (int n = 0; n < N; n++) {
            const float *row = x + (size_t)n * D;
            for (int j = j0; j < j1; j++) acc[j] += row[j];
        }
    }
}

void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                     const float *inp, const float *w, int N, int C, int OC)
{
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, w, C,
                    1.0f, dinp, C);
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C,
                    1.0f, dw, C);
    if (dbias) sum_rows_into(dbias, dout, N, OC);
}

void lora_up(float *y, int ldy, const float *u, const float *B, int N, int r, int out, float scale)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, out, r, scale, u, r, B, r, 1.0f, y,
                ldy);
}

void lora_up_backward(float *du, float *dB, const float *dy, int ldy, const float *u,
                      const float *B, int N, int r, int out, float scale)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, out, scale, dy, ldy, B, r, 0.0f,
                du, r);
    if (dB)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, r, N, scale, dy, ldy, u, r, 1.0f,
                    dB, r);
}

void dropout_scales(float *s, int N, int cols, uint64_t key, uint64_t row0, uint32_t stream,
                    uint64_t col0, float p)
{
    /* keep when the word is at or above p * 2^32 */
    const uint32_t cut = (uint32_t)fmin((double)p * 4294967296.0, 4294967295.0);
    const float keep = 1.0f / (1.0f - p);
    const uint64_t b0 = col0 / 4, b1 = (col0 + (uint64_t)cols + 3) / 4; /* blocks [b0, b1) */
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        uint32_t w[4][PHILOX_LANES];
        float *row = s + (size_t)n * cols;
        for (uint64_t b = b0; b < b1; b += PHILOX_LANES) {
            philox4x32_10_lanes((uint32_t)b, (uint32_t)(row0 + (uint64_t)n), stream, RNG_LORA_DROPOUT,
                                key, w);
            for (int i = 0; i < PHILOX_LANES && b + i < b1; i++)
                for (int word = 0; word < 4; word++) {
                    uint64_t c = 4 * (b + i) + word; /* the global column */
                    if (c >= col0 && c < col0 + (uint64_t)cols)
                        row[c - col0] = w[word][i] >= cut ? keep : 0.0f;
                }
        }
    }
}

void scale_rows(float *out, const float *x, const float *s, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = x[i] * s[i];
}

void scale_add(float *dx, const float *g, const float *s, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dx[i] += g[i] * s[i];
}

void lora_merge(float *W, const float *A, const float *B, int out, int in, int r, float scale)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out, in, r, scale, B, r, A, in, 1.0f, W,
                in);
}

/* ---- layernorm ------------------------------------------------------------ */

/* dw += sum over rows of dout (x - mean) rstd, db += sum of dout, for
 * layernorm and (mean NULL: 0) RMSNorm; rows ld floats apart. Column
 * blocks, rows in order: the same sums for any thread count. */
static void norm_param_grads(float *dw, float *db, const float *dout, const float *inp,
                             const float *mean, const float *rstd, int N, int C, int ld)
{
    if (!dw && !db) return;
    enum { BLK = 32 };
    int nblk = (C + BLK - 1) / BLK;
#pragma omp parallel for schedule(static)
    for (int bk = 0; bk < nblk; bk++) {
        int j0 = bk * BLK, j1 = j0 + BLK < C ? j0 + BLK : C;
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * ld, *dy = dout + (size_t)n * ld;
            float m = mean ? mean[n] : 0.0f, r = rstd[n];
            for (int i = j0; i < j1; i++) {
                if (dw) dw[i] += dy[i] * (x[i] - m) * r;
                if (db) db[i] += dy[i];
            }
        }
    }
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *w, const float *b, int N, int C)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float s = 0.0f;
        for (int i = 0; i < C; i++) s += x[i];
        float m = s / C;
        float v = 0.0f;
        for (int i = 0; i < C; i++) {
            float d = x[i] - m;
            v += d * d;
        }
        float r = 1.0f / sqrtf(v / C + 1e-5f);
        float *o = out + (size_t)n * C;
        for (int i = 0; i < C; i++) o[i] = (x[i] - m) * r * w[i] + b[i];
        mean[n] = m;
        rstd[n] = r;
    }
}

void layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                        const float *inp, const float *w, const float *mean,
                        const float *rstd, int N, int C)
{
    if (dinp) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
            float m = mean[n], r = rstd[n];
            float sum_dn = 0.0f, sum_dn_n = 0.0f;
            for (int i = 0; i < C; i++) {
                float dn = dy[i] * w[i];
                sum_dn += dn;
                sum_dn_n += dn * (x[i] - m) * r;
            }
            sum_dn /= C;
            sum_dn_n /= C;
            float *dx = dinp + (size_t)n * C;
            for (int i = 0; i < C; i++) {
                float norm = (x[i] - m) * r;
                dx[i] += r * (dy[i] * w[i] - sum_dn - norm * sum_dn_n);
            }
        }
    }
    norm_param_grads(dw, db, dout, inp, mean, rstd, N, C, C);
}

/* ---- RMSNorm ---------------------------------------------------------------- */

/* RMSNorm's row reductions run in double, by DLANES independent partial
 * sums (they vectorize without reassociation and combine in a fixed order):
 * the reference is float64 PyTorch, and a float sum of C squares drifts by
 * ~sqrt(C) ulps while the square of a float is exact in double, so the mean
 * square is the exact one to ~1e-16. The kernel is memory-bound: the wider
 * arithmetic costs nothing measurable. */
enum { DLANES = 8 };

static double dot_lanes(const float *a, const float *b, int n)
{
    double acc[DLANES] = {0};
    int j = 0;
    for (; j + DLANES <= n; j += DLANES)
        for (int k = 0; k < DLANES; k++) acc[k] += (double)a[j + k] * b[j + k];
    double s = 0.0;
    for (int k = 0; k < DLANES; k++) s += acc[k];
    for (; j < n; j++) s += (double)a[j] * b[j];
    return s;
}

/* sum_j a_j b_j c_j, each product in double */
static double dot3_lanes(const float *a, const float *b, const float *c, int n)
{
    double acc[DLANES] = {0};
    int j = 0;
    for (; j + DLANES <= n; j += DLANES)
        for (int k = 0; k < DLANES; k++) acc[k] += (double)a[j + k] * b[j + k] * c[j + k];
    double s = 0.0;
    for (int k = 0; k < DLANES; k++) s += acc[k];
    for (; j < n; j++) s += (double)a[j] * b[j] * c[j];
    return s;
}

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C,
                     int ld, float eps)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * ld;
        float r = (float)(1.0 / sqrt(dot_lanes(x, x, C) / C + eps));
        float *o = out + (size_t)n * ld;
        /* (x r) w: HF's order, weight * (x * rsqrt(var + eps)) */
        for (int i = 0; i < C; i++) o[i] = x[i] * r * w[i];
        if (rstd) rstd[n] = r;
    }
}

/* With g = dout w: dx_j = r g_j - x_j r^3 (sum_i g_i x_i) / C;
 * dw_i = sum over rows of dout_i x_i r (x - 0 is x: layernorm's sum). */
void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                      const float *w, const float *rstd, int N, int C, int ld)
{
    if (dinp) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * ld, *dy = dout + (size_t)n * ld;
            double r = rstd[n];
            float k = (float)(r * r * r * dot3_lanes(dy, w, x, C) / C), rf = rstd[n];
            float *dx = dinp + (size_t)n * ld;
            for (int i = 0; i < C; i++) dx[i] += rf * (dy[i] * w[i]) - x[i] * k;
        }
    }
    norm_param_grads(dw, NULL, dout, inp, NULL, rstd, N, C, ld);
}

/* ---- GELU (tanh approximation) ------------------------------------------ */

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

void gelu_forward(float *out, const float *inp, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float t = tanh_approx(GELU_K * (x + 0.044715f * x * x * x));
        out[i] = 0.5f * x * (1.0f + t);
    }
}

void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float t = tanh_approx(GELU_K * (x + 0.044715f * x * x * x));
        float dt = (1.0f - t * t) * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] += dout[i] * (0.5f * (1.0f + t) + 0.5f * x * dt);
    }
}

/* ---- SwiGLU --------------------------------------------------------------- */

/* 1 / (1 + e^-x) from e = e^-|x| in (0, 1]: for x < 0 it is e / (1 + e),
 * accurate relative to the (tiny) result; and this form runs ~3x faster
 * here than 1 / (1 + e^-x), whose division stalled the vectorized loop
 * (measured; the divisor range is the one difference). */
static inline float sigmoid_approx(float x)
{
    float e = exp_approx(-fabsf(x));
    return (x >= 0.0f ? 1.0f : e) / (1.0f + e);
}

void swiglu_forward(float *out, const float *gate, const float *up, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g * sigmoid_approx(g) * up[i];
    }
}

/* silu'(g) = s (1 + g (1 - s)), s = sigmoid(g) */
void swiglu_backward(float *dgate, float *dup, const float *gate, const float *up,
                     const float *dout, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = gate[i], sg = sigmoid_approx(g), d = dout[i];
        dgate[i] += d * up[i] * (sg * (1.0f + g * (1.0f - sg)));
        dup[i] += d * (g * sg);
    }
}

/* ---- rotary position embedding ------------------------------------------- */

/* llama3's frequency scaling of one inverse frequency (see ops.h) */
static double llama3_inv_freq(double inv_freq, double factor, double low, double high, int orig)
{
    const double wavelen = 2.0 * M_PI / inv_freq;
    if (wavelen < orig / high) return inv_freq;
    if (wavelen > orig / low) return inv_freq / factor;
    double smooth = (orig / wavelen - low) / (high - low);
    return (1.0 - smooth) * inv_freq / factor + smooth * inv_freq;
}

int rope_table_init(RopeTable *r, int T, int hd, double theta, double factor, double low_freq,
                    double high_freq, int orig_ctx)
{
    memset(r, 0, sizeof *r);
    if (T < 1 || hd < 2 || hd % 2 || !(theta > 0.0)) return -1;
    if (factor > 0.0 && (!(low_freq > 0.0) || !(high_freq > low_freq) || orig_ctx < 1)) return -1;
    const int half = hd / 2;
    size_t n = (size_t)T * half;
    r->cos = malloc(n * sizeof(float));
    r->sin = malloc(n * sizeof(float));
    if (!r->cos || !r->sin) {
        rope_table_free(r);
        return -1;
    }
    r->T = T;
    r->half = half;
    for (int i = 0; i < half; i++) {
        double f = pow(theta, -2.0 * i / hd);
        if (factor > 0.0) f = llama3_inv_freq(f, factor, low_freq, high_freq, orig_ctx);
        for (int t = 0; t < T; t++) {
            double a = (double)t * f;
            r->cos[(size_t)t * half + i] = (float)cos(a);
            r->sin[(size_t)t * half + i] = (float)sin(a);
        }
    }
    return 0;
}

void rope_table_free(RopeTable *r)
{
    free(r->cos);
    free(r->sin);
    memset(r, 0, sizeof *r);
}

/* (x1, x2) <- (x1 cos - x2 sin', x2 cos + x1 sin') with sin' = sign * sin:
 * sign -1 is the inverse rotation, and its negation is exact, so forward
 * and backward are one loop. */
static void rope_rotate(float *x, const RopeTable *r, const int *pos, int B, int T, int ld,
                        int col0, int n_heads, int hd, int pos0, float sign)
{
    const int half = hd / 2;
#pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        size_t at = (size_t)((pos ? pos[bt] : bt % T) + pos0) * half;
        const float *restrict c = r->cos + at, *restrict sn = r->sin + at;
        float *row = x + (size_t)bt * ld + col0;
        for (int h = 0; h < n_heads; h++) {
            float *restrict x1 = row + (size_t)h * hd, *restrict x2 = x1 + half;
            for (int i = 0; i < half; i++) {
                float a = x1[i], b = x2[i], s = sign * sn[i];
                x1[i] = a * c[i] - b * s;
                x2[i] = b * c[i] + a * s;
            }
        }
    }
}

void rope_forward(float *x, const RopeTable *r, const int *pos, int B, int T, int ld, int col0,
                  int n_heads, int hd, int pos0)
{
    rope_rotate(x, r, pos, B, T, ld, col0, n_heads, hd, pos0, 1.0f);
}

void rope_backward(float *dx, const RopeTable *r, const int *pos, int B, int T, int ld, int col0,
                   int n_heads, int hd, int pos0)
{
    rope_rotate(dx, r, pos, B, T, ld, col0, n_heads, hd, pos0, -1.0f);
}

/* ---- residual --------------------------------------------------------------- */

void residual_forward(float *out, const float *a, const float *b, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/* ---- row reductions ------------------------------------------------------ */

/* Max and sum of exp over a row by LANES independent partial results, which
 * the compiler vectorizes without reassociating anything (no -ffast-math),
 * combined in a fixed order: deterministic, and ~8x a scalar loop. Softmax
 * cross-entropy over a 50257 vocabulary and attention's causal softmax
 * both live on these. */
enum { LANES = 16 };

static float row_max(const float *l, int V)
{
    float m[LANES];
    int j = 0;
    for (int k = 0; k < LANES; k++) m[k] = l[0];
    for (; j + LANES <= V; j += LANES)
        for (int k = 0; k < LANES; k++) m[k] = l[j + k] > m[k] ? l[j + k] : m[k];
    float mx = m[0];
    for (int k = 1; k < LANES; k++) mx = m[k] > mx ? m[k] : mx;
    for (; j < V; j++) mx = l[j] > mx ? l[j] : mx;
    return mx;
}

static double row_sum_exp(const float *l, int V, float mx)
{
    float acc[LANES] = {0};
    int j = 0;
    for (; j + LANES <= V; j += LANES)
        for (int k = 0; k < LANES; k++) acc[k] += exp_approx(l[j + k] - mx);
    double sum = 0.0;
    for (int k = 0; k < LANES; k++) sum += acc[k];
    for (; j < V; j++) sum += exp_approx(l[j] - mx);
    return sum;
}

/* x[j] = exp(x[j] - mx) for j < n; returns the sum (by lanes). */
static double exp_shift_sum(float *x, int n, float mx)
{
    float acc[LANES] = {0};
    int j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int k = 0; k < LANES; k++) {
            x[j + k] = exp_approx(x[j + k] - mx);
            acc[k] += x[j + k];
        }
    double sum = 0.0;
    for (int k = 0; k < LANES; k++) sum += acc[k];
    for (; j < n; j++) {
        x[j] = exp_approx(x[j] - mx);
        sum += x[j];
    }
    return sum;
}

/* ---- attention ---------------------------------------------------------- */

/* Causal attention by blocks of ATT_BQ queries, the way FlashAttention
 * avoids the (T,T) probability matrix: a block's scores against the keys it
 * can see (0..i0+nq-1) live in a per-thread (ATT_BQ, T) tile (backward uses
 * a second one for dP), so memory is O(threads * ATT_BQ * T) instead of
 * O(B * NH * T * T), and of the masked upper triangle only the part inside
 * the diagonal blocks is computed (for T well past ATT_BQ, about half the
 * FLOPs of a full T x T product).
 * Unlike FlashAttention a block's whole row fits in the tile, so softmax is
 * taken exactly (max, sum) with no online rescaling. Backward recomputes the
 * scores and takes the probabilities from the saved log-sum-exp. */
enum { ATT_BQ = 64 };

size_t attention_scratch_floats(int T, int threads)
{
    return (size_t)(threads > 0 ? threads : 1) * 2 * ATT_BQ * (size_t)T;
}

/* Rows i0..i0+nq-1 of the causal softmax of s (nq, ld), whose columns are keys
 * 0..ld-1; entries outside a row's keys become 0. lse[r] = log sum exp. */
void causal_softmax_rows(float *s, float *lse, const int *pos, int i0, int nq, int ld)
{
    for (int r = 0; r < nq; r++) {
        float *row = s + (size_t)r * ld;
        int last = i0 + r, first = pos ? last - pos[r] : 0; /* the keys this query sees */
        int n = last + 1 - first;
        float mx = row_max(row + first, n);
        double sum = exp_shift_sum(row + first, n, mx);
        float inv = (float)(1.0 / sum);
        for (int j = 0; j < first; j++) row[j] = 0.0f;
        for (int j = first; j <= last; j++) row[j] *= inv;
        for (int j = last + 1; j < ld; j++) row[j] = 0.0f;
        if (lse) lse[r] = mx + (float)log(sum);
    }
}

/* Query head h of sequence b and the key/value head it reads. */
typedef struct {
    const float *q, *k, *v; /* rows ld floats apart */
    int ld;
} HeadView;

static int kv_of(const AttnHeads *ah, int h) { return (ah->h0 + h) / ah->group - ah->kv0; }

static size_t qkv_ld(const AttnHeads *ah) { return (size_t)(ah->NH + 2 * ah->NKV) * ah->hs; }

static HeadView head_view(const float *qkv, int b, int h, int T, const AttnHeads *ah)
{
    const size_t ld = qkv_ld(ah), hs = ah->hs;
    const float *row0 = qkv + (size_t)b * T * ld;
    HeadView hv;
    hv.q = row0 + (size_t)h * hs;
    hv.k = row0 + (size_t)(ah->NH + kv_of(ah, h)) * hs;
    hv.v = row0 + (size_t)(ah->NH + ah->NKV + kv_of(ah, h)) * hs;
    hv.ld = (int)ld;
    return hv;
}

static int att_threads(int scratch_threads)
{
    int n = omp_get_max_threads();
    return n < scratch_threads ? n : scratch_threads;
}

/* A query block i0..i0+nq-1 of one row: the keys k0..k0+nk-1 it multiplies
 * against (the first its first query's document reaches: documents only
 * start later down the block), and its queries' doc positions (NULL: causal
 * over the row, k0 = 0). */
typedef struct {
    int i0, nq, k0, nk;
    const int *pos;
} QueryBlock;

static QueryBlock query_block(const int *pos, int b, int qb, int T)
{
    QueryBlock q;
    q.i0 = qb * ATT_BQ;
    q.nq = T - q.i0 < ATT_BQ ? T - q.i0 : ATT_BQ;
    q.pos = pos ? pos + (size_t)b * T + q.i0 : NULL;
    q.k0 = q.pos ? q.i0 - q.pos[0] : 0;
    q.nk = q.i0 + q.nq - q.k0;
    return q;
}

void attention_forward_gqa(float *out, float *lse, const float *qkv, const int *pos, int B,
                           int T, const AttnHeads *ah, float *scratch, int scratch_threads)
{
    const int NH = ah->NH, hs = ah->hs, C = NH * hs, nqb = (T + ATT_BQ - 1) / ATT_BQ;
    const float scale = 1.0f / sqrtf((float)hs);
    /* tasks are independent (each writes its own rows of out and lse), so
     * any schedule gives the same bits: a head's query blocks are handed
     * out together (its keys and values stay in cache), last first (without
     * doc positions the last blocks see the most keys, so the threads end
     * together) */
#pragma omp parallel for schedule(dynamic, 1) num_threads(att_threads(scratch_threads))
    for (int task = 0; task < B * NH * nqb; task++) {
        int bh = task / nqb, b = bh / NH, h = bh % NH;
        QueryBlock qb = query_block(pos, b, nqb - 1 - task % nqb, T);
        HeadView hv = head_view(qkv, b, h, T, ah);
        float *s = scratch + (size_t)omp_get_thread_num() * 2 * ATT_BQ * T;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, qb.nq, qb.nk, hs, scale,
                    hv.q + (size_t)qb.i0 * hv.ld, hv.ld, hv.k + (size_t)qb.k0 * hv.ld, hv.ld,
                    0.0f, s, qb.nk);
        causal_softmax_rows(s, lse + (size_t)bh * T + qb.i0, qb.pos, qb.i0 - qb.k0, qb.nq, qb.nk);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, qb.nq, hs, qb.nk, 1.0f, s, qb.nk,
                    hv.v + (size_t)qb.k0 * hv.ld, hv.ld, 0.0f,
                    out + ((size_t)b * T + qb.i0) * C + (size_t)h * hs, C);
    }
}

void attention_forward(float *out, float *lse, const float *qkv, int B, int T, int NH, int hs,
                       float *scratch, int scratch_threads)
{
    const AttnHeads ah = {.NH = NH, .NKV = NH, .hs = hs, .group = 1};
    attention_forward_gqa(out, lse, qkv, NULL, B, T, &ah, scratch, scratch_threads);
}

/* dS = P * (dP - D) for the block, with P = exp(S - lse) recomputed from the
 * scores in s (in place: s becomes P), dP in dp (becomes dS), and
 * D_i = dout_i . out_i (= sum_j P_ij dP_ij). Row r's keys are columns
 * c0+r-pos[r]..c0+r (pos NULL: 0..c0+r) of the nk. */
static void softmax_block_backward(float *s, float *dp, const float *lse, const float *dy,
                                   const float *y, int ldy, int hs, const int *pos, int c0,
                                   int nq, int nk)
{
    for (int r = 0; r < nq; r++) {
        float *pr = s + (size_t)r * nk, *dr = dp + (size_t)r * nk;
        const float *dyr = dy + (size_t)r * ldy, *yr = y + (size_t)r * ldy;
        float D = 0.0f;
        for (int d = 0; d < hs; d++) D += dyr[d] * yr[d];
        int last = c0 + r, first = pos ? last - pos[r] : 0;
        for (int j = 0; j < first; j++) pr[j] = dr[j] = 0.0f;
        for (int j = first; j <= last; j++) {
            pr[j] = exp_approx(pr[j] - lse[r]);
            dr[j] = pr[j] * (dr[j] - D);
        }
        for (int j = last + 1; j < nk; j++) pr[j] = dr[j] = 0.0f;
    }
}

/* One (b, h) pair, its query blocks in order: dq of head h, and dk, dv of
 * the kv head it reads, += . s and dp are the thread's two tiles. */
static void head_backward(float *dqkv, const float *dout, const float *out, const float *qkv,
                          const float *lse, const int *pos, int b, int h, int T,
                          const AttnHeads *ah, float *s, float *dp)
{
    const int NH = ah->NH, hs = ah->hs, C = NH * hs, nqb = (T + ATT_BQ - 1) / ATT_BQ;
    const float scale = 1.0f / sqrtf((float)hs);
    HeadView hv = head_view(qkv, b, h, T, ah);
    float *dq = dqkv + (hv.q - qkv), *dk = dqkv + (hv.k - qkv), *dv = dqkv + (hv.v - qkv);
    const float *lse_bh = lse + ((size_t)b * NH + h) * T;
    for (int i = 0; i < nqb; i++) {
        QueryBlock qb = query_block(pos, b, i, T);
        const int nq = qb.nq, nk = qb.nk;
        const size_t yoff = ((size_t)b * T + qb.i0) * C + (size_t)h * hs;
        const size_t kof = (size_t)qb.k0 * hv.ld;
        const float *qi = hv.q + (size_t)qb.i0 * hv.ld, *dy = dout + yoff;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hs, scale, qi, hv.ld,
                    hv.k + kof, hv.ld, 0.0f, s, nk);
        /* dP = dY V^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hs, 1.0f, dy, C, hv.v + kof,
                    hv.ld, 0.0f, dp, nk);
        softmax_block_backward(s, dp, lse_bh + qb.i0, dy, out + yoff, C, hs, qb.pos,
                               qb.i0 - qb.k0, nq, nk);
        /* dV += P^T dY; dQ += scale dS K; dK += scale dS^T Q */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hs, nq, 1.0f, s, nk, dy, C,
                    1.0f, dv + kof, hv.ld);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hs, nk, scale, dp, nk,
                    hv.k + kof, hv.ld, 1.0f, dq + (size_t)qb.i0 * hv.ld, hv.ld);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hs, nq, scale, dp, nk, qi,
                    hv.ld, 1.0f, dk + kof, hv.ld);
    }
}

/* One task per (b, h) pair. The q heads of a group all add into their kv
 * head's dK and dV: the task dependence on that kv head runs them one after
 * another in head order (the order they are created in), so the sums are
 * the same for any thread count, while the other kv heads' chains run
 * alongside; a thread whose chain waits takes another's next head. */
void attention_backward_gqa(float *dqkv, const float *dout, const float *out, const float *qkv,
                            const float *lse, const int *pos, int B, int T, const AttnHeads *ah,
                            float *scratch, int scratch_threads)
{
#pragma omp parallel num_threads(att_threads(scratch_threads))
#pragma omp single
    for (int b = 0; b < B; b++)
        for (int h = 0; h < ah->NH; h++) {
            /* the kv head's first dK element stands for the kv head */
            float *dk = dqkv + (head_view(qkv, b, h, T, ah).k - qkv);
            (void)dk; /* gcc counts no use in a depend clause */
#pragma omp task depend(inout : dk[0])
            {
                float *s = scratch + (size_t)omp_get_thread_num() * 2 * ATT_BQ * T;
                head_backward(dqkv, dout, out, qkv, lse, pos, b, h, T, ah, s, s + ATT_BQ * T);
            }
        }
}

void attention_backward(float *dqkv, const float *dout, const float *out, const float *qkv,
                        const float *lse, int B, int T, int NH, int hs, float *scratch,
                        int scratch_threads)
{
    const AttnHeads ah = {.NH = NH, .NKV = NH, .hs = hs, .group = 1};
    attention_backward_gqa(dqkv, dout, out, qkv, lse, NULL, B, T, &ah, scratch, scratch_threads);
}

/* ---- embedding --------------------------------------------------------- */

void embedding_forward(float *out, const int *tokens, const int *pos, const float *wte,
                       const float *wpe, int B, int T, int C)
{
#pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        const float *e = wte + (size_t)tokens[bt] * C;
        const float *p = wpe + (size_t)(pos ? pos[bt] : bt % T) * C;
        float *o = out + (size_t)bt * C;
        for (int i = 0; i < C; i++) o[i] = e[i] + p[i];
    }
}

void embedding_backward(float *dwte, float *dwpe, const float *dout, const int *tokens,
                        const int *pos, int B, int T, int C)
{
    /* scatter-add in token order: serial, so the sum order is fixed */
    for (int bt = 0; bt < B * T; bt++) {
        const float *d = dout + (size_t)bt * C;
        if (dwte) {
            float *g = dwte + (size_t)tokens[bt] * C;
            for (int i = 0; i < C; i++) g[i] += d[i];
        }
        if (dwpe) {
            float *g = dwpe + (size_t)(pos ? pos[bt] : bt % T) * C;
            for (int i = 0; i < C; i++) g[i] += d[i];
        }
    }
}

/* ---- softmax cross-entropy -------------------------------------------- */

static double xent_row(float *dl, const float *l, int target, int V, float grad_scale)
{
    if (target < 0) { /* not counted (a loss mask): no loss, no gradient */
        if (dl) memset(dl, 0, (size_t)V * sizeof *dl);
        return 0.0;
    }
    float mx = row_max(l, V);
    double logz = log(row_sum_exp(l, V, mx)) + mx;
    float lt = l[target]; /* read before dl (which may alias l) is written */
    if (dl) {
        const float lz = (float)logz;
        for (int j = 0; j < V; j++) dl[j] = exp_approx(l[j] - lz) * grad_scale;
        dl[target] -= grad_scale;
    }
    return logz - lt;
}

/* Fixed chunking: partial sums combine in the same order for any number of
 * threads, so a loss summed over rows is bit-reproducible. */
enum { CHUNKS = 64 };

double softmax_xent(float *dlogits, const float *logits, const int *targets, int N, int V,
                    float grad_scale)
{
    double part[CHUNKS] = {0};
#pragma omp parallel for schedule(static)
    for (int c = 0; c < CHUNKS; c++) {
        int n0 = (int)((long)N * c / CHUNKS), n1 = (int)((long)N * (c + 1) / CHUNKS);
        for (int n = n0; n < n1; n++)
            part[c] += xent_row(dlogits ? dlogits + (size_t)n * V : NULL,
                                logits + (size_t)n * V, targets[n], V, grad_scale);
    }
    double total = 0.0;
    for (int c = 0; c < CHUNKS; c++) total += part[c];
    return total;
}

/* ---- cross-entropy over vocabulary tiles -------------------------------- */

/* Row r's running maximum and sum of exp(logit - maximum) over the tiles
 * seen so far (the online softmax), and its target's logit once its tile has
 * come. The first tile sets the pair exactly as softmax_xent's one pass
 * does, so a vocabulary that fits one tile gives softmax_xent's bits. */
void xent_tiles_update(XentTiles *x, const float *logits, size_t ld, const int *targets, int N,
                       int v0, int vn)
{
#pragma omp parallel for schedule(static)
    for (int r = 0; r < N; r++) {
        const float *l = logits + (size_t)r * ld;
        float mx = row_max(l, vn);
        double sum = row_sum_exp(l, vn, mx);
        if (v0 == 0) {
            x->max[r] = mx;
            x->sum[r] = sum;
        } else {
            float m = x->max[r] > mx ? x->max[r] : mx;
            x->sum[r] = x->sum[r] * exp((double)x->max[r] - m) + sum * exp((double)mx - m);
            x->max[r] = m;
        }
        int t = targets[r] - v0;
        if (t >= 0 && t < vn) x->target[r] = l[t];
    }
}

double xent_tiles_loss(const XentTiles *x, const int *targets, int N)
{
    double part[CHUNKS] = {0};
#pragma omp parallel for schedule(static)
    for (int c = 0; c < CHUNKS; c++) {
        int n0 = (int)((long)N * c / CHUNKS), n1 = (int)((long)N * (c + 1) / CHUNKS);
        for (int n = n0; n < n1; n++)
            if (targets[n] >= 0) part[c] += (log(x->sum[n]) + x->max[n]) - x->target[n];
    }
    double total = 0.0;
    for (int c = 0; c < CHUNKS; c++) total += part[c];
    return total;
}
