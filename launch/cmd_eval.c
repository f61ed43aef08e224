/* `mpitrain eval`: the mean loss of a checkpoint over a token file's
 * validation windows, in one process (no MPI), through the same batch loop
 * as the trainer's periodic evaluation (worker/loop/eval.h). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/json.h"
#include "base/options.h"
#include "launch/commands.h"
#include "models/arch.h"
#include "models/model.h"
#include "models/ops.h"
#include "worker/ckpt/ckpt.h"
#include "worker/ckpt/whole.h"
#include "worker/data/data.h"
#include "base/fileio.h"
#include "worker/data/bpe.h"
#include "worker/data/task.h"
#include "worker/loop/eval.h"
#include "worker/loop/task_eval.h"

typedef struct {
    char ckpt[PATH_LEN];
    char data[PATH_LEN];
    char task[PATH_LEN], tokenizer[PATH_LEN], scores[PATH_LEN];
    int batches, batch, data_format, as_val, threads, json;
    long windows;
} EvalArgs;

#define F(field) offsetof(EvalArgs, field)
static const OptSpec EVAL_OPTS[] = {
    {"ckpt", OT_STR, F(ckpt), sizeof(((EvalArgs *)0)->ckpt), "DIR",
     "checkpoint: run dir, checkpoint root or step dir (required)", NULL, 1, 0, NULL},
    {"data", OT_STR, F(data), sizeof(((EvalArgs *)0)->data), "FILE",
     "token file whose validation split is read (required)", NULL, 1, 0, NULL},
    {"batches", OT_INT, F(batches), 0, "N",
     "evaluate the first N batches of --batch windows; 0 = every window (0)", NULL, 0, 1e9, NULL},
    {"windows", OT_LONG, F(windows), 0, "N",
     "evaluate the first N windows, taken round again past the split's end as the trainer does; "
     "a run's val_loss is over its first eval-batches x batch (its val_windows); 0 = every "
     "window (0)", NULL, 0, 1e12, NULL},
    {"batch", OT_INT, F(batch), 0, "B", "sequences per forward pass (4)", NULL, 1, 65536, NULL},
    {"data-format", OT_CHOICE, F(data_format), 0, NULL,
     "how --data is read; auto: MPTOKENS or llm.c by magic (auto)", "auto|mptokens|llmc|nanogpt",
     0, 0, NULL},
    {"as-val-data", OT_FLAG, F(as_val), 0, NULL,
     "every token of --data is validation (as train --val-data reads it), not only its split",
     NULL, 0, 0, NULL},
    {"threads", OT_INT, F(threads), 0, "K", "threads; 0 = the BLAS default (0)", NULL, 0, 4096,
     NULL},
    {"json", OT_FLAG, F(json), 0, NULL, "print one JSON object instead of the line", NULL, 0, 0,
     NULL},
    {"task", OT_STR, F(task), sizeof(((EvalArgs *)0)->task), "FILE",
     "a multiple-choice task instead of --data: JSONL items {\"context\", \"choices\": [...], "
     "\"answer\"}, each choice scored by its log-likelihood after the context; prints the "
     "accuracy (sum) and accuracy_norm (per character) with their standard errors (docs/task.md)",
     NULL, 1, 0, NULL},
    {"tokenizer", OT_STR, F(tokenizer), sizeof(((EvalArgs *)0)->tokenizer), "DIR",
     "--task: the tokenizer (default: the checkpoint's; none for a byte-level model)", NULL, 1, 0,
     NULL},
    {"scores", OT_STR, F(scores), sizeof(((EvalArgs *)0)->scores), "FILE",
     "--task: also write each item's choices' log-likelihoods, a JSON line per item", NULL, 1, 0,
     NULL},
    {0},
};
#undef F

static void eval_usage(FILE *out)
{
    opts_print_help(out, "mpitrain eval --ckpt DIR --data FILE [options]",
                    "Prints the mean loss of a checkpoint over the validation windows of a token "
                    "file, taken in\norder from the start of its validation tokens (window w = "
                    "tokens [w*T, w*T+T]). By default every window: a run's val_loss is the mean "
                    "over its\nfirst --eval-batches x --batch windows only (metrics.jsonl's "
                    "val_windows); --windows N gives that loss.",
                    EVAL_OPTS);
}

/* The file, read as --data-format says, every token inside the vocabulary. */
static int open_data(const EvalArgs *a, int vocab, TokenFile *f, Err *e)
{
    if (tokfile_open_as(f, a->data, (DataFormat)a->data_format, a->as_val ? TOKUSE_VAL : TOKUSE_BOTH,
                        e))
        return err_wrap(e, "--data");
    if (f->vocab > vocab)
        return err_set(e, "--data %s has vocabulary %d but the checkpoint's is %d", a->data,
                       f->vocab, vocab);
    if (tokfile_check_vocab(f, vocab, "the checkpoint's vocabulary", e))
        return err_wrap(e, "--data");
    return 0;
}

