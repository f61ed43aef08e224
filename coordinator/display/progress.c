#include "coordinator/display/progress.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "base/fileio.h"
#include "base/options.h"
#include "base/json.h"
#include "coordinator/plan/planner.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void format_duration(char *out, size_t n, double s)
{
    if (!(s >= 0) || s > 1e8) {
        snprintf(out, n, "--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(out, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60)
        snprintf(out, n, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(out, n, "%lds", t);
}

/* The step a metrics row describes (-1: not a row). */
static long row_step(const char *line)
{
    const char *s = strstr(line, "\"step\":");
    return s ? strtol(s + 7, NULL, 10) : -1;
}

/* Keeps the rows of an existing metrics file up to `step` (inclusive); the
 * whole rows after it go to *dropped (NUL-terminated, malloc'd). */
static int truncate_metrics(const char *path, long step, char **dropped, Err *e)
{
    void *raw;
    size_t len;
    struct stat st;
    *dropped = NULL;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    if (read_file(path, (size_t)1 << 32, &raw, &len, e)) return -1;
    char *out = malloc(len + 1), *late = malloc(len + 1);
    if (!out || !late) {
        free(raw);
        free(out);
        free(late);
        return err_set(e, "out of memory");
    }
    size_t o = 0, l = 0;
    for (char *line = raw; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t ll = nl ? (size_t)(nl - line + 1) : strlen(line);
        long st_ = row_step(line);
        if (st_ >= 0 && nl) {
            memcpy(st_ <= step ? out + o : late + l, line, ll);
            *(st_ <= step ? &o : &l) += ll;
        }
        line = nl ? nl + 1 : NULL;
    }
    late[l] = 0;
    int rc = write_file_atomic(path, out, o, e);
    free(out);
    free(raw);
    if (rc || !l) free(late);
    else *dropped = late;
    return rc;
}

/* Under mpirun a rank's stdout is a pty even when the user's is a file, so
 * launchers that know better say so in MPITRAIN_TTY; a rank of a launcher
 * that does not say (plain mpirun, srun) prints plain lines: a log then
 * holds no \r or escape codes. */
static int stdout_is_terminal(void)
{
    const char *v = getenv("MPITRAIN_TTY");
    if (v && *v) return atoi(v) != 0;
    if (opts_launcher_rank() >= 0) return 0;
    return isatty(STDOUT_FILENO);
}

/* The terminal's width, for the bar (80 when it cannot be asked). */
static int terminal_columns(void)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) return ws.ws_col;
    const char *c = getenv("COLUMNS");
    int n = c ? atoi(c) : 0;
    return n >= 20 && n <= 1000 ? n : 80;
}

/* "1160 ms", "38.2 ms", "4.71 ms": no exponents on a person's screen. */
static void format_ms(char *out, size_t n, double ms)
{
    if (!(ms >= 0)) snprintf(out, n, "-- ms");
    else if (ms >= 100) snprintf(out, n, "%.0f ms", ms);
    else if (ms >= 10) snprintf(out, n, "%.1f ms", ms);
    else snprintf(out, n, "%.2f ms", ms);
}

int progress_open(Progress *p, const char *run_dir, long total_steps, long resume_step,
                  int mode, int log_every, int quiet, Err *e)
{
    memset(p, 0, sizeof *p);
    char *path = p->path;
    if (path_fmt(path, sizeof p->path, e, "%s/metrics.jsonl", run_dir)) return -1;
    if (resume_step > 0 && truncate_metrics(path, resume_step, &p->dropped, e)) return -1;
    p->metrics = fopen(path, resume_step > 0 ? "a" : "w");
    if (!p->metrics) return err_set(e, "%s: cannot open for writing: %s", path, strerror(errno));
    p->bar = mode == 2 || (mode == 0 && stdout_is_terminal());
    p->quiet = quiet;
    p->total_steps = total_steps;
    p->first_step = resume_step + 1;
    p->log_every = log_every > 0 ? log_every : 1;
    p->t0 = now_s();
    return 0;
}

static double unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A metrics.jsonl row: one JSON object per line, flushed so a crash keeps
 * the rows so far. */
static void row_begin(JsonOut *j, FILE *f)
{
    json_init(j, f);
    json_begin_object(j);
}

/* A row that does not reach the file (disk full) is an error: a run whose
 * record has holes would be trusted as if it had none. */
static int row_end(Progress *p, JsonOut *j, Err *e)
{
    json_end_object(j);
    json_newline(j);
    int bad = json_finish(j);
    const char *why = bad ? j->error : NULL;
    json_free(j);
    errno = 0;
    if (fflush(p->metrics) != 0 || ferror(p->metrics)) why = strerror(errno ? errno : EIO);
    if (!why) return 0;
    return err_set(e, "%s: cannot write a row: %s; the run stops rather than lose its record "
                      "(make room, then --resume)", p->path, why);
}

/* Tests read rows with sed: "step" and "loss" stay first, in that order.
 * val_loss only on evaluation rows (its presence marks them); loss is null
 * where nothing was measured (no_loss), grad_norm where the step computes
 * none (NaN, zo). */
static int write_metrics_row(Progress *p, const StepReport *r, Err *e)
{
    JsonOut j;
    row_begin(&j, p->metrics);
    json_int(json_key(&j, "step"), r->step);
    json_double(json_key(&j, "loss"), r->no_loss ? NAN : r->loss);
    if (!isnan(r->val_loss)) {
        json_double(json_key(&j, "val_loss"), r->val_loss);
        json_int(json_key(&j, "val_windows"), p->val_windows);
    }
    if (!isnan(r->task_acc)) {
        json_double(json_key(&j, "task_accuracy"), r->task_acc);
        json_double(json_key(&j, "task_accuracy_norm"), r->task_acc_norm);
    }
    json_sig(json_key(&j, "grad_norm"), r->grad_norm, 6);
    json_sig(json_key(&j, "lr"), r->lr, 6);
    json_fixed(json_key(&j, "tokens"), p->tokens_per_step * r->step, 0);
    json_fixed(json_key(&j, "tokens_per_s"), r->tokens_per_s, 1);
    json_fixed(json_key(&j, "gflops"), r->gflops, 2);
    if (p->peak_gflops > 0) json_sig(json_key(&j, "mfu"), r->gflops / p->peak_gflops, 4);
    json_fixed(json_key(&j, "comm_bytes"), r->comm_bytes, 0);
    json_fixed(json_key(&j, "time_ms"), r->time_ms, 3);
    json_fixed(json_key(&j, "compute_ms"), r->compute_ms, 3);
    json_fixed(json_key(&j, "exposed_comm_ms"), r->exposed_ms, 3);
    json_fixed(json_key(&j, "overlapped_comm_ms"), r->overlapped_ms, 3);
    json_fixed(json_key(&j, "idle_ms"), r->idle_ms, 3);
    json_fixed(json_key(&j, "time"), unix_now(), 3);
    return row_end(p, &j, e);
}

/* The row the sitting that trained `step` wrote, or NULL; its length. */
static const char *dropped_row(const Progress *p, long step, size_t *len)
{
    for (const char *line = p->dropped; line && *line;) {
        const char *nl = strchr(line, '\n');
        if (row_step(line) == step) {
            *len = (size_t)(nl - line + 1); /* dropped holds whole lines only */
            return line;
        }
        line = nl ? nl + 1 : NULL;
    }
    return NULL;
}

int progress_replayed(Progress *p, long step, double lr, Err *e)
{
    if (!p->metrics) return 0;
    size_t len = 0;
    const char *old = dropped_row(p, step, &len);
    if (old) {
        errno = 0;
        if (fwrite(old, 1, len, p->metrics) != len || fflush(p->metrics) != 0)
            return err_set(e, "%s: cannot write a row: %s", p->path, strerror(errno ? errno : EIO));
        return 0;
    }
    JsonOut j;
    row_begin(&j, p->metrics);
    json_int(json_key(&j, "step"), step);
    json_null(json_key(&j, "loss"));
    json_sig(json_key(&j, "lr"), lr, 6);
    json_fixed(json_key(&j, "tokens"), p->tokens_per_step * step, 0);
    json_fixed(json_key(&j, "time"), unix_now(), 3);
    json_bool(json_key(&j, "replayed"), 1);
    return row_end(p, &j, e);
}

static void format_bytes(char *out, size_t n, double b)
{
    if (b >= 1e9) snprintf(out, n, "%.2f GB", b / 1e9);
    else if (b >= 1e6) snprintf(out, n, "%.2f MB", b / 1e6);
    else if (b >= 1e3) snprintf(out, n, "%.1f kB", b / 1e3);
    else snprintf(out, n, "%.0f B", b);
}

/* The progress line's fields, most important first: step, loss (and val)
 * and ETA always; a narrow terminal drops the rest from the last listed
 * (GFLOP/s first, tok/s last). */
enum { FIELD_STEP, FIELD_LOSS, FIELD_ETA, FIELD_TOKS, FIELD_MS, FIELD_LR, FIELD_COMM, FIELD_FLOPS,
       N_FIELDS, N_KEPT = FIELD_TOKS };

typedef struct {
    char f[N_FIELDS][128];
} LineFields;

/* The fields [0, n) joined in reading order: step | loss | lr | tok/s |
 * GFLOP/s | comm | ms | ETA. */
static void join_fields(const LineFields *l, int n, char *out, size_t size)
{
    static const int order[] = {FIELD_STEP, FIELD_LOSS, FIELD_LR,  FIELD_TOKS,
                                FIELD_FLOPS, FIELD_COMM, FIELD_MS, FIELD_ETA};
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < N_FIELDS; i++) {
        if (order[i] >= n || !l->f[order[i]][0]) continue;
        int w = snprintf(out + k, size - k, "%s%s", k ? " | " : "", l->f[order[i]]);
        if (w < 0 || (size_t)w >= size - k) return;
        k += (size_t)w;
    }
}

