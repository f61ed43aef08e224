/* The rules of zo's settings, checked for every run (StepStrategy.validate). */
#include "worker/method/zo/zo_config.h"

#include <string.h>
#include "worker/method/zo/zo_params.h"

/* A swarm is a ZO run of machines that are one replica each (their own
 * tp/pp inside, no dp: the swarm is the data parallelism) and one role.
 * These rules move to the swarm's room with the swarm's own strategy. */
static int swarm_config_validate(const TrainConfig *c, Err *e)
{
    const int listen = c->swarm_listen[0] != 0, join = c->swarm_join[0] != 0;
    if (!listen && !join) return 0;
    const char *flag = join ? "--swarm-join" : "--swarm-listen";
    if (c->method != &ZO_STRATEGY)
        return err_set(e, "%s: a swarm exchanges shared-randomness codes; it needs --optimizer zo",
                       flag);
    if (c->time_budget_s > 0)
        return err_set(e, "%s with --time-budget: not built yet (each machine would end by its "
                          "own clock); give --steps", flag);
    if (c->dp > 1)
        return err_set(e, "%s with --dp %d: each swarm machine is one replica (use --tp/--pp "
                          "inside it); the swarm's machines are its data parallelism",
                       flag, c->dp);
    return 0;
}

int zo_config_validate(const TrainConfig *c, Err *e)
{
    int zo = c->method == &ZO_STRATEGY;
    if (zo && (!(c->zo_eps > 0) || c->zo_samples < 1 || c->zo_scale < 0))
        return err_set(e, "--zo-eps %g / --zo-samples %d / --zo-scale %g: eps and samples must be "
                          "positive, scale >= 0 (0 = automatic)", c->zo_eps, c->zo_samples, c->zo_scale);
    if (zo_params_check_syntax(c->zo_params, e)) return -1;
    if (!zo && strcmp(c->zo_params, ZO_PARAMS_DEFAULT))
        return err_set(e, "--zo-params %s: only --optimizer zo trains a subset of the tensors "
                          "(adamw and sgd train them all); drop --zo-params or use --optimizer zo",
                       c->zo_params);
    if (zo && zo_params_validate(&c->model, c->zo_params, e)) return -1;
    return swarm_config_validate(c, e);
}
