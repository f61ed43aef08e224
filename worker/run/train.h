#ifndef MPITRAIN_TRAIN_H
#define MPITRAIN_TRAIN_H
/* A training run on every rank, above the methods: the launcher's entry
 * (launch/run_train.c, the C API). TrainResult and StopFlag are the loop's
 * (worker/loop/trainer.h). */
#include "comm/mpi/comm.h"
#include "worker/config/config.h"
#include "worker/loop/observer.h"
#include "worker/loop/trainer.h"

/* Runs the training job this rank takes part in; cfg is the coordinator's
 * plan (identical on every rank, its method resolved: plan_resolve). obs
 * (rank 0's display) may be NULL. stop may be NULL (never stop early), but
 * then on every rank. A stop returns 0 with res->stop_signal set. All ranks
 * return the same verdict. */
int train_run(const TrainConfig *cfg, const CommWorld *w, const TrainObserver *obs,
              StopFlag *stop, TrainResult *res, Err *e);

#endif
