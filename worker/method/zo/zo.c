#include "worker/method/zo/zo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "base/hash.h"
#include "models/philox.h"
#include "sharding/tpsplit.h"

static Philox4 sign_block(uint64_t seed, ZoId id, uint64_t block)
{
    /* the block index fits the counter's 32 bits: models stay below 2^39 elements */
    Philox4 c = {{(uint32_t)block, id.sample, id.machine, id.step}};
    return philox4x32_10(c, seed ^ ZO_KEY_SALT);
}

int zo_z(uint64_t seed, ZoId id, uint64_t g)
{
    Philox4 r = sign_block(seed, id, g / 128);
    unsigned bit = (unsigned)(g % 128);
    return (r.v[bit / 32] >> (bit % 32)) & 1u ? 1 : -1;
}

/* A tensor's local elements fall into runs whose global indices are
 * consecutive, all of one length: the whole tensor when it is replicated,
 * one per packed group (qkv's q, k, v) when split by rows, one per row
 * when split by columns. Run r starts at local element r * len. */
typedef struct {
    size_t runs, len;
} Runs;

static Runs runs_of(const Model *m, const ParamInfo *t)
{
    size_t rows = (size_t)t->local_shape[0], cols = (size_t)t->local_shape[1];
    if (t->split == TP_REPLICATED || m->shard.tp_size == 1) return (Runs){1, t->numel};
    if (t->split == TP_COLUMN) return (Runs){(size_t)t->groups, rows / t->groups * cols};
    return (Runs){rows, cols};
}

/* Work is cut into pieces of at most PIECE elements (a piece's int32
 * accumulator lives on the stack), none crossing a run. */
enum { PIECE = 4096 };

typedef struct {
    size_t lo, hi;   /* local elements of the tensor */
    uint64_t global; /* of element lo */
} Piece;

static size_t n_pieces(Runs r) { return r.runs * ((r.len + PIECE - 1) / PIECE); }

/* The piece holding local element i. */
static size_t piece_of(Runs r, size_t i)
{
    return i / r.len * ((r.len + PIECE - 1) / PIECE) + i % r.len / PIECE;
}

static Piece piece_at(const Model *m, const ParamInfo *t, Runs r, size_t u)
{
    size_t per_run = (r.len + PIECE - 1) / PIECE, run = u / per_run, c = u % per_run;
    size_t start = run * r.len, lo = start + c * PIECE;
    size_t hi = lo + PIECE < start + r.len ? lo + PIECE : start + r.len;
    return (Piece){lo, hi, model_global_index(m, t, start) + (lo - start)};
}

/* The signs of global elements [g, g + len): 128 per Philox block, eight
 * blocks generated at once where the span allows (philox4x32_10_lanes),
 * each expanded bit by bit in a loop the compiler turns into vector shifts
 * and blends (no per-element branch); a span's ragged ends one block at a
 * time. PER_ELEMENT sees i (0..len-1) and plus (z_i = +1); z = +1 gives +v,
 * z = -1 gives -v: exactly v * (float)z. */
#define EXPAND_WORD(word, base, PER_ELEMENT)                                         \
    do {                                                                             \
        const uint32_t _bits = (word);                                               \
        for (unsigned _b = 0; _b < 32; _b++) {                                       \
            const size_t i = (base) + _b;                                            \
            const int plus = (_bits >> _b) & 1u;                                     \
            PER_ELEMENT;                                                             \
        }                                                                            \
    } while (0)

#define SIGN_SPAN(seed, id, g0, len, PER_ELEMENT)                                    \
    do {                                                                             \
        uint64_t _g = (g0);                                                          \
        size_t _k = 0, _len = (len);                                                 \
        while (_k < _len) {                                                          \
            uint64_t _blk = (_g + _k) / 128;                                         \
            unsigned _bit = (unsigned)((_g + _k) % 128);                             \
            if (_bit == 0 && _len - _k >= 128 * PHILOX_LANES) {                      \
                uint32_t _w[4][PHILOX_LANES];                                        \
                philox4x32_10_lanes((uint32_t)_blk, (id).sample, (id).machine,       \
                                    (id).step, (seed) ^ ZO_KEY_SALT, _w);            \
                for (int _l = 0; _l < PHILOX_LANES; _l++)                            \
                    for (int _j = 0; _j < 4; _j++)                                   \
                        EXPAND_WORD(_w[_j][_l], _k + 128 * (size_t)_l + 32 * (size_t)_j, \
                                    PER_ELEMENT);                                    \
                _k += 128 * PHILOX_LANES;                                            \
                continue;                                                            \
            }                                                                        \
            Philox4 _r = sign_block((seed), (id), _blk);                             \
            size_t _n = 128 - _bit < _len - _k ? 128 - _bit : _len - _k;             \
            if (_n == 128) {                                                         \
                for (int _j = 0; _j < 4; _j++)                                       \
                    EXPAND_WORD(_r.v[_j], _k + 32 * (size_t)_j, PER_ELEMENT);        \
            } else {                                                                 \
                for (size_t _e = 0; _e < _n; _e++) {                                 \
                    const size_t i = _k + _e;                                        \
                    const unsigned _b = _bit + (unsigned)_e;                         \
                    const int plus = (_r.v[_b >> 5] >> (_b & 31)) & 1u;              \
                    PER_ELEMENT;                                                     \
                }                                                                    \
            }                                                                        \
            _k += _n;                                                                \
        }                                                                            \
    } while (0)

