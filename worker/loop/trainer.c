/* The helpers every step strategy shares: one verdict for all ranks,
 * notes for the display, the loss of a batch and a validation. The set-up
 * and summary of a run are worker/run/train.c's. */
#include "worker/loop/trainer.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "base/hash.h"
#include "comm/trace/trace.h"
#include "worker/loop/eval.h"
#include "worker/loop/task_eval.h"

int trainer_is_rank0(const Trainer *t) { return t->w->rank == 0; }

/* Every rank reports its own rc; all return the same verdict and rank 0's
 * e names the first failing rank and why. */
int trainer_agree(Trainer *t, int rc, Err *e)
{
    Err mine = *e;
    return comm_agree(t->mesh.world, rc, &mine, e) ? -1 : 0;
}

void trainer_note(const Trainer *t, const char *fmt, ...)
{
    if (!trainer_is_rank0(t) || !t->obs->note) return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    t->obs->note(t->obs->ctx, line);
}

/* ---- figures every strategy shares --------------------------------------- */

double trainer_per_pred(const TrainConfig *c)
{
    return 1.0 / ((double)c->global_batch * model_preds_per_seq(&c->model));
}

double trainer_batch_scale(const Trainer *t, uint64_t k, int whole)
{
    const Loader *l = &t->train;
    if (!l->file->mask)
        return whole ? trainer_per_pred(t->cfg)
                     : 1.0 / ((double)l->local_batch * model_preds_per_seq(&t->cfg->model));
    uint64_t n = loader_batch_counted(l, k, whole);
    return n ? 1.0 / (double)n : 0.0;
}

double trainer_loaded_scale(const Trainer *t)
{
    const int T = t->cfg->model.seq_len;
    if (!t->train.file->mask)
        return 1.0 / ((double)t->train.local_batch * model_preds_per_seq(&t->cfg->model));
    uint64_t n = 0;
    for (size_t i = 0; i < (size_t)t->train.local_batch * T; i++) n += t->targets[i] >= 0;
    return n ? 1.0 / (double)n : 0.0;
}

void trainer_key_dropout(Trainer *t, uint64_t what)
{
    const TrainConfig *c = t->cfg;
    if (c->model.lora_dropout <= 0) return;
    /* splitmix64's finalizer of the seed and what: a key per batch */
    uint64_t x = mix64(c->seed ^ ((what + 1) * 0x9E3779B97F4A7C15ull));
    uint64_t row0 = (uint64_t)t->train.rank * (uint64_t)t->train.local_batch * c->model.seq_len;
    pipeline_set_dropout(&t->pipe, x ? x : 1, row0);
}

/* The loss lives on the last stage; one TP rank of it speaks for its
 * group. Returns the global batch's loss sum on every rank. */
double trainer_loss_sum(Trainer *t, Group *g, double local)
{
    int speaks = t->mesh.me.pp == t->mesh.dims.pp - 1 && t->mesh.me.tp == 0;
    double sum = speaks ? local : 0.0;
    coll_allreduce_sum_f64(g, &sum, 1);
    return sum;
}

void trainer_load_batch(Trainer *t, const Loader *l, uint64_t k)
{
    loader_batch(l, k, t->inputs, t->targets);
    if (t->pos) loader_batch_positions(l, k, t->pos);
}

/* this rank's share of one validation batch (0 off the last stage) */
static double pipe_batch_loss(void *pipe, const int *inputs, const int *targets)
{
    return pipeline_eval(pipe, inputs, targets);
}

/* The same batches as `mpitrain eval --batch <global batch>` (eval.h). */
double trainer_eval_loss(Trainer *t)
{
    const TrainConfig *c = t->cfg;
    trace_begin("eval", TR_EVAL);
    /* the pipeline reads the positions from t->pos (pipeline_set_positions),
     * where eval_loss_sum loads them */
    EvalBuffers buf = {t->inputs, t->targets, t->pos};
    double sum = eval_loss_sum(&t->val, c->eval_batches, pipe_batch_loss, &t->pipe, &buf);
    double scale = trainer_per_pred(c) / c->eval_batches;
    if (t->val.file->mask) { /* the mean over the targets the mask counts */
        uint64_t n = loader_counted(&t->val, 0, (uint64_t)c->eval_batches * c->global_batch);
        scale = n ? 1.0 / (double)n : NAN;
    }
    double loss = trainer_loss_sum(t, t->mesh.world, sum) * scale;
    trace_end();
    return loss;
}

long trainer_val_windows(const TrainConfig *c)
{
    return (long)c->eval_batches * c->global_batch;
}

void trainer_task_accuracy(Trainer *t, double *acc, double *acc_norm)
{
    const Task *task = t->task;
    Err e;
    memset(t->task_ll, 0, task->n_req * sizeof *t->task_ll);
    trace_begin("task eval", TR_EVAL);
    /* a request too long for the window was refused at load: no error here */
    task_logliks(&t->model, task, (size_t)t->w->rank, task->n_items, (size_t)t->w->size, t->task_ll, &e);
    coll_allreduce_sum_f64(t->mesh.world, t->task_ll, task->n_req);
    trace_end();
    TaskScore s;
    task_score(task, t->task_ll, &s);
    *acc = s.accuracy;
    *acc_norm = s.accuracy_norm;
}
