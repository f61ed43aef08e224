#include "launch/run_train.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "base/options.h"
#include "comm/trace/trace.h"
#include "coordinator/plan/distribute.h"
#include "coordinator/display/timeline.h"
#include "launch/commands.h"
#include "worker/loop/rundir.h"
#include "worker/method/methods.h"
#include "worker/method/swarm/swarm.h"
#include "worker/method/swarm/swarm_config.h"

/* Rank 0: the King James Bible and runs/<model>-<time> unless told. The
 * dataset is made only for flags that pass validation, so a refused command
 * leaves nothing behind (EXIT_USAGE: refused; 1: the dataset failed). */
static int rank0_defaults(TrainConfig *c, Err *e)
{
    int make_data = !c->data[0] && !c->resume[0];
    if (make_data) snprintf(c->data, sizeof c->data, "%s", DEFAULT_DATA);
    if (!c->resume[0]) train_config_default_out(c);
    if (!make_data) return 0;
    /* with --init-from or --swarm-join the model's shape comes later */
    if (!c->init_from[0] && !c->swarm_join[0] && method_resolve(c, e)) {
        err_wrap(e, "invalid plan");
        return EXIT_USAGE;
    }
    return ensure_default_data(e->msg, sizeof e->msg) ? 1 : 0;
}

/* --swarm-join: the run's settings come from its keeper; this machine's
 * own flags must agree with them (its data, out dir and the like are its
 * own). */
static int adopt_swarm_settings(TrainConfig *c, Err *e)
{
    if (!c->swarm_join[0]) return 0;
    char *text;
    size_t len;
    uint32_t step;
    const char *provider = c->swarm_provider ? "shm" : "tcp";
    if (swarm_fetch_config(provider, c->swarm_join, &text, &len, &step, e)) return -1;
    int rc = swarm_config_adopt(c, text, len, c->swarm_join, e);
    free(text);
    return rc;
}

static StopFlag stop_requested;

/* Async-signal-safe: one store to a sig_atomic_t, nothing else (no MPI, no
 * stdio); the loop does the rest at the next step boundary. */
static void on_stop_signal(int sig)
{
    if (!stop_requested) stop_requested = sig;
}

StopFlag *launch_catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    /* SA_RESTART: a checkpoint write or a poll interrupted by the signal
     * carries on rather than failing with EINTR */
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGUSR1, SIGTERM, SIGINT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
    return &stop_requested;
}

const char *launch_signal_name(int sig, char *buf, size_t n)
{
    switch (sig) {
    case SIGUSR1: return "SIGUSR1";
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    default: snprintf(buf, n, "signal %d", sig); return buf;
    }
}

/* --resume of a finished run: its final checkpoint is the result (rank 0
 * knows it; the others learn the verdict). */
static int already_complete(const TrainConfig *c, TrainResult *res)
{
    memset(res, 0, sizeof *res);
    res->final_loss = res->final_val_loss = NAN;
    res->first_step = res->last_step = c->steps;
    snprintf(res->run_dir, sizeof res->run_dir, "%s", c->out);
    snprintf(res->last_ckpt, sizeof res->last_ckpt, "%s", c->resume);
    res->complete = 1;
    return 0;
}

/* --overwrite of a directory that is not a run's (someone's files, a link
 * to elsewhere) is refused before anything is touched. */
static int check_overwrite(const TrainConfig *c, Err *e)
{
    struct stat st;
    if (!c->overwrite || c->resume[0] || lstat(c->out, &st) != 0) return 0;
    return run_dir_check_replaceable(c->out, e);
}

int launch_train(TrainConfig *c, const CommWorld *w, const TrainObserver *obs, StopFlag *stop,
                 TrainResult *res, Err *e)
{
    Err mine = {{0}};
    train_config_finish(c);
    int rc = w->rank == 0 ? rank0_defaults(c, &mine) : 0;
    if (!rc && w->rank == 0) rc = adopt_swarm_settings(c, &mine);
    if (comm_agree(group_world(), rc, &mine, e)) return rc == EXIT_USAGE ? EXIT_USAGE : 1;
    rc = w->rank == 0 ? check_overwrite(c, &mine) : 0;
    if (comm_agree(group_world(), rc, &mine, e)) return EXIT_USAGE;
    rc = plan_distribute(group_world(), c, w, e);
    /* a checkpoint that cannot be read is a runtime failure (exit 1): the
     * supervisor retries from an older one; a refused plan is the flags' */
    if (rc == PLAN_ERR_RESUME) return 1;
    if (rc == PLAN_COMPLETE) return already_complete(c, res);
    if (rc) {
        err_wrap(e, "invalid plan");
        return EXIT_USAGE;
    }
    int failed = train_run(c, w, obs, stop, res, e);
    if (!failed && c->trace[0]) {
        rc = timeline_write(group_world(), c->trace, &mine);
        failed = comm_agree(group_world(), rc, &mine, e);
    }
    trace_disable();
    if (failed) return 1;
    return res->stop_signal ? EXIT_STOPPED : 0;
}
