/* The registry of training methods. A new method is a room under
 * worker/method/ with its StepStrategy and one line in METHODS. */
#include "worker/method/methods.h"

#include "worker/method/backprop/backprop.h"
#include "worker/method/diloco/diloco_step.h"
#include "worker/method/elastic/elastic_step.h"
#include "worker/method/swarm/swarm_step.h"
#include "worker/method/zo/zo_config.h"

/* Every method, once, the more particular before the more general: the
 * first whose `selected_by` says yes is the run's (the swarm is a ZO run whose
 * machines meet over libfabric, elastic DiLoCo a DiLoCo run whose machines
 * do; backprop takes what no other claims). The validate hooks run in this
 * order too. */
static const StepStrategy *const METHODS[] = {
    &SWARM_STRATEGY,
    &ELASTIC_STRATEGY,
    &ZO_STRATEGY,
    &DILOCO_STRATEGY,
    &BACKPROP_STRATEGY,
};
#define N_METHODS (sizeof METHODS / sizeof METHODS[0])

const StepStrategy *method_of(const TrainConfig *c)
{
    for (size_t i = 0; i < N_METHODS; i++)
        if (!METHODS[i]->selected_by || METHODS[i]->selected_by(c)) return METHODS[i];
    return NULL; /* unreachable: the last method claims every run */
}

int method_resolve(TrainConfig *c, Err *e)
{
    c->method = method_of(c);
    if (train_config_validate(c, e)) return -1;
    for (size_t i = 0; i < N_METHODS; i++)
        if (METHODS[i]->validate && METHODS[i]->validate(c, e)) return -1;
    return 0;
}
