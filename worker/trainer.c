#include "worker/trainer_internal.h"
#include "worker/testhooks.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "comm/mesh.h"
#include "comm/trace.h"
#include "coordinator/timeline.h"
#include "coordinator/progress.h"
#include "coordinator/report.h"
#include "models/ops.h"
#include "worker/ckpt.h"
#include "worker/data.h"
#include "worker/fsutil.h"
#include "worker/gradsync.h"
#include "worker/pipeline.h"

int trainer_is_rank0(const Trainer *t) { return t->w->rank == 0; }

/* Every rank reports its own rc; all return the same verdict and rank 0's
 * e names the first failing rank and why. */
int trainer_agree(Trainer *t, int rc, Err *e)
{
    Err mine = *e;
    return comm_agree(t->mesh.world, rc, &mine, e) ? -1 : 0;
}

/* ---- set-up ---------------------------------------------------------------- */

static int start_trace(Trainer *t, Err *e)
{
    const TrainConfig *c = t->cfg;
    if (!c->trace[0]) return 0;
    /* spans per step: forward + backward per micro-batch, buckets, a few more */
    size_t per_step = 4 * (size_t)c->micro_batches + 2 * (size_t)c->model.n_layer + 64;
    size_t cap = per_step * (size_t)c->steps + 4096;
    return trace_enable(t->mesh.world, cap < (4u << 20) ? cap : (4u << 20), e);
}

static int read_resume_point(Trainer *t, Err *e)
{
    if (!t->cfg->resume[0]) return 0;
    CkptMeta m;
    if (ckpt_load_meta(t->cfg->resume, &m, e)) return -1;
    t->start_step = m.step;
    t->data_pos = m.data_pos;
    return 0;
}

static int open_data(Trainer *t, Err *e)
{
    const TrainConfig *c = t->cfg;
    if (tokfile_open(&t->data, c->data, e)) return err_wrap(e, "--data");
    if (t->data.vocab > c->model.vocab)
        return err_set(e, "--data %s has vocabulary %d but the model's --vocab is %d; raise --vocab",
                       c->data, t->data.vocab, c->model.vocab);
    int r = t->mesh.me.dp, n = t->mesh.dims.dp;
    if (loader_init(&t->train, &t->data, SPLIT_TRAIN, c->model.seq_len, c->global_batch, r, n, e))
        return -1;
    if (c->eval_every > 0 && t->data.n_val > 0 &&
        loader_init(&t->val, &t->data, SPLIT_VAL, c->model.seq_len, c->global_batch, r, n, e))
        return -1;
    return 0;
}

static void tp_allreduce(void *ctx, float *buf, size_t n)
{
    coll_allreduce_sum_f32((Group *)ctx, buf, n);
}

static int setup_model(Trainer *t, Err *e)
{
    const TrainConfig *c = t->cfg;
    int local = t->train.local_batch, dp = t->mesh.dims.dp;
    int stage = t->mesh.me.pp, p = t->mesh.dims.pp;
    t->micro_b = local / c->micro_batches;
    ModelShard sh = {t->mesh.me.tp, t->mesh.dims.tp, c->stage_first[stage],
                     c->stage_first[stage + 1] - 1,
                     pipeline_slots((Schedule)c->pp_schedule, stage, p, c->micro_batches), 0};
    if (p == 1) sh = (ModelShard){t->mesh.me.tp, t->mesh.dims.tp, 0, -1, 1, 0};
    /* zeroth-order training never computes a gradient */
    sh.forward_only = c->optim.kind == OPT_ZO;
    if (model_init_shard(&t->model, &c->model, &sh, t->micro_b, c->seed, e)) return -1;
    t->model.tp_allreduce = tp_allreduce;
    t->model.tp_ctx = t->mesh.tp;
    if (pipeline_init(&t->pipe, &t->model, t->mesh.pp, stage, p, c->micro_batches, t->micro_b,
                      p == 1 ? SCHED_1F1B : (Schedule)c->pp_schedule, e))
        return -1;
    if (gradsync_init(&t->sync, &t->model, t->mesh.dp, c->zero, (size_t)c->bucket_bytes,
                      c->overlap, e))
        return -1;
    Range u = gradsync_update_range(&t->sync);
    if (optim_init(&t->opt, &c->optim, u.lo, u.hi, e)) return -1;
    size_t n = (size_t)local * c->model.seq_len;
    t->inputs = calloc(n, sizeof(int));
    t->targets = calloc(n, sizeof(int));
    t->shard_counts = calloc(dp, sizeof(int));
    if (!t->inputs || !t->targets || !t->shard_counts)
        return err_set(e, "out of memory for the batch");
    for (int r = 0; r < dp; r++) {
        Range s = split_even(t->model.n_params, dp, r);
        t->shard_counts[r] = (int)(s.hi - s.lo);
    }
    return 0;
}

