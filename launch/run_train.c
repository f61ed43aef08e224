#include "launch/run_train.h"

#include <stdio.h>
#include "base/options.h"
#include "comm/trace.h"
#include "coordinator/plan.h"
#include "coordinator/timeline.h"
#include "launch/commands.h"

/* Rank 0: the King James Bible and runs/<model>-<time> unless told. */
static int rank0_defaults(TrainConfig *c, Err *e)
{
    int bad = 0;
    if (!c->data[0] && !c->resume[0]) {
        bad = ensure_default_data(e->msg, sizeof e->msg);
        snprintf(c->data, sizeof c->data, "%s", DEFAULT_DATA);
    }
    if (!c->resume[0]) train_config_default_out(c);
    return bad ? -1 : 0;
}

int launch_train(TrainConfig *c, const CommWorld *w, const TrainObserver *obs, TrainResult *res,
                 Err *e)
{
    Err mine = {{0}};
    train_config_finish(c);
    int rc = w->rank == 0 ? rank0_defaults(c, &mine) : 0;
    if (comm_agree(group_world(), rc, &mine, e)) return 1;
    rc = plan_distribute(group_world(), c, w, e);
    /* a checkpoint that cannot be read is a runtime failure (exit 1): the
     * supervisor retries from an older one; a refused plan is the flags' */
    if (rc == PLAN_ERR_RESUME) return 1;
    if (rc) {
        err_wrap(e, "invalid plan");
        return EXIT_USAGE;
    }
    int failed = train_run(c, w, obs, res, e);
    if (!failed && c->trace[0]) {
        rc = timeline_write(group_world(), c->trace, &mine);
        failed = comm_agree(group_world(), rc, &mine, e);
    }
    trace_disable();
    return failed ? 1 : 0;
}
