/* The validation windows of worker/loop/eval.c and loader_windows: the
 * mean loss is the plain mean of model_forward over windows 0..n-1 in
 * order, whatever the batch (a short last batch included), and the first
 * batches are the ones loader_batch gives the trainer. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model.h"
#include "models/philox.h"
#include "tests/unit/testutil.h"
#include "worker/data/data.h"
#include "worker/loop/eval.h"

enum { T = 8, V = 40, N_TRAIN = 50, N_VAL = 8 * 7 + 5 }; /* 7 windows, 4 tokens spare */

static void token_file(TokenFile *f)
{
    static uint16_t t[N_TRAIN + N_VAL];
    for (int i = 0; i < N_TRAIN + N_VAL; i++) t[i] = (uint16_t)((i * 7 + i / 3) % V);
    char path[512];
    snprintf(path, sizeof path, "%s/v.tok", test_tmpdir("eval"));
    Err e = {{0}};
    cr_assert_eq(tokfile_write(path, t, N_TRAIN, N_VAL, V, &e), 0, "%s", e.msg);
    cr_assert_eq(tokfile_open(f, path, &e), 0, "%s", e.msg);
}

static void small_model(Model *m, int B)
{
    ModelConfig c = {.kind = MODEL_GPT, .n_layer = 1, .n_head = 2, .n_embd = 8, .seq_len = T,
                     .vocab = V};
    Err e = {{0}};
    cr_assert_eq(model_init(m, &c, B, 3, &e), 0, "%s", e.msg);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] += 0.2f * philox_normal(4, RNG_SAMPLE, i);
}

Test(eval, windows_wrap_and_batches_are_windows)
{
    TokenFile f;
    token_file(&f);
    Loader l;
    Err e = {{0}};
    cr_assert_eq(loader_init(&l, &f, SPLIT_VAL, T, 3, 0, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(l.n_windows, 7);
    int a[3 * T], at[3 * T], b[3 * T], bt[3 * T];
    loader_batch(&l, 1, a, at); /* windows 3, 4, 5 */
    loader_windows(&l, 3, 3, b, bt);
    cr_expect_arr_eq(a, b, sizeof a);
    cr_expect_arr_eq(at, bt, sizeof at);
    loader_batch(&l, 2, a, at); /* windows 6, 0, 1: wraps */
    loader_windows(&l, 6, 3, b, bt);
    cr_expect_arr_eq(a, b, sizeof a);
    cr_expect_eq(b[T], (int)tokfile_get(&f, N_TRAIN), "window 0 follows window 6");
    cr_expect_eq(bt[T - 1], (int)tokfile_get(&f, N_TRAIN + 6 * T + T), "targets end at w*T+T");
    tokfile_close(&f);
}

Test(eval, mean_loss_is_the_mean_over_windows_for_any_batch)
{
    TokenFile f;
    token_file(&f);
    Model m;
    small_model(&m, 7);
    Err e = {{0}};
    Loader one;
    cr_assert_eq(loader_init(&one, &f, SPLIT_VAL, T, 1, 0, 1, &e), 0, "%s", e.msg);
    double sum = 0;
    int in[T], tg[T];
    for (uint64_t w = 0; w < 7; w++) {
        loader_windows(&one, w, 1, in, tg);
        sum += model_forward(&m, in, tg, 1);
    }
    double want = sum / (7.0 * T);
    for (int B = 1; B <= 7; B++) {
        Loader l;
        cr_assert_eq(loader_init(&l, &f, SPLIT_VAL, T, B, 0, 1, &e), 0, "%s", e.msg);
        EvalResult r;
        cr_assert_eq(eval_mean_loss(&m, &l, 7, 0, &r, &e), 0, "B=%d: %s", B, e.msg);
        cr_expect_eq(r.windows, 7);
        cr_expect_eq(r.tokens, 7 * T);
        cr_expect(fabs(r.mean_loss - want) < 1e-6 * want, "B=%d: %.9g vs %.9g", B, r.mean_loss,
                  want);
    }
    Loader l;
    cr_assert_eq(loader_init(&l, &f, SPLIT_VAL, T, 2, 0, 1, &e), 0, "%s", e.msg);
    EvalResult r;
    /* past the split's end the windows come round again, as in the trainer's
     * validation: 9 windows = the 7, then windows 0 and 1 */
    double extra = 0;
    for (uint64_t w = 0; w < 2; w++) {
        loader_windows(&one, w, 1, in, tg);
        extra += model_forward(&m, in, tg, 1);
    }
    double want9 = (sum + extra) / (9.0 * T);
    cr_assert_eq(eval_mean_loss(&m, &l, 9, 0, &r, &e), 0, "%s", e.msg);
    cr_expect(fabs(r.mean_loss - want9) < 1e-6 * want9, "9 windows: %.9g vs %.9g", r.mean_loss,
              want9);
    cr_expect_eq(eval_mean_loss(&m, &l, 0, 0, &r, &e), -1, "no windows");
    cr_expect(strstr(e.msg, "7 of 8+1") != NULL, "message: %s", e.msg);
    model_free(&m);
    tokfile_close(&f);
}
