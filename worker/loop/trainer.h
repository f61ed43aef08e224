#ifndef MPITRAIN_TRAINER_H
#define MPITRAIN_TRAINER_H
/* The trainer's state and the helpers every step strategy shares: the
 * loop's interface, below the strategies (worker/method/) and their
 * set-up (worker/run/train.c). A run's summary (TrainResult) and the stop
 * request (StopFlag) are the launcher's, through worker/run/train.h. */
#include <signal.h>
#include "comm/mpi/comm.h"
#include "comm/mpi/mesh.h"
#include "worker/ckpt/ckpt.h"
#include "worker/ckpt/ckpt_save.h"
#include "worker/config/config.h"
#include "worker/data/data.h"
#include "worker/loop/observer.h"
#include "worker/loop/report.h"
#include "worker/loop/rundir.h"
#include "worker/parallel/gradsync.h"
#include "worker/parallel/pipeline.h"

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

/* What the fault-injection tests do around a step (worker/run/testhooks.c
 * installs them when a test asks, by environment variable): the loop calls
 * them where a real failure would strike and names no test itself. Any
 * member may be NULL. step is 1-based. */
typedef struct StepHooks {
    /* before the step: a rank killed, hung, frozen, or waiting for a signal */
    void (*before_step)(int rank, long step, const volatile sig_atomic_t *stop);
    /* after the update: a weight's bit flipped (desync detection) */
    void (*after_update)(int rank, long step, float *params);
    /* around a checkpoint's save (worker/ckpt/ckpt_save.h) */
    const CkptSaveHooks *save;
} StepHooks;

typedef struct {
    const TrainConfig *cfg;
    const CommWorld *w;
    const TrainObserver *obs; /* rank 0's display; never NULL (may be all NULLs) */
    StopFlag *stop;           /* the launcher's stop request; NULL on every rank or none */
    const StepHooks *hooks;   /* fault injection for the tests; NULL in a real run */
    Mesh mesh;
    TokenFile data;
    TokenFile val_data;    /* --val-data (all zero without it) */
    Loader train, val;
    Model model;
    Optimizer opt;
    GradSync sync;
    Pipeline pipe;
    int micro_b;           /* sequences per micro-batch on this rank */
    int *inputs, *targets; /* this rank's slice of one global batch */
    int *pos;              /* --doc-attention: its doc positions (the pipeline reads
                            * them), else NULL */
    int *shard_counts;     /* dp: flat elements each rank owns (ZeRO gather) */
    long start_step;       /* steps already done (resume) */
    float lr;              /* the step's learning rate, set by the loop before it
                            * computes: the schedule over steps, or over the
                            * --time-budget used; strategies read it */
    long end_step;         /* the run ends after this step (1-based): --steps, or
                            * sooner, agreed by every rank before the step
                            * begins (--time-budget); strategies may read it,
                            * and a one-rank strategy end the run at its
                            * current step, naming why in ended_by */
    const char *ended_by;  /* ... (summary.json's ended_by), or NULL */
    uint64_t data_pos;     /* global batch index of the next step */
    double budget_used_s;  /* --time-budget: training seconds used (rank 0's clock) */
    CkptMeta resume_meta;  /* --resume: the checkpoint's manifest, read once */
    Mpitrain__Manifest *resume_mf; /* ... and its records, kept for the strategy's setup */
    Group *solo;           /* a strategy whose replicas keep their own gradients
                            * (StepStrategy.replica_grads, DiLoCo's inner steps):
                            * this rank alone, their "data parallel" */
    char ckpt_root[PATH_BUF];
    double best_val_loss;  /* --keep-best, rank 0: the lowest val loss saved (NaN: none) */
    struct Task *task;     /* --eval-task's requests (worker/data/task.h), or NULL */
    double *task_ll;       /* ... each request's log-likelihood */
    int best_due;          /* --keep-best: this step's evaluation is the best so far */
    char tokenizer[PATH_LEN]; /* tokenizer files every checkpoint keeps ("" = none) */
    char source_dtype[8];
    char source_arch[48];     /* the class they came as (CkptMeta) */
    CkptBaseRef base_ref;     /* LoRA: the frozen base the checkpoints refer to (CkptMeta) */     /* the dtype the starting weights came in (CkptMeta) */
    RunLock lock;          /* rank 0: the run directory is this run's */
    double t_start;        /* comm_wtime() when the run began, for its wall time */
    size_t heap_peak;      /* the most sys_heap_bytes() seen after a step */
    double startup_bytes;  /* sent before the first step (link probe, plan) */
    double strategy_bytes; /* sent so far by the strategy outside the mesh's MPI
                            * groups (the swarm's fabric): it counts them */
} Trainer;

int trainer_is_rank0(const Trainer *t);
/* Same verdict on every rank; rank 0's e names the first failing rank. */
int trainer_agree(Trainer *t, int rc, Err *e);
/* A line for the observer, on rank 0 only. */
void trainer_note(const Trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
double trainer_per_pred(const TrainConfig *c);
/* 1 / the predictions the loss of global batch k is the mean over: the
 * whole batch's, or this rank's share's (whole = 0). A masked token file
 * (docs/token-format.md, version 3): the targets its mask counts, 0 when it
 * counts none (no loss, no gradient); else trainer_per_pred's figure. */
double trainer_batch_scale(const Trainer *t, uint64_t k, int whole);
/* ... of the local batch now in t->targets (a masked file: its targets
 * of at least 0), for a method that loads from its own place (zo, swarm) */
double trainer_loaded_scale(const Trainer *t);
/* The loss lives on the last stage; one TP rank speaks for its group.
 * Summed over g (the world: all machines; a machine's group: its own). */
double trainer_loss_sum(Trainer *t, Group *g, double local);
/* This rank's share of global batch k of l into inputs and targets, and
 * with --doc-attention its doc positions into pos. */
void trainer_load_batch(Trainer *t, const Loader *l, uint64_t k);
/* LoRA dropout (--lora-dropout) for the next training pass: its mask keyed
 * by the run seed and `what` (the batch, or a zeroth-order sample: equal
 * for the two forwards of one perturbation), and this rank's first global
 * token row, so every layout draws the single rank's mask. Nothing without
 * --lora-dropout; evaluation is never keyed. */
void trainer_key_dropout(Trainer *t, uint64_t what);
double trainer_eval_loss(Trainer *t);
/* --eval-task's accuracies with the weights as they are: the requests
 * shared out over the world's ranks (each its whole model), summed. */
void trainer_task_accuracy(Trainer *t, double *acc, double *acc_norm);
/* Windows one validation averages over: --eval-batches x --batch. */
long trainer_val_windows(const TrainConfig *c);

#endif
