/* The shared-randomness step strategy (--optimizer zo): see worker/method/zo/zo.h
 * for the protocol and worker/method/zo/journal.h for the history it writes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/fileio.h"
#include "comm/trace.h"
#include "worker/loop/strategy.h"
#include "worker/method/swarm/swarm.h"
#include "worker/method/swarm/swarm_config.h"
#include "worker/method/zo/journal.h"
#include "worker/method/zo/zo.h"
#include "worker/method/zo/zo_params.h"

#define WARMUP_STEP 0xFFFFFFFFu /* the scale warm-up's own perturbation stream */

typedef struct {
    ZoView view;      /* theta +- eps z, a block at a time: params are never touched */
    uint8_t *active;  /* --zo-params: the tensors perturbed and updated; NULL = all */
    uint64_t params_id; /* the selection's id in the journal (0 = all) */
    int8_t *mine, *all;
    Journal j;        /* rank 0 only */
    uint32_t epoch;   /* the roster epoch in force */
    Swarm *sw;        /* --swarm-listen / --swarm-join: the machines' fabric */
    SwarmDecision dec; /* the step's agreed set (swarm) */
    long applied;     /* steps applied, for the swarm's goodbye */
    long end_step;    /* the run's last step + 1 */
} Zo;

/* Machines of a swarm reading one file take it from different places. */
#define SWARM_DATA_STRIDE 7919

/* Mean loss of this machine's batch at theta + step z. The view's scratch
 * was allocated in setup, so installing it cannot fail here. */
static double machine_loss(Trainer *t, Zo *z, ZoId id, float step)
{
    Err e;
    z->view = (ZoView){t->cfg->seed, id, step, z->active};
    model_set_weight_view(&t->model, zo_view_weights, &z->view, &e);
    double local = pipeline_eval(&t->pipe, t->inputs, t->targets);
    model_set_weight_view(&t->model, NULL, NULL, &e);
    double preds = (double)t->train.local_batch * model_preds_per_seq(&t->cfg->model);
    return trainer_loss_sum(t, t->mesh.mp, local) / preds;
}

/* Projected gradient along perturbation id; *mean = (L+ + L-) / 2. */
static double projected_grad(Trainer *t, Zo *z, ZoId id, double *mean)
{
    const float eps = t->cfg->zo_eps;
    double lp = machine_loss(t, z, id, eps);
    double lm = machine_loss(t, z, id, -eps);
    *mean = 0.5 * (lp + lm);
    return (lp - lm) / (2.0 * eps);
}

/* --zo-scale 0: twice the largest |g| of a few warm-up perturbations maps to
 * code 127, agreed over all machines. */
static float pick_scale(Trainer *t, Zo *z)
{
    loader_batch(&t->train, t->data_pos, t->inputs, t->targets);
    double big = 0, mean;
    for (int s = 0; s < t->cfg->zo_samples || s < 4; s++) {
        double g = projected_grad(t, z, (ZoId){WARMUP_STEP, (uint32_t)t->mesh.me.dp, (uint32_t)s}, &mean);
        if (isfinite(g) && fabs(g) > big) big = fabs(g);
    }
    coll_allreduce_max_f64(t->mesh.world, &big, 1);
    return big > 0 ? (float)(2.0 * big / 127.0) : 1e-3f;
}

static void journal_path(const Trainer *t, char *out, size_t n)
{
    snprintf(out, n, "%s/zo/journal.bin", t->cfg->out);
}

/* An existing journal continues only the run that wrote it: the same seed,
 * samples, model and --zo-params selection. */
static int journal_matches_run(const Trainer *t, const Journal *j, const char *path, Err *e)
{
    if (j->h.seed != t->cfg->seed || j->h.samples != (uint32_t)t->cfg->zo_samples ||
        j->h.global_params != t->model.global_params)
        return err_set(e, "%s: the journal belongs to another run (seed, samples or model differ)",
                       path);
    uint64_t id;
    if (zo_params_id(&t->cfg->model, t->cfg->zo_params, &id, e)) return -1;
    return zo_params_check_journal(path, j->params_id, id, t->cfg->zo_params, e);
}

static int zo_check_run(Trainer *t, Err *e)
{
    char path[PATH_BUF];
    journal_path(t, path, sizeof path);
    /* --overwrite throws the old journal away with the rest of the run */
    if (t->cfg->overwrite || access(path, F_OK) != 0) return 0;
    Journal j;
    if (journal_open_read(&j, path, e)) return -1;
    int rc = journal_matches_run(t, &j, path, e);
    journal_close(&j);
    return rc;
}

