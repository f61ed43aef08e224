#include "worker/loop/eval.h"

#include <stdlib.h>

double eval_loss_sum(const Loader *val, int n_batches, EvalBatchFn fn, void *ctx,
                     const EvalBuffers *buf)
{
    double sum = 0;
    for (int k = 0; k < n_batches; k++) {
        loader_batch(val, (uint64_t)k, buf->inputs, buf->targets);
        if (buf->pos) loader_batch_positions(val, (uint64_t)k, buf->pos);
        sum += fn(ctx, buf->inputs, buf->targets);
    }
    return sum;
}

typedef struct {
    Model *m;
    int B;
    const int *pos; /* the batch's doc positions, or NULL */
} ModelBatch;

static double model_batch_loss(void *ctx, const int *inputs, const int *targets)
{
    ModelBatch *mb = ctx;
    mb->m->positions = mb->pos;
    return model_forward(mb->m, inputs, targets, mb->B);
}

int eval_mean_loss(Model *m, const Loader *val, uint64_t n_windows, int doc_attention,
                   EvalResult *r, Err *e)
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
    const size_t n = (size_t)B * T;
    EvalBuffers buf = {malloc(n * sizeof(int)), malloc(n * sizeof(int)),
                       doc_attention ? malloc(n * sizeof(int)) : NULL};
    if (!buf.inputs || !buf.targets || (doc_attention && !buf.pos)) {
        free(buf.inputs);
        free(buf.targets);
        free(buf.pos);
        return err_set(e, "eval: out of memory for a batch of %d x %d tokens", B, T);
    }
    int full = (int)(n_windows / (uint64_t)B), tail = (int)(n_windows % (uint64_t)B);
    ModelBatch mb = {m, B, buf.pos};
    double sum = eval_loss_sum(val, full, model_batch_loss, &mb, &buf);
    if (tail) {
        loader_windows(val, (uint64_t)full * B, tail, buf.inputs, buf.targets);
        if (buf.pos) loader_positions(val, (uint64_t)full * B, tail, buf.pos);
        mb.B = tail;
        sum += model_batch_loss(&mb, buf.inputs, buf.targets);
    }
    free(buf.inputs);
    free(buf.targets);
    free(buf.pos);
    r->windows = n_windows;
    r->tokens = val->file->mask ? loader_counted(val, 0, n_windows) : n_windows * (uint64_t)T;
    /* a masked file: the mean over the targets its mask counts */
    double preds = val->file->mask ? (double)loader_counted(val, 0, n_windows)
                                   : (double)n_windows * model_preds_per_seq(&m->cfg);
    r->mean_loss = sum / preds;
    return 0;
}
