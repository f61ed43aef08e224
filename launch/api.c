/* The public C API (include/mpitrain.h): `mpitrain train` as library calls.
 * Keys go through the command's option table and the job through the
 * command's own runner (launch/run_train.c), so a key set here means
 * exactly what the flag of the same name means. */
/* relative to this file, so that a build that compiles launch/ with only the
 * repository root on its include path (tests/fuzz) finds it too */
#include "../include/mpitrain.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "base/options.h"
#include "comm/mpi/comm.h"
#include "coordinator/plan/plan.h"
#include "coordinator/display/progress.h"
#include "launch/commands.h"
#include "launch/run_train.h"
#include "worker/run/train.h"

struct mpitrain_config {
    TrainConfig c;
    mpitrain_step_fn on_step;
    void *user;
};

/* MPI can start once per process and never again after it stops. */
enum { API_NEW, API_UP, API_DOWN };
static int api_state = API_NEW;
static CommWorld api_world;

/* The `mpitrain train` option table. Its one use here, so that moving the
 * table elsewhere changes one line. */
static const OptSpec *train_options(void) { return train_config_table(NULL); }

/* Writes a message into the caller's buffer (if any) and returns code. */
static int api_error(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int api_error(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Set by CMake from VERSION and the configure step (compile definitions:
 * no generated header for other builds of these sources to lack). */
#ifndef MPITRAIN_VERSION_STRING
#define MPITRAIN_VERSION_STRING "unknown"
#endif
#ifndef MPITRAIN_BUILD_FACTS
#define MPITRAIN_BUILD_FACTS "unknown build"
#endif

const char *mpitrain_version(void) { return MPITRAIN_VERSION_STRING; }

const char *mpitrain_build_info(void) { return MPITRAIN_BUILD_FACTS; }

int mpitrain_init(int *argc, char ***argv)
{
    if (api_state != API_NEW) return MPITRAIN_ERR_USAGE;
    if (comm_init(argc, argv, &api_world)) return MPITRAIN_ERR_RUNTIME;
    api_state = API_UP;
    return MPITRAIN_OK;
}

int mpitrain_finalize(void)
{
    if (api_state != API_UP) return MPITRAIN_ERR_USAGE;
    comm_finalize();
    api_state = API_DOWN;
    return MPITRAIN_OK;
}

int mpitrain_rank(void) { return api_state == API_UP ? api_world.rank : -1; }

int mpitrain_size(void) { return api_state == API_UP ? api_world.size : -1; }

mpitrain_config *mpitrain_config_new(void)
{
    mpitrain_config *c = calloc(1, sizeof *c);
    if (c) train_config_defaults(&c->c);
    return c;
}

void mpitrain_config_free(mpitrain_config *c) { free(c); }

void mpitrain_config_on_step(mpitrain_config *c, mpitrain_step_fn fn, void *user)
{
    if (!c) return;
    c->on_step = fn;
    c->user = user;
}

/* One key: "config" loads that file at once, as on the command line (its
 * own errors name file:line on stderr); any other is a setting. */
static int set_option(TrainConfig *t, const char *key, const char *value, char *err,
                      size_t errlen)
{
    Err e = {{0}};
    if (!strcmp(key, "config")) {
        if (value && !opts_load_config("train", train_options(), t, value)) return MPITRAIN_OK;
        return api_error(err, errlen, MPITRAIN_ERR_USAGE, "config %s: not a readable settings "
                         "file (the reason went to stderr)", value ? value : "(null)");
    }
    if (opts_set_value(train_options(), t, key, value, &e))
        return api_error(err, errlen, MPITRAIN_ERR_USAGE, "mpitrain train: %s", e.msg);
    return MPITRAIN_OK;
}

int mpitrain_config_set(mpitrain_config *c, const char *key, const char *value, char *err,
                        size_t errlen)
{
    if (!c || !key) return api_error(err, errlen, MPITRAIN_ERR_USAGE, "mpitrain_config_set: NULL config or key");
    /* a failed set leaves the config as it was */
    TrainConfig *t = malloc(sizeof *t);
    if (!t) return api_error(err, errlen, MPITRAIN_ERR_RUNTIME, "mpitrain_config_set: out of memory");
    *t = c->c;
    int rc = set_option(t, key, value, err, errlen);
    if (!rc) c->c = *t;
    free(t);
    return rc;
}

/* The observer of an API run: rank 0's usual display and metrics.jsonl
 * (silent with "quiet"), then the caller's step callback. */
typedef struct {
    TrainObserver shown;
    const mpitrain_config *cfg;
} ApiWatch;

static int watch_begin(void *ctx, const TrainConfig *c, long first_step, Err *e)
{
    ApiWatch *w = ctx;
    return w->shown.begin ? w->shown.begin(w->shown.ctx, c, first_step, e) : 0;
}

static void watch_note(void *ctx, const char *line)
{
    ApiWatch *w = ctx;
    if (w->shown.note) w->shown.note(w->shown.ctx, line);
}

static void watch_initial_eval(void *ctx, double val_loss)
{
    ApiWatch *w = ctx;
    if (w->shown.initial_eval) w->shown.initial_eval(w->shown.ctx, val_loss);
}

static int watch_step(void *ctx, const StepReport *r, Err *e)
{
    ApiWatch *w = ctx;
    if (w->shown.step && w->shown.step(w->shown.ctx, r, e)) return -1;
    if (w->cfg->on_step) {
        mpitrain_step s = {r->step, r->loss, r->val_loss, r->lr, r->tokens_per_s, r->time_ms};
        w->cfg->on_step(&s, w->cfg->user);
    }
    return 0;
}

static int watch_replayed(void *ctx, long step, double lr, Err *e)
{
    ApiWatch *w = ctx;
    return w->shown.replayed ? w->shown.replayed(w->shown.ctx, step, lr, e) : 0;
}

static void watch_end(void *ctx)
{
    ApiWatch *w = ctx;
    if (w->shown.end) w->shown.end(w->shown.ctx);
}

static void watch_timing(void *ctx, const RunTiming *t)
{
    ApiWatch *w = ctx;
    if (w->shown.timing) w->shown.timing(w->shown.ctx, t);
}

static void fill_result(mpitrain_result *out, const TrainResult *r)
{
    out->final_loss = r->final_loss;
    out->final_val_loss = r->final_val_loss;
    out->first_step = r->first_step;
    out->last_step = r->last_step;
    out->steps = r->last_step - r->first_step;
    out->mean_step_ms = r->mean_step_ms;
    out->tokens_per_s = r->mean_tokens_per_s;
    snprintf(out->run_dir, sizeof out->run_dir, "%s", r->run_dir);
    snprintf(out->checkpoint, sizeof out->checkpoint, "%s", r->last_ckpt);
}

/* The run itself, on heap copies (a TrainConfig and a TrainResult are large
 * for a caller's thread stack). */
static int train(TrainConfig *c, const mpitrain_config *user, TrainResult *res, Err *e)
{
    Progress prog;
    ApiWatch watch = {progress_observer(&prog), user};
    TrainObserver obs = {&watch, watch_begin, watch_note, watch_initial_eval, watch_step,
                         watch_replayed, watch_end, watch_timing};
    /* the embedding program owns its signals: no stop flag */
    int rc = launch_train(c, &api_world, &obs, NULL, res, e);
    if (rc) return rc == EXIT_USAGE ? MPITRAIN_ERR_USAGE : MPITRAIN_ERR_RUNTIME;
    /* only rank 0 knows the timings and the checkpoint: give every rank its view */
    coll_bcast(group_world(), res, sizeof *res, 0);
    return MPITRAIN_OK;
}

int mpitrain_train(const mpitrain_config *c, mpitrain_result *out, char *err, size_t errlen)
{
    if (out) {
        memset(out, 0, sizeof *out);
        out->final_loss = out->final_val_loss = NAN;
    }
    if (err && errlen) err[0] = 0;
    if (api_state != API_UP)
        return api_error(err, errlen, MPITRAIN_ERR_USAGE, "mpitrain_train: %s",
                         api_state == API_NEW ? "call mpitrain_init first" : "MPI is finalized");
    if (!c) return api_error(err, errlen, MPITRAIN_ERR_USAGE, "mpitrain_train: NULL config");
    TrainConfig *t = malloc(sizeof *t);
    TrainResult *res = malloc(sizeof *res);
    Err *e = calloc(1, sizeof *e);
    /* an allocation failure on one rank must not leave the others waiting */
    Err oom = {{0}}, agreed = {{0}};
    int rc = !t || !res || !e ? err_set(&oom, "mpitrain_train: out of memory") : 0;
    if (comm_agree(group_world(), rc, &oom, &agreed)) {
        rc = api_error(err, errlen, MPITRAIN_ERR_RUNTIME, "%s", agreed.msg);
    } else {
        *t = c->c;
        rc = train(t, c, res, e);
        if (rc) api_error(err, errlen, rc, "mpitrain train: %s", e->msg);
        else if (out) fill_result(out, res);
    }
    free(t);
    free(res);
    free(e);
    return rc;
}
