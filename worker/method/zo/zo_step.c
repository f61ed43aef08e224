/* The shared-randomness step strategy (--optimizer zo), whose machines are
 * the data-parallel ranks of one MPI job, and the pieces of a step it
 * shares with the swarm's (worker/method/zo/zo_step.h). */
#include "worker/method/zo/zo_step.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/fileio.h"
#include "comm/trace/trace.h"
#include "worker/method/zo/replay.h"
#include "worker/method/zo/zo_config.h"
#include "worker/method/zo/zo_params.h"

#define WARMUP_STEP 0xFFFFFFFFu /* the scale warm-up's own perturbation stream */

/* Mean loss of this machine's batch at theta + step z. The view's scratch
 * was allocated in setup, so installing it cannot fail here. */
static double machine_loss(Trainer *t, Zo *z, ZoId id, float step)
{
    Err e;
    z->view = (ZoView){t->cfg->seed, id, step, z->active, z->tau};
    model_set_weight_view(&t->model, zo_view_weights, &z->view, &e);
    /* the two forwards of one perturbation drop the same inputs */
    trainer_key_dropout(t, (uint64_t)id.step << 32 ^ (uint64_t)id.machine << 16 ^ id.sample);
    double local = pipeline_eval(&t->pipe, t->inputs, t->targets);
    model_set_weight_view(&t->model, NULL, NULL, &e);
    return trainer_loss_sum(t, t->mesh.mp, local) * trainer_loaded_scale(t);
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

/* --zo-sparse: the step's mask, from the weights as they are now (the
 * update recomputes it from the same weights: zo_step_update_sparse) */
static void update_mask(Trainer *t, Zo *z)
{
    z->tau_stale = 0;
    if (z->tau && zo_thresholds(&t->model, t->model.params, z->active, t->cfg->zo_sparse, z->tau)) {
        /* no memory for the scratch: this machine perturbs every weight
         * this step (its codes are worse, the run stays in step), and the
         * update computes the mask itself, or fails saying so */
        for (int k = 0; k < t->model.n_tensors; k++) z->tau[k] = INFINITY;
        z->tau_stale = 1;
    }
}

/* --zo-scale 0: twice the largest |g| of a few warm-up perturbations maps to
 * code 127, agreed over all machines. */
static float pick_scale(Trainer *t, Zo *z)
{
    trainer_load_batch(t, &t->train, t->data_pos);
    update_mask(t, z);
    double big = 0, mean;
    for (int s = 0; s < t->cfg->zo_samples || s < 4; s++) {
        double g = projected_grad(t, z, (ZoId){WARMUP_STEP, (uint32_t)t->mesh.me.dp, (uint32_t)s}, &mean);
        if (isfinite(g) && fabs(g) > big) big = fabs(g);
    }
    coll_allreduce_max_f64(t->mesh.world, &big, 1);
    return big > 0 ? (float)(2.0 * big / 127.0) : 1e-3f;
}

void zo_journal_path(const Trainer *t, char *out, size_t n)
{
    snprintf(out, n, "%s/zo/journal.bin", t->cfg->out);
}

/* The run's identity as its settings and model give it: --zo-scale (0:
 * the warm-up picks it later), no --zo-params selection yet, the base
 * unknown. */
static ZoIdentity run_settings(const Trainer *t)
{
    const TrainConfig *c = t->cfg;
    return (ZoIdentity){.seed = c->seed, .global_params = t->model.global_params,
                        .samples = (uint32_t)c->zo_samples, .eps = c->zo_eps,
                        .scale = c->zo_scale, .weight_decay = c->optim.weight_decay,
                        .sparse = c->zo_sparse};
}

/* An existing journal continues only the run that wrote it: the same seed,
 * samples, model and --zo-params selection. */
static int journal_matches_run(const Trainer *t, const Journal *j, const char *path, Err *e)
{
    ZoIdentity run = run_settings(t);
    if (zo_identity_diff(&j->h, &run, ZO_ID_SEED | ZO_ID_SAMPLES | ZO_ID_MODEL | ZO_ID_SPARSE))
        return err_set(e, "%s: the journal belongs to another run (seed, samples, model or "
                          "--zo-sparse differ)", path);
    if (zo_params_id(&t->cfg->model, t->cfg->zo_params, &run.params_id, e)) return -1;
    return zo_params_check_journal(path, j->h.params_id, run.params_id, t->cfg->zo_params, e);
}

int zo_check_run(Trainer *t, Err *e)
{
    char path[PATH_BUF];
    zo_journal_path(t, path, sizeof path);
    /* --overwrite throws the old journal away with the rest of the run */
    if (t->cfg->overwrite || access(path, F_OK) != 0) return 0;
    Journal j;
    if (journal_open_read(&j, path, e)) return -1;
    int rc = journal_matches_run(t, &j, path, e);
    journal_close(&j);
    return rc;
}

/* What the scan of an existing journal keeps track of. */
typedef struct {
    Trainer *t;
    Zo *z;
    uint32_t *machines;
} Scan;

static void scan_roster(void *ctx, const JournalRecord *r)
{
    Scan *s = ctx;
    s->z->epoch = r->epoch;
    *s->machines = r->machines;
}

/* A step caught up: metrics.jsonl keeps one row per step (the caught-up
 * ones too), and the data moves on past its batch. */
static int scan_caught_up(void *ctx, const JournalRecord *r, Err *e)
{
    Trainer *t = ((Scan *)ctx)->t;
    if (trainer_is_rank0(t) && t->obs->replayed &&
        t->obs->replayed(t->obs->ctx, (long)r->step + 1, r->lr, e))
        return -1;
    t->data_pos++;
    return 0;
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
    z->id.scale = j.h.scale;
    Scan s = {t, z, machines};
    /* a run starting at step 0 (no checkpoint) applies none of its steps */
    JournalReplay r = {.model = t->start_step ? &t->model : NULL, .active = z->active,
                       .next = t->start_step, .ctx = &s, .roster = scan_roster,
                       .applied = scan_caught_up};
    int rc = journal_replay(&j, &r, e);
    const int replayed = (int)(r.next - t->start_step);
    t->start_step = r.next;
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

int zo_open_journal(Trainer *t, Zo *z, int *fresh, Err *e)
{
    char path[PATH_BUF], dir[PATH_BUF];
    zo_journal_path(t, path, sizeof path);
    snprintf(dir, sizeof dir, "%s/zo", t->cfg->out);
    if (mkdir_p(dir, e)) return -1;
    *fresh = access(path, F_OK) != 0;
    if (journal_open_append(&z->j, path, &z->id, e)) return -1;
    if (z->j.torn_bytes)
        trainer_note(t, "zo: cut the torn last record off %s: appending from byte %ld", path,
                     z->j.torn_off);
    return 0;
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
    if (zo_params_id(&t->cfg->model, spec, &z->id.params_id, e)) return -1;
    if (z->id.params_id == ZO_PARAMS_ALL_ID) return 0;
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

int zo_prepare(Trainer *t, Zo *z, uint32_t *last_machines, Err *e)
{
    z->id = run_settings(t);
    if (select_params(t, z, e)) return -1;
    if (t->cfg->zo_sparse > 0 && !(z->tau = calloc(t->model.n_tensors ? t->model.n_tensors : 1, sizeof *z->tau)))
        return err_set(e, "out of memory for the --zo-sparse thresholds");
    z->mine = calloc(t->cfg->zo_samples, 1);
    z->all = calloc((size_t)t->cfg->zo_samples * t->mesh.dims.dp, 1);
    if (!z->mine || !z->all) return err_set(e, "out of memory for the zo buffers");
    /* allocates the view's scratch once: one block's worth */
    if (model_set_weight_view(&t->model, zo_view_weights, &z->view, e) ||
        model_set_weight_view(&t->model, NULL, NULL, e))
        return -1;
    char path[PATH_BUF];
    zo_journal_path(t, path, sizeof path);
    *last_machines = (uint32_t)t->mesh.dims.dp;
    int have_journal = access(path, F_OK) == 0;
    int rc = have_journal ? scan_journal(t, z, path, last_machines, e) : 0;
    if (trainer_agree(t, rc, e)) return -1;
    if (!have_journal && !(z->id.scale > 0)) z->id.scale = pick_scale(t, z);
    return 0;
}

void zo_note_setup(Trainer *t, const Zo *z)
{
    /* under LoRA the perturbed weights are the adapters; the base is held
     * as it is */
    char frozen[64] = "";
    if (t->model.base.n_tensors)
        snprintf(frozen, sizeof frozen, " of LoRA adapters (+ %.1f MB frozen base)",
                 t->model.base.n_params * 4e-6);
    char mask[96] = "";
    if (z->tau)
        snprintf(mask, sizeof mask, ", perturbing the %g of each tensor smallest in magnitude "
                                    "(--zo-sparse)", t->cfg->zo_sparse);
    trainer_note(t, "zo: %d machine(s) x %d sample(s), eps %g, scale %g per code unit%s, "
                    "%d byte(s) per machine per step; memory: weights %.1f MB%s, "
                    "activations %.1f MB, perturbation scratch %.1f MB",
                 t->mesh.dims.dp, t->cfg->zo_samples, t->cfg->zo_eps, z->id.scale, mask,
                 t->cfg->zo_samples, t->model.n_params * 4e-6, frozen,
                 t->model.act_floats * 4e-6, t->model.view_floats * 4e-6);
}

/* Rank 0's journal; a new one starts with the roster of epoch 0. */
static int start_journal(Trainer *t, Zo *z, Err *e)
{
    int fresh;
    if (zo_open_journal(t, z, &fresh, e)) return -1;
    return fresh ? journal_append_roster(&z->j, 0, (uint32_t)t->mesh.dims.dp, 0, e) : 0;
}

/* A resumed run with another number of machines starts a new roster epoch. */
static int record_roster(Trainer *t, Zo *z, uint32_t last_machines, Err *e)
{
    if (!trainer_is_rank0(t) || last_machines == (uint32_t)t->mesh.dims.dp) return 0;
    z->epoch++;
    trainer_note(t, "zo: roster epoch %u: %d machine(s) from step %ld (was %u)", z->epoch,
                 t->mesh.dims.dp, t->start_step, last_machines);
    return journal_append_roster(&z->j, z->epoch, (uint32_t)t->mesh.dims.dp,
                                 (uint32_t)t->start_step, e);
}

static int zo_setup(Trainer *t, void **state, Err *e)
{
    Zo *z = calloc(1, sizeof *z);
    *state = z;
    if (!z) return err_set(e, "out of memory for the zo state");
    uint32_t last;
    if (zo_prepare(t, z, &last, e)) return -1;
    int rc = trainer_is_rank0(t) ? start_journal(t, z, e) : 0;
    if (!rc) rc = record_roster(t, z, last, e);
    if (!rc) zo_note_setup(t, z);
    return rc;
}

/* --zo-one-sided: the loss at theta itself, once a step, for every sample's
 * (L(theta + eps z) - L(theta)) / eps (the dropout key of sample 0's). */
static double loss_at_theta(Trainer *t, long step, uint32_t machine)
{
    trainer_key_dropout(t, (uint64_t)(uint32_t)step << 32 ^ (uint64_t)machine << 16);
    double local = pipeline_eval(&t->pipe, t->inputs, t->targets);
    return trainer_loss_sum(t, t->mesh.mp, local) * trainer_loaded_scale(t);
}

void zo_machine_codes(Trainer *t, Zo *z, long step, uint32_t machine, double sums[3])
{
    const TrainConfig *c = t->cfg;
    /* a masked batch that counts no target: every loss is 0, its codes 0;
     * no loss to report (not a 0 dragging the mean down) */
    const int counts = trainer_loaded_scale(t) > 0;
    update_mask(t, z);
    double l0 = c->zo_one_sided ? loss_at_theta(t, step, machine) : NAN;
    for (int s = 0; s < c->zo_samples; s++) {
        double mean;
        ZoId id = {(uint32_t)step, machine, (uint32_t)s};
        trace_begin_fmt(TR_COMPUTE, "zo sample %d", s);
        double g;
        if (c->zo_one_sided) {
            double lp = machine_loss(t, z, id, c->zo_eps);
            g = (lp - l0) / c->zo_eps;
            mean = l0;
        } else {
            g = projected_grad(t, z, id, &mean);
        }
        trace_end();
        z->mine[s] = zo_code(g, z->id.scale, c->zo_outlier);
        if (!counts) {
            sums[2] += 1;
        } else if (isfinite(mean)) {
            sums[0] += mean;
            sums[1] += 1;
        }
    }
}

/* The machine's samples, their codes exchanged: one byte per (machine,
 * sample) on the wire. The loss is the mean over the samples counted. */
static int zo_compute(Trainer *t, void *state, long step, StepOutcome *o, Err *e)
{
    (void)e;
    Zo *z = state;
    const TrainConfig *c = t->cfg;
    trainer_load_batch(t, &t->train, t->data_pos);
    t->data_pos++;
    double sums[3] = {0, 0, 0}; /* zo_machine_codes' */
    zo_machine_codes(t, z, step, (uint32_t)t->mesh.me.dp, sums);
    coll_allgather_bytes(t->mesh.dp, z->mine, z->all, (size_t)c->zo_samples);
    coll_allreduce_sum_f64(t->mesh.dp, sums, 3);
    o->loss = sums[1] > 0 ? sums[0] / sums[1] : NAN;
    o->no_loss = sums[1] == 0 && sums[2] > 0; /* no machine's batch counted a target */
    o->grad_norm = NAN; /* zeroth order: no gradient, so no norm */
    return 0;
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
    trace_begin("zo update", TR_OPT);
    int used = zo_step_update_sparse(&t->model, t->model.params, z->active, c->seed, (uint32_t)step,
                                     z->all, M, S, lr, z->id.scale, c->optim.weight_decay,
                                     c->zo_sparse, z->tau_stale ? NULL : z->tau);
    trace_end();
    if (used < 0) return err_set(e, "step %ld: out of memory for the %d codes", step, M * S);
    if (!trainer_is_rank0(t)) return 0;
    return journal_append_step(&z->j, (uint32_t)step, (uint32_t)M, (uint32_t)S, z->epoch, lr,
                               z->all, e);
}

int zo_after_step(Trainer *t, void *state, long step, Err *e)
{
    (void)state;
    int every = t->cfg->zo_check_every;
    return every > 0 && (step + 1) % every == 0 ? check_consistency(t, step + 1, e) : 0;
}

int zo_sync_journal(Trainer *t, Zo *z, Err *e)
{
    return trainer_is_rank0(t) ? journal_sync(&z->j, e) : 0;
}

/* The journal is durable before a checkpoint that counts on it is published. */
static int zo_before_save(Trainer *t, void *state, Err *e)
{
    return zo_sync_journal(t, state, e);
}

/* Two forward passes (+eps and -eps) per sample over the global batch; no
 * backward. */
double zo_flops(const Trainer *t)
{
    const ModelConfig *c = &t->cfg->model;
    return cost_fwd_flops_per_token(c) * 2.0 * t->cfg->zo_samples * t->cfg->global_batch *
           c->seq_len;
}

void zo_release(Zo *z)
{
    if (z->j.f) journal_close(&z->j);
    free(z->active);
    free(z->tau);
    free(z->mine);
    free(z->all);
}

static void zo_free(void *state)
{
    Zo *z = state;
    if (!z) return;
    zo_release(z);
    free(z);
}

/* the scale in use: --zo-scale 0 asked the warm-up to pick it */
void zo_chosen_settings(const Trainer *t, const void *state, TrainConfig *c)
{
    (void)t;
    c->zo_scale = ((const Zo *)state)->id.scale;
}

const StepStrategy ZO_STRATEGY = {
    .name = "zo",
    .selected_by = zo_config_selected,
    .resume_keeps = ZO_RESUME_KEEPS,
    .forward_only = 1, /* zeroth-order training never computes a gradient */
    .validate = zo_config_validate,
    .check_run = zo_check_run,
    .setup = zo_setup,
    .compute = zo_compute,
    .apply = zo_strategy_apply,
    .after_step = zo_after_step,
    .before_save = zo_before_save,
    .chosen_settings = zo_chosen_settings,
    .flops_per_step = zo_flops,
    .free = zo_free,
};