static int load_initial_state(Trainer *t, Err *e)
{
    const TrainConfig *c = t->cfg;
    if (c->resume[0]) {
        CkptMeta m;
        if (ckpt_load_meta(c->resume, &m, e) || ckpt_load(c->resume, &t->model, &t->opt, e))
            return -1;
        t->opt.t = m.opt_t;
        return 0;
    }
    if (!c->init_from[0]) return 0;
    char dir[PATH_LEN];
    CkptMeta meta;
    if (ckpt_resolve(c->init_from, dir, sizeof dir, e) || ckpt_load_meta(dir, &meta, e))
        return err_wrap(e, "--init-from %s", c->init_from);
    if (memcmp(&meta.model, &c->model, sizeof meta.model) != 0)
        return err_set(e, "--init-from %s: the checkpoint's model (%d layers, %d heads, width %d, "
                          "seq %d, vocab %d) differs from this run's; pass the same model flags",
                       dir, meta.model.n_layer, meta.model.n_head, meta.model.n_embd,
                       meta.model.seq_len, meta.model.vocab);
    return ckpt_load(dir, &t->model, NULL, e);
}

static int setup_run_dir(Trainer *t, Err *e)
{
    const TrainConfig *c = t->cfg;
    snprintf(t->ckpt_root, sizeof t->ckpt_root, "%s/ckpt", c->out);
    if (!trainer_is_rank0(t)) return 0;
    char metrics[PATH_LEN + 32];
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", c->out);
    if (!t->start_step && !c->overwrite && access(metrics, F_OK) == 0)
        return err_set(e, "--out %s already holds a run; continue it with --resume %s, "
                          "or pass --overwrite, or choose another --out",
                       c->out, c->out);
    if (mkdir_p(c->out, e)) return -1;
    return progress_open(&t->prog, c->out, c->steps, t->start_step, c->progress, c->log_every,
                         c->quiet, e);
}

/* ---- one step ----------------------------------------------------------- */

double trainer_per_pred(const TrainConfig *c)
{
    return 1.0 / ((double)c->global_batch * model_preds_per_seq(&c->model));
}

/* The loss lives on the last stage; one TP rank of it speaks for its
 * group. Returns the global batch's loss sum on every rank. */
double trainer_loss_sum(Trainer *t, Group *g, double local)
{
    int speaks = t->mesh.me.pp == t->mesh.dims.pp - 1 && t->mesh.me.tp == 0;
    double sum = speaks ? local : 0.0;
    coll_allreduce_sum_f64(g, &sum, 1);
    return sum;
}

/* Global gradient norm: every element of the model counted once, however
 * it is replicated (DP replicas, TP-replicated norms and biases, the tied
 * embedding's second copy). g holds the gradient of elements [u.lo, u.hi). */
static double grad_norm(Trainer *t, const float *g, Range u)
{
    double ss = 0;
    int dp_counts = t->cfg->zero || t->mesh.me.dp == 0;
    for (int k = 0; dp_counts && k < t->model.n_tensors; k++) {
        const ParamInfo *ti = &t->model.tensors[k];
        if (ti->tied_copy || (ti->split == TP_REPLICATED && t->mesh.me.tp > 0)) continue;
        size_t a = ti->offset > u.lo ? ti->offset : u.lo;
        size_t b = ti->offset + ti->numel < u.hi ? ti->offset + ti->numel : u.hi;
        if (a < b) ss += sum_squares(g + (a - u.lo), b - a);
    }
    coll_allreduce_sum_f64(t->mesh.world, &ss, 1);
    return sqrt(ss);
}

