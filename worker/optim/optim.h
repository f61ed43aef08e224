#ifndef MPITRAIN_OPTIM_H
#define MPITRAIN_OPTIM_H
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"
#include "models/model.h"

typedef enum { OPT_ADAMW = 0, OPT_SGD = 1, OPT_ZO = 2 } OptKind;

/* Optimizer state buffers per parameter: AdamW m and v, SGD momentum, none
 * for ZO (it keeps a journal of seeds instead). The plan's memory check
 * hands it to the cost model (CostLayout.moments). */
int optim_moments(OptKind kind);

typedef struct {
    OptKind kind;
    float lr, min_lr;        /* peak and final learning rate */
    float beta1, beta2, eps; /* AdamW */
    float weight_decay;      /* decoupled; matrices only */
    float momentum;          /* SGD */
    float grad_clip;         /* global-norm clip; 0 = off */
    int warmup;              /* linear warm-up steps */
    long total_steps;        /* cosine decay ends here */
} OptimConfig;

/* Optimizer state for the parameter range [lo, hi) of the flat buffer:
 * the whole model at dp=1, one ZeRO shard otherwise. */
typedef struct {
    OptimConfig cfg;
    size_t lo, hi;
    float *m, *v;      /* AdamW moments / SGD momentum (m only) */
    int64_t t;         /* update count, for bias correction */
    size_t state_bytes;
} Optimizer;

const char *optim_name(OptKind k);
int optim_parse_kind(const char *s, OptKind *k);
int optim_config_validate(const OptimConfig *c, Err *e);
int optim_init(Optimizer *o, const OptimConfig *c, size_t lo, size_t hi, Err *e);
void optim_free(Optimizer *o);
/* Learning rate for a 0-based step: linear warm-up, then cosine to min_lr. */
float lr_at(const OptimConfig *c, long step);
/* --time-budget's schedule: the cosine from lr to min_lr at frac (the
 * budget's fraction used before the step, clamped to [0,1]; NaN = 0),
 * scaled by the linear warm-up (step+1)/warmup in the first warmup steps,
 * so the lr is continuous whatever share of the budget the warm-up takes. */
float lr_at_frac(const OptimConfig *c, long step, double frac);
/* The same as a config: lr_at(&optim_at_frac(c, f), step) == lr_at_frac(c,
 * step, f) for every step. The loop hands it to the strategies for one step
 * (they call lr_at); it is never the run's saved config. */
OptimConfig optim_at_frac(const OptimConfig *c, double frac);
/* Sum of squares of g[0..n) in double, in a fixed order (any thread count). */
double sum_squares(const float *g, size_t n);
/* Scale applied to gradients so their global norm is at most grad_clip. */
float clip_coef(const OptimConfig *c, double grad_norm);
/* One update of params[lo..hi). grads points at the gradient of element lo
 * (so a ZeRO shard can keep only its slice). Weight decay follows each
 * tensor's decay flag. */
void optim_update(Optimizer *o, const Model *m, float *params, const float *grads, float lr,
                  float grad_scale);

#endif
