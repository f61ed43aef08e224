#include "coordinator/plan/calibrate.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "base/fileio.h"
#include "base/options.h"
#include "worker/data/jtree.h"

static const char *metric_key(CalMetric m) { return m == METRIC_ACCURACY ? "task_accuracy" : "val_loss"; }

typedef struct {
    Calibration *c;
    CalMetric metric;
} Reader;

/* A metrics row with the metric (and a step) adds a point; the others
 * (steps between evaluations, the end-of-run row without it) are skipped. */
static int read_point(void *ctx, const Jt *row, int line, Err *e)
{
    (void)line;
    (void)e;
    Reader *r = ctx;
    const Jt *step = jt_get(row, "step"), *v = jt_get(row, metric_key(r->metric));
    if (!step || step->type != JT_NUM || !v || v->type != JT_NUM || !isfinite(v->v.num)) return 0;
    Calibration *c = r->c;
    if (c->n == CALIBRATION_MAX_POINTS) return 0; /* a calibration is short: the first ones do */
    c->step[c->n] = (long)step->v.num;
    c->value[c->n] = v->v.num;
    c->n++;
    return 0;
}

/* The least-squares line through the points. */
static void fit_line(Calibration *c)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0, n = c->n;
    for (int i = 0; i < c->n; i++) {
        double x = (double)c->step[i], y = c->value[i];
        sx += x, sy += y, sxx += x * x, sxy += x * y;
    }
    double d = n * sxx - sx * sx;
    c->slope = d != 0 ? (n * sxy - sx * sy) / d : 0;
    c->intercept = (sy - c->slope * sx) / n;
}

static void last_component(const char *dir, char *out, size_t n)
{
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') len--;
    size_t start = len;
    while (start > 0 && dir[start - 1] != '/') start--;
    snprintf(out, n, "%.*s", (int)(len - start), dir + start);
}

int calibration_load(const char *dir, CalMetric metric, Calibration *c, Err *e)
{
    memset(c, 0, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "%s", dir);
    last_component(dir, c->name, sizeof c->name);
    char path[PATH_BUF];
    if (path_fmt(path, sizeof path, e, "%s/config.json", dir)) return -1;
    train_config_defaults(&c->cfg);
    size_t n_table;
    if (access(path, R_OK) != 0)
        return err_set(e, "--calibration %s: no %s (a training run's directory has one)", dir, path);
    if (opts_load_config("plan", train_config_table(&n_table), &c->cfg, path))
        return err_set(e, "--calibration %s: %s does not read as a run's settings", dir, path);
    train_config_finish(&c->cfg);
    /* the plan picks the layout for its own ranks, as for the modes table;
     * the run's files are not the plan's business */
    c->cfg.dp = c->cfg.tp = c->cfg.pp = c->cfg.micro_batches = 0;
    snprintf(c->cfg.data, sizeof c->cfg.data, "-");
    snprintf(c->cfg.out, sizeof c->cfg.out, "-");
    if (path_fmt(path, sizeof path, e, "%s/metrics.jsonl", dir)) return -1;
    Reader r = {c, metric};
    if (jt_each_line(path, (size_t)1 << 30, read_point, &r, e)) return -1;
    if (c->n < 2)
        return err_set(e, "%s: %d row(s) with %s; a calibration needs at least 2 (%s)", path, c->n,
                       metric_key(metric),
                       metric == METRIC_ACCURACY ? "train it with --eval-task FILE --eval-every N"
                                                 : "train it with --eval-every N");
    fit_line(c);
    return 0;
}

static int reached(CalMetric m, double v, double target)
{
    return m == METRIC_ACCURACY ? v >= target : v <= target;
}

double calibration_steps_to(const Calibration *c, CalMetric metric, double target, int *measured)
{
    *measured = 0;
    for (int i = 0; i < c->n; i++)
        if (reached(metric, c->value[i], target)) {
            *measured = 1;
            return (double)c->step[i];
        }
    /* better is up for accuracy, down for loss */
    double toward = metric == METRIC_ACCURACY ? c->slope : -c->slope;
    if (!(toward > 0)) return -1;
    double steps = (target - c->intercept) / c->slope;
    /* a line past the target before its first point: that point is the answer */
    return steps > (double)c->step[0] ? steps : (double)c->step[0];
}
