#include <math.h>
#include <stdlib.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "comm/mpi/comm.h"
#include "coordinator/display/progress.h"
#include "launch/commands.h"
#include "launch/run_train.h"
#include "base/options.h"
#include "worker/run/train.h"

/* Parses flags; returns 0 to go on, or an exit code. */
static int parse_train_args(TrainConfig *c, int argc, char **argv, int *done)
{
    train_config_defaults(c);
    const OptSpec *table = train_config_table(NULL);
    int help = 0;
    *done = 0;
    int rc = opts_parse("train", table, c, argc, argv, 1, NULL, 0, NULL, &help);
    if (rc) return rc;
    if (help) {
        opts_print_help(stdout, "mpitrain train [options]",
                        "Trains a model. Under mpirun/srun every rank runs this command; rank 0 "
                        "coordinates,\nprints progress and writes <out>/metrics.jsonl and "
                        "<out>/ckpt/.\n"
                        "SIGUSR1, SIGTERM or SIGINT stops the run after the current step with a "
                        "checkpoint of it\n(under mpirun send SIGUSR1 to mpirun: its SIGTERM "
                        "kills the ranks a second later).\n"
                        "Exit codes: 0 done (or a --resume already at --steps); 1 runtime error; "
                        "2 usage error;\n3 stopped by a signal, checkpoint saved (continue with "
                        "the command it prints).",
                        table);
        *done = 1;
        return 0;
    }
    train_config_finish(c);
    c->given = train_config_given(argc, argv, 1);
    return 0;
}

/* Only rank 0 speaks: every rank holds the same agreed message. */
static int fail(const CommWorld *w, const char *what, const Err *e, int code)
{
    if (w->rank == 0) fprintf(stderr, "mpitrain train: %s%s\n", what, e->msg);
    comm_finalize();
    return code;
}

static void append(char *line, size_t n, const char *text)
{
    size_t at = strlen(line);
    if (at < n) snprintf(line + at, n - at, "%s", text);
}

/* Appends s to line as one shell word: as is when every byte is safe,
 * else in single quotes (a quote inside as '\''). */
static void add_word(char *line, size_t n, const char *s)
{
    static const char SAFE[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789@%+:,./_-";
    if (line[0]) append(line, n, " ");
    if (*s && s[strspn(s, SAFE)] == 0) {
        append(line, n, s);
        return;
    }
    append(line, n, "'");
    for (const char *p = s; *p; p++) {
        char one[2] = {*p, 0};
        append(line, n, *p == '\'' ? "'\\''" : one);
    }
    append(line, n, "'");
}

static void add_number(char *line, size_t n, long v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%ld", v);
    add_word(line, n, buf);
}

/* This program's own path, as the launcher must find it again. */
static void add_program(char *line, size_t n)
{
    char self[PATH_BUF];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    self[len > 0 ? len : 0] = 0;
    add_word(line, n, len > 0 ? self : "mpitrain");
}

/* The words that start this job again with its number of ranks, before
 * "train": mpitrain-local's (it says so in MPITRAIN_LOCAL), srun's, mpirun's
 * (with the flags it needs here: as root, more ranks than cores), or the
 * program alone. */
static void add_launcher(char *line, size_t n, int ranks)
{
    const char *local = getenv("MPITRAIN_LOCAL");
    const char *srun_tasks = getenv("SLURM_STEP_NUM_TASKS"), *mpi = getenv("SLURM_MPI_TYPE");
    if (local && *local) {
        add_word(line, n, local);
        add_word(line, n, "-n");
        add_number(line, n, ranks);
        return;
    }
    if (srun_tasks && getenv("SLURM_PROCID") && atoi(srun_tasks) == ranks) {
        add_word(line, n, "srun");
        if (mpi && *mpi && strcmp(mpi, "none")) {
            char flag[64];
            snprintf(flag, sizeof flag, "--mpi=%s", mpi);
            add_word(line, n, flag);
        }
        add_word(line, n, "-n");
        add_number(line, n, ranks);
    } else if (getenv("OMPI_COMM_WORLD_SIZE")) {
        add_word(line, n, "mpirun");
        add_word(line, n, "-np");
        add_number(line, n, ranks);
        if (geteuid() == 0 && !getenv("OMPI_ALLOW_RUN_AS_ROOT")) add_word(line, n, "--allow-run-as-root");
        if (ranks > sysconf(_SC_NPROCESSORS_ONLN)) add_word(line, n, "--oversubscribe");
    }
    add_program(line, n);
}

/* The command that continues this run where it stopped, quoted for a
 * shell. The run's config.json holds every setting it ran with, so resuming
 * with it continues bit for bit under the same launcher and ranks. Under
 * the supervisor, its own command line (MPITRAIN_SUPERVISOR_COMMAND, which
 * it quotes): it resumes --out by itself. */
static void resume_command(const TrainConfig *c, int ranks, char *line, size_t n)
{
    const char *sup = getenv("MPITRAIN_SUPERVISOR_COMMAND");
    line[0] = 0;
    if (sup && *sup) {
        snprintf(line, n, "%s", sup);
        return;
    }
    char config[PATH_BUF + 16];
    snprintf(config, sizeof config, "%s/config.json", c->out);
    add_launcher(line, n, ranks);
    add_word(line, n, "train");
    add_word(line, n, "--resume");
    add_word(line, n, c->out);
    add_word(line, n, "--config");
    add_word(line, n, config);
}

/* Rank 0, after a stop on request: where it stopped and how to go on. */
static void say_stopped(const TrainConfig *c, const CommWorld *w, const TrainResult *res)
{
    char buf[32], line[4 * PATH_BUF];
    const char *sig = launch_signal_name(res->stop_signal, buf, sizeof buf);
    resume_command(c, w->size, line, sizeof line);
    fflush(stdout);
    fprintf(stderr, "mpitrain train: stopped at step %ld by %s (checkpoint %s); resume with: %s\n",
            res->last_step, sig, res->last_ckpt, line);
}

int cmd_train(int argc, char **argv)
{
    TrainConfig cfg;
    int done;
    int rc = parse_train_args(&cfg, argc, argv, &done);
    if (rc || done) return rc;
    CommWorld w;
    comm_init(&argc, &argv, &w);
    /* after MPI is up, so that these handlers are the ones in place */
    StopFlag *stop = launch_catch_stop_signals();
    Err e = {{0}};
    TrainResult res;
    Progress prog;
    TrainObserver obs = progress_observer(&prog);
    rc = launch_train(&cfg, &w, &obs, stop, &res, &e);
    if (rc && rc != EXIT_STOPPED) return fail(&w, "", &e, rc);
    if (rc && w.rank == 0) say_stopped(&cfg, &w, &res);
    if (!rc && res.complete && w.rank == 0) printf("mpitrain train: %s\n", e.msg);
    comm_finalize();
    return rc;
}
