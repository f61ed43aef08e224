#ifndef MPITRAIN_ZO_CONFIG_H
#define MPITRAIN_ZO_CONFIG_H
/* The zo method's entry in the registry (worker/method/methods.c) and the
 * rules of its settings. */
#include "worker/loop/strategy.h"

/* --optimizer zo (worker/method/zo/zo_step.c) */
extern const StepStrategy ZO_STRATEGY;

/* StepStrategy.validate of zo: --zo-* when zo is the method, --zo-params
 * refused without it. */
int zo_config_validate(const TrainConfig *c, Err *e);
/* StepStrategy.resume_keeps of zo and the swarm: what the journal's codes
 * mean */
extern const char *const ZO_RESUME_KEEPS[];
/* StepStrategy.selected_by of zo: --optimizer zo */
int zo_config_selected(const TrainConfig *c);

#endif
