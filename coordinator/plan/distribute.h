#ifndef MPITRAIN_DISTRIBUTE_H
#define MPITRAIN_DISTRIBUTE_H
/* The plan's way to every rank: rank 0 applies --resume/--init-from, lets
 * the planner choose the layout (and predict its step) when the flags leave
 * it open, resolves, encodes and broadcasts the plan with its hash; the
 * others receive and decode it. Above both the plan (plan.h) and the
 * planner (planner.h), which needs the plan's validation. */
#include "comm/mpi/comm.h"
#include "coordinator/plan/plan.h"

/* Rank 0: resolve + encode + broadcast; others: receive + decode. cfg is
 * the input on rank 0 and the plan on return everywhere. Every rank returns
 * the same verdict (0, -1, PLAN_ERR_RESUME or PLAN_COMPLETE); then rank 0's e says
 * why. */
int plan_distribute(Group *world, TrainConfig *cfg, const CommWorld *w, Err *e);

#endif
