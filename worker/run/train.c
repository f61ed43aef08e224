/* Set-up and tear-down of a training run on every rank: the mesh, data,
 * model, initial weights and run directory; the method's strategy as the
 * plan resolved it (TrainConfig.method); the run's summary. The steps
 * themselves are the loop's (worker/loop/loop.c). */
#include "worker/run/train.h"
#include "worker/run/testhooks.h"

#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "base/fileio.h"
#include "base/json.h"
#include "base/sysinfo.h"
#include "comm/trace/trace.h"
#include "models/arch.h"
#include "models/ops.h"
#include "worker/ckpt/hfio.h"
#include "worker/ckpt/lorabase.h"
#include "worker/ckpt/peft.h"
#include "worker/data/bpe.h"
#include "worker/data/task.h"
#include "worker/loop/loop.h"

/* ---- set-up ---------------------------------------------------------------- */

static int start_trace(Trainer *t, Err *e)
{
    const TrainConfig *c = t->cfg;
    if (!c->trace[0]) return 0;
    /* its folders now, on every rank (each writes its part there), not a
     * "cannot create" once the run is over */
    if (mkdir_parent(c->trace, e) || trace_enable(t->mesh.world, c->trace, e)) return -1;
    char label[TRACE_LABEL_LEN];
    snprintf(label, sizeof label, "rank %d: dp %d, tp %d, pp %d", t->w->rank, t->mesh.me.dp,
             t->mesh.me.tp, t->mesh.me.pp);
    trace_set_label(label);
    return 0;
}

/* --resume: the manifest is read once, here; its weights are loaded from the
 * same parsed copy once the model exists. */
static int read_resume_point(Trainer *t, Mpitrain__Manifest **mf, Err *e)
{
    *mf = NULL;
    if (!t->cfg->resume[0]) return 0;
    if (ckpt_read_manifest(t->cfg->resume, mf, e)) return -1;
    if (ckpt_meta_from_pb(*mf, &t->resume_meta, e)) return err_wrap(e, "--resume %s", t->cfg->resume);
    t->start_step = t->resume_meta.step;
    t->data_pos = t->resume_meta.data_pos;
    return 0;
}

/* One token file, read as --data-format says, and every token below the
 * model's vocab: the embedding has that many rows, and a nanoGPT file
 * declares no vocab of its own to check against at open. */
static int open_tokens(TokenFile *f, const char *flag, const char *path, TokUse use,
                       const TrainConfig *c, Err *e)
{
    if (tokfile_open_as(f, path, (DataFormat)c->data_format, use, e)) return err_wrap(e, "%s", flag);
    if (f->vocab > c->model.vocab)
        return err_set(e, "%s %s has vocabulary %d but the model's --vocab is %d; raise --vocab",
                       flag, path, f->vocab, c->model.vocab);
    if (tokfile_check_vocab(f, c->model.vocab, "the model's --vocab", e))
        return err_wrap(e, "%s", flag);
    return 0;
}

static int open_data(Trainer *t, Err *e)
{
    const TrainConfig *c = t->cfg;
    int own_val = c->val_data[0] != 0;
    if (open_tokens(&t->data, "--data", c->data, own_val ? TOKUSE_TRAIN : TOKUSE_BOTH, c, e))
        return -1;
    if (own_val && open_tokens(&t->val_data, "--val-data", c->val_data, TOKUSE_VAL, c, e))
        return -1;
    if (c->doc_attention && !t->data.mask)
        return err_set(e, "--doc-attention: --data %s marks no examples to keep apart (mpitrain "
                          "prepare --format jsonl marks each example's first token, prepare "
                          "--mark-documents each text file's)",
                       c->data);
    const TokenFile *val = own_val ? &t->val_data : &t->data;
    int r = t->mesh.me.dp, n = t->mesh.dims.dp;
    if (loader_init(&t->train, &t->data, SPLIT_TRAIN, c->model.seq_len, c->global_batch, r, n, e))
        return -1;
    if (c->shuffle) loader_shuffle(&t->train, c->seed);
    if (c->eval_every > 0 && val->n_val > 0 &&
        loader_init(&t->val, val, SPLIT_VAL, c->model.seq_len, c->global_batch, r, n, e))
        return -1;
    return 0;
}

