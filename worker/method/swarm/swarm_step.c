/* The swarm's step strategy (--swarm-listen / --swarm-join): a ZO run
 * (worker/method/zo/zo_step.h) whose machines are processes that come and
 * go over libfabric, one keeper deciding each step's codes for all
 * (worker/method/swarm/swarm.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "base/fileio.h"
#include "base/hash.h"
#include "comm/trace/trace.h"
#include "worker/loop/strategy.h"
#include "worker/method/swarm/swarm.h"
#include "worker/method/swarm/swarm_config.h"
#include "worker/method/swarm/swarm_step.h"
#include "worker/method/zo/zo_config.h"
#include "worker/method/zo/zo_step.h"

/* Machines of a swarm reading one file take it from different places. */
#define SWARM_DATA_STRIDE 7919

typedef struct {
    Zo zo;
    Swarm *sw;         /* the machines' fabric */
    SwarmDecision dec; /* the step's agreed set */
    long applied;      /* steps applied, for the goodbye */
    long end_step;     /* the run's last step + 1 */
    uint64_t frozen;   /* the hash every weight hash starts from (weights_hash) */
} SwarmRun;

/* Under LoRA the machines compute with a frozen base that params does not
 * hold: every weight hash starts from the base's, so a machine whose base
 * differs is refused at its HELLO (a fresh joiner's base id) or fails the
 * first weight check (a resumed one). Without LoRA the start is FNV's own
 * and the hash is zo_hash's. */
static uint64_t frozen_hash(const Model *m)
{
    return fnv1a64(FNV1A64_INIT, m->base.params, m->base.n_params * sizeof(float));
}

static uint64_t weights_hash(const SwarmRun *s, const Model *m)
{
    return fnv1a64(s->frozen, m->params, m->n_params * sizeof(float));
}

static void swarm_notes(Trainer *t, SwarmRun *s)
{
    for (const char *ev; (ev = swarm_next_event(s->sw));) trainer_note(t, "swarm: %s", ev);
}

/* This machine's endpoint, with the journal it holds and the run's
 * identity (a joiner's must match the keeper's). */
static int open_swarm(Trainer *t, SwarmRun *s, Err *e)
{
    const TrainConfig *c = t->cfg;
    if (t->w->size > 1)
        return err_set(e, "--swarm-%s: a swarm machine is one process for now (this one has %d "
                          "ranks); tp/pp inside a swarm machine is not built yet",
                       c->swarm_join[0] ? "join" : "listen", t->w->size);
    char path[PATH_BUF], text[4096];
    zo_journal_path(t, path, sizeof path);
    if (journal_sync(&s->zo.j, e)) return -1;
    void *bytes = NULL;
    size_t len = 0;
    if (read_file(path, (size_t)1 << 34, &bytes, &len, e)) return -1;
    int rc = swarm_config_text(c, s->zo.id.scale, text, sizeof text, e);
    SwarmOptions o = {
        .provider = c->swarm_provider ? "shm" : "tcp",
        .listen = c->swarm_listen,
        .join = c->swarm_join,
        .deadline_s = c->swarm_deadline,
        .misses = c->swarm_misses,
        .wait_for = c->swarm_wait,
        .check_every = c->zo_check_every,
        .ident = s->zo.id,
        .config_text = text,
        .records = (const uint8_t *)bytes + JOURNAL_HEADER_BYTES,
        .records_len = len > JOURNAL_HEADER_BYTES ? len - JOURNAL_HEADER_BYTES : 0,
        .end_step = (uint32_t)c->steps,
    };
    /* the weights a fresh run starts from; a resumed one's are past them */
    o.ident.base_id = t->start_step == 0 ? weights_hash(s, &t->model) : 0;
    const char *hold = getenv("MPITRAIN_TEST_SWARM_HOLD");
    if (hold && sscanf(hold, "%u,%d", &o.hold_step, &o.hold_for) != 2) o.hold_for = 0;
    const char *norelay = getenv("MPITRAIN_TEST_SWARM_NORELAY");
    if (norelay && sscanf(norelay, "%u", &o.no_relay_step) != 1) o.no_relay_step = 0;
    if (!rc) rc = swarm_open(&s->sw, &o, e);
    free(bytes);
    if (rc) return -1;
    swarm_notes(t, s);
    return 0;
}

/* The journal; a new one starts with the roster of epoch 0, unless this
 * machine joins: then its records come from the keeper's. */
static int start_journal(Trainer *t, SwarmRun *s, Err *e)
{
    int fresh;
    if (zo_open_journal(t, &s->zo, &fresh, e)) return -1;
    if (fresh && !t->cfg->swarm_join[0])
        return journal_append_roster(&s->zo.j, 0, (uint32_t)t->mesh.dims.dp, 0, e);
    return 0;
}

