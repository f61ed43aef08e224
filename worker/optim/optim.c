#include "worker/optim/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *optim_name(OptKind k)
{
    return k == OPT_ADAMW ? "adamw" : k == OPT_SGD ? "sgd" : "zo";
}

int optim_moments(OptKind kind)
{
    switch (kind) {
    case OPT_ADAMW: return 2;
    case OPT_SGD: return 1;
    case OPT_ZO: return 0;
    }
    return 0;
}

int optim_parse_kind(const char *s, OptKind *k)
{
    if (!strcmp(s, "adamw")) *k = OPT_ADAMW;
    else if (!strcmp(s, "sgd")) *k = OPT_SGD;
    else if (!strcmp(s, "zo")) *k = OPT_ZO;
    else return -1;
    return 0;
}

int optim_config_validate(const OptimConfig *c, Err *e)
{
    if (!(c->lr > 0) || !isfinite(c->lr)) return err_set(e, "--lr %g: must be a positive number", c->lr);
    if (!(c->min_lr >= 0) || c->min_lr > c->lr)
        return err_set(e, "--min-lr %g: must be between 0 and --lr %g", c->min_lr, c->lr);
    if (!(c->beta1 >= 0 && c->beta1 < 1)) return err_set(e, "--beta1 %g: must be in [0,1)", c->beta1);
    if (!(c->beta2 >= 0 && c->beta2 < 1)) return err_set(e, "--beta2 %g: must be in [0,1)", c->beta2);
    if (!(c->eps > 0)) return err_set(e, "--adam-eps %g: must be positive", c->eps);
    if (!(c->weight_decay >= 0)) return err_set(e, "--weight-decay %g: must be >= 0", c->weight_decay);
    if (!(c->momentum >= 0 && c->momentum < 1)) return err_set(e, "--momentum %g: must be in [0,1)", c->momentum);
    if (!(c->grad_clip >= 0)) return err_set(e, "--grad-clip %g: must be >= 0 (0 disables)", c->grad_clip);
    if (c->warmup < 0) return err_set(e, "--warmup %d: must be >= 0", c->warmup);
    return 0;
}

int optim_init(Optimizer *o, const OptimConfig *c, size_t lo, size_t hi, Err *e)
{
    memset(o, 0, sizeof *o);
    o->cfg = *c;
    o->lo = lo;
    o->hi = hi;
    size_t n = hi - lo;
    int moments = optim_moments(c->kind); /* the plan's memory check counts the same */
    if (moments >= 1 && !(o->m = model_calloc(n, sizeof(float))))
        return err_set(e, "out of memory for optimizer state (%zu floats)", n);
    if (moments >= 2 && !(o->v = model_calloc(n, sizeof(float)))) {
        free(o->m);
        return err_set(e, "out of memory for optimizer state (%zu floats)", n);
    }
    o->state_bytes = (size_t)moments * n * sizeof(float);
    return 0;
}

void optim_free(Optimizer *o)
{
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

float lr_at(const OptimConfig *c, long step)
{
    if (c->warmup > 0 && step < c->warmup) return c->lr * (float)(step + 1) / (float)c->warmup;
    long decay = c->total_steps - c->warmup;
    if (decay <= 0) return c->lr;
    double frac = (double)(step - c->warmup) / (double)decay;
    if (frac > 1) frac = 1;
    double cosine = 0.5 * (1.0 + cos(M_PI * frac));
    return (float)(c->min_lr + (c->lr - c->min_lr) * cosine);
}

OptimConfig optim_at_frac(const OptimConfig *c, double frac)
{
    if (!(frac > 0)) frac = 0; /* NaN too */
    if (frac > 1) frac = 1;
    double cosine = 0.5 * (1.0 + cos(M_PI * frac));
    OptimConfig k = *c;
    /* lr_at's own warm-up, then no decay: a constant lr at the cosine's value */
    k.lr = k.min_lr = (float)(c->min_lr + ((double)c->lr - c->min_lr) * cosine);
    k.total_steps = k.warmup;
    return k;
}

float lr_at_frac(const OptimConfig *c, long step, double frac)
{
    OptimConfig k = optim_at_frac(c, frac);
    return lr_at(&k, step);
}

double sum_squares(const float *g, size_t n)
{
    enum { CHUNKS = 64 };
    double part[CHUNKS] = {0};
#pragma omp parallel for schedule(static)
    for (int c = 0; c < CHUNKS; c++) {
        size_t i0 = n * c / CHUNKS, i1 = n * (c + 1) / CHUNKS;
        double s = 0;
        for (size_t i = i0; i < i1; i++) s += (double)g[i] * g[i];
        part[c] = s;
    }
    double s = 0;
    for (int c = 0; c < CHUNKS; c++) s += part[c];
    return s;
}

float clip_coef(const OptimConfig *c, double grad_norm)
{
    if (c->grad_clip <= 0 || !(grad_norm > c->grad_clip)) return 1.0f;
    return (float)(c->grad_clip / (grad_norm + 1e-6));
}

static void adamw_range(Optimizer *o, float *p, const float *g, float *m, float *v, size_t n,
                        float lr, float gs, float wd)
{
    const float b1 = o->cfg.beta1, b2 = o->cfg.beta2, eps = o->cfg.eps;
    const float c1 = 1.0f / (1.0f - powf(b1, (float)o->t));
    const float c2 = 1.0f / (1.0f - powf(b2, (float)o->t));
    const float decay = 1.0f - lr * wd;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * gs;
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        float upd = (m[i] * c1) / (sqrtf(v[i] * c2) + eps);
        p[i] = p[i] * decay - lr * upd;
    }
}

static void sgd_range(Optimizer *o, float *p, const float *g, float *buf, size_t n, float lr,
                      float gs, float wd)
{
    const float mu = o->cfg.momentum;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * gs + wd * p[i];
        buf[i] = mu * buf[i] + gi;
        p[i] -= lr * buf[i];
    }
}

void optim_update(Optimizer *o, const Model *mdl, float *params, const float *grads, float lr,
                  float grad_scale)
{
    o->t++;
    for (int k = 0; k < mdl->n_tensors; k++) {
        const ParamInfo *t = &mdl->tensors[k];
        size_t a = t->offset > o->lo ? t->offset : o->lo;
        size_t b = t->offset + t->numel < o->hi ? t->offset + t->numel : o->hi;
        if (a >= b) continue;
        float wd = t->decay ? o->cfg.weight_decay : 0.0f;
        size_t s = a - o->lo;
        if (o->cfg.kind == OPT_ADAMW)
            adamw_range(o, params + a, grads + s, o->m + s, o->v + s, b - a, lr, grad_scale, wd);
        else if (o->cfg.kind == OPT_SGD)
            sgd_range(o, params + a, grads + s, o->m + s, b - a, lr, grad_scale, wd);
    }
}
