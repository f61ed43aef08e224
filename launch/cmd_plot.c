/* mpitrain plot RUN [RUN...] --out FILE.png: training and validation loss
 * against steps, tokens, training time and bytes sent per rank (several
 * runs overlaid, each labelled by its directory), and where a step's time
 * goes (compute /
 * exposed communication / waiting for the slowest rank). The rows come from
 * each run's metrics.jsonl (coordinator/display/progress.c writes them); the picture
 * is drawn by gnuplot's cairo PNG terminal (Debian's gnuplot-nox). */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "base/fileio.h"
#include "base/json.h"
#include "base/options.h"
#include "launch/commands.h"

#define MAX_RUNS 32

typedef struct {
    char out[PATH_LEN];
    char title[256];
    int width, height;
    int loss; /* LOSS_BOTH, LOSS_TRAIN, LOSS_VAL: which curves */
} PlotArgs;

enum { LOSS_BOTH = 0, LOSS_TRAIN = 1, LOSS_VAL = 2 };

static const OptSpec PLOT_OPTS[] = {
    {"out", OT_STR, offsetof(PlotArgs, out), sizeof(((PlotArgs *)0)->out), "FILE.png",
     "the picture to write", NULL, 1, 0, NULL},
    {"width", OT_INT, offsetof(PlotArgs, width), 0, "PX", "width in pixels", NULL, 320, 8000, "1400"},
    {"height", OT_INT, offsetof(PlotArgs, height), 0, "PX", "height in pixels", NULL, 240, 8000, "1300"},
    {"loss", OT_CHOICE, offsetof(PlotArgs, loss), 0, NULL,
     "which loss curves: training and validation, or one of them", "both|train|val", 1, 0, "both"},
    {"title", OT_STR, offsetof(PlotArgs, title), sizeof(((PlotArgs *)0)->title), "TEXT",
     "the picture's title (default: mpitrain: N run(s))", NULL, 1, 0, NULL},
    {0},
};

/* One metrics row: what the picture needs of it (NAN = absent). */
typedef struct {
    double step, loss, val_loss, time_ms, tokens_per_s, compute_ms, exposed_ms, idle_ms, bytes;
    double task_acc;
} Row;

typedef struct {
    const char *key;
    size_t offset;
} RowKey;

static const RowKey ROW_KEYS[] = {
    {"step", offsetof(Row, step)},
    {"loss", offsetof(Row, loss)},
    {"val_loss", offsetof(Row, val_loss)},
    {"time_ms", offsetof(Row, time_ms)},
    {"tokens_per_s", offsetof(Row, tokens_per_s)},
    {"compute_ms", offsetof(Row, compute_ms)},
    {"exposed_comm_ms", offsetof(Row, exposed_ms)},
    {"idle_ms", offsetof(Row, idle_ms)},
    {"comm_bytes", offsetof(Row, bytes)},
    {"task_accuracy", offsetof(Row, task_acc)},
};

static int row_pair(void *ctx, const char *key, const char *value, int quoted, size_t offset)
{
    (void)offset;
    if (!value || quoted) return 0;
    for (size_t i = 0; i < sizeof ROW_KEYS / sizeof ROW_KEYS[0]; i++)
        if (!strcmp(key, ROW_KEYS[i].key))
            *(double *)((char *)ctx + ROW_KEYS[i].offset) = strtod(value, NULL);
    return 0;
}

/* The means of a run's step-time breakdown, for the last panel, and
 * whether it sent any bytes (the bytes panel is logarithmic when a run
 * did). */
typedef struct {
    double compute, exposed, idle;
    int n;
    double bytes;
    int task_rows; /* rows with --eval-task's accuracy */
} Breakdown;

/* Writes the gnuplot data of one run: "step tokens seconds loss val bytes
 * task_accuracy" (? = absent), accumulating tokens, time and bytes sent
 * over the steps. */