static void tp_allreduce(void *ctx, float *buf, size_t n)
{
    coll_allreduce_sum_f32((Group *)ctx, buf, n);
}

static int setup_model(Trainer *t, const StepStrategy *s, Err *e)
{
    const TrainConfig *c = t->cfg;
    int local = t->train.local_batch, dp = t->mesh.dims.dp;
    int stage = t->mesh.me.pp, p = t->mesh.dims.pp;
    t->micro_b = local / c->micro_batches;
    ModelShard sh = {.tp_rank = t->mesh.me.tp, .tp_size = t->mesh.dims.tp,
                     .first_block = c->stage_first[stage],
                     .last_block = c->stage_first[stage + 1] - 1,
                     .slots = pipeline_slots((Schedule)c->pp_schedule, stage, p, c->micro_batches)};
    if (p == 1)
        sh = (ModelShard){.tp_rank = t->mesh.me.tp, .tp_size = t->mesh.dims.tp, .last_block = -1,
                          .slots = 1};
    sh.forward_only = s->forward_only;
    /* --resume and --init-from load every weight */
    int loads = c->resume[0] || c->init_from[0];
    if (loads ? model_build_shard(&t->model, &c->model, &sh, t->micro_b, e)
              : model_init_shard(&t->model, &c->model, &sh, t->micro_b, c->seed, e))
        return -1;
    t->model.tp_allreduce = tp_allreduce;
    t->model.tp_ctx = t->mesh.tp;
    if (pipeline_init(&t->pipe, &t->model, t->mesh.pp, stage, p, c->micro_batches, t->micro_b,
                      p == 1 ? SCHED_1F1B : (Schedule)c->pp_schedule, e))
        return -1;
    /* replicas with their own gradients reduce none across replicas */
    Group *grad_dp = t->mesh.dp;
    if (s->replica_grads) grad_dp = t->solo = group_split(t->mesh.dp, group_rank(t->mesh.dp), 0);
    if (gradsync_init(&t->sync, &t->model, grad_dp, c->zero, train_config_bucket_bytes(c),
                      c->overlap, e))
        return -1;
    Range u = gradsync_update_range(&t->sync);
    if (optim_init(&t->opt, &c->optim, u.lo, u.hi, e)) return -1;
    size_t n = (size_t)local * c->model.seq_len;
    t->inputs = calloc(n, sizeof(int));
    t->targets = calloc(n, sizeof(int));
    t->shard_counts = calloc(dp, sizeof(int));
    if (c->doc_attention) t->pos = calloc(n, sizeof(int));
    if (!t->inputs || !t->targets || !t->shard_counts || (c->doc_attention && !t->pos))
        return err_set(e, "out of memory for the batch");
    pipeline_set_positions(&t->pipe, t->pos);
    for (int r = 0; r < dp; r++) {
        Range s = split_even(t->model.n_params, dp, r);
        t->shard_counts[r] = (int)(s.hi - s.lo);
    }
    return 0;
}

/* LoRA: which share of this process's frozen base its checkpoints write
 * (--lora-save-base, or a resumed checkpoint that holds its base: it keeps
 * standing alone): its dp rank's slice, as the trained weights are split. */
static void base_share(Trainer *t, const Mpitrain__Manifest *resume)
{
    int saves = t->cfg->lora_save_base || (resume && ckpt_has_kind(resume, CKPT_BASE_KIND));
    if (saves && t->model.base.n_tensors)
        t->base_ref.share = split_even(t->model.base.n_params, t->mesh.dims.dp, t->mesh.me.dp);
}

