#ifndef MPITRAIN_ELASTIC_STEP_H
#define MPITRAIN_ELASTIC_STEP_H
#include "worker/loop/strategy.h"

/* Elastic DiLoCo (--diloco H with --swarm-listen / --swarm-join): DiLoCo's
 * outer rounds among machines that come and go (docs/elastic.md). */
extern const StepStrategy ELASTIC_STRATEGY;

#endif
