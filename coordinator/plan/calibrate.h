#ifndef MPITRAIN_CALIBRATE_H
#define MPITRAIN_CALIBRATE_H
/* `mpitrain plan --calibration RUN,...`: what one step of each training
 * mode teaches on the user's own task, measured by short runs from the
 * same start, instead of the planner's built-in step worths (which come
 * from one fine-tune of this project's). A run's config.json says its mode
 * (optimizer, --zo-samples, --diloco H, LoRA, batch); its metrics.jsonl
 * rows the metric against the step: `task_accuracy` (train --eval-task) or
 * `val_loss`. The plan turns steps to a target into time at its machine
 * and link (docs/planner.md, "Ranking by time to a target"). */
#include "base/err.h"
#include "worker/config/config.h"

#define CALIBRATION_MAX_POINTS 4096

typedef enum { METRIC_ACCURACY = 0, METRIC_LOSS = 1 } CalMetric;

typedef struct {
    char dir[PATH_BUF];
    char name[64];          /* the run directory's last component */
    TrainConfig cfg;        /* its config.json */
    int n;                  /* points read */
    long step[CALIBRATION_MAX_POINTS];
    double value[CALIBRATION_MAX_POINTS];
    double slope, intercept; /* least-squares line value = intercept + slope * step */
} Calibration;

/* Reads DIR/config.json and the metric's points of DIR/metrics.jsonl.
 * A run without the metric (no --eval-task for accuracy), or with fewer
 * than two points, is an error naming the file. */
int calibration_load(const char *dir, CalMetric metric, Calibration *c, Err *e);

/* Steps of the run's global batch to reach target: the first step whose
 * point reached it (*measured = 1), else where the run's line reaches it
 * (*measured = 0); -1 when the line moves away from the target or stays
 * flat (no progress measured). */
double calibration_steps_to(const Calibration *c, CalMetric metric, double target, int *measured);

#endif
