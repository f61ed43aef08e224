#ifndef MPITRAIN_STRATEGY_H
#define MPITRAIN_STRATEGY_H
/* How one step changes the weights. The loop (worker/loop/loop.c) owns
 * everything around it: data position, test hooks, the NaN policy,
 * reports, evaluation, checkpoints, heartbeat and summary. A strategy
 * computes a step's loss (and gradient norm, where there is one), then
 * applies the update unless the loop's NaN policy skips it. */
#include "models/cost.h" /* what flops_per_step counts with */
#include "worker/loop/trainer.h"

typedef struct {
    double loss;       /* mean loss of the global batch */
    double grad_norm;  /* NaN when the strategy has no gradient */
    int no_loss;       /* the step was taken as others decided it (a swarm
                        * machine catching up): nothing measured, the NaN
                        * policy does not apply */
} StepOutcome;

typedef struct StepStrategy {
    const char *name;
    /* do the settings ask for this method? The registry
     * (worker/method/methods.c) asks the methods in its order and takes the
     * first that says yes, once per run (c->method); NULL: every run (the
     * registry's last, backprop) */
    int (*selected_by)(const TrainConfig *c);
    /* properties the set-up reads before setup (worker/run/train.c): */
    int forward_only;  /* never a gradient: the model is built without one
                        * (zo); the plan's memory check counts the same */
    int replica_grads; /* each data-parallel replica steps on its own
                        * gradient: none is reduced across replicas (DiLoCo's
                        * inner steps); the gradient buckets reduce over
                        * t->solo */
    /* the settings (table names, NULL-terminated; NULL: none) a --resume
     * of this method's checkpoint keeps from it, beyond the model, the
     * optimizer, the batch and the seed: what its saved state means */
    const char *const *resume_keeps;
    /* the settings this method owns, checked for every run whichever method
     * it chose (c->method, resolved before): its own rules when chosen, and
     * its settings refused when given to another method (may be NULL) */
    int (*validate)(const TrainConfig *c, Err *e);
    /* before the run directory is claimed or written, every rank (may be
     * NULL): refuses what the setup would refuse of an existing run's files,
     * so a refused resume leaves its config.json and metrics as they were */
    int (*check_run)(Trainer *t, Err *e);
    /* after the model and its initial weights are in place */
    int (*setup)(Trainer *t, void **state, Err *e);
    /* forward (and backward) on the batch at t->data_pos; no update yet */
    int (*compute)(Trainer *t, void *state, long step, StepOutcome *out, Err *e);
    /* the update of this step; skip: the loop's --on-nan skip policy fired
     * (every rank saw the same outcome, so all skip together) */
    int (*apply)(Trainer *t, void *state, long step, int skip, Err *e);
    /* after the step's report, every rank (may be NULL) */
    int (*after_step)(Trainer *t, void *state, long step, Err *e);
    /* before a checkpoint is written, every rank (may be NULL) */
    int (*before_save)(Trainer *t, void *state, Err *e);
    /* a stop (signal) is agreed, before its checkpoint, every rank (may be
     * NULL): a swarm machine says goodbye here, so the others need not wait
     * out the checkpoint's write */
    void (*on_stop)(Trainer *t, void *state);
    /* the flat buffers a checkpoint saves, this rank's share of them, into
     * out (at most STRATEGY_MAX_PARTS); returns how many. NULL: the weights
     * and the optimizer's moments, each data-parallel rank its `mine` */
    int (*ckpt_parts)(Trainer *t, void *state, Range mine, CkptPart *out);
    /* the settings a checkpoint records, as the run uses them (may be
     * NULL): a value that asked the strategy to choose becomes its choice
     * (train_config_leaves_choice), so a resume continues with it */
    void (*chosen_settings)(const Trainer *t, const void *state, TrainConfig *c);
    /* model FLOPs of one step, all ranks together */
    double (*flops_per_step)(const Trainer *t);
    void (*free)(void *state);
} StepStrategy;

/* The strategies themselves live in their rooms (worker/method/<name>/)
 * and are listed once, in worker/method/methods.c. */
#define STRATEGY_MAX_PARTS 16

#endif
