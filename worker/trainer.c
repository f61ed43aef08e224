#include "worker/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "coordinator/progress.h"
#include "models/ops.h"
#include "worker/ckpt.h"
#include "worker/data.h"
#include "worker/fsutil.h"

typedef struct {
    const TrainConfig *cfg;
    const CommWorld *w;
    TokenFile data;
    Loader train, val;
    Model model;
    Optimizer opt;
    int micro_b;           /* sequences per micro-batch on this rank */
    int *inputs, *targets; /* one local batch */
    long start_step;       /* steps already done (resume) */
    uint64_t data_pos;     /* global batch index of the next step */
    char data_path[PATH_LEN];
    char run_dir[PATH_LEN];
    char ckpt_root[PATH_LEN];
    CkptMeta resume_meta;
    char resume_dir[PATH_LEN];
    Progress prog;
} Trainer;

static int is_rank0(const Trainer *t) { return t->w->rank == 0; }

/* ---- set-up ---------------------------------------------------------------- */

/* <run>/ckpt/step_N -> <run> */
static void run_dir_of_checkpoint(const char *step_dir, char *out, size_t n)
{
    snprintf(out, n, "%s", step_dir);
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(out, '/');
        if (!slash) {
            snprintf(out, n, ".");
            return;
        }
        *slash = 0;
    }
}

static int resolve_resume(Trainer *t, TrainConfig *cfg, Err *e)
{
    if (!cfg->resume[0]) return 0;
    if (ckpt_resolve(cfg->resume, t->resume_dir, sizeof t->resume_dir, e) ||
        ckpt_load_meta(t->resume_dir, &t->resume_meta, e))
        return err_wrap(e, "--resume %s", cfg->resume);
    const CkptMeta *m = &t->resume_meta;
    /* the checkpoint defines the model, optimizer and data; flags decide how
     * long to go on */
    cfg->model = m->model;
    long steps = cfg->steps;
    cfg->optim = m->optim;
    cfg->optim.total_steps = steps;
    cfg->global_batch = m->global_batch;
    cfg->seed = m->seed;
    if (!cfg->data[0]) snprintf(cfg->data, sizeof cfg->data, "%s", m->data_path);
    if (m->step >= steps)
        return err_set(e, "--resume %s: checkpoint is at step %lld, nothing to do for --steps %ld",
                       cfg->resume, (long long)m->step, steps);
    t->start_step = m->step;
    t->data_pos = m->data_pos;
    if (!cfg->out[0]) run_dir_of_checkpoint(t->resume_dir, cfg->out, sizeof cfg->out);
    return 0;
}

static int open_data(Trainer *t, const TrainConfig *cfg, Err *e)
{
    snprintf(t->data_path, sizeof t->data_path, "%s", cfg->data);
    if (tokfile_open(&t->data, t->data_path, e)) return err_wrap(e, "--data");
    if (t->data.vocab > cfg->model.vocab)
        return err_set(e, "--data %s has vocabulary %d but the model's --vocab is %d; raise --vocab",
                       t->data_path, t->data.vocab, cfg->model.vocab);
    int ranks = 1, rank = 0;
    if (loader_init(&t->train, &t->data, SPLIT_TRAIN, cfg->model.seq_len, cfg->global_batch, rank,
                    ranks, e))
        return -1;
    if (cfg->eval_every > 0 && t->data.n_val > 0 &&
        loader_init(&t->val, &t->data, SPLIT_VAL, cfg->model.seq_len, cfg->global_batch, rank,
                    ranks, e))
        return -1;
    return 0;
}

static int setup_model(Trainer *t, const TrainConfig *cfg, Err *e)
{
    int local = t->train.local_batch;
    if (local % cfg->micro_batches)
        return err_set(e, "--micro-batches %d does not divide the %d sequences per rank; "
                          "pick a divisor of %d",
                       cfg->micro_batches, local, local);
    t->micro_b = local / cfg->micro_batches;
    if (model_init(&t->model, &cfg->model, t->micro_b, cfg->seed, e)) return -1;
    if (optim_init(&t->opt, &cfg->optim, 0, t->model.n_params, e)) return -1;
    size_t n = (size_t)local * cfg->model.seq_len;
    t->inputs = calloc(n, sizeof(int));
    t->targets = calloc(n, sizeof(int));
    if (!t->inputs || !t->targets) return err_set(e, "out of memory for the batch");
    return 0;
}

