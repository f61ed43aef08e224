#ifndef MPITRAIN_PROGRESS_H
#define MPITRAIN_PROGRESS_H
/* Rank 0's view of a run: the progress line on stdout and metrics.jsonl. */
#include <stdio.h>
#include "base/err.h"
#include "worker/loop/observer.h"


typedef struct {
    FILE *metrics;
    int bar;            /* redraw one line in place (terminal) */
    int quiet;
    long total_steps, first_step;
    double t0;          /* wall clock at the first reported step */
    double ema_ms;
    int log_every;
} Progress;

/* Opens <run_dir>/metrics.jsonl; when resuming, rows after `resume_step` are
 * dropped so the file describes one consistent trajectory. mode: 0 auto,
 * 1 plain lines, 2 bar. */
int progress_open(Progress *p, const char *run_dir, long total_steps, long resume_step,
                  int mode, int log_every, int quiet, Err *e);
void progress_report(Progress *p, const StepReport *r);
/* The validation loss before the first step (a metrics row of step 0). */
void progress_initial_eval(Progress *p, double val_loss);
void progress_note(Progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void progress_close(Progress *p);
/* The training loop's observer that drives p (opened when the run begins). */
TrainObserver progress_observer(Progress *p);
/* "1h02m", "3m20s", "12s" */
void format_duration(char *out, size_t n, double seconds);

#endif