/* One pass over an existing journal: its scale, the roster in force, and
 * (resuming) the steps past the checkpoint replayed, so a machine that
 * missed them catches up. *machines: the last roster's machine count. */
static int scan_journal(Trainer *t, Zo *z, const char *path, uint32_t *machines, Err *e)
{
    Journal j;
    if (journal_open_read(&j, path, e)) return -1;
    if (journal_matches_run(t, &j, path, e)) {
        journal_close(&j);
        return -1;
    }
    t->zo_scale = j.h.scale;
    JournalRecord r;
    int rc, replayed = 0;
    while ((rc = journal_next(&j, &r, e)) == 1) {
        if (r.type == JREC_ROSTER) {
            z->epoch = r.epoch;
            *machines = r.machines;
            continue;
        }
        if (!t->start_step || (long)r.step < t->start_step) continue;
        if ((long)r.step != t->start_step) {
            rc = err_set(e, "%s: record %ld is step %u but step %ld was expected next", path,
                         j.index, r.step, t->start_step);
            break;
        }
        if (zo_step_update(&t->model, t->model.params, z->active, j.h.seed, r.step, r.codes,
                           (int)r.machines, (int)r.samples, r.lr, j.h.scale,
                           j.h.weight_decay) < 0) {
            rc = err_set(e, "out of memory for the %u codes of step %u", r.machines * r.samples,
                         r.step);
            break;
        }
        /* metrics.jsonl keeps one row per step: the caught-up ones too */
        if (trainer_is_rank0(t) && t->obs->replayed &&
            (rc = t->obs->replayed(t->obs->ctx, (long)r.step + 1, r.lr, e)))
            break;
        t->start_step++;
        t->data_pos++;
        replayed++;
    }
    char torn[PATH_BUF + 128] = "";
    if (rc == 0 && j.torn_bytes) journal_torn_message(&j, torn, sizeof torn);
    journal_close(&j);
    if (rc < 0) return -1;
    if (torn[0]) trainer_note(t, "zo: warning: %s", torn);
    if (replayed)
        trainer_note(t, "zo: caught up %d step(s) from the journal, now at step %ld", replayed,
                     t->start_step);
    return 0;
}

static int open_journal(Trainer *t, Zo *z, Err *e)
{
    char path[PATH_BUF], dir[PATH_BUF];
    journal_path(t, path, sizeof path);
    snprintf(dir, sizeof dir, "%s/zo", t->cfg->out);
    if (mkdir_p(dir, e)) return -1;
    JournalHeader h = {t->cfg->seed, t->cfg->zo_eps, t->zo_scale, t->cfg->optim.weight_decay,
                       (uint32_t)t->cfg->zo_samples, t->model.global_params};
    int fresh = access(path, F_OK) != 0;
    if (journal_open_append_params(&z->j, path, &h, z->params_id, e)) return -1;
    if (z->j.torn_bytes)
        trainer_note(t, "zo: cut the torn last record off %s: appending from byte %ld", path,
                     z->j.torn_off);
    /* a joiner's journal starts as the keeper's: its records come from there */
    if (fresh && !t->cfg->swarm_join[0])
        return journal_append_roster(&z->j, 0, (uint32_t)t->mesh.dims.dp, 0, e);
    return 0;
}

/* A resumed run with another number of machines starts a new roster epoch. */
static int record_roster(Trainer *t, Zo *z, uint32_t last_machines, Err *e)
{
    if (z->sw || !trainer_is_rank0(t) || last_machines == (uint32_t)t->mesh.dims.dp) return 0;
    z->epoch++;
    trainer_note(t, "zo: roster epoch %u: %d machine(s) from step %ld (was %u)", z->epoch,
                 t->mesh.dims.dp, t->start_step, last_machines);
    return journal_append_roster(&z->j, z->epoch, (uint32_t)t->mesh.dims.dp,
                                 (uint32_t)t->start_step, e);
}

