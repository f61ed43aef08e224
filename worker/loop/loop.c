/* The one training loop: every strategy (backprop, zo, ...) steps through
 * here, so stepping, the NaN policy, test hooks, reports, evaluation,
 * checkpoints, heartbeat and the run's figures are the same for all. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/fileio.h"
#include "base/options.h"
#include "base/sysinfo.h"
#include "comm/trace/trace.h"
#include "models/ops.h"
#include "worker/loop/loop.h"
#include "worker/ckpt/ckpt_save.h"

/* <out>/heartbeat: the supervisor's watchdog restarts the job when it stops
 * changing (a rank stuck in a collective stalls every rank). */
static void heartbeat(Trainer *t, long step)
{
    if (!trainer_is_rank0(t)) return;
    char path[PATH_BUF], line[64];
    snprintf(path, sizeof path, "%s/heartbeat", t->cfg->out);
    int n = snprintf(line, sizeof line, "%ld\n", step);
    FILE *f = fopen(path, "w");
    if (!f) return;
    fwrite(line, 1, (size_t)n, f);
    fclose(f);
}

static void rank_report(Trainer *t, const CommStats *before, double strategy_before, double t0,
                        RankReport *rr)
{
    CommStats after = mesh_stats(&t->mesh);
    rr->step_s = comm_wtime() - t0;
    rr->exposed_s = after.exposed_s - before->exposed_s;
    rr->overlapped_s = after.overlapped_s - before->overlapped_s;
    rr->bytes = after.bytes_sent - before->bytes_sent + (t->strategy_bytes - strategy_before);
}

/* What the checkpoint of step records: the run's settings as it uses them
 * (a strategy fills in what it chose) and its state. */
static void fill_meta(const Trainer *t, const StepStrategy *s, const void *st, long step,
                      CkptMeta *meta)
{
    memset(meta, 0, sizeof *meta);
    meta->cfg = *t->cfg;
    if (s->chosen_settings) s->chosen_settings(t, st, &meta->cfg);
    meta->step = step;
    meta->data_pos = t->data_pos;
    meta->opt_t = t->opt.t;
    meta->dp = t->mesh.dims.dp;
    meta->tp = t->mesh.dims.tp;
    meta->pp = t->mesh.dims.pp;
    meta->zero = t->cfg->zero;
    meta->budget_used_s = t->budget_used_s; /* a resume continues the budget */
    snprintf(meta->tokenizer_dir, sizeof meta->tokenizer_dir, "%s", t->tokenizer);
    snprintf(meta->source_dtype, sizeof meta->source_dtype, "%s", t->source_dtype);
    snprintf(meta->source_arch, sizeof meta->source_arch, "%s", t->source_arch);
    meta->base = t->base_ref;
}

/* Every DP rank writes its slice of the flat buffers (the strategy's parts)
 * in parallel; rank 0 writes the manifest last and publishes the step. */
static int save_checkpoint(Trainer *t, const StepStrategy *s, void *st, long step,
                           TrainResult *res, Err *e)
{
    Range mine = split_even(t->model.n_params, t->mesh.dims.dp, t->mesh.me.dp);
    CkptPart parts[STRATEGY_MAX_PARTS];
    int n = s->ckpt_parts ? s->ckpt_parts(t, st, mine, parts)
                          : ckpt_model_parts(&t->model, &t->opt, mine, parts);
    CkptMeta meta;
    fill_meta(t, s, st, step, &meta);
    CkptSaveTo to = {t->ckpt_root, t->cfg->keep_ckpts, t->best_due, t->best_val_loss,
                     t->hooks ? t->hooks->save : NULL};
    int rc = ckpt_save_group(t->mesh.world, &to, &t->model, parts, n, &meta, res->last_ckpt,
                             sizeof res->last_ckpt, e);
    /* the next save copies from this one: the source (a resumed step in
     * the same root, another run's) may be pruned or removed */
    if (!rc && trainer_is_rank0(t) && t->tokenizer[0])
        ckpt_tokenizer_of(res->last_ckpt, t->tokenizer, sizeof t->tokenizer);
    return rc;
}

/* Is step (1-based) the run's last? */
static int is_last_step(const Trainer *t, long step) { return step == t->end_step; }

