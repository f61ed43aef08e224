#ifndef MPITRAIN_TRAINER_H
#define MPITRAIN_TRAINER_H
#include "comm/comm.h"
#include "worker/config/config.h"
#include "worker/loop/observer.h"

/* Summary of a finished run, for callers and tests. */
typedef struct {
    long first_step, last_step;
    double final_loss, final_val_loss;
    double mean_tokens_per_s, mean_gflops, mean_step_ms, mean_exposed_ms;
    size_t opt_state_bytes;
    char run_dir[PATH_LEN];
    char last_ckpt[PATH_LEN];
} TrainResult;

/* Runs the training job this rank takes part in; cfg is the coordinator's
 * plan (identical on every rank). obs (rank 0's display) may be NULL. All
 * ranks return the same verdict. */
int train_run(const TrainConfig *cfg, const CommWorld *w, const TrainObserver *obs,
              TrainResult *res, Err *e);

#endif