static int write_run_data(const char *run, const char *text, FILE *dat, Breakdown *b, Err *e)
{
    double tokens = 0, seconds = 0, bytes = 0;
    int line = 0, rows = 0;
    for (const char *p = text; *p; line++) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char *one = strndup(p, len);
        if (!one) return err_set(e, "out of memory");
        p += len + (nl ? 1 : 0);
        if (!one[strspn(one, " \t\r")]) {
            free(one);
            continue;
        }
        Row r = {NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
        size_t at;
        int rc = json_read_flat(one, row_pair, &r, &at, e);
        free(one);
        if (rc) return err_wrap(e, "%s/metrics.jsonl:%d", run, line + 1);
        if (isnan(r.step)) continue;
        if (isfinite(r.time_ms)) {
            if (isfinite(r.tokens_per_s)) tokens += r.tokens_per_s * r.time_ms / 1e3;
            seconds += r.time_ms / 1e3;
        }
        if (isfinite(r.bytes)) bytes += r.bytes;
        if (isfinite(r.compute_ms) && r.step > 1) {
            b->compute += r.compute_ms;
            b->exposed += isfinite(r.exposed_ms) ? r.exposed_ms : 0;
            b->idle += isfinite(r.idle_ms) ? r.idle_ms : 0;
            b->n++;
        }
        char loss[32] = "?", val[32] = "?", acc[32] = "?";
        if (isfinite(r.loss)) snprintf(loss, sizeof loss, "%.9g", r.loss);
        if (isfinite(r.val_loss)) snprintf(val, sizeof val, "%.9g", r.val_loss);
        if (isfinite(r.task_acc)) {
            snprintf(acc, sizeof acc, "%.9g", r.task_acc);
            b->task_rows++;
        }
        fprintf(dat, "%.0f %.9g %.9g %s %s %.17g %s\n", r.step, tokens, seconds, loss, val, bytes,
                acc);
        rows++;
    }
    b->bytes = bytes;
    if (!rows) return err_set(e, "%s/metrics.jsonl: no step rows to plot", run);
    return 0;
}

/* A title for gnuplot's "..." strings: quotes and backslashes escaped. */
static void quote_label(const char *s, char *out, size_t n)
{
    size_t k = 0;
    for (; *s && k + 3 < n; s++) {
        if (*s == '"' || *s == '\\') out[k++] = '\\';
        out[k++] = (unsigned char)*s < 0x20 ? ' ' : *s;
    }
    out[k] = 0;
}

/* A run's name in the legend: its folder's last component, or the whole
 * path where two runs share that name. */
typedef char Label[PATH_BUF];

static const char *last_component(const char *path, char *out, size_t n)
{
    snprintf(out, n, "%s", path);
    size_t len = strlen(out);
    while (len > 1 && out[len - 1] == '/') out[--len] = 0;
    const char *slash = strrchr(out, '/');
    return slash && slash[1] ? slash + 1 : out;
}

static void run_labels(const char *const *runs, int n, Label *labels)
{
    for (int i = 0; i < n; i++) {
        char mine[PATH_BUF], other[PATH_BUF];
        const char *name = last_component(runs[i], mine, sizeof mine);
        int shared = 0;
        for (int j = 0; j < n && !shared; j++)
            shared = j != i && !strcmp(name, last_component(runs[j], other, sizeof other));
        quote_label(shared ? runs[i] : name, labels[i], sizeof labels[i]);
    }
}

/* One panel: loss of every run against data column x (x_expr: a gnuplot
 * using-expression for it, NULL = the column itself). */
static void loss_panel(FILE *f, const char *dir, const Label *labels, int n, int x,
                       const char *x_expr, const char *xlabel, int which)
{
    char xs[64];
    if (x_expr) snprintf(xs, sizeof xs, "(%s)", x_expr);
    else snprintf(xs, sizeof xs, "%d", x);
    fprintf(f, "set xlabel \"%s\"\nset ylabel \"%s\"\nplot ", xlabel,
            which == LOSS_VAL ? "validation loss" : "loss");
    for (int i = 0; i < n; i++) {
        const char *label = labels[i];
        const char *sep = i ? ", " : "";
        if (which != LOSS_VAL) {
            fprintf(f, "%s\"%s/run%d.dat\" using %s:4 with lines lc %d lw 1.5 title \"%s%s\"", sep,
                    dir, i, xs, i + 1, label, which == LOSS_BOTH ? " train" : "");
            sep = ", ";
        }
        if (which != LOSS_TRAIN)
            fprintf(f, "%s\"%s/run%d.dat\" using %s:5 with linespoints lc %d pt 7 ps 0.6 dt %d "
                       "lw 1.5 title \"%s%s\"",
                    sep, dir, i, xs, i + 1, which == LOSS_BOTH ? 2 : 1, label,
                    which == LOSS_BOTH ? " val" : "");
    }
    fprintf(f, "\n");
}

/* Loss against the bytes a rank sent: logarithmic when any run sent some
 * (ZO sends bytes where a gradient all-reduce sends megabytes), the rows
 * before a run's first byte left out. */
static void bytes_panel(FILE *f, const char *dir, const Label *labels, int n, int which,
                        int any_bytes)
{
    if (any_bytes) fprintf(f, "set logscale x\nset format x \"1e%%T\"\n");
    loss_panel(f, dir, labels, n, 6, any_bytes ? "$6 > 0 ? $6 : 1/0" : NULL,
               "bytes sent per rank (cumulative)", which);
    if (any_bytes) fprintf(f, "unset logscale x\nset format x \"%% h\"\n");
}

