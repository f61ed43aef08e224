#ifndef MPITRAIN_TRAINER_INTERNAL_H
#define MPITRAIN_TRAINER_INTERNAL_H
/* The trainer's state, shared by the loop (loop.c), its set-up (trainer.c)
 * and the step strategies (backprop.c, worker/method/zo/zo_step.c). */
#include "comm/mpi/mesh.h"
#include "worker/ckpt/ckpt.h"
#include "worker/data/data.h"
#include "worker/loop/observer.h"
#include "worker/loop/report.h"
#include "worker/loop/rundir.h"
#include "worker/loop/trainer.h"
#include "worker/parallel/gradsync.h"
#include "worker/parallel/pipeline.h"

typedef struct {
    const TrainConfig *cfg;
    const CommWorld *w;
    const TrainObserver *obs; /* rank 0's display; never NULL (may be all NULLs) */
    StopFlag *stop;           /* the launcher's stop request; NULL on every rank or none */
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
    int *shard_counts;     /* dp: flat elements each rank owns (ZeRO gather) */
    long start_step;       /* steps already done (resume) */
    float lr;              /* the step's learning rate, set by the loop before it
                            * computes: the schedule over steps, or over the
                            * --time-budget used; strategies read it */
    long end_step;         /* the run ends after this step (1-based): --steps, or
                            * sooner, agreed by every rank before the step
                            * begins (--time-budget); strategies may read it */
    uint64_t data_pos;     /* global batch index of the next step */
    double budget_used_s;  /* --time-budget: training seconds used (rank 0's clock) */
    CkptMeta resume_meta;  /* --resume: the checkpoint's manifest, read once */
    Mpitrain__Manifest *resume_mf; /* ... and its records, kept for the strategy's setup */
    Group *solo;           /* --diloco: this rank alone, the inner steps' "data parallel" */
    char ckpt_root[PATH_BUF];
    double best_val_loss;  /* --keep-best, rank 0: the lowest val loss saved (NaN: none) */
    int best_due;          /* --keep-best: this step's evaluation is the best so far */
    char tokenizer[PATH_LEN]; /* tokenizer files every checkpoint keeps ("" = none) */
    char source_dtype[8];     /* the dtype the starting weights came in (CkptMeta) */
    float zo_scale;        /* the scale in use (picked by the warm-up when 0) */
    RunLock lock;          /* rank 0: the run directory is this run's */
    double t_start;        /* comm_wtime() when the run began, for its wall time */
    size_t heap_peak;      /* the most sys_heap_bytes() seen after a step */
    double startup_bytes;  /* sent before the first step (link probe, plan) */
    double fabric_bytes;   /* sent over the swarm's fabric so far (not MPI: the
                            * strategy counts them) */
} Trainer;

int trainer_is_rank0(const Trainer *t);
/* Same verdict on every rank; rank 0's e names the first failing rank. */
int trainer_agree(Trainer *t, int rc, Err *e);
/* A line for the observer, on rank 0 only. */
void trainer_note(const Trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
double trainer_per_pred(const TrainConfig *c);
/* The loss lives on the last stage; one TP rank speaks for its group.
 * Summed over g (the world: all machines; a machine's group: its own). */
double trainer_loss_sum(Trainer *t, Group *g, double local);
double trainer_eval_loss(Trainer *t);
/* Windows one validation averages over: --eval-batches x --batch. */
long trainer_val_windows(const TrainConfig *c);

#endif