/* The line for `room` columns (0: no limit): fields give way from the
 * least important, so a narrow terminal still shows the ETA. */
static void fit_line(const LineFields *l, int room, char *out, size_t size)
{
    int n = N_FIELDS;
    join_fields(l, n, out, size);
    while (room > 0 && (int)strlen(out) > room && n > N_KEPT) join_fields(l, --n, out, size);
}

/* The bar and the line, fitted to the terminal: fields of the line give way
 * to a bar of at least 8 cells, which takes up to 30 of what is left. \r +
 * clear-to-end redraws in place; keep =
 * end the line (evaluation rows and the last step stay on screen). */
static void draw_bar(Progress *p, const LineFields *l, long step, int keep)
{
    char line[1024];
    int cols = terminal_columns();
    /* room for a bar of 8 cells, "[" "]" and a blank, when there is a total */
    fit_line(l, cols - 1 - (p->total_steps ? 11 : 0), line, sizeof line);
    int len = (int)strlen(line), cells = cols - len - 4;
    if (cells > 30) cells = 30;
    if (cells < 8 || !p->total_steps) cells = 0; /* no step limit: no bar */
    char bar[40] = "";
    if (cells) {
        int filled = (int)((double)cells * step / (p->total_steps ? p->total_steps : 1));
        bar[0] = '[';
        for (int i = 0; i < cells; i++) bar[1 + i] = i < filled ? '#' : '.';
        bar[cells + 1] = ']';
        bar[cells + 2] = ' ';
        bar[cells + 3] = 0;
    }
    int room = cols - 1 - (int)strlen(bar);
    printf("\r\033[K%s%.*s%s", bar, room > 0 ? room : 0, line, keep ? "\n" : "");
    p->open_line = !keep;
}

