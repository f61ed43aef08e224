#ifndef MPITRAIN_SWARM_STEP_H
#define MPITRAIN_SWARM_STEP_H
/* The swarm method's entry in the registry (worker/method/methods.c). */
#include "worker/loop/strategy.h"

/* --optimizer zo with --swarm-listen / --swarm-join (swarm_step.c) */
extern const StepStrategy SWARM_STRATEGY;

/* StepStrategy.validate of the swarm: a swarm is a ZO run of machines that
 * are one replica each and one role (swarm_config.c). */
int swarm_config_validate(const TrainConfig *c, Err *e);
/* StepStrategy.selected_by of the swarm: --optimizer zo with --swarm-listen or
 * --swarm-join */
int swarm_config_selected(const TrainConfig *c);

#endif