static void breakdown_panel(FILE *f, const char *dir, int n)
{
    fprintf(f, "set xlabel \"\"\nset ylabel \"ms per step (mean over ranks)\"\n"
               "set style data histograms\nset style histogram rowstacked\n"
               "set style fill solid 0.8 border -1\nset boxwidth 0.6\nset xtics rotate by -20\n"
               "set key outside bottom center horizontal\n"
               "plot \"%s/breakdown.dat\" using 2:xtic(1) title \"compute\" lc rgb \"#4a7bb7\", "
               "'' using 3 title \"exposed comm\" lc rgb \"#d95f02\", "
               "'' using 4 title \"idle (waiting for the slowest rank)\" lc rgb \"#999999\"\n",
            dir);
    (void)n;
}

/* --eval-task's accuracy against training time, for the runs that report it. */
static void task_panel(FILE *f, const char *dir, const Label *labels, int n)
{
    fprintf(f, "set xlabel \"training time (s, sum of step times)\"\n"
               "set ylabel \"task accuracy (--eval-task)\"\nset key outside bottom center horizontal\n"
               "unset style\nset xtics norotate\nplot ");
    for (int i = 0; i < n; i++)
        fprintf(f, "%s\"%s/run%d.dat\" using 3:7 with linespoints lc %d pt 7 ps 0.6 lw 1.5 "
                   "title \"%s\"", i ? ", " : "", dir, i, i + 1, labels[i]);
    fprintf(f, "\n");
}

static int write_script(const char *path, const char *dir, const char *png, const PlotArgs *a,
                        const Label *labels, int n, int any_bytes, int any_task, Err *e)
{
    FILE *f = fopen(path, "w");
    if (!f) return err_set(e, "%s: cannot create: %s", path, strerror(errno));
    char out[PATH_BUF], title[PATH_BUF];
    quote_label(png, out, sizeof out);
    if (a->title[0]) quote_label(a->title, title, sizeof title);
    else snprintf(title, sizeof title, "mpitrain: %d run(s)", n);
    /* the legend goes under each panel: inside, it hid the curves' ends */
    fprintf(f, "set terminal pngcairo size %d,%d font \"sans,10\" noenhanced\n"
               "set output \"%s\"\nset datafile missing \"?\"\nset grid\n"
               "set key outside bottom center horizontal\n"
               "set multiplot layout 3,2 title \"%s\"\n",
            a->width, a->height, out, title);
    loss_panel(f, dir, labels, n, 1, NULL, "step", a->loss);
    loss_panel(f, dir, labels, n, 3, NULL, "training time (s, sum of step times)", a->loss);
    loss_panel(f, dir, labels, n, 2, NULL, "tokens", a->loss);
    bytes_panel(f, dir, labels, n, a->loss, any_bytes);
    breakdown_panel(f, dir, n);
    if (any_task) task_panel(f, dir, labels, n);
    fprintf(f, "unset multiplot\n");
    return fclose(f) ? err_set(e, "%s: write failed", path) : 0;
}