/* The head's copy of the tied embedding and the embedding itself each got
 * half of the gradient: sum them so both copies take the same step. */
static void sync_tied_grads(Trainer *t)
{
    if (!t->mesh.emb) return;
    const ParamInfo *w = model_find_tensor(&t->model, "wte");
    coll_allreduce_sum_f32(t->mesh.emb, t->model.grads + w->offset, w->numel);
}

double trainer_eval_loss(Trainer *t)
{
    const TrainConfig *c = t->cfg;
    double sum = 0;
    for (int k = 0; k < c->eval_batches; k++) {
        loader_batch(&t->val, (uint64_t)k, t->inputs, t->targets);
        sum += pipeline_eval(&t->pipe, t->inputs, t->targets);
    }
    return trainer_loss_sum(t, t->mesh.world, sum) * trainer_per_pred(c) / c->eval_batches;
}

/* One optimizer step; fills the rank's own timing report. */
static int train_step(Trainer *t, long step, RankReport *rr, double *loss, double *norm, Err *e)
{
    const TrainConfig *c = t->cfg;
    CommStats before = mesh_stats(&t->mesh);
    double t0 = comm_wtime();
    loader_batch(&t->train, t->data_pos, t->inputs, t->targets);
    t->data_pos++;
    model_zero_grad(&t->model);
    double local = pipeline_train(&t->pipe, t->inputs, t->targets, (float)trainer_per_pred(c), &t->sync);
    gradsync_finish(&t->sync);
    sync_tied_grads(t);
    *loss = trainer_loss_sum(t, t->mesh.world, local) * trainer_per_pred(c);
    Range u = gradsync_update_range(&t->sync);
    const float *g = gradsync_grads(&t->sync);
    *norm = grad_norm(t, g, u);
    if (!isfinite(*loss) || !isfinite(*norm)) {
        if (c->on_nan == 0)
            return err_set(e, "step %ld: loss is %g and gradient norm %g: training diverged; "
                              "lower --lr or raise --warmup (or --on-nan skip)",
                           step + 1, *loss, *norm);
        /* --on-nan skip: every rank saw the same global loss and norm, so
         * all of them skip this update together */
        if (trainer_is_rank0(t))
            progress_note(&t->prog, "step %ld: loss %g, gradient norm %g: update skipped", step + 1,
                          *loss, *norm);
        trainer_rank_report(t, &before, t0, rr);
        return 0;
    }
    trace_begin("optimizer", TR_OPT);
    optim_update(&t->opt, &t->model, t->model.params, g, lr_at(&c->optim, step),
                 clip_coef(&c->optim, *norm));
    trace_end();
    if (c->zero) coll_allgatherv_inplace_f32(t->mesh.dp, t->model.params, t->shard_counts);
    trainer_rank_report(t, &before, t0, rr);
    return 0;
}

/* <out>/heartbeat: the supervisor's watchdog restarts the job when it stops
 * changing (a rank stuck in a collective stalls every rank). */
void trainer_heartbeat(Trainer *t, long step)
{
    if (!trainer_is_rank0(t)) return;
    char path[PATH_LEN + 32], line[64];
    snprintf(path, sizeof path, "%s/heartbeat", t->cfg->out);
    int n = snprintf(line, sizeof line, "%ld\n", step);
    FILE *f = fopen(path, "w");
    if (!f) return;
    fwrite(line, 1, (size_t)n, f);
    fclose(f);
}

void trainer_rank_report(Trainer *t, const CommStats *before, double t0, RankReport *rr)
{
    CommStats after = mesh_stats(&t->mesh);
    rr->step_s = comm_wtime() - t0;
    rr->exposed_s = after.exposed_s - before->exposed_s;
    rr->overlapped_s = after.overlapped_s - before->overlapped_s;
    rr->bytes = after.bytes_sent - before->bytes_sent;
}

/* ---- checkpoints -------------------------------------------------------- */

