#ifndef MPITRAIN_OBSERVER_H
#define MPITRAIN_OBSERVER_H
/* What a run tells the one who watches it. The training loop (worker/)
 * calls these on rank 0 only; rank 0's progress display in coordinator/
 * implements them, and an embedding program may pass its own (or none).
 * Any member may be NULL. */
#include "base/err.h"
#include "worker/config/config.h"
#include "worker/loop/report.h"

/* A run's step time at its end beside the planner's prediction, and how
 * much of the CPU the ranks got while they trained (TrainResult's). */
typedef struct {
    const char *strategy;   /* "backprop", "zo", "diloco" */
    int dp, tp, pp;
    double predicted_ms;    /* the planner's, for an idle machine */
    double measured_ms;     /* mean step time (first step excluded) */
    double cpu_share;       /* share of their runnable time the ranks ran; -1 = unknown */
    double fair_share;      /* what the job's own ranks x threads leave each (<= 1) */
    double load;            /* 1-minute load average at the end; -1 = unknown */
    int cores;              /* the cores the ranks of rank 0's machine share */
} RunTiming;

typedef struct TrainObserver {
    void *ctx;
    /* the run directory exists; first_step > 0 when resuming */
    int (*begin)(void *ctx, const TrainConfig *c, long first_step, Err *e);
    /* one line for a person: set-up facts, skipped updates, the summary */
    void (*note)(void *ctx, const char *line);
    /* the validation loss before the first step */
    void (*initial_eval)(void *ctx, double val_loss);
    /* a step done: 0, or -1 with e (its record cannot be kept: the run
     * stops rather than go on unrecorded) */
    int (*step)(void *ctx, const StepReport *r, Err *e);
    /* a step a resumed run took over from the journal (zo catch-up) rather
     * than computing it: what is known of it is its number and lr */
    int (*replayed)(void *ctx, long step, double lr, Err *e);
    void (*end)(void *ctx);
    /* the run is done: its step time against the planner's prediction */
    void (*timing)(void *ctx, const RunTiming *t);
} TrainObserver;

#endif
