/* The registry of training methods. A new method is a room under
 * worker/method/ with its StepStrategy, one line in METHODS and its case
 * in method_of. */
#include "worker/method/methods.h"

#include "worker/method/backprop/backprop.h"
#include "worker/method/diloco/diloco_step.h"
#include "worker/method/zo/zo_config.h"

/* Every method, once. Their validate hooks run in this order. */
static const StepStrategy *const METHODS[] = {
    &BACKPROP_STRATEGY,
    &ZO_STRATEGY,
    &DILOCO_STRATEGY,
    /* the swarm registers its own strategy here once it leaves zo's room
     * (today ZO_STRATEGY runs it; method_of then returns it for
     * --swarm-listen / --swarm-join) */
};

const StepStrategy *method_of(const TrainConfig *c)
{
    if (c->optim.kind == OPT_ZO) return &ZO_STRATEGY;
    if (c->diloco > 0) return &DILOCO_STRATEGY;
    return &BACKPROP_STRATEGY;
}

int method_resolve(TrainConfig *c, Err *e)
{
    c->method = method_of(c);
    if (train_config_validate(c, e)) return -1;
    for (size_t i = 0; i < sizeof METHODS / sizeof METHODS[0]; i++)
        if (METHODS[i]->validate && METHODS[i]->validate(c, e)) return -1;
    return 0;
}
