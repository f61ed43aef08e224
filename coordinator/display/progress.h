#ifndef MPITRAIN_PROGRESS_H
#define MPITRAIN_PROGRESS_H
/* Rank 0's view of a run: the progress line on stdout and metrics.jsonl. */
#include <stdio.h>
#include "base/err.h"
#include "base/fileio.h"
#include "worker/loop/observer.h"


typedef struct {
    FILE *metrics;
    char path[PATH_BUF];  /* metrics.jsonl, for the messages */
    char *dropped;        /* resuming: the rows past the checkpoint, until
                           * the journal's catch-up puts them back */
    double tokens_per_step;
    double peak_gflops;   /* the whole job's (--peak-gflops x ranks); 0 = no mfu */
    int bar;            /* redraw one line in place (terminal) */
    int open_line;      /* the bar's line is not ended yet */
    int quiet;
    long total_steps, first_step;
    long val_windows;   /* windows one validation averages over (eval rows say it) */
    double t0;          /* wall clock at the first reported step */
    double ema_ms;
    int log_every;
} Progress;

/* metrics.jsonl describes every step once, one JSON object per line:
 *   {"step","loss", "val_loss" and "val_windows" (evaluation rows only: the
 *    mean loss over the first val_windows windows of the validation split,
 *    which `mpitrain eval --windows N` reproduces), "grad_norm", "lr",
 *    "tokens" (training tokens consumed through this step: step x batch x
 *    seq-len), "tokens_per_s", "gflops" (the whole job's model FLOP/s),
 *    "mfu" (gflops over --peak-gflops x ranks; only when --peak-gflops is
 *    given: a machine's peak is not something a program can measure
 *    honestly), "comm_bytes", the timings, "time" (unix seconds at the end
 *    of the step)}
 * A ZO run that resumes catches up from its journal the steps past its
 * checkpoint without computing them; each gets its row back: the row the
 * sitting that trained it wrote, else (that sitting died before writing
 * it) {"step","loss":null,"lr","tokens","time","replayed":true}.
 *
 * Opens <run_dir>/metrics.jsonl; when resuming, rows after `resume_step`
 * are taken out (so the file describes one consistent trajectory) and kept
 * for progress_replayed. A metrics.jsonl that is not a regular file (a
 * pipe, /dev/null) is appended to as it is. mode: 0 auto, 1 plain lines,
 * 2 bar. */
int progress_open(Progress *p, const char *run_dir, long total_steps, long resume_step,
                  int mode, int log_every, int quiet, Err *e);
/* 0, or -1 with e naming metrics.jsonl when its row cannot be written. */
int progress_report(Progress *p, const StepReport *r, Err *e);
/* The row of a step caught up from the journal (see above). */
int progress_replayed(Progress *p, long step, double lr, Err *e);
/* The validation loss before the first step (a metrics row of step 0). */
void progress_initial_eval(Progress *p, double val_loss);
void progress_note(Progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void progress_close(Progress *p);
/* The training loop's observer that drives p (opened when the run begins). */
TrainObserver progress_observer(Progress *p);
/* "1h02m", "3m20s", "12s" */
void format_duration(char *out, size_t n, double seconds);

#endif
