#ifndef MPITRAIN_DILOCO_STEP_H
#define MPITRAIN_DILOCO_STEP_H
#include "worker/loop/strategy.h"

/* DiLoCo (--diloco H): backprop inner steps, an outer step every H. */
extern const StepStrategy DILOCO_STRATEGY;

#endif