static int should_eval(const Trainer *t, long step)
{
    const TrainConfig *c = t->cfg;
    if (c->eval_every <= 0 || !t->val.file) return 0;
    return step % c->eval_every == 0 || is_last_step(t, step);
}

static int should_save(const Trainer *t, long step)
{
    const TrainConfig *c = t->cfg;
    return (c->save_every > 0 && step % c->save_every == 0) || is_last_step(t, step);
}

/* The checkpoint of step n: the strategy's preparation, then the save. */
static int save_step(Trainer *t, const StepStrategy *s, void *st, long n, TrainResult *res,
                     Err *e)
{
    int rc = s->before_save ? trainer_agree(t, s->before_save(t, st, e), e) : 0;
    return rc ? rc : save_checkpoint(t, s, st, n, res, e);
}

/* Has a stop been asked for on any rank? One max of one integer over the
 * world, so that every rank stops after the same step although the signal
 * reaches each at its own moment. 0, or the (largest) signal number. */
static int stop_agreed(Trainer *t)
{
    if (!t->stop) return 0;
    int64_t sig = *t->stop;
    coll_allreduce_max_i64(t->mesh.world, &sig, 1);
    return (int)sig;
}

/* After step n on every rank: its checkpoint when due, then the stop check
 * (before the last step only: after it the run ends anyway); a stop saves
 * step n unless that was just done, and sets res->stop_signal. */
static int end_of_step(Trainer *t, const StepStrategy *s, void *st, long n, TrainResult *res,
                       Err *e)
{
    int saved = should_save(t, n) || t->best_due;
    int rc = saved ? save_step(t, s, st, n, res, e) : 0;
    t->best_due = 0;
    int sig = !rc && !is_last_step(t, n) ? stop_agreed(t) : 0;
    if (sig && s->on_stop) s->on_stop(t, st);
    if (sig && !saved) rc = save_step(t, s, st, n, res, e);
    if (sig && !rc) res->stop_signal = sig;
    heartbeat(t, n);
    return rc;
}

/* --on-nan: a non-finite loss or gradient norm stops the run with a message,
 * or (skip) drops that step's update on every rank at once. */
static int nan_policy(Trainer *t, long step, const StepOutcome *o, int *skip, Err *e)
{
    int has_norm = !isnan(o->grad_norm);
    *skip = 0;
    if (o->no_loss) return 0;
    if (isfinite(o->loss) && (!has_norm || isfinite(o->grad_norm))) return 0;
    if (t->cfg->on_nan == 0 && has_norm)
        return err_set(e, "step %ld: loss is %g and gradient norm %g: training diverged; "
                          "lower --lr or raise --warmup (or --on-nan skip)",
                       step + 1, o->loss, o->grad_norm);
    if (t->cfg->on_nan == 0)
        return err_set(e, "step %ld: loss is %g: training diverged; lower --lr or raise "
                          "--warmup (or --on-nan skip)", step + 1, o->loss);
    trainer_note(t, "step %ld: loss %g, gradient norm %g: update skipped", step + 1, o->loss,
                 o->grad_norm);
    *skip = 1;
    return 0;
}

/* One step on every rank: hooks, compute, policy, update; the rank's report. */
static int one_step(Trainer *t, const StepStrategy *s, void *st, long step, StepOutcome *o,
                    RankReport *rr, Err *e)
{
    if (t->hooks && t->hooks->before_step) t->hooks->before_step(t->w->rank, step + 1, t->stop);
    CommStats before = mesh_stats(&t->mesh);
    double strategy_before = t->strategy_bytes;
    double t0 = comm_wtime();
    int skip = 0;
    trace_begin_arg(TR_STEP, step + 1, "step %ld", step + 1);
    int rc = s->compute(t, st, step, o, e);
    if (!rc) rc = nan_policy(t, step, o, &skip, e);
    if (!rc) rc = s->apply(t, st, step, skip, e);
    trace_end();
    if (t->hooks && t->hooks->after_update)
        t->hooks->after_update(t->w->rank, step + 1, t->model.params);
    size_t heap = sys_heap_bytes(); /* everything the step needed is still held here */
    if (heap > t->heap_peak) t->heap_peak = heap;
    rank_report(t, &before, strategy_before, t0, rr);
    return rc;
}