/* Every K steps each (tp, pp) shard's weight bits must agree across machines. */
static int check_consistency(Trainer *t, long step, Err *e)
{
    uint64_t h = zo_hash(t->model.params, t->model.n_params);
    int64_t lo = (int64_t)h, hi = (int64_t)h;
    coll_allreduce_min_i64(t->mesh.dp, &lo, 1);
    coll_allreduce_max_i64(t->mesh.dp, &hi, 1);
    if (lo == hi) return 0;
    return err_set(e, "step %ld: weights of shard (tp %d, pp %d) differ between machines "
                      "(machine %d hashes to %016llx; hashes range %016llx..%016llx): the "
                      "replicas desynchronized, stopping",
                   step, t->mesh.me.tp, t->mesh.me.pp, t->mesh.me.dp, (unsigned long long)h,
                   (unsigned long long)lo, (unsigned long long)hi);
}

/* --zo-params: which of this shard's tensors are perturbed and updated
 * (NULL when all are), the selection's id, and a note of its size. */
static int select_params(Trainer *t, Zo *z, Err *e)
{
    const char *spec = t->cfg->zo_params;
    if (zo_params_id(&t->cfg->model, spec, &z->params_id, e)) return -1;
    if (z->params_id == ZO_PARAMS_ALL_ID) return 0;
    z->active = calloc(t->model.n_tensors ? t->model.n_tensors : 1, 1);
    if (!z->active) return err_set(e, "out of memory for the --zo-params mask");
    if (zo_params_select(&t->model, spec, z->active, e)) return -1;
    int n, of;
    uint64_t el, of_el;
    if (zo_params_count(&t->cfg->model, spec, &n, &of, &el, &of_el, e)) return -1;
    trainer_note(t, "zo: --zo-params %s: perturbing %d of %d tensors, %.4gM of %.4gM parameters",
                 spec, n, of, el / 1e6, of_el / 1e6);
    return 0;
}

static int in_swarm(const TrainConfig *c) { return c->swarm_listen[0] || c->swarm_join[0]; }

static void swarm_notes(Trainer *t, Zo *z)
{
    for (const char *ev; (ev = swarm_next_event(z->sw));) trainer_note(t, "swarm: %s", ev);
}

/* This machine's endpoint, with the journal it holds and the run's
 * identity (a joiner's must match the keeper's). */
static int open_swarm(Trainer *t, Zo *z, Err *e)
{
    const TrainConfig *c = t->cfg;
    if (t->w->size > 1)
        return err_set(e, "--swarm-%s: a swarm machine is one process for now (this one has %d "
                          "ranks); tp/pp inside a swarm machine is not built yet",
                       c->swarm_join[0] ? "join" : "listen", t->w->size);
    char path[PATH_BUF], text[4096];
    journal_path(t, path, sizeof path);
    if (journal_sync(&z->j, e)) return -1;
    void *bytes = NULL;
    size_t len = 0;
    if (read_file(path, (size_t)1 << 34, &bytes, &len, e)) return -1;
    int rc = swarm_config_text(c, t->zo_scale, text, sizeof text, e);
    SwarmOptions o = {
        .provider = c->swarm_provider ? "shm" : "tcp",
        .listen = c->swarm_listen,
        .join = c->swarm_join,
        .deadline_s = c->swarm_deadline,
        .misses = c->swarm_misses,
        .wait_for = c->swarm_wait,
        .check_every = c->zo_check_every,
        .ident = {c->seed, t->model.global_params, z->params_id,
                  t->start_step == 0 ? zo_hash(t->model.params, t->model.n_params) : 0,
                  (uint32_t)c->zo_samples, c->zo_eps, t->zo_scale, c->optim.weight_decay},
        .config_text = text,
        .records = (const uint8_t *)bytes + JOURNAL_HEADER_BYTES,
        .records_len = len > JOURNAL_HEADER_BYTES ? len - JOURNAL_HEADER_BYTES : 0,
        .end_step = (uint32_t)c->steps,
    };
    const char *hold = getenv("MPITRAIN_TEST_SWARM_HOLD");
    if (hold && sscanf(hold, "%u,%d", &o.hold_step, &o.hold_for) != 2) o.hold_for = 0;
    if (!rc) rc = swarm_open(&z->sw, &o, e);
    free(bytes);
    if (rc) return -1;
    swarm_notes(t, z);
    return 0;
}

