#ifndef MPITRAIN_CONFIG_H
#define MPITRAIN_CONFIG_H
/* A training run's configuration: the struct, and the one table
 * (config.c) from which its option parser, defaults, help text,
 * config-file keys, the plan's settings, config.json and range checks all
 * come. A new setting is one field here and one line in that table. */
#include <stdint.h>
#include "base/err.h"
#include "base/fileio.h"
#include "base/options.h"
#include "models/model.h"
#include "worker/optim/optim.h"

/* The default dataset: the King James Bible (Debian package bible-kjv). */
#define DEFAULT_DATA "data/kjv.tok"

#define TRAIN_CONFIG_MAX_ENTRIES 128
typedef struct {
    uint64_t words[TRAIN_CONFIG_MAX_ENTRIES / 64];
} TrainGiven;

typedef struct {
    ModelConfig model;
    OptimConfig optim;
    int global_batch;          /* sequences per step, all ranks together */
    long steps;                /* total steps of the run */
    /* --time-budget: seconds of training (the steps' own time, rank 0's
     * clock; not start-up, evaluation or checkpoints) after which the run
     * ends with a checkpoint, the lr's cosine running over it; 0 = none.
     * Given without --steps, steps is TRAIN_STEPS_UNLIMITED. */
    double time_budget_s;
    uint64_t seed;
    int threads;               /* 0 = cores / ranks on the node */
    int micro_batches;
    char data[PATH_LEN];
    char val_data[PATH_LEN];   /* "": the val split is --data's own */
    int data_format;           /* DataFormat (worker/data/data.h) */
    int shuffle;               /* --shuffle: training windows in a seeded order per pass */
    int doc_attention;         /* --doc-attention: examples packed in a window stay apart
                                * (models/ops.h DOC POSITIONS) */
    char out[PATH_LEN];
    char resume[PATH_LEN];
    char init_from[PATH_LEN];
    char lora_from[PATH_LEN];  /* --lora-from: a PEFT adapter directory */
    int lora_save_base;        /* --lora-save-base: checkpoints hold the frozen base */
    char tokenizer[PATH_LEN]; /* --tokenizer: kept with the checkpoints */
    char trace[PATH_LEN];
    char config[PATH_LEN];     /* --config: read by the parser, not a setting */
    int save_every, keep_ckpts;
    int keep_best;             /* --keep-best: <ckpt>/best names the lowest val loss */
    int eval_every, eval_batches;
    char eval_task[PATH_LEN];  /* --eval-task: a multiple-choice task, scored at each evaluation */
    int log_every;
    int dp, tp, pp, zero;
    int pp_schedule;           /* 0 gpipe, 1 1f1b */
    int progress;              /* 0 auto (bar on a terminal), 1 lines, 2 bar */
    int quiet;
    int overwrite;
    float peak_gflops;         /* one rank's peak GFLOP/s, for mfu; 0 = unknown */
    float bucket_mb;           /* gradient bucket size for the DP all-reduce */
    int overlap;               /* start bucket all-reduces during backward */
    /* --diloco: H inner steps per outer step (0 = every step all-reduces) */
    int diloco, diloco_overlap, diloco_fragments;
    int diloco_wire;           /* WireFormat (base/wire.h): 0 fp32, 1 bf16, 2 int8, 3 int4 */
    float outer_lr, outer_momentum;
    int link_probe;            /* 0 auto, 1 off (--link-probe) */
    /* --optimizer zo */
    float zo_eps, zo_scale, zo_outlier; /* zo_scale 0 = pick from a warm-up */
    float zo_sparse;           /* --zo-sparse F: the smallest-magnitude fraction perturbed; 0 = all */
    int zo_one_sided;          /* --zo-one-sided: (L(theta + eps z) - L(theta)) / eps, K+1 forwards */
    int zo_samples, zo_check_every;
    char zo_params[256];       /* --zo-params: the tensors zo perturbs (worker/method/zo/zo_params.h) */
    int on_nan;                /* 0 stop with a message, 1 skip the update */
    /* --swarm-listen / --swarm-join: a ZO run whose machines meet over
     * libfabric and may come and go (worker/method/swarm, docs/swarm.md) */
    char swarm_listen[128], swarm_join[128];
    int swarm_provider;        /* 0 tcp, 1 shm */
    float swarm_deadline;      /* seconds the keeper waits for a step's codes */
    int swarm_misses;          /* missed deadlines in a row that drop a machine */
    int swarm_wait;            /* the keeper's first step waits for this many machines */

    /* not settings: which were given (a flag or --config), bit i = table
     * entry i of words[i / 64]; filled by train_config_given, all 0 when
     * unknown */
    TrainGiven given;
    /* derived by the plan, not settings: */
    /* the training method's step strategy (worker/method/methods.h),
     * resolved once from the settings by method_resolve */
    const struct StepStrategy *method;
    double predicted_step_ms;  /* the planner's prediction for this layout */
    /* pipeline stage s owns blocks [stage_first[s], stage_first[s+1]) */
#define MAX_STAGES 1040
    int stage_first[MAX_STAGES + 1];
} TrainConfig;

/* The settings table (terminated by a zero entry); n = entries. */
const OptSpec *train_config_table(size_t *n);
/* Is this table entry a setting of the run (everything but --config)? */
int train_config_is_setting(const OptSpec *s);
/* Is it one of the model's (a field of TrainConfig.model: its kind, shape
 * and family options)? The lists of settings that define a run (the
 * plan's, the swarm's) take these from here. */
int train_config_is_model_setting(const OptSpec *s);
void train_config_defaults(TrainConfig *c);
/* What follows from the settings once they are all read (the cosine's
 * length, a final lr above the peak): called by every path that fills a
 * config (flags, config file, plan, resume). */
void train_config_finish(TrainConfig *c);
/* Which settings argv[first..] gives (flags and its --config file): bit i
 * for table entry i (numbers and choices). argv must parse. */
TrainGiven train_config_given(int argc, char **argv, int first);
/* --steps' largest value: a --time-budget run without --steps has no step
 * limit (its config.json says so, and resuming with it keeps it so). */
#define TRAIN_STEPS_UNLIMITED 1000000000000L
/* Was this table entry given (c->given)? */
int train_config_was_given(const TrainConfig *c, const OptSpec *s);
/* Does this entry hold the value that asks the run to choose (--zo-scale 0:
 * from a warm-up)? Then the value a checkpoint or a swarm's keeper chose
 * is what it asked for, not a conflict with it. */
int train_config_leaves_choice(const TrainConfig *c, const OptSpec *s);
/* Cross-field checks after parsing; message names the flag to change. The
 * methods' own settings are their rooms' to check: method_resolve
 * (worker/method/methods.h) calls this, then them. */
int train_config_validate(const TrainConfig *c, Err *e);
size_t train_config_bucket_bytes(const TrainConfig *c);
/* No --out: runs/<model>-<date>-<time>. */
void train_config_default_out(TrainConfig *c);
/* <path> (config.json): every setting as its JSON type, re-usable with
 * --config; written atomically. */
int train_config_write_json(const TrainConfig *c, const char *path, Err *e);

#endif