/* ---- --time-budget ------------------------------------------------------
 * Time is training time: the steps' own time on rank 0's clock (one clock,
 * as hosts' clocks differ), from the step's budget check to the end of its
 * after_step; start-up, evaluation, reports and checkpoints do not count,
 * so methods compare at equal training time whatever their --eval-every or
 * --save-every. */
typedef struct {
    double budget;        /* seconds; 0 = no budget */
    double sum_s, last_s; /* this sitting's timed steps */
    long n;
} Budget;

/* One more step's time: the larger of the last step's and the sitting's
 * mean (a step slower than the mean still stops in time). Both are at most
 * the time used, so a last step always starts with at least half the budget
 * used: the lr's cosine is past its middle whatever the machine's speed. */
static double step_estimate(const Budget *b)
{
    if (!b->n) return 0;
    double mean = b->sum_s / (double)b->n;
    return mean > b->last_s ? mean : b->last_s;
}

/* Before step (0-based), on every rank: rank 0's time used and its verdict,
 * broadcast; they set the step's lr (the cosine at the fraction used) and,
 * when this step is the last, end_step, before any rank computes it (a
 * strategy's apply reads both). */
static void budget_decide(Trainer *t, const Budget *b, long step)
{
    double v[2] = {t->budget_used_s, 0};
    if (trainer_is_rank0(t)) v[1] = v[0] + step_estimate(b) >= b->budget;
    coll_bcast(t->mesh.world, v, sizeof v, 0);
    t->budget_used_s = v[0];
    t->lr = lr_at_frac(&t->cfg->optim, step, v[0] / b->budget);
    if (v[1] != 0 && step + 1 < t->end_step) t->end_step = step + 1;
}

/* After the step that began at t0: its time, counted on every rank (rank
 * 0's figure is the one broadcast and saved in checkpoints). */
static void budget_account(Trainer *t, Budget *b, double t0)
{
    if (b->budget <= 0) return;
    double s = comm_wtime() - t0;
    b->sum_s += s;
    b->last_s = s;
    b->n++;
    t->budget_used_s += s;
}

/* A resumed run continues its checkpoint's budget; one with nothing left
 * of it is refused (the same verdict on every rank: same manifest). */
static int budget_start(Trainer *t, Budget *b, Err *e)
{
    memset(b, 0, sizeof *b);
    b->budget = t->cfg->time_budget_s;
    t->budget_used_s = t->resume_meta.budget_used_s;
    if (b->budget <= 0 || t->budget_used_s < b->budget) return 0;
    char text[64];
    opts_format_duration(b->budget, text, sizeof text);
    return err_set(e, "--time-budget %s: the checkpoint at step %ld has used %.1f s of it "
                      "already; give a larger --time-budget to train on", text, t->start_step,
                   t->budget_used_s);
}

/* The CPU the ranks got while they trained (sys_sched_times), summed over
 * the world: {run s, wait s, ranks that could not tell}. */
static void sched_mark(double v[3])
{
    if (sys_sched_times(&v[0], &v[1])) v[0] = v[1] = 0, v[2] = 1;
    else v[2] = 0;
}

/* res->cpu_share from the marks before and after the steps (collective),
 * and the share this job's own layout leaves a rank: the planner's
 * prediction assumes that one, so a lower measured share is other work. */
static void cpu_shares(Trainer *t, const double before[3], TrainResult *res)
{
    double after[3];
    sched_mark(after);
    double v[3] = {after[0] - before[0], after[1] - before[1], after[2] + before[2]};
    coll_allreduce_sum_f64(t->mesh.world, v, 3);
    res->cpu_share = v[2] == 0 && v[0] + v[1] > 0 ? v[0] / (v[0] + v[1]) : -1;
    int ranks = t->w->machine_ranks > 0 ? t->w->machine_ranks : 1;
    int cores = t->w->machine_cores > 0 ? t->w->machine_cores : t->w->cores;
    double want = (double)ranks * ops_get_threads();
    res->fair_share = cores > 0 && want > cores ? cores / want : 1;
}