static int load_resumed(Trainer *t, const Mpitrain__Manifest *resume, Err *e)
{
    const TrainConfig *c = t->cfg;
    /* a LoRA run's base first (rank 0 checks that a referenced one is
     * unchanged), the adapters and their optimizer state over it */
    if (lorabase_load(c->resume, resume, &t->resume_meta, &t->model, trainer_is_rank0(t), e))
        return err_wrap(e, "--resume");
    if (ckpt_load_from(c->resume, resume, &t->model, &t->opt, e)) return -1;
    t->opt.t = t->resume_meta.opt_t;
    t->base_ref = t->resume_meta.base;
    snprintf(t->source_dtype, sizeof t->source_dtype, "%s", t->resume_meta.source_dtype);
    snprintf(t->source_arch, sizeof t->source_arch, "%s", t->resume_meta.source_arch);
    if (!t->tokenizer[0]) ckpt_tokenizer_of(c->resume, t->tokenizer, sizeof t->tokenizer);
    return 0;
}

/* LoRA after --init-from filled the base: the adapters from --lora-from,
 * else from the run seed (A Kaiming-uniform, B zero: a fresh start that
 * learns); rank 0 records the base the checkpoints refer to. */
static int start_adapters(Trainer *t, const WeightSource *src, Err *e)
{
    const TrainConfig *c = t->cfg;
    if (!t->model.base.n_tensors) return 0;
    if (c->lora_from[0]) {
        if (peft_load_adapters(c->lora_from, &t->model, e)) return err_wrap(e, "--lora-from");
    } else {
        model_init_trainable(&t->model, c->seed);
    }
    return trainer_is_rank0(t) ? lorabase_ref(c->init_from, src, &t->base_ref, e) : 0;
}

/* --init-from: the source's weights (a LoRA model's frozen base), with the
 * tokenizer, dtype and class they came with. */
static int load_init_from(Trainer *t, WeightSource *src, Err *e)
{
    const TrainConfig *c = t->cfg;
    /* the plan took the model's shape from the source; the load checks
     * every tensor against it */
    int rc = wsource_open(c->init_from, src, e);
    if (!rc) rc = wsource_load(src, &t->model, e);
    if (!rc && !t->tokenizer[0]) wsource_tokenizer(src, t->tokenizer, sizeof t->tokenizer);
    if (!rc) snprintf(t->source_dtype, sizeof t->source_dtype, "%s", src->dtype);
    if (!rc) snprintf(t->source_arch, sizeof t->source_arch, "%s", src->arch);
    return rc ? err_wrap(e, "--init-from %s", c->init_from) : 0;
}

/* The weights to start from, and the tokenizer the checkpoints will keep:
 * --tokenizer, else the one that came with the resumed checkpoint or the
 * --init-from source (a GPT-2 import carries GPT-2's). */
static int load_initial_state(Trainer *t, const Mpitrain__Manifest *resume, Err *e)
{
    const TrainConfig *c = t->cfg;
    snprintf(t->tokenizer, sizeof t->tokenizer, "%s", c->tokenizer);
    int rc = 0;
    if (resume) {
        rc = load_resumed(t, resume, e);
    } else if (c->init_from[0]) {
        WeightSource src;
        rc = load_init_from(t, &src, e);
        if (!rc) rc = start_adapters(t, &src, e);
        wsource_close(&src);
    }
    base_share(t, resume);
    return rc;
}

/* Rank 0: the tokenizer the checkpoints keep must read, and fit the model:
 * a GPT-2 tokenizer on a byte-level model would make `sample` decode ids
 * 0..255 as GPT-2 tokens without a word of warning. --tokenizer's is an
 * error; one that merely came with the source is dropped with a note, so a
 * broken tokenizer file never stops a fine-tuning run. */
static int check_tokenizer(Trainer *t, Err *e)
{
    if (!t->tokenizer[0] || !trainer_is_rank0(t)) return 0;
    Err why = {{0}};
    Bpe *b = bpe_load_copyable(t->tokenizer, &why); /* as each checkpoint will copy it */
    int loaded = b != NULL, tv = b ? bpe_vocab_size(b) : 0, mv = t->cfg->model.vocab;
    bpe_free(b);
    if (loaded && tv > mv)
        err_set(&why, "tokenizer %s has %d tokens but the model's vocabulary is %d: its ids would "
                      "not fit; pass --vocab %d (or a tokenizer for this vocabulary)",
                t->tokenizer, tv, mv, tv);
    if (!why.msg[0]) return 0;
    if (t->cfg->tokenizer[0]) return err_set(e, "--tokenizer: %s", why.msg);
    trainer_note(t, "not keeping the source's tokenizer in the checkpoints: %s", why.msg);
    t->tokenizer[0] = 0;
    return 0;
}