static void fill_meta(const Trainer *t, long step, CkptMeta *meta)
{
    memset(meta, 0, sizeof *meta);
    meta->model = t->cfg->model;
    meta->optim = t->cfg->optim;
    meta->step = step;
    meta->seed = t->cfg->seed;
    meta->data_pos = t->data_pos;
    meta->global_batch = t->cfg->global_batch;
    meta->opt_t = t->opt.t;
    meta->dp = t->mesh.dims.dp;
    meta->tp = t->mesh.dims.tp;
    meta->pp = t->mesh.dims.pp;
    meta->zero = t->cfg->zero;
    meta->zo_eps = t->cfg->zo_eps;
    meta->zo_scale = t->zo_scale;
    meta->zo_samples = t->cfg->zo_samples;
    snprintf(meta->data_path, sizeof meta->data_path, "%s", t->cfg->data);
}

/* Every DP rank writes its slice of the flat buffers in parallel; rank 0
 * writes the manifest last and publishes the step. */
int trainer_save_checkpoint(Trainer *t, long step, TrainResult *res, Err *e)
{
    Group *w = t->mesh.world;
    char tmp[PATH_LEN + 64];
    snprintf(tmp, sizeof tmp, "%s/.tmp.step_%08ld", t->ckpt_root, step);
    int rc = trainer_is_rank0(t) ? ckpt_begin(t->ckpt_root, step, tmp, sizeof tmp, e) : 0;
    if (trainer_agree(t, rc, e)) return -1;
    uint8_t *recs = NULL;
    size_t len = 0;
    Range mine = split_even(t->model.n_params, t->mesh.dims.dp, t->mesh.me.dp);
    rc = ckpt_write_shard(tmp, t->w->rank, &t->model, &t->opt, mine, &recs, &len, e);
    testhook("MPITRAIN_TEST_DIE_IN_SAVE", t->w->rank, step);
    if (trainer_agree(t, rc, e)) {
        free(recs);
        return -1;
    }
    void *all = NULL;
    size_t *lens = calloc(group_size(w), sizeof *lens);
    coll_gatherv_bytes(w, recs, len, &all, lens, 0);
    free(recs);
    if (trainer_is_rank0(t)) {
        int n = group_size(w);
        uint8_t **parts = calloc(n, sizeof *parts);
        size_t off = 0;
        for (int i = 0; i < n; i++, off += lens[i - 1]) parts[i] = (uint8_t *)all + off;
        CkptMeta meta;
        fill_meta(t, step, &meta);
        rc = ckpt_finish(t->ckpt_root, tmp, &meta, parts, lens, n, res->last_ckpt,
                         sizeof res->last_ckpt, e);
        if (!rc) rc = ckpt_prune(t->ckpt_root, t->cfg->keep_ckpts, e);
        free(parts);
    }
    free(all);
    free(lens);
    return trainer_agree(t, rc, e);
}

/* ---- the loop ---------------------------------------------------------- */

int trainer_should_eval(const Trainer *t, long step)
{
    const TrainConfig *c = t->cfg;
    if (c->eval_every <= 0 || !t->val.file) return 0;
    return step % c->eval_every == 0 || step == c->steps;
}

int trainer_should_save(const Trainer *t, long step)
{
    const TrainConfig *c = t->cfg;
    return (c->save_every > 0 && step % c->save_every == 0) || step == c->steps;
}