int progress_report(Progress *p, const StepReport *r, Err *e)
{
    if (p->metrics && write_metrics_row(p, r, e)) return -1;
    int is_eval = !isnan(r->val_loss) || !isnan(r->task_acc);
    if (p->quiet || (!is_eval && r->step % p->log_every && r->step != p->total_steps)) return 0;
    double elapsed = now_s() - p->t0;
    long done = r->step - p->first_step + 1;
    double eta = done > 0 && p->total_steps ? elapsed / done * (p->total_steps - r->step) : NAN;
    char eta_s[32], val[80] = "", comm[32], ms[32], mfu[32] = "", total[32] = "";
    format_duration(eta_s, sizeof eta_s, eta);
    format_bytes(comm, sizeof comm, r->comm_bytes);
    int at = !isnan(r->val_loss) ? snprintf(val, sizeof val, " | val %.4f", r->val_loss) : 0;
    if (!isnan(r->task_acc))
        snprintf(val + at, sizeof val - (size_t)at, " | task acc %.3f (norm %.3f)", r->task_acc,
                 r->task_acc_norm);
    int width = 0;
    for (long t = p->total_steps; t; t /= 10) width++;
    if (p->total_steps) snprintf(total, sizeof total, "/%ld", p->total_steps);
    format_ms(ms, sizeof ms, r->time_ms);
    if (p->peak_gflops > 0) snprintf(mfu, sizeof mfu, " | MFU %.0f%%", 100 * r->gflops / p->peak_gflops);
    LineFields l;
    snprintf(l.f[FIELD_STEP], sizeof l.f[0], "step %*ld%s", width, r->step, total);
    /* a step others decided (a late elastic machine, a swarm machine
     * catching up) or a batch whose mask counts nothing: no loss to show */
    if (r->no_loss)
        snprintf(l.f[FIELD_LOSS], sizeof l.f[0], "loss n/a%s", val);
    else
        snprintf(l.f[FIELD_LOSS], sizeof l.f[0], "loss %.4f%s", r->loss, val);
    snprintf(l.f[FIELD_LR], sizeof l.f[0], "lr %.2e", r->lr);
    snprintf(l.f[FIELD_TOKS], sizeof l.f[0], "%.0f tok/s", r->tokens_per_s);
    snprintf(l.f[FIELD_FLOPS], sizeof l.f[0], "%.1f GFLOP/s%s", r->gflops, mfu);
    snprintf(l.f[FIELD_COMM], sizeof l.f[0], "comm %s", comm);
    snprintf(l.f[FIELD_MS], sizeof l.f[0], "%s", ms);
    snprintf(l.f[FIELD_ETA], sizeof l.f[0], "ETA %s", eta_s);
    if (p->bar) {
        draw_bar(p, &l, r->step, is_eval || r->step == p->total_steps);
    } else {
        char line[1024];
        fit_line(&l, 0, line, sizeof line);
        printf("%s\n", line);
    }
    fflush(stdout);
    return 0;
}