/* --zo-sparse: d[i] = s[i] + step * z_i where |s[i]| <= tau, else s[i] */
static void perturb_span_masked(uint64_t seed, ZoId id, uint64_t g, size_t len, float step,
                                float tau, const float *restrict s, float *restrict d)
{
    const float neg = -step;
    SIGN_SPAN(seed, id, g, len, d[i] = s[i] + (fabsf(s[i]) <= tau ? (plus ? step : neg) : 0.0f));
}

/* d[i] = s[i] + step * z_i */
static void perturb_span(uint64_t seed, ZoId id, uint64_t g, size_t len, float step,
                         const float *restrict s, float *restrict d)
{
    const float neg = -step;
    SIGN_SPAN(seed, id, g, len, d[i] = s[i] + (plus ? step : neg));
}

/* acc[i] += q * z_i */
static void accumulate_span(uint64_t seed, ZoId id, uint64_t g, size_t len, int32_t q,
                            int32_t *restrict acc)
{
    const int32_t neg = -q;
    SIGN_SPAN(seed, id, g, len, acc[i] += plus ? q : neg);
}

static int is_active(const uint8_t *active, int k) { return !active || active[k]; }

const float *zo_view_weights(void *ctx, const Model *m, int k, size_t first, size_t n, float *dst)
{
    const ZoView *v = ctx;
    const ParamInfo *t = &m->tensors[k];
    const float *src = m->params + t->offset;
    if (!is_active(v->active, k)) return src + first;
    if (!n) return dst;
    Runs r = runs_of(m, t);
    long u0 = (long)piece_of(r, first), u1 = (long)piece_of(r, first + n - 1) + 1;
    const float step = v->step;
#pragma omp parallel for schedule(dynamic, 1) if (u1 - u0 > 1)
    for (long u = u0; u < u1; u++) {
        Piece p = piece_at(m, t, r, (size_t)u);
        size_t lo = p.lo > first ? p.lo : first, hi = p.hi < first + n ? p.hi : first + n;
        if (lo >= hi) continue;
        if (v->tau)
            perturb_span_masked(v->seed, v->id, p.global + (lo - p.lo), hi - lo, step, v->tau[k],
                                src + lo, dst + (lo - first));
        else
            perturb_span(v->seed, v->id, p.global + (lo - p.lo), hi - lo, step, src + lo,
                         dst + (lo - first));
    }
    return dst;
}

typedef struct {
    ZoId id;
    int q;
} Code;

/* theta_i <- theta_i - c * acc_i - decay * theta_i over one tensor, acc_i =
 * sum_k q_k z_k,i built piece by piece: exact integers, so the same bits as
 * any order of accumulating, and no model-sized accumulator. Elements no
 * forward reads (wpe's rows past the context) have no gradient: acc_i = 0,
 * the decay alone, as for every other element of their tensor. */
static void update_tensor(const Model *m, const ParamInfo *t, float *params, uint64_t seed,
                          const Code *codes, int n, float c, float decay, float tau)
{
    Runs r = runs_of(m, t);
    long units = (long)n_pieces(r);
    float *p0 = params + t->offset;
#pragma omp parallel for schedule(dynamic, 1) if (units > 1)
    for (long u = 0; u < units; u++) {
        Piece pc = piece_at(m, t, r, (size_t)u);
        int32_t acc[PIECE];
        size_t len = pc.hi - pc.lo;
        size_t live = pc.lo >= t->live ? 0 : pc.hi <= t->live ? len : t->live - pc.lo;
        memset(acc, 0, len * sizeof *acc);
        for (int j = 0; live && j < n; j++) accumulate_span(seed, codes[j].id, pc.global, live, codes[j].q, acc);
        float *p = p0 + pc.lo;
        if (isinf(tau))
            for (size_t i = 0; i < len; i++) p[i] = p[i] - c * (float)acc[i] - decay * p[i];
        else /* --zo-sparse: the step where the view perturbed, the decay everywhere */
            for (size_t i = 0; i < len; i++)
                p[i] = p[i] - (fabsf(p[i]) <= tau ? c * (float)acc[i] : 0.0f) - decay * p[i];
    }
}