static int swarm_setup(Trainer *t, void **state, Err *e)
{
    SwarmRun *s = calloc(1, sizeof *s);
    *state = s;
    if (!s) return err_set(e, "out of memory for the zo state");
    uint32_t last; /* unused: the keeper records the swarm's rosters */
    if (zo_prepare(t, &s->zo, &last, e)) return -1;
    int rc = trainer_is_rank0(t) ? start_journal(t, s, e) : 0;
    s->end_step = t->cfg->steps;
    s->frozen = frozen_hash(&t->model);
    if (!rc) rc = open_swarm(t, s, e);
    if (!rc) zo_note_setup(t, &s->zo);
    return rc;
}

/* A swarm step: the codes (unless the decision is already here: a machine
 * catching up computes nothing), then the keeper's agreed set. */
static int swarm_compute(Trainer *t, void *state, long step, StepOutcome *o, Err *e)
{
    SwarmRun *s = state;
    int known = swarm_known(s->sw, (uint32_t)step, e);
    if (known < 0) return -1;
    double sums[3] = {0, 0, 0}; /* zo_machine_codes' */
    uint32_t slot = swarm_slot(s->sw);
    if (!known) {
        uint64_t pos = t->data_pos + (uint64_t)(slot == SWARM_NO_SLOT ? 0 : slot) * SWARM_DATA_STRIDE;
        trainer_load_batch(t, &t->train, pos);
        zo_machine_codes(t, &s->zo, step, slot, sums);
    }
    t->data_pos++;
    int every = t->cfg->zo_check_every;
    uint64_t whash = every > 0 && step % every == 0 ? weights_hash(s, &t->model) : 0;
    int rc = swarm_step(s->sw, (uint32_t)step, s->zo.mine, t->lr, whash, &s->dec, e);
    SwarmStats st;
    swarm_stats(s->sw, &st);
    t->strategy_bytes = (double)st.bytes_sent;
    swarm_notes(t, s);
    if (rc) return -1;
    o->no_loss = known || s->dec.caught_up || (sums[1] == 0 && sums[2] > 0);
    o->loss = sums[1] > 0 ? sums[0] / sums[1] : NAN;
    o->grad_norm = NAN;
    return 0;
}

/* The keeper's set, applied and journaled as it came: the same records on
 * every machine. skip needs nothing here, as in ZO_STRATEGY: a step of
 * skipped codes is applied and journaled like any other. */
static int swarm_apply(Trainer *t, void *state, long step, int skip, Err *e)
{
    (void)skip;
    SwarmRun *s = state;
    const TrainConfig *c = t->cfg;
    const SwarmDecision *d = &s->dec;
    trace_begin("zo update", TR_OPT);
    int used = zo_step_update(&t->model, t->model.params, s->zo.active, c->seed, d->step, d->codes,
                              (int)d->width, (int)d->samples, d->lr, s->zo.id.scale,
                              c->optim.weight_decay);
    trace_end();
    if (used < 0) return err_set(e, "step %ld: out of memory for the codes", step + 1);
    s->applied = step + 1;
    return journal_append_record(&s->zo.j, d->records, d->records_len, e);
}

/* A stopped machine says goodbye before its checkpoint is written. */
static void swarm_on_stop(Trainer *t, void *state)
{
    (void)t;
    SwarmRun *s = state;
    swarm_leave(s->sw);
}

static int swarm_before_save(Trainer *t, void *state, Err *e)
{
    SwarmRun *s = state;
    return zo_sync_journal(t, &s->zo, e);
}

static void swarm_free(void *state)
{
    SwarmRun *s = state;
    if (!s) return;
    if (s->sw) swarm_close(s->sw, s->applied >= s->end_step);
    zo_release(&s->zo);
    free(s);
}

/* A swarm is a ZO run: it reports under ZO's name (the planner's verdict
 * names the method it predicted). */
/* the scale in use, as the --zo-scale setting a checkpoint records */
static void swarm_chosen_settings(const Trainer *t, const void *state, TrainConfig *c)
{
    zo_chosen_settings(t, &((const SwarmRun *)state)->zo, c);
}

/* Named "zo": the planner predicts and reports it as the ZO run it is. */
const StepStrategy SWARM_STRATEGY = {
    .name = "zo",
    .selected_by = swarm_config_selected,
    .validate = swarm_config_validate,
    .resume_keeps = ZO_RESUME_KEEPS,
    .forward_only = 1,
    .check_run = zo_check_run,
    .setup = swarm_setup,
    .compute = swarm_compute,
    .apply = swarm_apply,
    .after_step = zo_after_step,
    .before_save = swarm_before_save,
    .on_stop = swarm_on_stop,
    .chosen_settings = swarm_chosen_settings,
    .flops_per_step = zo_flops,
    .free = swarm_free,
};
