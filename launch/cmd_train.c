#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "comm/comm.h"
#include "coordinator/progress.h"
#include "launch/commands.h"
#include "launch/run_train.h"
#include "base/options.h"
#include "worker/loop/trainer.h"

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
                        "Exit codes: 0 done; 1 runtime error; 2 usage error; 3 stopped by a "
                        "signal, checkpoint saved\n(continue with --resume <out>).",
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

/* Rank 0, after a stop on request: where it stopped and how to go on. The
 * run's config.json holds every setting it ran with, so resuming with it
 * continues bit for bit (under the same launcher and number of ranks). */
static void say_stopped(const TrainConfig *c, const TrainResult *res)
{
    char buf[32];
    const char *sig = launch_signal_name(res->stop_signal, buf, sizeof buf);
    fflush(stdout);
    fprintf(stderr, "mpitrain train: stopped at step %ld by %s (checkpoint %s); resume with: "
                    "mpitrain train --resume %s --config %s/config.json\n",
            res->last_step, sig, res->last_ckpt, c->out, c->out);
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
    if (rc && w.rank == 0) say_stopped(&cfg, &res);
    comm_finalize();
    return rc;
}