/* Rank 0 makes the run directory this run's alone (locked), and with
 * --overwrite an empty one: the old run's journal and checkpoints would
 * otherwise be replayed into, or mixed with, the new run's. */
static int claim_run_dir(Trainer *t, char *kept, size_t kept_len, Err *e)
{
    const TrainConfig *c = t->cfg;
    kept[0] = 0;
    if (t->start_step || !c->overwrite || access(c->out, F_OK) != 0) {
        if (mkdir_p(c->out, e)) return -1;
        return run_dir_lock(c->out, &t->lock, e);
    }
    if (path_lies_inside(c->data, c->out) || path_lies_inside(c->init_from, c->out))
        return err_set(e, "--overwrite %s would remove this run's --data or --init-from, which "
                          "lie inside it; move them out first", c->out);
    return run_dir_replace(c->out, &t->lock, kept, kept_len, e);
}

static int setup_run_dir(Trainer *t, Err *e)
{
    const TrainConfig *c = t->cfg;
    snprintf(t->ckpt_root, sizeof t->ckpt_root, "%s/ckpt", c->out);
    if (!trainer_is_rank0(t)) return 0;
    char metrics[PATH_BUF], kept[PATH_BUF];
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", c->out);
    if (!t->start_step && !c->overwrite && access(metrics, F_OK) == 0)
        return err_set(e, "--out %s already holds a run; continue it with --resume %s, "
                          "or pass --overwrite, or choose another --out",
                       c->out, c->out);
    if (claim_run_dir(t, kept, sizeof kept, e)) return -1;
    char path[PATH_BUF];
    snprintf(path, sizeof path, "%s/config.json", c->out);
    if (train_config_write_json(c, path, e)) return -1;
    if (t->obs->begin && t->obs->begin(t->obs->ctx, c, t->start_step, e)) return -1;
    if (kept[0])
        trainer_note(t, "--overwrite: the old run could not be removed; it lies whole in %s", kept);
    return 0;
}

/* --eval-task: its requests, through the tokenizer the checkpoints keep (or
 * bytes), on every rank; each scores its share at an evaluation. A model
 * split over tp or pp ranks is not scored (each rank its share of it). */
static int load_task(Trainer *t, Err *e)
{
    const TrainConfig *c = t->cfg;
    if (!c->eval_task[0]) return 0;
    if (c->tp * c->pp > 1)
        return err_set(e, "--eval-task with --tp %d --pp %d: a task is scored on whole models "
                          "(tp = pp = 1) for now", c->tp, c->pp);
    if (!t->tokenizer[0] && c->model.vocab > 256)
        return err_set(e, "--eval-task %s: vocabulary %d needs a tokenizer (--tokenizer DIR, or a "
                          "--init-from source that has one)", c->eval_task, c->model.vocab);
    Bpe *b = NULL;
    if (t->tokenizer[0] && !(b = bpe_load(t->tokenizer, e))) return err_wrap(e, "--eval-task");
    t->task = calloc(1, sizeof *t->task);
    int rc = t->task ? task_read(c->eval_task, b, t->task, e) : err_set(e, "out of memory");
    bpe_free(b);
    if (!rc) rc = task_check(t->task, c->eval_task, c->model.vocab, c->model.seq_len, e);
    if (!rc && !(t->task_ll = malloc(t->task->n_req * sizeof *t->task_ll)))
        rc = err_set(e, "out of memory for --eval-task's %zu requests", t->task->n_req);
    if (rc) return err_wrap(e, "--eval-task");
    return 0;
}

