#ifndef MPITRAIN_RUN_TRAIN_H
#define MPITRAIN_RUN_TRAIN_H
/* A training job on every rank once its settings are read, the same for
 * `mpitrain train` and the library's mpitrain_train: rank 0 makes the
 * default dataset and run directory when none is given, the plan is
 * distributed, the run trains under obs, and the trace is written. */
#include "comm/comm.h"
#include "worker/loop/trainer.h"

/* 0; EXIT_USAGE (2) when the plan is refused; 1 for a runtime failure
 * (including a --resume checkpoint that cannot be read). The
 * same verdict on every rank, and rank 0's e says why. */
int launch_train(TrainConfig *c, const CommWorld *w, const TrainObserver *obs, TrainResult *res,
                 Err *e);

#endif
