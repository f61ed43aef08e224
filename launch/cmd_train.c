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
                        "<out>/ckpt/.",
                        table);
        *done = 1;
        return 0;
    }
    train_config_finish(c);
    return 0;
}

/* Only rank 0 speaks: every rank holds the same agreed message. */
static int fail(const CommWorld *w, const char *what, const Err *e, int code)
{
    if (w->rank == 0) fprintf(stderr, "mpitrain train: %s%s\n", what, e->msg);
    comm_finalize();
    return code;
}

int cmd_train(int argc, char **argv)
{
    TrainConfig cfg;
    int done;
    int rc = parse_train_args(&cfg, argc, argv, &done);
    if (rc || done) return rc;
    CommWorld w;
    comm_init(&argc, &argv, &w);
    Err e = {{0}};
    TrainResult res;
    Progress prog;
    TrainObserver obs = progress_observer(&prog);
    rc = launch_train(&cfg, &w, &obs, &res, &e);
    if (rc) return fail(&w, "", &e, rc);
    comm_finalize();
    return 0;
}
