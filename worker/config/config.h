#ifndef MPITRAIN_TRAIN_H
#define MPITRAIN_TRAIN_H
#include <stdint.h>
#include "models/model.h"
#include "worker/optim/optim.h"

#define PATH_LEN 4096

typedef struct {
    ModelConfig model;
    int model_kind;            /* choice index mirrored into model.kind */
    OptimConfig optim;
    int optimizer;             /* choice index mirrored into optim.kind */
    int global_batch;          /* sequences per step, all ranks together */
    long steps;                /* total steps of the run */
    uint64_t seed;
    int threads;               /* 0 = cores / ranks on the node */
    int micro_batches;
    char data[PATH_LEN];
    char out[PATH_LEN];
    char resume[PATH_LEN];
    char init_from[PATH_LEN];
    char trace[PATH_LEN];
    char config[PATH_LEN];
    int save_every, keep_ckpts;
    int eval_every, eval_batches;
    int log_every;
    int dp, tp, pp, zero;
    int pp_schedule;           /* 0 gpipe, 1 1f1b */
    int progress;              /* 0 auto (bar on a terminal), 1 lines, 2 bar */
    int quiet;
    int overwrite;
    long bucket_bytes;         /* gradient bucket size for the DP all-reduce */
    float bucket_mb;           /* --bucket-mb, turned into bucket_bytes */
    /* pipeline stage s owns blocks [stage_first[s], stage_first[s+1]);
     * filled by the plan */
#define MAX_STAGES 1040
    double predicted_step_ms;  /* the planner's prediction for this layout */
    /* --optimizer zo */
    float zo_eps, zo_scale, zo_outlier; /* zo_scale 0 = pick from a warm-up */
    int zo_samples, zo_check_every;
    int on_nan;                /* 0 stop with a message, 1 skip the update */
    int stage_first[MAX_STAGES + 1];
    int overlap;               /* start bucket all-reduces during backward */
} TrainConfig;

void train_config_defaults(TrainConfig *c);
/* Cross-field checks after parsing; message names the flag to change. */
int train_config_validate(const TrainConfig *c, Err *e);

#endif
