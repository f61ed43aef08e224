#ifndef MPITRAIN_LOOP_H
#define MPITRAIN_LOOP_H
#include "worker/loop/strategy.h"

/* The one training loop: steps [t->start_step, cfg->steps). */
int loop_run(Trainer *t, const StepStrategy *s, TrainResult *res, Err *e);

#endif
