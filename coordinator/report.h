#ifndef MPITRAIN_REPORT_H
#define MPITRAIN_REPORT_H
/* Per-step reports: every rank sends its timings and bytes, rank 0 turns
 * them into the progress line / metrics row. */
#include "comm/comm.h"
#include "coordinator/progress.h"

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
