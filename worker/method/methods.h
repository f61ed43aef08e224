#ifndef MPITRAIN_METHODS_H
#define MPITRAIN_METHODS_H
/* The training methods: each room under worker/method/ registers one
 * StepStrategy in methods.c, and a run's method is chosen there, once. */
#include "worker/loop/strategy.h"

/* The method the settings ask for: the swarm (--optimizer zo with
 * --swarm-listen / --swarm-join), zo (--optimizer zo), DiLoCo (--diloco H),
 * else backprop; each method's `chosen` says which settings are its. A
 * function of the settings alone: the plan stores it in c->method
 * (method_resolve); the planner asks it of the configs it tries. */
const StepStrategy *method_of(const TrainConfig *c);

/* Resolves c->method (method_of) and checks the settings: the general
 * rules (train_config_validate), then each method's own (its validate).
 * Every config a run starts from passes here (the plan, on every rank). */
int method_resolve(TrainConfig *c, Err *e);

#endif
