/* The shared-randomness training loop (--optimizer zo): see worker/zo.h for
 * the protocol and worker/journal.h for the history it writes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "comm/trace.h"
#include "worker/fsutil.h"
#include "worker/journal.h"
#include "worker/trainer_internal.h"
#include "worker/zo.h"

#define WARMUP_STEP 0xFFFFFFFFu /* the scale warm-up's own perturbation stream */

typedef struct {
    float *scratch;   /* theta +- eps z: the master weights are never touched */
    int32_t *acc;
    int8_t *mine, *all;
    Journal j;        /* rank 0 only */
    uint32_t epoch;
    int flip_rank;    /* test hook: flip a weight bit on this rank ... */
    long flip_step;   /* ... after this step */
} Zo;

/* Mean loss of this machine's batch at the weights in buf. */
static double machine_loss(Trainer *t, float *buf)
{
    float *master = t->model.params;
    t->model.params = buf;
    double local = pipeline_eval(&t->pipe, t->inputs, t->targets);
    t->model.params = master;
    double preds = (double)t->train.local_batch * model_preds_per_seq(&t->cfg->model);
    return trainer_loss_sum(t, t->mesh.mp, local) / preds;
}

/* Projected gradient along perturbation id; *mean = (L+ + L-) / 2. */
static double projected_grad(Trainer *t, Zo *z, ZoId id, double *mean)
{
    const float eps = t->cfg->zo_eps;
    zo_perturb(&t->model, t->cfg->seed, id, eps, +1, t->model.params, z->scratch);
    double lp = machine_loss(t, z->scratch);
    zo_perturb(&t->model, t->cfg->seed, id, eps, -1, t->model.params, z->scratch);
    double lm = machine_loss(t, z->scratch);
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

/* Replays journal steps past the checkpoint (a machine catching up), and
 * returns the last roster epoch and step in the journal. */
static int catch_up(Trainer *t, Zo *z, Err *e)
{
    char path[PATH_LEN + 32];
    journal_path(t, path, sizeof path);
    Journal j;
    if (journal_open_read(&j, path, e)) return -1;
    if (j.h.seed != t->cfg->seed || j.h.samples != (uint32_t)t->cfg->zo_samples ||
        j.h.global_params != t->model.global_params) {
        journal_close(&j);
        return err_set(e, "%s: the journal belongs to another run (seed, samples or model differ)", path);
    }
    JournalRecord r;
    int rc, replayed = 0;
    while ((rc = journal_next(&j, &r, e)) == 1) {
        if (r.type == JREC_ROSTER) {
            z->epoch = r.epoch;
            continue;
        }
        if ((long)r.step < t->start_step) continue;
        if ((long)r.step != t->start_step) {
            rc = err_set(e, "%s: record %ld is step %u but step %ld was expected next", path,
                         j.index, r.step, t->start_step);
            break;
        }
        zo_step_update(&t->model, t->model.params, z->acc, j.h.seed, r.step, r.codes,
                       (int)r.machines, (int)r.samples, r.lr, j.h.scale, j.h.weight_decay);
        t->start_step++;
        t->data_pos++;
        replayed++;
    }
    journal_close(&j);
    if (rc < 0) return -1;
    if (replayed && trainer_is_rank0(t))
        progress_note(&t->prog, "zo: caught up %d step(s) from the journal, now at step %ld",
                      replayed, t->start_step);
    return 0;
}

static int open_journal(Trainer *t, Zo *z, Err *e)
{
    char path[PATH_LEN + 32], dir[PATH_LEN + 8];
    journal_path(t, path, sizeof path);
    snprintf(dir, sizeof dir, "%s/zo", t->cfg->out);
    if (mkdir_p(dir, e)) return -1;
    JournalHeader h = {t->cfg->seed, t->cfg->zo_eps, t->zo_scale, t->cfg->optim.weight_decay,
                       (uint32_t)t->cfg->zo_samples, t->model.global_params};
    int fresh = access(path, F_OK) != 0;
    if (journal_open_append(&z->j, path, &h, e)) return -1;
    if (fresh) return journal_append_roster(&z->j, 0, (uint32_t)t->mesh.dims.dp, 0, e);
    return 0;
}

/* A resumed run with another number of machines starts a new roster epoch. */
static int record_roster(Trainer *t, Zo *z, uint32_t last_machines, Err *e)
{
    if (!trainer_is_rank0(t) || last_machines == (uint32_t)t->mesh.dims.dp) return 0;
    z->epoch++;
    progress_note(&t->prog, "zo: roster epoch %u: %d machine(s) from step %ld (was %u)", z->epoch,
                  t->mesh.dims.dp, t->start_step, last_machines);
    return journal_append_roster(&z->j, z->epoch, (uint32_t)t->mesh.dims.dp,
                                 (uint32_t)t->start_step, e);
}

static uint32_t last_roster_machines(const Trainer *t)
{
    char path[PATH_LEN + 32];
    journal_path(t, path, sizeof path);
    Journal j;
    Err ignore;
    uint32_t machines = (uint32_t)t->mesh.dims.dp;
    if (journal_open_read(&j, path, &ignore)) return machines;
    JournalRecord r;
    while (journal_next(&j, &r, &ignore) == 1)
        if (r.type == JREC_ROSTER) machines = r.machines;
    journal_close(&j);
    return machines;
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

static void maybe_flip(Trainer *t, Zo *z, long step)
{
    if (t->w->rank != z->flip_rank || step != z->flip_step) return;
    uint32_t bits;
    memcpy(&bits, &t->model.params[0], 4);
    bits ^= 1u;
    memcpy(&t->model.params[0], &bits, 4);
}

static int zo_step(Trainer *t, Zo *z, long step, double *loss, Err *e)
{
    const TrainConfig *c = t->cfg;
    const int S = c->zo_samples, M = t->mesh.dims.dp;
    loader_batch(&t->train, t->data_pos, t->inputs, t->targets);
    t->data_pos++;
    double sum = 0;
    for (int s = 0; s < S; s++) {
        double mean;
        ZoId id = {(uint32_t)step, (uint32_t)t->mesh.me.dp, (uint32_t)s};
        trace_begin_fmt(TR_COMPUTE, "zo sample %d", s);
        double g = projected_grad(t, z, id, &mean);
        trace_end();
        z->mine[s] = zo_code(g, t->zo_scale, c->zo_outlier);
        sum += mean;
    }
    /* one byte per (machine, sample) on the wire */
    coll_allgather_bytes(t->mesh.dp, z->mine, z->all, (size_t)S);
    float lr = lr_at(&c->optim, step);
    trace_begin("zo update", TR_OPT);
    zo_step_update(&t->model, t->model.params, z->acc, c->seed, (uint32_t)step, z->all, M, S, lr,
                   t->zo_scale, c->optim.weight_decay);
    trace_end();
    int rc = 0;
    if (trainer_is_rank0(t))
        rc = journal_append_step(&z->j, (uint32_t)step, (uint32_t)M, (uint32_t)S, z->epoch, lr,
                                 z->all, e);
    maybe_flip(t, z, step + 1);
    coll_allreduce_sum_f64(t->mesh.dp, &sum, 1);
    *loss = sum / ((double)S * M);
    return rc;
}

static int zo_setup(Trainer *t, Zo *z, Err *e)
{
    memset(z, 0, sizeof *z);
    z->flip_rank = -1;
    const char *hook = getenv("MPITRAIN_TEST_FLIP_BIT"); /* "rank,step": tests only */
    if (hook && sscanf(hook, "%d,%ld", &z->flip_rank, &z->flip_step) != 2) z->flip_rank = -1;
    size_t n = t->model.n_params ? t->model.n_params : 1;
    z->scratch = model_calloc(n, sizeof(float));
    z->acc = model_calloc(n, sizeof(int32_t));
    z->mine = calloc(t->cfg->zo_samples, 1);
    z->all = calloc((size_t)t->cfg->zo_samples * t->mesh.dims.dp, 1);
    if (!z->scratch || !z->acc || !z->mine || !z->all)
        return err_set(e, "out of memory for the zo buffers");
    char path[PATH_LEN + 32];
    journal_path(t, path, sizeof path);
    int have_journal = access(path, F_OK) == 0;
    int rc = have_journal && t->start_step ? catch_up(t, z, e) : 0;
    if (trainer_agree(t, rc, e)) return -1;
    t->zo_scale = t->cfg->zo_scale;
    if (have_journal) {
        Journal j;
        if (journal_open_read(&j, path, e)) return trainer_agree(t, -1, e);
        t->zo_scale = j.h.scale;
        journal_close(&j);
    } else if (!(t->zo_scale > 0)) {
        t->zo_scale = pick_scale(t, z);
    }
    uint32_t last = last_roster_machines(t);
    rc = trainer_is_rank0(t) ? open_journal(t, z, e) : 0;
    if (!rc) rc = record_roster(t, z, last, e);
    if (trainer_is_rank0(t) && !rc)
        progress_note(&t->prog, "zo: %d machine(s) x %d sample(s), eps %g, scale %g per code unit, "
                                "%d byte(s) per machine per step",
                      t->mesh.dims.dp, t->cfg->zo_samples, t->cfg->zo_eps, t->zo_scale,
                      t->cfg->zo_samples);
    return trainer_agree(t, rc, e);
}

static void zo_free(Zo *z)
{
    if (z->j.f) journal_close(&z->j);
    free(z->scratch);
    free(z->acc);
    free(z->mine);
    free(z->all);
}

int zo_run_steps(Trainer *t, TrainResult *res, Err *e)
{
    const TrainConfig *c = t->cfg;
    Zo z;
    int rc = zo_setup(t, &z, e);
    ReportContext ctx = {model_train_flops_per_seq(&t->model) / 3.0 * 2.0 * c->zo_samples * c->global_batch,
                         (double)c->global_batch * c->model.seq_len};
    double sum_ms = 0;
    int timed = 0;
    for (long step = t->start_step; !rc && step < c->steps; step++) {
        CommStats before = mesh_stats(&t->mesh);
        double t0 = comm_wtime(), loss = 0;
        rc = zo_step(t, &z, step, &loss, e);
        RankReport rr;
        trainer_rank_report(t, &before, t0, &rr);
        if (!rc && c->zo_check_every > 0 && (step + 1) % c->zo_check_every == 0)
            rc = check_consistency(t, step + 1, e);
        if (trainer_agree(t, rc, e)) break;
        StepReport r;
        report_gather(t->mesh.world, &ctx, &rr, step + 1, loss, 0, lr_at(&c->optim, step), &r);
        if (step > t->start_step) {
            sum_ms += r.time_ms;
            timed++;
        }
        if (trainer_should_eval(t, step + 1)) r.val_loss = res->final_val_loss = trainer_eval_loss(t);
        if (trainer_is_rank0(t)) progress_report(&t->prog, &r);
        res->final_loss = loss;
        res->last_step = step + 1;
        if (trainer_should_save(t, step + 1)) {
            rc = trainer_is_rank0(t) ? journal_sync(&z.j, e) : 0;
            if (trainer_agree(t, rc, e) || trainer_save_checkpoint(t, step + 1, res, e)) rc = -1;
        }
        trainer_heartbeat(t, step + 1);
    }
    if (!rc && timed) {
        res->mean_step_ms = sum_ms / timed;
        res->mean_tokens_per_s = ctx.tokens_per_step / (res->mean_step_ms / 1e3);
        res->mean_gflops = ctx.flops_per_step / (res->mean_step_ms / 1e3) / 1e9;
    }
    zo_free(&z);
    return rc ? -1 : 0;
}
