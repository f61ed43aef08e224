#include "worker/zo/zo.h"

#include <math.h>
#include <string.h>
#include "base/hash.h"
#include "models/philox.h"
#include "sharding/tpsplit.h"

static Philox4 sign_block(uint64_t seed, ZoId id, uint64_t block)
{
    Philox4 c = {{(uint32_t)block, id.sample, id.machine, id.step}};
    (void)(block >> 32); /* models stay below 2^39 elements */
    return philox4x32_10(c, seed ^ ZO_KEY_SALT);
}

int zo_z(uint64_t seed, ZoId id, uint64_t g)
{
    Philox4 r = sign_block(seed, id, g / 128);
    unsigned bit = (unsigned)(g % 128);
    return (r.v[bit / 32] >> (bit % 32)) & 1u ? 1 : -1;
}

/* Calls fn for each run of local elements whose global indices are
 * consecutive: [local, local + len) <-> [global, global + len). */
typedef void (*RunFn)(void *ctx, size_t local, uint64_t global, size_t len);

static void for_each_run(const Model *m, const ParamInfo *t, RunFn fn, void *ctx)
{
    size_t rows = (size_t)t->local_shape[0], cols = (size_t)t->local_shape[1];
    if (t->split == TP_REPLICATED || m->shard.tp_size == 1) {
        fn(ctx, t->offset, t->global_offset, t->numel);
    } else if (t->split == TP_COLUMN) {
        size_t per_group = rows / t->groups; /* local rows of one group: globally consecutive */
        for (int g = 0; g < t->groups; g++) {
            size_t i = (size_t)g * per_group * cols;
            fn(ctx, t->offset + i, model_global_index(m, t, i), per_group * cols);
        }
    } else {
        for (size_t r = 0; r < rows; r++)
            fn(ctx, t->offset + r * cols, model_global_index(m, t, r * cols), cols);
    }
}

/* Signs of global elements [g, g + len) as +1/-1 floats or ints, a block of
 * 128 per Philox call. */
#define FOR_SIGNS(seed, id, g0, len, BODY)                                          \
    do {                                                                            \
        uint64_t _g = (g0), _end = (g0) + (len);                                    \
        size_t _k = 0;                                                              \
        while (_g < _end) {                                                         \
            Philox4 _r = sign_block((seed), (id), _g / 128);                        \
            unsigned _bit = (unsigned)(_g % 128);                                   \
            uint64_t _stop = (_g / 128 + 1) * 128 < _end ? (_g / 128 + 1) * 128 : _end; \
            for (; _g < _stop; _g++, _bit++, _k++) {                                \
                int z = ((_r.v[_bit >> 5] >> (_bit & 31)) & 1u) ? 1 : -1;           \
                BODY;                                                               \
            }                                                                       \
        }                                                                           \
    } while (0)

typedef struct {
    uint64_t seed;
    ZoId id;
    float step;           /* sign * eps */
    const float *src;
    float *dst;
    int q;
    int32_t *acc;
} RunCtx;

static void perturb_run(void *p, size_t local, uint64_t global, size_t len)
{
    RunCtx *c = p;
    const float *s = c->src + local;
    float *d = c->dst + local;
    FOR_SIGNS(c->seed, c->id, global, len, d[_k] = s[_k] + c->step * (float)z);
}

static void accumulate_run(void *p, size_t local, uint64_t global, size_t len)
{
    RunCtx *c = p;
    int32_t *a = c->acc + local;
    FOR_SIGNS(c->seed, c->id, global, len, a[_k] += c->q * z);
}

void zo_perturb(const Model *m, uint64_t seed, ZoId id, float eps, int sign, const float *src,
                float *dst)
{
    RunCtx c = {seed, id, sign > 0 ? eps : -eps, src, dst, 0, NULL};
#pragma omp parallel for schedule(dynamic, 1)
    for (int k = 0; k < m->n_tensors; k++) for_each_run(m, &m->tensors[k], perturb_run, &c);
}

void zo_accumulate(const Model *m, uint64_t seed, ZoId id, int q, int32_t *acc)
{
    RunCtx c = {seed, id, 0, NULL, NULL, q, acc};
#pragma omp parallel for schedule(dynamic, 1)
    for (int k = 0; k < m->n_tensors; k++) for_each_run(m, &m->tensors[k], accumulate_run, &c);
}

void zo_apply(const Model *m, float *params, const int32_t *acc, float c, float lr, float wd)
{
    for (int k = 0; k < m->n_tensors; k++) {
        const ParamInfo *t = &m->tensors[k];
        float *p = params + t->offset;
        const int32_t *a = acc + t->offset;
        float decay = t->decay ? lr * wd : 0.0f;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < t->numel; i++) p[i] = p[i] - c * (float)a[i] - decay * p[i];
    }
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

int zo_step_update(const Model *m, float *params, int32_t *acc, uint64_t seed, uint32_t step,
                   const int8_t *codes, int n_machines, int samples, float lr, float scale,
                   float wd)
{
    memset(acc, 0, m->n_params * sizeof *acc);
    int used = 0;
    for (int mm = 0; mm < n_machines; mm++)
        for (int s = 0; s < samples; s++) {
            int q = codes[mm * samples + s];
            if (q == ZO_SKIP) continue;
            used++;
            if (q) zo_accumulate(m, seed, (ZoId){step, (uint32_t)mm, (uint32_t)s}, q, acc);
        }
    /* one constant for every rank: the step size per code unit */
    float c = used ? lr * scale / (float)used : 0.0f;
    zo_apply(m, params, acc, c, lr, wd);
    return used;
}

/* The floats' in-memory bytes: only compared between ranks of one job, which
 * share a byte order. */
uint64_t zo_hash(const float *p, size_t n) { return fnv1a64(FNV1A64_INIT, p, n * sizeof *p); }
