/* A multiple-choice task's accuracy (worker/loop/task_eval.h). */
#include "worker/loop/task_eval.h"

#include <math.h>
#include <stdlib.h>

#include "models/gpt_decode.h"
#include "models/ops.h"

/* Request r by a forward over a window of T: its last T+1 tokens at most
 * (the context cut from the left, as the harness does). in, tg: T ints. */
static double window_loglik(Model *m, const Task *t, size_t r, int *in, int *tg)
{
    const int T = m->cfg.seq_len;
    size_t n = t->start[r + 1] - t->start[r], cont = t->cont[r];
    /* inputs all but the last, targets shifted */
    const int *seq = t->ids + t->start[r] + (n > (size_t)T + 1 ? n - (size_t)T - 1 : 0);
    size_t len = n > (size_t)T + 1 ? (size_t)T + 1 : n;
    for (size_t i = 0; i < (size_t)T; i++) {
        in[i] = i + 1 < len ? seq[i] : 0;
        tg[i] = i + 1 < len && i + 1 >= len - cont ? seq[i + 1] : TARGET_IGNORED;
    }
    return -model_forward(m, in, tg, 1);
}

/* Request r (at most T+1 tokens) through the key/value cache, which holds
 * held[0 .. decoder_pos): the positions it shares with the cache are kept
 * (an item's choices share its context) back to the one that predicts the
 * choice's first token, and the rest appended. next: T ints. */
static int cached_loglik(GptDecoder *d, const Task *t, size_t r, int *held, int *next, double *ll)
{
    const int n = (int)(t->start[r + 1] - t->start[r]), cont = (int)t->cont[r];
    const int *seq = t->ids + t->start[r];
    *ll = 0;
    if (n < 2) return 0; /* a lone token: nothing predicts it */
    /* inputs seq[0 .. n-2]; input i predicts seq[i+1], counted in the choice */
    const int first = n - cont - 1 > 0 ? n - cont - 1 : 0;
    int keep = 0;
    while (keep < decoder_pos(d) && keep < first && held[keep] == seq[keep]) keep++;
    decoder_truncate(d, keep);
    for (int i = keep; i < n - 1; i++) {
        held[i] = seq[i];
        next[i - keep] = i + 1 >= n - cont ? seq[i + 1] : -1;
    }
    return decoder_append_logprob(d, seq + keep, n - 1 - keep, next, ll);
}

/* The cache fits a whole transformer (its LoRA adapters applied as it
 * runs): NULL otherwise (a split model, an MLP, no memory for the cache),
 * and every request takes a window. */
static GptDecoder *scoring_decoder(const Model *m)
{
    Err ignored;
    return decoder_new(m, &ignored);
}

int task_logliks(Model *m, const Task *t, size_t lo, size_t hi, size_t stride, double *ll, Err *e)
{
    const int T = m->cfg.seq_len;
    int *in = malloc((size_t)T * sizeof *in), *tg = malloc((size_t)T * sizeof *tg);
    int *held = malloc((size_t)T * sizeof *held);
    GptDecoder *d = in && tg && held ? scoring_decoder(m) : NULL;
    int rc = in && tg && held ? 0 : err_set(e, "task: out of memory for a window of %d tokens", T);
    for (size_t i = lo; i < hi && !rc; i += stride) {
        if (d) decoder_reset(d); /* an item's scores never depend on the one before */
        for (size_t r = t->first[i]; r < t->first[i + 1] && !rc; r++) {
            size_t n = t->start[r + 1] - t->start[r];
            if (t->cont[r] > (size_t)T)
                rc = err_set(e, "task: request %zu's choice is %zu tokens, more than the model's "
                                "window (%d)", r, (size_t)t->cont[r], T);
            else if (!d || n > (size_t)T + 1)
                ll[r] = window_loglik(m, t, r, in, tg);
            else if (cached_loglik(d, t, r, held, tg, &ll[r]))
                rc = err_set(e, "task: request %zu holds a token outside the vocabulary", r);
        }
    }
    decoder_free(d);
    free(in);
    free(tg);
    free(held);
    return rc;
}

static double std_err(double p, size_t n) { return n > 1 ? sqrt(p * (1.0 - p) / (double)(n - 1)) : 0.0; }

void task_score(const Task *t, const double *ll, TaskScore *s)
{
    size_t right = 0, right_norm = 0;
    for (size_t i = 0; i < t->n_items; i++) {
        size_t best = t->first[i], best_norm = t->first[i];
        for (size_t r = t->first[i]; r < t->first[i + 1]; r++) {
            if (ll[r] > ll[best]) best = r;
            if (ll[r] / t->chars[r] > ll[best_norm] / t->chars[best_norm]) best_norm = r;
        }
        right += best - t->first[i] == t->answer[i];
        right_norm += best_norm - t->first[i] == t->answer[i];
    }
    s->items = t->n_items;
    s->accuracy = (double)right / (double)t->n_items;
    s->accuracy_norm = (double)right_norm / (double)t->n_items;
    s->stderr_acc = std_err(s->accuracy, t->n_items);
    s->stderr_norm = std_err(s->accuracy_norm, t->n_items);
}