static int load_initial_state(Trainer *t, const TrainConfig *cfg, Err *e)
{
    if (t->resume_dir[0]) {
        if (ckpt_load(t->resume_dir, &t->model, &t->opt, e)) return -1;
        t->opt.t = t->resume_meta.opt_t;
        return 0;
    }
    if (!cfg->init_from[0]) return 0;
    char dir[PATH_LEN];
    CkptMeta meta;
    if (ckpt_resolve(cfg->init_from, dir, sizeof dir, e) || ckpt_load_meta(dir, &meta, e))
        return err_wrap(e, "--init-from %s", cfg->init_from);
    if (memcmp(&meta.model, &cfg->model, sizeof meta.model) != 0)
        return err_set(e, "--init-from %s: the checkpoint's model (%d layers, %d heads, width %d, "
                          "seq %d, vocab %d) differs from this run's; pass the same model flags",
                       dir, meta.model.n_layer, meta.model.n_head, meta.model.n_embd,
                       meta.model.seq_len, meta.model.vocab);
    return ckpt_load(dir, &t->model, NULL, e);
}

static int setup_run_dir(Trainer *t, const TrainConfig *cfg, Err *e)
{
    snprintf(t->run_dir, sizeof t->run_dir, "%s", cfg->out);
    snprintf(t->ckpt_root, sizeof t->ckpt_root, "%s/ckpt", cfg->out);
    if (!is_rank0(t)) return 0;
    char metrics[PATH_LEN + 32];
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", cfg->out);
    if (!t->start_step && !cfg->overwrite && access(metrics, F_OK) == 0)
        return err_set(e, "--out %s already holds a run; continue it with --resume %s, "
                          "or pass --overwrite, or choose another --out",
                       cfg->out, cfg->out);
    if (mkdir_p(cfg->out, e)) return -1;
    return progress_open(&t->prog, cfg->out, cfg->steps, t->start_step, cfg->progress,
                         cfg->log_every, cfg->quiet, e);
}

/* ---- one step ----------------------------------------------------------- */

static double forward_backward(Trainer *t, uint64_t batch_index)
{
    const int T = t->cfg->model.seq_len;
    const float scale = 1.0f / ((float)t->cfg->global_batch * model_preds_per_seq(&t->cfg->model));
    loader_batch(&t->train, batch_index, t->inputs, t->targets);
    model_zero_grad(&t->model);
    double loss_sum = 0;
    for (int mb = 0; mb < t->cfg->micro_batches; mb++) {
        size_t off = (size_t)mb * t->micro_b * T;
        loss_sum += model_forward(&t->model, t->inputs + off, t->targets + off, t->micro_b);
        model_backward(&t->model, t->inputs + off, t->targets + off, t->micro_b, scale);
    }
    return loss_sum;
}

static double eval_loss(Trainer *t)
{
    const TrainConfig *c = t->cfg;
    const int T = c->model.seq_len;
    double sum = 0;
    for (int k = 0; k < c->eval_batches; k++) {
        loader_batch(&t->val, (uint64_t)k, t->inputs, t->targets);
        for (int mb = 0; mb < c->micro_batches; mb++) {
            size_t off = (size_t)mb * t->micro_b * T;
            sum += model_forward(&t->model, t->inputs + off, t->targets + off, t->micro_b);
        }
    }
    return sum / ((double)c->eval_batches * c->global_batch * model_preds_per_seq(&c->model));
}

static int save_checkpoint(Trainer *t, long step, TrainResult *res, Err *e)
{
    CkptMeta meta;
    memset(&meta, 0, sizeof meta);
    meta.model = t->cfg->model;
    meta.optim = t->cfg->optim;
    meta.step = step;
    meta.seed = t->cfg->seed;
    meta.data_pos = t->data_pos;
    meta.global_batch = t->cfg->global_batch;
    meta.opt_t = t->opt.t;
    meta.dp = meta.tp = meta.pp = 1;
    snprintf(meta.data_path, sizeof meta.data_path, "%s", t->data_path);
    if (ckpt_save(t->ckpt_root, &meta, &t->model, &t->opt, res->last_ckpt, sizeof res->last_ckpt, e))
        return -1;
    return ckpt_prune(t->ckpt_root, t->cfg->keep_ckpts, e);
}

static int should_eval(const Trainer *t, long step)
{
    const TrainConfig *c = t->cfg;
    if (c->eval_every <= 0 || !t->val.file) return 0;
    return step % c->eval_every == 0 || step == c->steps;
}

static int should_save(const Trainer *t, long step)
{
    const TrainConfig *c = t->cfg;
    return (c->save_every > 0 && step % c->save_every == 0) || step == c->steps;
}