/* How many windows: all, --windows N (cycling, as the trainer), or
 * --batches of --batch (which must be there). */
static int count_windows(const EvalArgs *a, const Loader *l, uint64_t *n, Err *e)
{
    *n = l->n_windows;
    if (a->windows > 0 && a->batches > 0)
        return err_set(e, "--windows %ld and --batches %d: give one of them", a->windows,
                       a->batches);
    if (a->windows > 0) *n = (uint64_t)a->windows;
    if (a->batches == 0) return 0;
    uint64_t want = (uint64_t)a->batches * (uint64_t)a->batch;
    if (want > l->n_windows)
        return err_set(e, "--batches %d x --batch %d = %llu windows, but %s's validation split "
                          "holds %llu of %d+1 tokens; lower --batches",
                       a->batches, a->batch, (unsigned long long)want, a->data,
                       (unsigned long long)l->n_windows, l->T);
    *n = want;
    return 0;
}

typedef struct {
    long eval_batches, batch;
} RunEvalSettings;

static int run_setting(void *ctx, const char *key, const char *value, int quoted, size_t offset)
{
    RunEvalSettings *s = ctx;
    (void)offset;
    if (value && !quoted && !strcmp(key, "eval-batches")) s->eval_batches = strtol(value, NULL, 10);
    if (value && !quoted && !strcmp(key, "batch")) s->batch = strtol(value, NULL, 10);
    return 0;
}

/* The windows the run's own val_loss covers, from the config.json of the
 * run the checkpoint is in (<run>/ckpt/step_N); 0 when it cannot be told. */
static long run_val_windows(const char *step_dir)
{
    char path[PATH_BUF];
    snprintf(path, sizeof path, "%s", step_dir);
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(path, '/');
        if (!slash) return 0;
        *slash = 0;
    }
    size_t len = strlen(path);
    if (len + sizeof "/config.json" > sizeof path) return 0;
    memcpy(path + len, "/config.json", sizeof "/config.json");
    void *text;
    Err ignored;
    RunEvalSettings s = {0, 0};
    size_t at;
    if (read_file(path, (size_t)1 << 20, &text, &len, &ignored)) return 0;
    int bad = json_read_flat(text, run_setting, &s, &at, &ignored);
    free(text);
    return bad || s.eval_batches < 1 || s.batch < 1 ? 0 : s.eval_batches * s.batch;
}

/* Every window by default: the line says so, and how the run's own
 * val_loss (fewer windows) is had, so the two are not compared. */
static void print_line(const EvalArgs *a, const char *dir, const EvalResult *r)
{
    printf("loss %.4f over %llu window%s (%llu tokens)", r->mean_loss,
           (unsigned long long)r->windows, r->windows == 1 ? "" : "s",
           (unsigned long long)r->tokens);
    if (a->windows > 0 || a->batches > 0) {
        printf("\n");
        return;
    }
    long run = run_val_windows(dir);
    printf(": all of %s's validation split; ", a->data);
    if (run > 0) printf("the run's val_loss is over its first %ld (--windows %ld)\n", run, run);
    else printf("a run's val_loss is over its first eval-batches x batch (--windows N)\n");
}

static int print_result(const EvalArgs *a, const char *dir, const Loader *l, const EvalResult *r,
                        Err *e)
{
    if (!a->json) {
        print_line(a, dir, r);
        return 0;
    }
    JsonOut j;
    json_init(&j, stdout);
    json_begin_object(&j);
    json_double(json_key(&j, "loss"), r->mean_loss);
    json_uint(json_key(&j, "windows"), r->windows);
    json_uint(json_key(&j, "tokens"), r->tokens);
    json_uint(json_key(&j, "split_windows"), l->n_windows);
    json_str(json_key(&j, "ckpt"), dir);
    json_str(json_key(&j, "data"), a->data);
    json_end_object(&j);
    json_newline(&j);
    int rc = json_finish(&j) ? err_set(e, "writing the JSON: %s", j.error) : 0;
    json_free(&j);
    return rc;
}

/* --scores: {"item", "answer", "logliks": [...], "chars": [...]} a line */
static int write_scores(const char *path, const Task *t, const double *ll, Err *e)
{
    AtomicFile af;
    if (atomic_open(&af, path, e)) return -1;
    JsonOut j;
    json_init(&j, NULL);
    for (size_t i = 0; i < t->n_items; i++) {
        json_begin_object(&j);
        json_uint(json_key(&j, "item"), i);
        json_uint(json_key(&j, "answer"), t->answer[i]);
        json_begin_array(json_key(&j, "logliks"));
        for (size_t r = t->first[i]; r < t->first[i + 1]; r++) json_double(&j, ll[r]);
        json_end_array(&j);
        json_begin_array(json_key(&j, "chars"));
        for (size_t r = t->first[i]; r < t->first[i + 1]; r++) json_uint(&j, t->chars[r]);
        json_end_array(&j);
        json_end_object(&j);
        json_newline(&j);
    }
    int rc = json_finish(&j) ? err_set(e, "%s: %s", path, j.error)
                             : atomic_write(&af, j.buf, j.len, e);
    json_free(&j);
    if (rc) {
        atomic_abort(&af);
        return -1;
    }
    return atomic_commit(&af, e);
}

