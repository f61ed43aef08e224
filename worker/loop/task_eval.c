/* A multiple-choice task's accuracy (worker/loop/task_eval.h). */
#include "worker/loop/task_eval.h"

#include <math.h>
#include <stdlib.h>

#include "models/ops.h"

int task_logliks(Model *m, const Task *t, size_t lo, size_t hi, size_t stride, double *ll, Err *e)
{
    const int T = m->cfg.seq_len;
    int *in = malloc((size_t)T * sizeof *in), *tg = malloc((size_t)T * sizeof *tg);
    if (!in || !tg) {
        free(in);
        free(tg);
        return err_set(e, "task: out of memory for a window of %d tokens", T);
    }
    int rc = 0;
    for (size_t r = lo; r < hi && !rc; r += stride) {
        size_t n = t->start[r + 1] - t->start[r], cont = t->cont[r];
        if (cont > (size_t)T) {
            rc = err_set(e, "task: request %zu's choice is %zu tokens, more than the model's "
                            "window (%d)", r, cont, T);
            break;
        }
        /* the last T+1 tokens at most: inputs all but the last, targets shifted */
        const int *seq = t->ids + t->start[r] + (n > (size_t)T + 1 ? n - (size_t)T - 1 : 0);
        size_t len = n > (size_t)T + 1 ? (size_t)T + 1 : n;
        for (size_t i = 0; i < (size_t)T; i++) {
            in[i] = i + 1 < len ? seq[i] : 0;
            tg[i] = i + 1 < len && i + 1 >= len - cont ? seq[i + 1] : TARGET_IGNORED;
        }
        ll[r] = -model_forward(m, in, tg, 1);
    }
    free(in);
    free(tg);
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