/* --keep-best: is val the lowest validation loss of the run so far? Rank 0
 * decides (it keeps the record), every rank learns it: the save that
 * follows is collective. */
static int is_new_best(Trainer *t, double val)
{
    int64_t due = trainer_is_rank0(t) && isfinite(val) && !(val >= t->best_val_loss);
    coll_allreduce_max_i64(t->mesh.world, &due, 1);
    if (due) t->best_val_loss = val;
    return (int)due;
}

int loop_run(Trainer *t, const StepStrategy *s, TrainResult *res, Err *e)
{
    const TrainConfig *c = t->cfg;
    void *st = NULL;
    Budget budget = {0};
    /* a resumed run goes on from its best so far */
    t->best_val_loss = t->start_step > 0 ? ckpt_best_val_loss(t->ckpt_root) : NAN;
    int rc = trainer_agree(t, s->setup(t, &st, e), e);
    if (!rc) rc = trainer_agree(t, budget_start(t, &budget, e), e);
    if (!rc) heartbeat(t, t->start_step);
    if (!rc && t->start_step == 0 && c->eval_every > 0 && t->val.file) {
        double v = trainer_eval_loss(t);
        if (trainer_is_rank0(t) && t->obs->initial_eval) t->obs->initial_eval(t->obs->ctx, v);
    }
    ReportContext ctx = {s->flops_per_step(t), (double)c->global_batch * c->model.seq_len};
    double sum_ms = 0, sum_exposed = 0;
    int timed = 0;
    double sched[3];
    sched_mark(sched);
    t->end_step = c->steps;
    for (long step = t->start_step; !rc && step < t->end_step; step++) {
        StepOutcome o = {NAN, NAN, 0};
        RankReport rr = {0};
        double t0 = comm_wtime();
        t->lr = lr_at(&c->optim, step);
        if (budget.budget > 0) budget_decide(t, &budget, step);
        rc = one_step(t, s, st, step, &o, &rr, e);
        /* after_step may be collective (zo's hash check): every rank takes
         * it, even one whose step failed (rank 0's journal write), so the
         * others are not left waiting in it; the first error is kept */
        if (s->after_step) {
            Err later;
            int rc2 = s->after_step(t, st, step, rc ? &later : e);
            if (!rc) rc = rc2;
        }
        if ((rc = trainer_agree(t, rc, e))) break;
        budget_account(t, &budget, t0);
        StepReport r;
        report_gather(t->mesh.world, &ctx, &rr, step + 1, o.loss, o.grad_norm,
                      t->lr, &r);
        r.no_loss = o.no_loss;
        /* the first step of a sitting warms caches and pages: not timed,
         * unless it is the only one */
        if (step > t->start_step || t->end_step - t->start_step == 1) {
            sum_ms += r.time_ms;
            sum_exposed += r.exposed_ms;
            timed++;
        }
        if (should_eval(t, step + 1)) {
            r.val_loss = res->final_val_loss = trainer_eval_loss(t);
            if (c->keep_best) t->best_due = is_new_best(t, r.val_loss);
        }
        if (t->task && ((c->eval_every > 0 && (step + 1) % c->eval_every == 0) || is_last_step(t, step + 1)))
            trainer_task_accuracy(t, &r.task_acc, &r.task_acc_norm);
        /* a record that cannot be written (disk full) stops every rank */
        if (trainer_is_rank0(t) && t->obs->step) rc = t->obs->step(t->obs->ctx, &r, e);
        if ((rc = trainer_agree(t, rc, e))) break;
        if (!o.no_loss) res->final_loss = o.loss;
        res->last_step = step + 1;
        rc = end_of_step(t, s, st, step + 1, res, e);
        if (res->stop_signal) break;
    }
    if (!rc && timed) {
        res->mean_step_ms = sum_ms / timed;
        res->mean_exposed_ms = sum_exposed / timed;
        res->mean_tokens_per_s = ctx.tokens_per_step / (res->mean_step_ms / 1e3);
        res->mean_gflops = ctx.flops_per_step / (res->mean_step_ms / 1e3) / 1e9;
        cpu_shares(t, sched, res);
    }
    if (s->free) s->free(st);
    return rc ? -1 : 0;
}