static void trainer_free(Trainer *t)
{
    if (trainer_is_rank0(t) && t->obs->end) t->obs->end(t->obs->ctx);
    free(t->inputs);
    free(t->targets);
    free(t->pos);
    free(t->shard_counts);
    pipeline_free(&t->pipe);
    gradsync_free(&t->sync);
    optim_free(&t->opt);
    model_free(&t->model);
    tokfile_close(&t->data);
    tokfile_close(&t->val_data);
    if (t->solo) group_free(t->solo);
    if (t->resume_mf) mpitrain__manifest__free_unpacked(t->resume_mf, NULL);
    if (t->task) task_free(t->task);
    free(t->task);
    free(t->task_ll);
    mesh_free(&t->mesh);
    run_dir_unlock(&t->lock);
}


static long peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024;
}

/* Figures each rank reports for the summary: the allocators' own
 * accounting, and the malloc heap measured after each step. */
typedef struct {
    double opt_bytes, act_bytes, slots, weight_bytes, view_bytes, heap_peak, startup_bytes;
} RankMemory;

/* "key":[one figure per rank] */
static void append_array(JsonOut *j, const char *key, const RankMemory *all, int ranks,
                         size_t field)
{
    json_begin_array(json_key(j, key));
    for (int i = 0; i < ranks; i++)
        json_fixed(j, *(const double *)((const char *)&all[i] + field), 0);
    json_end_array(j);
}

/* --time-budget's figures, and what ended the run: a stop signal, the
 * budget (it set end_step below --steps) or --steps. */
static void append_budget(JsonOut *j, const Trainer *t, const TrainResult *res)
{
    const char *by = res->stop_signal ? "signal"
                     : t->ended_by                 ? t->ended_by
                     : t->end_step < t->cfg->steps ? "time-budget" : "steps";
    json_str(json_key(j, "ended_by"), by);
    json_fixed(json_key(j, "time_budget_s"), t->cfg->time_budget_s, 3);
    json_fixed(json_key(j, "budget_used_s"), t->budget_used_s, 3);
}

/* The figures of the summary that rank 0 knows itself, in the file's order. */
static void append_run_figures(JsonOut *j, const Trainer *t, const TrainResult *res, int ranks,
                               int64_t rss)
{
    json_int(json_key(j, "ranks"), ranks);
    json_int(json_key(j, "dp"), t->cfg->dp);
    json_int(json_key(j, "tp"), t->cfg->tp);
    json_int(json_key(j, "pp"), t->cfg->pp);
    json_int(json_key(j, "zero"), t->cfg->zero);
    json_int(json_key(j, "micro_batches"), t->cfg->micro_batches);
    json_str(json_key(j, "pp_schedule"), t->cfg->pp_schedule ? "1f1b" : "gpipe");
    json_uint(json_key(j, "params"), t->model.global_params);
    json_int(json_key(j, "first_step"), res->first_step);
    json_int(json_key(j, "last_step"), res->last_step);
    json_double(json_key(j, "final_loss"), res->final_loss);
    /* null when the run never evaluated */
    json_double(json_key(j, "final_val_loss"), res->final_val_loss);
    /* what it is a mean over: not `mpitrain eval`'s every window by default */
    json_int(json_key(j, "val_windows"), t->val.file ? trainer_val_windows(t->cfg) : 0);
    json_fixed(json_key(j, "wall_s"), comm_wtime() - t->t_start, 3);
    json_fixed(json_key(j, "mean_step_ms"), res->mean_step_ms, 3);
    json_fixed(json_key(j, "mean_exposed_comm_ms"), res->mean_exposed_ms, 3);
    json_fixed(json_key(j, "mean_tokens_per_s"), res->mean_tokens_per_s, 1);
    json_fixed(json_key(j, "mean_gflops"), res->mean_gflops, 2);
    /* the planner's verdict's inputs: null when the kernel does not say */
    json_sig(json_key(j, "cpu_share"), res->cpu_share >= 0 ? res->cpu_share : NAN, 4);
    json_sig(json_key(j, "fair_cpu_share"), res->fair_share, 4);
    json_fixed(json_key(j, "predicted_step_ms"), t->cfg->predicted_step_ms, 3);
    json_int(json_key(j, "peak_rss_mb"), rss);
    append_budget(j, t, res);
}

