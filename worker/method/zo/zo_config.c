/* The rules of zo's settings, checked for every run (StepStrategy.validate). */
#include "worker/method/zo/zo_config.h"

#include <string.h>
#include "worker/method/zo/zo_params.h"

int zo_config_validate(const TrainConfig *c, Err *e)
{
    /* the swarm's runs are ZO runs too (its own method, the same settings) */
    int zo = c->optim.kind == OPT_ZO;
    if (zo && (!(c->zo_eps > 0) || c->zo_samples < 1 || c->zo_scale < 0))
        return err_set(e, "--zo-eps %g / --zo-samples %d / --zo-scale %g: eps and samples must be "
                          "positive, scale >= 0 (0 = automatic)", c->zo_eps, c->zo_samples, c->zo_scale);
    if (zo_params_check_syntax(c->zo_params, e)) return -1;
    if (!zo && strcmp(c->zo_params, ZO_PARAMS_DEFAULT))
        return err_set(e, "--zo-params %s: only --optimizer zo trains a subset of the tensors "
                          "(adamw and sgd train them all); drop --zo-params or use --optimizer zo",
                       c->zo_params);
    if (!zo && c->zo_one_sided)
        return err_set(e, "--zo-one-sided: a zeroth-order estimator; it goes with --optimizer zo");
    if (!zo && c->zo_sparse > 0)
        return err_set(e, "--zo-sparse %g: a zeroth-order estimator's mask; it goes with --optimizer zo",
                       c->zo_sparse);
    if (c->zo_sparse >= 1)
        return err_set(e, "--zo-sparse %g: the fraction of each tensor perturbed is below 1 (0 = every weight)",
                       c->zo_sparse);
    if (c->zo_sparse > 0 && c->tp > 1)
        return err_set(e, "--zo-sparse with --tp %d: the magnitude threshold is a quantile of the whole "
                          "tensor, which a tensor-parallel shard does not hold", c->tp);
    if (zo && zo_params_validate(&c->model, c->zo_params, e)) return -1;
    return 0;
}

int zo_config_selected(const TrainConfig *c) { return c->optim.kind == OPT_ZO; }

const char *const ZO_RESUME_KEEPS[] = {"zo-eps", "zo-scale", "zo-samples", NULL};