/* The k-th smallest of v[0..n) (k < n), reordering v: Hoare's selection
 * with a median-of-three pivot (no NaN in v); the answer is one value
 * whatever the order it is found in. */
static float select_kth(float *v, long n, long k)
{
    long lo = 0, hi = n - 1;
    while (hi > lo) {
        float a = v[lo], b = v[lo + (hi - lo) / 2], c = v[hi];
        float pivot = a < b ? (b < c ? b : a < c ? c : a) : (a < c ? a : b < c ? c : b);
        long i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot) i++;
            while (v[j] > pivot) j--;
            if (i <= j) {
                float t = v[i];
                v[i++] = v[j];
                v[j--] = t;
            }
        }
        /* v[lo..j] <= pivot <= v[i..hi]; between them, the pivot's value */
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return v[k];
    }
    return v[k];
}

int zo_thresholds(const Model *m, const float *params, const uint8_t *active, float frac, float *tau)
{
    size_t most = 0;
    for (int k = 0; k < m->n_tensors; k++)
        if (m->tensors[k].live > most) most = m->tensors[k].live;
    float *scratch = malloc((most ? most : 1) * sizeof *scratch);
    if (!scratch) return -1;
    for (int k = 0; k < m->n_tensors; k++) {
        const ParamInfo *t = &m->tensors[k];
        tau[k] = INFINITY;
        if (!is_active(active, k) || !t->live) continue;
        const float *p = params + t->offset;
        for (size_t i = 0; i < t->live; i++) {
            float a = fabsf(p[i]);
            scratch[i] = a == a ? a : INFINITY; /* a NaN weight is never the smallest */
        }
        /* |theta| <= tau for the F smallest (and their ties: LoRA's B
         * starts all zeros, and all of it is perturbed) */
        size_t n = (size_t)((double)frac * (double)t->live);
        tau[k] = select_kth(scratch, (long)t->live, (long)(n > 0 ? n - 1 : 0));
    }
    free(scratch);
    return 0;
}

int zo_step_update(const Model *m, float *params, const uint8_t *active, uint64_t seed,
                   uint32_t step, const int8_t *codes, int n_machines, int samples, float lr,
                   float scale, float wd)
{
    return zo_step_update_sparse(m, params, active, seed, step, codes, n_machines, samples, lr,
                                 scale, wd, 0.0f, NULL);
}

int zo_step_update_sparse(const Model *m, float *params, const uint8_t *active, uint64_t seed,
                          uint32_t step, const int8_t *codes, int n_machines, int samples, float lr,
                          float scale, float wd, float frac, const float *given)
{
    int total = n_machines * samples, used = 0, n = 0;
    Code *list = malloc((size_t)(total > 0 ? total : 1) * sizeof *list);
    int own = frac > 0 && !given;
    float *mine = own ? malloc((size_t)(m->n_tensors ? m->n_tensors : 1) * sizeof *mine) : NULL;
    if (!list || (own && (!mine || zo_thresholds(m, params, active, frac, mine)))) {
        free(list);
        free(mine);
        return -1;
    }
    const float *tau = frac > 0 ? (own ? mine : given) : NULL;
    for (int mm = 0; mm < n_machines; mm++)
        for (int s = 0; s < samples; s++) {
            int q = codes[mm * samples + s];
            if (q == ZO_SKIP) continue;
            used++;
            if (q) list[n++] = (Code){{step, (uint32_t)mm, (uint32_t)s}, q};
        }
    /* one constant for every rank: the step size per code unit */
    float c = used ? lr * scale / (float)used : 0.0f;
    for (int k = 0; k < m->n_tensors; k++) {
        const ParamInfo *t = &m->tensors[k];
        if (is_active(active, k))
            update_tensor(m, t, params, seed, list, n, c, t->decay ? lr * wd : 0.0f,
                          tau ? tau[k] : INFINITY);
    }
    free(list);
    free(mine);
    return used;
}

int8_t zo_code(double g, double scale, double outlier)
{
    if (!isfinite(g) || !(scale > 0)) return ZO_SKIP;
    double u = g / scale;
    if (fabs(u) > outlier) return ZO_SKIP;
    double r = nearbyint(u);
    if (r > 127) r = 127;
    if (r < -127) r = -127;
    return (int8_t)r;
}

/* The floats' in-memory bytes: only compared between ranks of one job, which
 * share a byte order. */
uint64_t zo_hash(const float *p, size_t n) { return fnv1a64(FNV1A64_INIT, p, n * sizeof *p); }