static int run_steps(Trainer *t, TrainResult *res, Err *e)
{
    const TrainConfig *c = t->cfg;
    ReportContext rc = {model_train_flops_per_seq(&t->model) * c->global_batch,
                        (double)c->global_batch * c->model.seq_len};
    double sum_ms = 0, sum_exposed = 0;
    int timed = 0;
    for (long step = t->start_step; step < c->steps; step++) {
        RankReport rr = {0};
        double loss, norm;
        testhook("MPITRAIN_TEST_KILL", t->w->rank, step + 1);
        testhook("MPITRAIN_TEST_HANG", t->w->rank, step + 1);
        int failed = train_step(t, step, &rr, &loss, &norm, e);
        if (trainer_agree(t, failed, e)) return -1;
        StepReport r;
        report_gather(t->mesh.world, &rc, &rr, step + 1, loss, norm, lr_at(&c->optim, step), &r);
        if (step > t->start_step || c->steps - t->start_step == 1) { /* step 1 warms caches */
            sum_ms += r.time_ms;
            sum_exposed += r.exposed_ms;
            timed++;
        }
        if (trainer_should_eval(t, step + 1)) r.val_loss = res->final_val_loss = trainer_eval_loss(t);
        if (trainer_is_rank0(t)) progress_report(&t->prog, &r);
        res->final_loss = loss;
        res->last_step = step + 1;
        if (trainer_should_save(t, step + 1) && trainer_save_checkpoint(t, step + 1, res, e)) return -1;
        trainer_heartbeat(t, step + 1);
    }
    if (timed) {
        res->mean_step_ms = sum_ms / timed;
        res->mean_exposed_ms = sum_exposed / timed;
        res->mean_tokens_per_s = rc.tokens_per_step / (res->mean_step_ms / 1e3);
        res->mean_gflops = rc.flops_per_step / (res->mean_step_ms / 1e3) / 1e9;
    }
    return 0;
}

static void trainer_free(Trainer *t)
{
    progress_close(&t->prog);
    free(t->inputs);
    free(t->targets);
    free(t->shard_counts);
    pipeline_free(&t->pipe);
    gradsync_free(&t->sync);
    optim_free(&t->opt);
    model_free(&t->model);
    tokfile_close(&t->data);
    mesh_free(&t->mesh);
}


static long peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024;
}

/* Figures each rank reports for the summary (from the allocators' own
 * accounting, not measured). */
typedef struct {
    double opt_bytes, act_bytes, slots;
} RankMemory;

static int append_array(char *buf, size_t n, int k, const char *key, const RankMemory *all,
                        int ranks, size_t field)
{
    k += snprintf(buf + k, n - k, ",\"%s\":[", key);
    for (int i = 0; i < ranks && k < (int)n - 32; i++)
        k += snprintf(buf + k, n - k, "%s%.0f", i ? "," : "",
                      *(const double *)((const char *)&all[i] + field));
    return k + snprintf(buf + k, n - k, "]");
}

/* <out>/summary.json: the run's figures, for people and for tests. */
static int write_summary(Trainer *t, const TrainResult *res, Err *e)
{
    int n = t->w->size;
    RankMemory mine = {(double)t->opt.state_bytes, (double)t->model.act_floats * sizeof(float),
                       (double)t->model.shard.slots};
    RankMemory *all = trainer_is_rank0(t) ? calloc(n, sizeof *all) : NULL;
    coll_gather_bytes(t->mesh.world, &mine, all, sizeof mine, 0);
    int64_t rss = peak_rss_mb();
    coll_allreduce_max_i64(t->mesh.world, &rss, 1);
    if (!trainer_is_rank0(t)) return 0;
    size_t cap = 4096 + (size_t)n * 96;
    char *buf = malloc(cap), path[PATH_LEN + 32];
    if (!buf) {
        free(all);
        return err_set(e, "out of memory");
    }
    int k = snprintf(buf, cap,
                     "{\"ranks\":%d,\"dp\":%d,\"tp\":%d,\"pp\":%d,\"zero\":%d,\"micro_batches\":%d,"
                     "\"pp_schedule\":\"%s\",\"params\":%zu,"
                     "\"first_step\":%ld,\"last_step\":%ld,\"final_loss\":%.17g,"
                     "\"mean_step_ms\":%.3f,\"mean_exposed_comm_ms\":%.3f,"
                     "\"mean_tokens_per_s\":%.1f,\"mean_gflops\":%.2f,\"peak_rss_mb\":%ld",
                     n, t->cfg->dp, t->cfg->tp, t->cfg->pp, t->cfg->zero, t->cfg->micro_batches,
                     t->cfg->pp_schedule ? "1f1b" : "gpipe", t->model.global_params,
                     res->first_step, res->last_step, res->final_loss, res->mean_step_ms,
                     res->mean_exposed_ms, res->mean_tokens_per_s, res->mean_gflops, (long)rss);
    k = append_array(buf, cap, k, "opt_state_bytes_per_rank", all, n, offsetof(RankMemory, opt_bytes));
    k = append_array(buf, cap, k, "act_bytes_per_rank", all, n, offsetof(RankMemory, act_bytes));
    k = append_array(buf, cap, k, "act_slots_per_rank", all, n, offsetof(RankMemory, slots));
    k += snprintf(buf + k, cap - k, "}\n");
    free(all);
    snprintf(path, sizeof path, "%s/summary.json", t->cfg->out);
    int rc = write_file_atomic(path, buf, (size_t)k, e);
    free(buf);
    return rc;
}

