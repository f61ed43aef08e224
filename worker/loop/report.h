#ifndef MPITRAIN_REPORT_H
#define MPITRAIN_REPORT_H
/* Per-step reports: every rank sends its timings and bytes, rank 0 turns
 * them into the progress line / metrics row. */
#include "comm/mpi/comm.h"

typedef struct {
    long step;          /* 1-based step just completed */
    double loss;        /* mean train loss of the global batch */
    int no_loss;        /* nothing measured (StepOutcome.no_loss): the line says so */
    double val_loss;    /* NaN when not evaluated this step */
    double task_acc, task_acc_norm; /* --eval-task's, NaN when not evaluated */
    double lr;
    double grad_norm;   /* NaN when the step computes no gradient (zo) */
    double tokens_per_s, gflops;
    double comm_bytes;  /* bytes a rank sent in collectives this step (mean) */
    double time_ms;     /* wall time of the step (slowest rank) */
    double compute_ms, exposed_ms, overlapped_ms, idle_ms; /* per rank, mean */
} StepReport;

typedef struct {
    double step_s;       /* wall time of this rank's step */
    double exposed_s;    /* blocked in communication */
    double overlapped_s; /* communication hidden behind compute */
    double bytes;        /* bytes this rank sent */
} RankReport;

typedef struct {
    double flops_per_step;
    double tokens_per_step;
} ReportContext;

/* Collective over g. On rank 0, out is the step's report: time = slowest
 * rank, compute/exposed/overlapped/bytes = mean per rank, idle = mean wait
 * for the slowest rank. */
void report_gather(Group *g, const ReportContext *ctx, const RankReport *mine, long step,
                   double loss, double grad_norm, double lr, StepReport *out);

#endif
