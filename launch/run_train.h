#ifndef MPITRAIN_RUN_TRAIN_H
#define MPITRAIN_RUN_TRAIN_H
/* A training job on every rank once its settings are read, the same for
 * `mpitrain train` and the library's mpitrain_train: rank 0 makes the
 * default dataset and run directory when none is given, the plan is
 * distributed, the run trains under obs, and the trace is written. */
#include "comm/mpi/comm.h"
#include "worker/run/train.h"

/* Exit code of a run stopped on request (SIGUSR1, SIGTERM, SIGINT) after it
 * saved a checkpoint of the step it had finished: not a failure, and
 * `--resume <out>` continues it bit for bit. */
#define EXIT_STOPPED 3

/* 0 (res->complete: a --resume of a run already at its --steps, which
 * trains nothing; rank 0's e says so); EXIT_STOPPED when stop was raised (res->stop_signal says by which
 * signal); EXIT_USAGE (2) when the plan is refused; 1 for a runtime
 * failure (including a --resume checkpoint that cannot be read). The same verdict on every rank, and rank 0's e says why. stop
 * may be NULL (on every rank). */
int launch_train(TrainConfig *c, const CommWorld *w, const TrainObserver *obs, StopFlag *stop,
                 TrainResult *res, Err *e);

/* Makes SIGUSR1, SIGTERM and SIGINT ask the run to stop at the next step
 * boundary instead of killing the process: the handler only records the
 * first signal's number in the flag returned (later ones change nothing,
 * so a second signal cannot cut a stop short half-way). A program that
 * embeds the library keeps its own signals: only the command calls this. */
StopFlag *launch_catch_stop_signals(void);
/* "SIGUSR1", "SIGTERM", "SIGINT", or "signal N". */
const char *launch_signal_name(int sig, char *buf, size_t n);

#endif