static void announce(Trainer *t)
{
    const TrainConfig *c = t->cfg;
    progress_note(&t->prog,
                  "mpitrain: %s %d layers x %d wide, %.2fM params | %d rank(s): dp %d x tp %d x "
                  "pp %d, zero %d | batch %d x %d, %d micro-batch(es) | %d thread(s)/rank | %s%s",
                  c->model.kind == MODEL_GPT ? "gpt" : "mlp", c->model.n_layer, c->model.n_embd,
                  t->model.n_params / 1e6, t->w->size, c->dp, c->tp, c->pp, c->zero,
                  c->global_batch, c->model.seq_len, c->micro_batches, ops_get_threads(),
                  optim_name(c->optim.kind), t->start_step ? " (resumed)" : "");
}

int train_run(const TrainConfig *cfg, const CommWorld *w, TrainResult *res, Err *e)
{
    Trainer t;
    memset(&t, 0, sizeof t);
    memset(res, 0, sizeof *res);
    res->final_val_loss = NAN;
    t.cfg = cfg;
    t.w = w;
    ops_set_threads(cfg->threads > 0 ? cfg->threads : comm_default_threads(w));
    int rc = mesh_init(&t.mesh, (MeshDims){cfg->dp, cfg->tp, cfg->pp}, e);
    if (rc) return -1;
    rc = start_trace(&t, e);
    if (!rc) rc = read_resume_point(&t, e);
    if (!rc) rc = open_data(&t, e);
    if (!rc) rc = setup_model(&t, e);
    if (!rc) rc = load_initial_state(&t, e);
    rc = trainer_agree(&t, rc, e);
    if (!rc) rc = trainer_agree(&t, setup_run_dir(&t, e), e);
    if (!rc && trainer_is_rank0(&t)) announce(&t);
    if (!rc) trainer_heartbeat(&t, t.start_step);
    if (!rc && t.start_step == 0 && cfg->eval_every > 0 && t.val.file) {
        double v = trainer_eval_loss(&t);
        if (trainer_is_rank0(&t)) progress_initial_eval(&t.prog, v);
    }
    res->first_step = t.start_step;
    snprintf(res->run_dir, sizeof res->run_dir, "%s", cfg->out);
    if (!rc) rc = cfg->optim.kind == OPT_ZO ? zo_run_steps(&t, res, e) : run_steps(&t, res, e);
    res->opt_state_bytes = t.opt.state_bytes;
    if (!rc) rc = trainer_agree(&t, write_summary(&t, res, e), e);
    if (!rc && cfg->trace[0]) rc = trainer_agree(&t, timeline_write(t.mesh.world, cfg->trace, e), e);
    trace_disable();
    if (!rc && trainer_is_rank0(&t) && cfg->predicted_step_ms > 0)
        progress_note(&t.prog, "planner: predicted %.1f ms/step for dp %d x tp %d x pp %d, "
                               "measured %.1f ms/step (%+.0f%%)",
                      cfg->predicted_step_ms, cfg->dp, cfg->tp, cfg->pp, res->mean_step_ms,
                      (cfg->predicted_step_ms / res->mean_step_ms - 1) * 100);
    if (!rc && trainer_is_rank0(&t))
        progress_note(&t.prog, "done: step %ld, loss %.4f, %.0f tok/s, %.1f GFLOP/s, %.0f ms/step "
                               "(%.1f ms exposed comm), peak RSS %ld MB, checkpoint %s",
                      res->last_step, res->final_loss, res->mean_tokens_per_s, res->mean_gflops,
                      res->mean_step_ms, res->mean_exposed_ms, peak_rss_mb(), res->last_ckpt);
    trainer_free(&t);
    return rc;
}