static int zo_setup(Trainer *t, void **state, Err *e)
{
    Zo *z = calloc(1, sizeof *z);
    *state = z;
    if (!z) return err_set(e, "out of memory for the zo state");
    if (select_params(t, z, e)) return -1;
    z->mine = calloc(t->cfg->zo_samples, 1);
    z->all = calloc((size_t)t->cfg->zo_samples * t->mesh.dims.dp, 1);
    if (!z->mine || !z->all) return err_set(e, "out of memory for the zo buffers");
    /* allocates the view's scratch once: one block's worth */
    if (model_set_weight_view(&t->model, zo_view_weights, &z->view, e) ||
        model_set_weight_view(&t->model, NULL, NULL, e))
        return -1;
    char path[PATH_BUF];
    journal_path(t, path, sizeof path);
    uint32_t last = (uint32_t)t->mesh.dims.dp;
    t->zo_scale = t->cfg->zo_scale;
    int have_journal = access(path, F_OK) == 0;
    int rc = have_journal ? scan_journal(t, z, path, &last, e) : 0;
    if (trainer_agree(t, rc, e)) return -1;
    if (!have_journal && !(t->zo_scale > 0)) t->zo_scale = pick_scale(t, z);
    rc = trainer_is_rank0(t) ? open_journal(t, z, e) : 0;
    z->end_step = t->cfg->steps;
    if (!rc && in_swarm(t->cfg)) rc = open_swarm(t, z, e);
    if (!rc) rc = record_roster(t, z, last, e);
    if (!rc)
        trainer_note(t, "zo: %d machine(s) x %d sample(s), eps %g, scale %g per code unit, "
                        "%d byte(s) per machine per step; memory: weights %.1f MB, "
                        "activations %.1f MB, perturbation scratch %.1f MB",
                     t->mesh.dims.dp, t->cfg->zo_samples, t->cfg->zo_eps, t->zo_scale,
                     t->cfg->zo_samples, t->model.n_params * 4e-6, t->model.act_floats * 4e-6,
                     t->model.view_floats * 4e-6);
    return rc;
}

/* The machine's samples, their codes exchanged: one byte per (machine,
 * sample) on the wire. The loss is the mean over samples whose two losses
 * were finite (a non-finite sample is already skipped by its code). */
/* The machine's codes for the step; *mean: the loss over its samples. */
static void machine_codes(Trainer *t, Zo *z, long step, uint32_t machine, double sums[2])
{
    const TrainConfig *c = t->cfg;
    for (int s = 0; s < c->zo_samples; s++) {
        double mean;
        ZoId id = {(uint32_t)step, machine, (uint32_t)s};
        trace_begin_fmt(TR_COMPUTE, "zo sample %d", s);
        double g = projected_grad(t, z, id, &mean);
        trace_end();
        z->mine[s] = zo_code(g, t->zo_scale, c->zo_outlier);
        if (isfinite(mean)) {
            sums[0] += mean;
            sums[1] += 1;
        }
    }
}

/* A swarm step: the codes (unless the decision is already here: a machine
 * catching up computes nothing), then the keeper's agreed set. */
static int swarm_compute(Trainer *t, Zo *z, long step, StepOutcome *o, Err *e)
{
    int known = swarm_known(z->sw, (uint32_t)step, e);
    if (known < 0) return -1;
    double sums[2] = {0, 0};
    uint32_t slot = swarm_slot(z->sw);
    if (!known) {
        uint64_t pos = t->data_pos + (uint64_t)(slot == SWARM_NO_SLOT ? 0 : slot) * SWARM_DATA_STRIDE;
        loader_batch(&t->train, pos, t->inputs, t->targets);
        machine_codes(t, z, step, slot, sums);
    }
    t->data_pos++;
    int every = t->cfg->zo_check_every;
    uint64_t whash = every > 0 && step % every == 0 ? zo_hash(t->model.params, t->model.n_params) : 0;
    int rc = swarm_step(z->sw, (uint32_t)step, z->mine, t->lr, whash, &z->dec, e);
    SwarmStats st;
    swarm_stats(z->sw, &st);
    t->fabric_bytes = (double)st.bytes_sent;
    swarm_notes(t, z);
    if (rc) return -1;
    o->no_loss = known || z->dec.caught_up;
    o->loss = sums[1] > 0 ? sums[0] / sums[1] : NAN;
    o->grad_norm = NAN;
    return 0;
}