void progress_initial_eval(Progress *p, double val_loss)
{
    if (p->metrics) {
        JsonOut j;
        row_begin(&j, p->metrics);
        json_int(json_key(&j, "step"), 0);
        json_double(json_key(&j, "val_loss"), val_loss);
        json_int(json_key(&j, "val_windows"), p->val_windows);
        json_fixed(json_key(&j, "time"), unix_now(), 3);
        Err ignored;
        /* a failed write here is sticky in the stream: step 1's row reports it */
        row_end(p, &j, &ignored);
    }
    progress_note(p, "step 0 | val %.4f (before training)", val_loss);
}

void progress_note(Progress *p, const char *fmt, ...)
{
    if (p->quiet) return;
    va_list ap;
    va_start(ap, fmt);
    if (p->bar) printf("\r\033[K");
    p->open_line = 0;
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
}

void progress_close(Progress *p)
{
    /* the shell's prompt starts on a line of its own */
    if (p->open_line && !p->quiet) printf("\n");
    p->open_line = 0;
    fflush(stdout);
    if (p->metrics) fclose(p->metrics);
    p->metrics = NULL;
    free(p->dropped);
    p->dropped = NULL;
}

/* ---- the training loop's observer ------------------------------------------ */

static int obs_begin(void *ctx, const TrainConfig *c, long first_step, Err *e)
{
    Progress *p = ctx;
    /* a --time-budget run without --steps: no total to count down to */
    long total = c->steps == TRAIN_STEPS_UNLIMITED ? 0 : c->steps;
    int rc = progress_open(p, c->out, total, first_step, c->progress, c->log_every, c->quiet, e);
    p->tokens_per_step = (double)c->global_batch * c->model.seq_len;
    p->val_windows = (long)c->eval_batches * c->global_batch;
    p->peak_gflops = (double)c->peak_gflops * c->dp * c->tp * c->pp;
    return rc;
}

static void obs_note(void *ctx, const char *line) { progress_note(ctx, "%s", line); }
static void obs_initial_eval(void *ctx, double v) { progress_initial_eval(ctx, v); }
static int obs_step(void *ctx, const StepReport *r, Err *e) { return progress_report(ctx, r, e); }
static int obs_replayed(void *ctx, long step, double lr, Err *e)
{
    return progress_replayed(ctx, step, lr, e);
}
static void obs_end(void *ctx) { progress_close(ctx); }
static void obs_timing(void *ctx, const RunTiming *t)
{
    char line[512];
    planner_verdict(t, line, sizeof line);
    progress_note(ctx, "%s", line);
}

TrainObserver progress_observer(Progress *p)
{
    memset(p, 0, sizeof *p);
    return (TrainObserver){p,        obs_begin,    obs_note, obs_initial_eval,
                           obs_step, obs_replayed, obs_end,  obs_timing};
}
