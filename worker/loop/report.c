#include "worker/loop/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void report_gather(Group *g, const ReportContext *ctx, const RankReport *mine, long step,
                   double loss, double grad_norm, double lr, StepReport *out)
{
    int n = group_size(g);
    RankReport *all = group_rank(g) == 0 ? calloc(n, sizeof *all) : NULL;
    coll_gather_bytes(g, mine, all, sizeof *mine, 0);
    memset(out, 0, sizeof *out);
    out->step = step;
    out->loss = loss;
    out->val_loss = NAN;
    out->task_acc = out->task_acc_norm = NAN;
    out->grad_norm = grad_norm;
    out->lr = lr;
    if (!all) return;
    double slowest = 0;
    for (int i = 0; i < n; i++) slowest = all[i].step_s > slowest ? all[i].step_s : slowest;
    for (int i = 0; i < n; i++) {
        out->exposed_ms += all[i].exposed_s * 1e3 / n;
        out->overlapped_ms += all[i].overlapped_s * 1e3 / n;
        out->compute_ms += (all[i].step_s - all[i].exposed_s) * 1e3 / n;
        out->idle_ms += (slowest - all[i].step_s) * 1e3 / n;
        out->comm_bytes += all[i].bytes / n;
    }
    out->time_ms = slowest * 1e3;
    out->tokens_per_s = ctx->tokens_per_step / slowest;
    out->gflops = ctx->flops_per_step / slowest / 1e9;
    free(all);
}