/* <out>/summary.json: the run's figures, for people and for tests. */
static int write_summary(Trainer *t, const TrainResult *res, Err *e)
{
    int n = t->w->size;
    RankMemory mine = {(double)t->opt.state_bytes, (double)t->model.act_floats * sizeof(float),
                       (double)t->model.shard.slots, (double)t->model.n_params * sizeof(float),
                       (double)t->model.view_floats * sizeof(float), (double)t->heap_peak,
                       t->startup_bytes};
    RankMemory *all = trainer_is_rank0(t) ? calloc(n, sizeof *all) : NULL;
    /* every rank learns whether rank 0 has room for the gather, so none
     * enters it alone: [0] the peak RSS, [1] rank 0 out of memory */
    int64_t v[2] = {peak_rss_mb(), trainer_is_rank0(t) && !all};
    coll_allreduce_max_i64(t->mesh.world, v, 2);
    if (v[1]) return trainer_is_rank0(t) ? err_set(e, "out of memory for the summary") : 0;
    coll_gather_bytes(t->mesh.world, &mine, all, sizeof mine, 0);
    if (!trainer_is_rank0(t)) return 0;
    JsonOut j;
    json_init(&j, NULL);
    json_begin_object(&j);
    append_run_figures(&j, t, res, n, v[0]);
    append_array(&j, "opt_state_bytes_per_rank", all, n, offsetof(RankMemory, opt_bytes));
    append_array(&j, "act_bytes_per_rank", all, n, offsetof(RankMemory, act_bytes));
    append_array(&j, "act_slots_per_rank", all, n, offsetof(RankMemory, slots));
    append_array(&j, "weight_bytes_per_rank", all, n, offsetof(RankMemory, weight_bytes));
    append_array(&j, "view_bytes_per_rank", all, n, offsetof(RankMemory, view_bytes));
    append_array(&j, "heap_peak_bytes_per_rank", all, n, offsetof(RankMemory, heap_peak));
    append_array(&j, "startup_bytes_per_rank", all, n, offsetof(RankMemory, startup_bytes));
    json_end_object(&j);
    json_newline(&j);
    free(all);
    char path[PATH_BUF];
    snprintf(path, sizeof path, "%s/summary.json", t->cfg->out);
    int rc = json_finish(&j) ? err_set(e, "%s: %s", path, j.error)
                             : write_file_atomic(path, j.buf, j.len, e);
    json_free(&j);
    return rc;
}

static void announce(Trainer *t)
{
    const TrainConfig *c = t->cfg;
    const Model *m = &t->model;
    char params[256];
    if (m->base.n_tensors)
        snprintf(params, sizeof params, "%.2fM params frozen, LoRA rank %d on %s: %.3fM trained",
                 m->base.n_params / 1e6, c->model.lora_rank, lora_targets_spec(&c->model),
                 m->n_params / 1e6);
    else
        snprintf(params, sizeof params, "%.2fM params", m->n_params / 1e6);
    trainer_note(t,
                 "mpitrain: %s %d layers x %d wide, %s | %d rank(s): dp %d x tp %d x "
                 "pp %d, zero %d | batch %d x %d, %d micro-batch(es) | %d thread(s)/rank | %s%s",
                 model_kind_name(c->model.kind), c->model.n_layer, c->model.n_embd, params,
                 t->w->size, c->dp, c->tp, c->pp, c->zero, c->global_batch, c->model.seq_len,
                 c->micro_batches, ops_get_threads(), optim_name(c->optim.kind),
                 t->start_step ? " (resumed)" : "");
}

/* Once at the start: what val_loss will be (a mean over how many windows,
 * how to reproduce it), or that there will be none although asked for. */