static int run_steps(Trainer *t, TrainResult *res, Err *e)
{
    const TrainConfig *c = t->cfg;
    const double flops_per_step = model_train_flops_per_seq(&t->model) * c->global_batch;
    const double tokens_per_step = (double)c->global_batch * c->model.seq_len;
    double sum_ms = 0;
    int timed = 0;
    for (long step = t->start_step; step < c->steps; step++) {
        double t0 = comm_wtime();
        double loss = forward_backward(t, t->data_pos) / (c->global_batch * model_preds_per_seq(&c->model));
        t->data_pos++;
        double norm = sqrt(sum_squares(t->model.grads, t->model.n_params));
        if (!isfinite(loss) || !isfinite(norm))
            return err_set(e, "step %ld: loss is %g and gradient norm %g: training diverged; "
                              "lower --lr or raise --warmup",
                           step + 1, loss, norm);
        float lr = lr_at(&c->optim, step);
        optim_update(&t->opt, &t->model, t->model.params, t->model.grads, lr,
                     clip_coef(&c->optim, norm));
        double ms = (comm_wtime() - t0) * 1e3;
        StepReport r = {step + 1, loss, NAN, lr, norm, tokens_per_step / (ms / 1e3),
                        flops_per_step / (ms / 1e3) / 1e9, 0, ms};
        if (step > t->start_step || c->steps - t->start_step == 1) { /* first step warms caches */
            sum_ms += ms;
            timed++;
        }
        if (should_eval(t, step + 1)) r.val_loss = res->final_val_loss = eval_loss(t);
        if (is_rank0(t)) progress_report(&t->prog, &r);
        res->final_loss = loss;
        res->last_step = step + 1;
        if (should_save(t, step + 1) && save_checkpoint(t, step + 1, res, e)) return -1;
    }
    if (timed) {
        res->mean_step_ms = sum_ms / timed;
        res->mean_tokens_per_s = tokens_per_step / (res->mean_step_ms / 1e3);
        res->mean_gflops = flops_per_step / (res->mean_step_ms / 1e3) / 1e9;
    }
    return 0;
}

static void trainer_free(Trainer *t)
{
    progress_close(&t->prog);
    free(t->inputs);
    free(t->targets);
    optim_free(&t->opt);
    model_free(&t->model);
    tokfile_close(&t->data);
}

static long peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024;
}

int train_run(const TrainConfig *cfg_in, const CommWorld *w, TrainResult *res, Err *e)
{
    TrainConfig cfg = *cfg_in;
    Trainer t;
    memset(&t, 0, sizeof t);
    memset(res, 0, sizeof *res);
    res->final_val_loss = NAN;
    t.cfg = &cfg;
    t.w = w;
    ops_set_threads(cfg.threads > 0 ? cfg.threads : comm_default_threads(w));
    int rc = resolve_resume(&t, &cfg, e);
    if (!rc) rc = train_config_validate(&cfg, e);
    if (!rc) rc = open_data(&t, &cfg, e);
    if (!rc) rc = setup_model(&t, &cfg, e);
    if (!rc) rc = load_initial_state(&t, &cfg, e);
    if (!rc) rc = setup_run_dir(&t, &cfg, e);
    if (!rc && is_rank0(&t)) {
        progress_note(&t.prog, "mpitrain: %s %d layers x %d wide, %.2fM params, batch %d x %d, "
                               "%d thread(s), %s%s",
                      cfg.model.kind == MODEL_GPT ? "gpt" : "mlp", cfg.model.n_layer,
                      cfg.model.n_embd, t.model.n_params / 1e6, cfg.global_batch,
                      cfg.model.seq_len, ops_get_threads(), optim_name(cfg.optim.kind),
                      t.start_step ? " (resumed)" : "");
    }
    res->first_step = t.start_step;
    snprintf(res->run_dir, sizeof res->run_dir, "%s", t.run_dir);
    if (!rc) rc = run_steps(&t, res, e);
    res->opt_state_bytes = t.opt.state_bytes;
    if (!rc && is_rank0(&t))
        progress_note(&t.prog, "done: step %ld, loss %.4f, %.0f tok/s, %.1f GFLOP/s, %.0f ms/step, "
                               "peak RSS %ld MB, checkpoint %s",
                      res->last_step, res->final_loss, res->mean_tokens_per_s, res->mean_gflops,
                      res->mean_step_ms, peak_rss_mb(), res->last_ckpt);
    trainer_free(&t);
    return rc;
}
