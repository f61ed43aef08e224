#ifndef MPITRAIN_TRAINER_H
#define MPITRAIN_TRAINER_H
#include <signal.h>
#include "comm/mpi/comm.h"
#include "worker/config/config.h"
#include "worker/loop/observer.h"

/* Summary of a finished run, for callers and tests. */
typedef struct {
    long first_step, last_step;
    double final_loss, final_val_loss;
    double mean_tokens_per_s, mean_gflops, mean_step_ms, mean_exposed_ms;
    /* Of the time the ranks' threads were ready to run during the steps,
     * the share they ran (the rest other processes held the cores; -1 =
     * unknown), and the share the job's own ranks x threads on its cores
     * leave each (1, or below when they oversubscribe the cores). */
    double cpu_share, fair_share;
    size_t opt_state_bytes;
    char run_dir[PATH_LEN];
    char last_ckpt[PATH_LEN];
    int stop_signal; /* non-zero: stopped early on request (that signal's
                      * number) after saving last_step in last_ckpt */
    int complete;    /* --resume of a run already at its --steps: nothing
                      * trained, last_ckpt is the run's final checkpoint */
} TrainResult;

/* A request to stop early, as a signal handler can make one: 0 until the
 * launcher's handler stores a signal's number in it. The loop reads it at
 * every step boundary and all ranks settle on one answer with a single
 * max over the world, because a signal reaches the ranks at different
 * moments (or only some of them). */
typedef volatile sig_atomic_t StopFlag;

/* Runs the training job this rank takes part in; cfg is the coordinator's
 * plan (identical on every rank). obs (rank 0's display) may be NULL. stop
 * may be NULL (never stop early), but then on every rank. A stop returns 0
 * with res->stop_signal set. All ranks return the same verdict. */
int train_run(const TrainConfig *cfg, const CommWorld *w, const TrainObserver *obs,
              StopFlag *stop, TrainResult *res, Err *e);

#endif
