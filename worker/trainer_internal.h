#ifndef MPITRAIN_TRAINER_INTERNAL_H
#define MPITRAIN_TRAINER_INTERNAL_H
/* The trainer's state and the pieces the two training loops (backprop in
 * trainer.c, shared-randomness ZO in zo_train.c) share. */
#include "comm/mesh.h"
#include "coordinator/progress.h"
#include "coordinator/report.h"
#include "worker/ckpt.h"
#include "worker/data.h"
#include "worker/gradsync.h"
#include "worker/pipeline.h"
#include "worker/trainer.h"

typedef struct {
    const TrainConfig *cfg;
    const CommWorld *w;
    Mesh mesh;
    TokenFile data;
    Loader train, val;
    Model model;
    Optimizer opt;
    GradSync sync;
    Pipeline pipe;
    int micro_b;           /* sequences per micro-batch on this rank */
    int *inputs, *targets; /* this rank's slice of one global batch */
    int *shard_counts;     /* dp: flat elements each rank owns (ZeRO gather) */
    long start_step;       /* steps already done (resume) */
    uint64_t data_pos;     /* global batch index of the next step */
    char ckpt_root[PATH_LEN + 8];
    Progress prog;
    float zo_scale;        /* the scale in use (picked by the warm-up when 0) */
} Trainer;

int trainer_is_rank0(const Trainer *t);
/* Same verdict on every rank; rank 0's e names the first failing rank. */
int trainer_agree(Trainer *t, int rc, Err *e);
double trainer_per_pred(const TrainConfig *c);
/* The loss lives on the last stage; one TP rank speaks for its group.
 * Summed over g (the world: all machines; a machine's group: its own). */
double trainer_loss_sum(Trainer *t, Group *g, double local);
double trainer_eval_loss(Trainer *t);
int trainer_should_eval(const Trainer *t, long step);
int trainer_should_save(const Trainer *t, long step);
int trainer_save_checkpoint(Trainer *t, long step, TrainResult *res, Err *e);
/* Per-rank report of a step from the comm stats before it and its start. */
void trainer_rank_report(Trainer *t, const CommStats *before, double t0, RankReport *rr);

void trainer_heartbeat(Trainer *t, long step);

/* The shared-randomness loop (zo_train.c). */
int zo_run_steps(Trainer *t, TrainResult *res, Err *e);

#endif
