#ifndef MPITRAIN_PROGRESS_H
#define MPITRAIN_PROGRESS_H
/* Rank 0's view of a run: the progress line on stdout and metrics.jsonl. */
#include <stdio.h>
#include "models/err.h"

typedef struct {
    long step;          /* 1-based step just completed */
    double loss;        /* mean train loss of the global batch */
    double val_loss;    /* NaN when not evaluated this step */
    double lr, grad_norm;
    double tokens_per_s, gflops;
    double comm_bytes;  /* bytes a rank sent in collectives this step (mean) */
    double time_ms;     /* wall time of the step (slowest rank) */
    double compute_ms, exposed_ms, overlapped_ms, idle_ms; /* per rank, mean */
} StepReport;

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
/* "1h02m", "3m20s", "12s" */
void format_duration(char *out, size_t n, double seconds);

#endif