static void announce_validation(const Trainer *t)
{
    const TrainConfig *c = t->cfg;
    if (c->eval_every <= 0) return;
    const char *file = c->val_data[0] ? c->val_data : c->data;
    if (!t->val.file) {
        trainer_note(t, "validation: %s has no validation tokens, so --eval-every %d computes no "
                        "val_loss; give --val-data FILE, or prepare the file with a --val-fraction",
                     file, c->eval_every);
        return;
    }
    long w = trainer_val_windows(c);
    unsigned long long have = (unsigned long long)t->val.n_windows;
    trainer_note(t, "validation: val_loss is the mean loss over the first %ld of the %llu windows "
                    "of %s's validation tokens%s (mpitrain eval --windows %ld%s gives the same)",
                 w, have, file, (unsigned long long)w > have ? ", taken round again" : "", w,
                 c->val_data[0] ? " --as-val-data" : "");
}

static const TrainObserver SILENT = {0};

int train_run(const TrainConfig *cfg, const CommWorld *w, const TrainObserver *obs,
              StopFlag *stop, TrainResult *res, Err *e)
{
    Trainer t;
    memset(&t, 0, sizeof t);
    memset(res, 0, sizeof *res);
    res->final_val_loss = NAN;
    res->cpu_share = -1;
    const StepStrategy *strategy = cfg->method; /* the plan resolved it (method_resolve) */
    if (!strategy) return err_set(e, "internal error: the plan chose no training method");
    t.cfg = cfg;
    t.w = w;
    t.t_start = comm_wtime();
    /* what the start sent before training: the link probe and the plan */
    t.startup_bytes = group_stats(group_world())->bytes_sent;
    t.obs = obs && w->rank == 0 ? obs : &SILENT;
    t.stop = stop;
    t.hooks = testhooks_from_env();
    ops_set_threads(cfg->threads > 0 ? cfg->threads : comm_default_threads(w));
    int rc = mesh_init(&t.mesh, (MeshDims){cfg->dp, cfg->tp, cfg->pp}, e);
    if (rc) return -1;
    rc = start_trace(&t, e);
    if (!rc) rc = read_resume_point(&t, &t.resume_mf, e);
    if (!rc) rc = open_data(&t, e);
    if (!rc) rc = setup_model(&t, strategy, e);
    if (!rc) rc = load_initial_state(&t, t.resume_mf, e);
    if (!rc) rc = check_tokenizer(&t, e);
    if (!rc) rc = load_task(&t, e);
    if (!rc && strategy->check_run) rc = strategy->check_run(&t, e);
    rc = trainer_agree(&t, rc, e);
    if (!rc) rc = trainer_agree(&t, setup_run_dir(&t, e), e);
    if (!rc) announce(&t);
    if (!rc) announce_validation(&t);
    res->first_step = t.start_step;
    snprintf(res->run_dir, sizeof res->run_dir, "%s", cfg->out);
    if (!rc) rc = loop_run(&t, strategy, res, e);
    res->opt_state_bytes = t.opt.state_bytes;
    if (!rc) rc = trainer_agree(&t, write_summary(&t, res, e), e);
    if (!rc && cfg->predicted_step_ms > 0 && res->mean_step_ms > 0 && t.obs->timing) {
        RunTiming rt = {strategy->name, cfg->dp, cfg->tp, cfg->pp, cfg->predicted_step_ms,
                        res->mean_step_ms, res->cpu_share, res->fair_share, sys_loadavg(),
                        w->machine_cores > 0 ? w->machine_cores : w->cores};
        t.obs->timing(t.obs->ctx, &rt);
    }
    if (!rc)
        trainer_note(&t, "%s: step %ld, loss %.4f, %.0f tok/s, %.1f GFLOP/s, %.0f ms/step "
                         "(%.1f ms exposed comm), peak RSS %ld MB, checkpoint %s",
                     res->stop_signal ? "stopped" : "done", res->last_step, res->final_loss,
                     res->mean_tokens_per_s, res->mean_gflops,
                     res->mean_step_ms, res->mean_exposed_ms, peak_rss_mb(), res->last_ckpt);
    trainer_free(&t);
    return rc;
}