static int zo_compute(Trainer *t, void *state, long step, StepOutcome *o, Err *e)
{
    Zo *z = state;
    const TrainConfig *c = t->cfg;
    if (z->sw) return swarm_compute(t, z, step, o, e);
    loader_batch(&t->train, t->data_pos, t->inputs, t->targets);
    t->data_pos++;
    double sums[2] = {0, 0}; /* loss sum, samples counted */
    machine_codes(t, z, step, (uint32_t)t->mesh.me.dp, sums);
    coll_allgather_bytes(t->mesh.dp, z->mine, z->all, (size_t)c->zo_samples);
    coll_allreduce_sum_f64(t->mesh.dp, sums, 2);
    o->loss = sums[1] > 0 ? sums[0] / sums[1] : NAN;
    o->grad_norm = NAN; /* zeroth order: no gradient, so no norm */
    return 0;
}

/* The keeper's set, applied and journaled as it came: the same records on
 * every machine. */
static int swarm_apply(Trainer *t, Zo *z, long step, Err *e)
{
    const TrainConfig *c = t->cfg;
    const SwarmDecision *d = &z->dec;
    trace_begin("zo update", TR_OPT);
    int used = zo_step_update(&t->model, t->model.params, z->active, c->seed, d->step, d->codes,
                              (int)d->width, (int)d->samples, d->lr, t->zo_scale,
                              c->optim.weight_decay);
    trace_end();
    if (used < 0) return err_set(e, "step %ld: out of memory for the codes", step + 1);
    z->applied = step + 1;
    return journal_append_record(&z->j, d->records, d->records_len, e);
}

/* skip needs nothing here: a step whose every sample was non-finite has
 * every code ZO_SKIP, and applying (and journaling) it keeps live and
 * replay equal. */
static int zo_strategy_apply(Trainer *t, void *state, long step, int skip, Err *e)
{
    (void)skip;
    Zo *z = state;
    const TrainConfig *c = t->cfg;
    const int S = c->zo_samples, M = t->mesh.dims.dp;
    float lr = t->lr;
    if (z->sw) return swarm_apply(t, z, step, e);
    trace_begin("zo update", TR_OPT);
    int used = zo_step_update(&t->model, t->model.params, z->active, c->seed, (uint32_t)step,
                              z->all, M, S, lr, t->zo_scale, c->optim.weight_decay);
    trace_end();
    if (used < 0) return err_set(e, "step %ld: out of memory for the %d codes", step, M * S);
    if (!trainer_is_rank0(t)) return 0;
    return journal_append_step(&z->j, (uint32_t)step, (uint32_t)M, (uint32_t)S, z->epoch, lr,
                               z->all, e);
}

/* A stopped swarm machine says goodbye before its checkpoint is written. */
static void zo_on_stop(Trainer *t, void *state)
{
    (void)t;
    Zo *z = state;
    if (z->sw) swarm_leave(z->sw);
}

static int zo_after_step(Trainer *t, void *state, long step, Err *e)
{
    (void)state;
    int every = t->cfg->zo_check_every;
    return every > 0 && (step + 1) % every == 0 ? check_consistency(t, step + 1, e) : 0;
}

/* The journal is durable before a checkpoint that counts on it is published. */
static int zo_before_save(Trainer *t, void *state, Err *e)
{
    Zo *z = state;
    return trainer_is_rank0(t) ? journal_sync(&z->j, e) : 0;
}

/* two forward passes per sample */
/* Two forward passes (+eps and -eps) per sample over the global batch; no
 * backward. */
static double zo_flops(const Trainer *t)
{
    const ModelConfig *c = &t->cfg->model;
    return cost_fwd_flops_per_token(c) * 2.0 * t->cfg->zo_samples * t->cfg->global_batch *
           c->seq_len;
}

static void zo_free(void *state)
{
    Zo *z = state;
    if (!z) return;
    if (z->sw) swarm_close(z->sw, z->applied >= z->end_step);
    if (z->j.f) journal_close(&z->j);
    free(z->active);
    free(z->mine);
    free(z->all);
    free(z);
}

/* the scale in use: --zo-scale 0 asked the warm-up to pick it */
static void zo_chosen_settings(const Trainer *t, const void *state, TrainConfig *c)
{
    (void)state;
    c->zo_scale = t->zo_scale;
}

const StepStrategy ZO_STRATEGY = {
    .name = "zo",
    .check_run = zo_check_run,
    .setup = zo_setup,
    .compute = zo_compute,
    .apply = zo_strategy_apply,
    .after_step = zo_after_step,
    .before_save = zo_before_save,
    .on_stop = zo_on_stop,
    .chosen_settings = zo_chosen_settings,
    .flops_per_step = zo_flops,
    .free = zo_free,
};
