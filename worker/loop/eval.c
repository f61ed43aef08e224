#include "worker/loop/eval.h"

#include <stdlib.h>

double eval_loss_sum(const Loader *val, int n_batches, EvalBatchFn fn, void *ctx, int *inputs,
                     int *targets)
{
    double sum = 0;
    for (int k = 0; k < n_batches; k++) {
        loader_batch(val, (uint64_t)k, inputs, targets);
        sum += fn(ctx, inputs, targets);
    }
    return sum;
}

typedef struct {
    Model *m;
    int B;
} ModelBatch;

static double model_batch_loss(void *ctx, const int *inputs, const int *targets)
{
    ModelBatch *mb = ctx;
    return model_forward(mb->m, inputs, targets, mb->B);
}

int eval_mean_loss(Model *m, const Loader *val, uint64_t n_windows, EvalResult *r, Err *e)
{
    const int B = val->global_batch, T = val->T;
    if (val->ranks != 1 || B > m->max_batch)
        return err_set(e, "eval: the loader must give one process batches of at most %d "
                          "sequences (it gives %d of %d)",
                       m->max_batch, val->local_batch, B);
    /* past the split's end the windows are taken round again, as the
     * trainer's validation does (loader_windows) */
    if (n_windows < 1)
        return err_set(e, "%s: no windows asked for (the validation split has %llu of %d+1 "
                          "tokens)",
                       val->file->path, (unsigned long long)val->n_windows, T);
    if (n_windows / (uint64_t)B > (uint64_t)INT32_MAX)
        return err_set(e, "eval: %llu windows is too many batches", (unsigned long long)n_windows);
    int *in = malloc((size_t)B * T * sizeof *in), *tg = malloc((size_t)B * T * sizeof *tg);
    if (!in || !tg) {
        free(in);
        free(tg);
        return err_set(e, "eval: out of memory for a batch of %d x %d tokens", B, T);
    }
    int full = (int)(n_windows / (uint64_t)B), tail = (int)(n_windows % (uint64_t)B);
    ModelBatch mb = {m, B};
    double sum = eval_loss_sum(val, full, model_batch_loss, &mb, in, tg);
    if (tail) {
        loader_windows(val, (uint64_t)full * B, tail, in, tg);
        sum += model_forward(m, in, tg, tail);
    }
    free(in);
    free(tg);
    r->windows = n_windows;
    r->tokens = val->file->mask ? loader_counted(val, 0, n_windows) : n_windows * (uint64_t)T;
    /* a masked file: the mean over the targets its mask counts */
    double preds = val->file->mask ? (double)loader_counted(val, 0, n_windows)
                                   : (double)n_windows * model_preds_per_seq(&m->cfg);
    r->mean_loss = sum / preds;
    return 0;
}