static int print_task(const EvalArgs *a, const char *dir, const TaskScore *s, Err *e)
{
    if (!a->json) {
        printf("accuracy %.4f +- %.4f, accuracy_norm %.4f +- %.4f over %zu items of %s\n",
               s->accuracy, s->stderr_acc, s->accuracy_norm, s->stderr_norm, s->items, a->task);
        return 0;
    }
    JsonOut j;
    json_init(&j, stdout);
    json_begin_object(&j);
    json_double(json_key(&j, "accuracy"), s->accuracy);
    json_double(json_key(&j, "accuracy_norm"), s->accuracy_norm);
    json_double(json_key(&j, "stderr"), s->stderr_acc);
    json_double(json_key(&j, "stderr_norm"), s->stderr_norm);
    json_uint(json_key(&j, "items"), s->items);
    json_str(json_key(&j, "ckpt"), dir);
    json_str(json_key(&j, "task"), a->task);
    json_end_object(&j);
    json_newline(&j);
    int rc = json_finish(&j) ? err_set(e, "writing the JSON: %s", j.error) : 0;
    json_free(&j);
    return rc;
}

static int run_task(const EvalArgs *a, const char *dir, const CkptMeta *meta, Err *e)
{
    const ModelConfig *c = &meta->cfg.model;
    Bpe *b = NULL;
    Task t;
    memset(&t, 0, sizeof t);
    if (bpe_for_ckpt(dir, a->tokenizer, c->vocab, &b, e) || task_read(a->task, b, &t, e)) {
        bpe_free(b);
        return -1;
    }
    bpe_free(b);
    if (task_check(&t, a->task, c->vocab, c->seq_len, e)) {
        task_free(&t);
        return -1;
    }
    Model m;
    CkptWhole how = {.max_batch = 1, .forward_only = 1};
    double *ll = malloc(t.n_req * sizeof *ll);
    int rc = ll ? ckpt_load_whole(dir, c, &how, &m, e) : err_set(e, "out of memory");
    if (!rc) {
        rc = task_logliks(&m, &t, 0, t.n_items, 1, ll, e);
        model_free(&m);
    }
    TaskScore s;
    if (!rc) task_score(&t, ll, &s);
    if (!rc && a->scores[0]) rc = write_scores(a->scores, &t, ll, e);
    if (!rc) rc = print_task(a, dir, &s, e);
    free(ll);
    task_free(&t);
    return rc;
}

static int run_eval(const EvalArgs *a, Err *e)
{
    char dir[PATH_LEN];
    CkptMeta meta;
    if (ckpt_resolve(a->ckpt, dir, sizeof dir, e) || ckpt_load_meta(dir, &meta, e)) return -1;
    const ModelConfig *c = &meta.cfg.model;
    if (a->threads > 0) ops_set_threads(a->threads);
    if (a->task[0]) return run_task(a, dir, &meta, e);
    TokenFile f;
    memset(&f, 0, sizeof f);
    Loader l;
    uint64_t n = 0;
    int rc = open_data(a, c->vocab, &f, e);
    if (!rc) rc = loader_init(&l, &f, SPLIT_VAL, c->seq_len, a->batch, 0, 1, e);
    if (!rc) rc = count_windows(a, &l, &n, e);
    Model m;
    int have_model = 0;
    if (!rc) {
        CkptWhole how = {.max_batch = a->batch, .forward_only = 1};
        rc = ckpt_load_whole(dir, c, &how, &m, e);
        have_model = !rc;
    }
    EvalResult r;
    if (!rc) rc = eval_mean_loss(&m, &l, n, meta.cfg.doc_attention, &r, e);
    if (!rc) rc = print_result(a, dir, &l, &r, e);
    if (have_model) model_free(&m);
    tokfile_close(&f);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    EvalArgs a;
    memset(&a, 0, sizeof a);
    a.batch = 4;
    int help = 0;
    int rc = opts_parse("eval", EVAL_OPTS, &a, argc, argv, 1, NULL, 0, NULL, &help);
    if (!rc && help) {
        eval_usage(stdout);
    } else if (!rc && (!a.ckpt[0] || !a.data[0] == !a.task[0])) {
        fprintf(stderr, "mpitrain eval: --ckpt DIR and one of --data FILE or --task FILE are "
                        "required (see mpitrain eval --help)\n");
        rc = EXIT_USAGE;
    } else if (!rc && !a.task[0] && (a.tokenizer[0] || a.scores[0])) {
        fprintf(stderr, "mpitrain eval: --tokenizer and --scores go with --task\n");
        rc = EXIT_USAGE;
    } else if (!rc) {
        Err e = {{0}};
        if (run_eval(&a, &e)) {
            fprintf(stderr, "mpitrain eval: %s\n", e.msg);
            rc = 1;
        }
    }
    return rc;
}