/* gnuplot SCRIPT, its messages in log; 0 when it exits 0. */
static int run_gnuplot(const char *script, const char *log, Err *e)
{
    pid_t pid = fork();
    if (pid < 0) return err_set(e, "cannot start gnuplot: %s", strerror(errno));
    if (pid == 0) {
        FILE *l = freopen(log, "w", stderr);
        (void)l;
        execlp("gnuplot", "gnuplot", script, (char *)NULL);
        fprintf(stderr, "exec: %s\n", strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return err_set(e, "plot draws with gnuplot, which is not installed: "
                          "apt-get install gnuplot-nox");
    if (!WIFEXITED(status) || WEXITSTATUS(status)) {
        char msg[512] = "";
        FILE *l = fopen(log, "r");
        if (l) {
            size_t got = fread(msg, 1, sizeof msg - 1, l);
            msg[got] = 0;
            fclose(l);
        }
        return err_set(e, "gnuplot failed: %s", msg);
    }
    return 0;
}

/* Data files of every run and the breakdown table into dir; *any_bytes:
 * whether a run sent bytes, *any_task: whether one reported --eval-task. */
static int write_data(const char *dir, const char *const *runs, const Label *labels, int n,
                      int *any_bytes, int *any_task, Err *e)
{
    *any_bytes = *any_task = 0;
    char path[PATH_BUF];
    if (path_fmt(path, sizeof path, e, "%s/breakdown.dat", dir)) return -1;
    FILE *bd = fopen(path, "w");
    if (!bd) return err_set(e, "%s: cannot create: %s", path, strerror(errno));
    int rc = 0;
    for (int i = 0; !rc && i < n; i++) {
        char metrics[PATH_BUF];
        void *text = NULL;
        size_t len;
        rc = path_fmt(metrics, sizeof metrics, e, "%s/metrics.jsonl", runs[i]);
        if (!rc && read_file(metrics, (size_t)1 << 30, &text, &len, e))
            rc = err_wrap(e, "%s is not a run directory", runs[i]);
        FILE *dat = NULL;
        if (!rc && !path_fmt(path, sizeof path, e, "%s/run%d.dat", dir, i) && !(dat = fopen(path, "w")))
            rc = err_set(e, "%s: cannot create: %s", path, strerror(errno));
        Breakdown b = {0, 0, 0, 0, 0, 0};
        if (!rc && dat) rc = write_run_data(runs[i], text, dat, &b, e);
        if (b.bytes > 0) *any_bytes = 1;
        if (b.task_rows) *any_task = 1;
        if (dat) fclose(dat);
        free(text);
        int k = b.n ? b.n : 1;
        fprintf(bd, "\"%s\" %.6g %.6g %.6g\n", labels[i], b.compute / k, b.exposed / k, b.idle / k);
    }
    if (fclose(bd) && !rc) rc = err_set(e, "%s: write failed", path);
    return rc;
}

/* MPITRAIN_TEST_PLOT_SCRIPT=FILE: a copy of the gnuplot script, for the
 * tests of what it draws (legend place, labels). */
static void keep_script_for_tests(const char *script)
{
    const char *to = getenv("MPITRAIN_TEST_PLOT_SCRIPT");
    void *text;
    size_t len;
    Err ignored;
    if (!to || !*to || read_file(script, (size_t)1 << 24, &text, &len, &ignored)) return;
    write_file_atomic(to, text, len, &ignored);
    free(text);
}

static int draw(const PlotArgs *a, const char *const *runs, int n, Err *e)
{
    char dir[] = "/tmp/mpitrain-plot.XXXXXX", script[PATH_BUF], log[PATH_BUF], tmp[PATH_BUF];
    if (!mkdtemp(dir)) return err_set(e, "cannot make a temporary directory: %s", strerror(errno));
    int rc = path_fmt(script, sizeof script, e, "%s/plot.gp", dir);
    if (!rc) rc = path_fmt(log, sizeof log, e, "%s/gnuplot.log", dir);
    if (!rc) rc = path_fmt(tmp, sizeof tmp, e, "%s.tmp.%d", a->out, (int)getpid());
    int any_bytes = 0, any_task = 0;
    Label labels[MAX_RUNS];
    run_labels(runs, n, labels);
    if (!rc) rc = write_data(dir, runs, labels, n, &any_bytes, &any_task, e);
    if (!rc) rc = mkdir_parent(a->out, e);
    if (!rc) rc = write_script(script, dir, tmp, a, labels, n, any_bytes, any_task, e);
    if (!rc) rc = run_gnuplot(script, log, e);
    keep_script_for_tests(script);
    struct stat st;
    if (!rc && (stat(tmp, &st) || st.st_size == 0)) rc = err_set(e, "gnuplot wrote no picture");
    /* the picture appears whole or not at all */
    if (!rc && rename(tmp, a->out)) rc = err_set(e, "%s: %s", a->out, strerror(errno));
    if (rc) unlink(tmp);
    remove_tree(dir);
    return rc;
}

int cmd_plot(int argc, char **argv)
{
    PlotArgs a;
    memset(&a, 0, sizeof a);
    opts_apply_defaults(PLOT_OPTS, &a);
    const char *runs[MAX_RUNS];
    int n = 0, help = 0;
    int rc = opts_parse("plot", PLOT_OPTS, &a, argc, argv, 1, runs, MAX_RUNS, &n, &help);
    if (rc) return rc;
    if (help) {
        opts_print_help(stdout, "mpitrain plot RUN [RUN...] --out FILE.png",
                        "Draws the loss of one or more runs (train and validation) against steps, "
                        "training time,\ntokens and bytes sent per rank, and the mean step-time "
                        "breakdown (compute, exposed\ncommunication, idle). Needs gnuplot.",
                        PLOT_OPTS);
        return 0;
    }
    if (!n || !a.out[0]) {
        fprintf(stderr, "mpitrain plot: %s (see mpitrain plot --help)\n",
                n ? "--out FILE.png is required" : "name at least one run directory");
        return EXIT_USAGE;
    }
    Err e = {{0}};
    if (draw(&a, runs, n, &e)) {
        fprintf(stderr, "mpitrain plot: %s\n", e.msg);
        return 1;
    }
    printf("wrote %s (%d run(s))\n", a.out, n);
    return 0;
}
