#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "comm/comm.h"
#include "comm/trace.h"
#include "coordinator/plan.h"
#include "coordinator/progress.h"
#include "coordinator/timeline.h"
#include "launch/commands.h"
#include "launch/train_args.h"
#include "base/options.h"
#include "worker/loop/trainer.h"

#define F(field) offsetof(TrainConfig, field)
#define NUM(name, type, field, meta, lo, hi, help) \
    {name, type, F(field), 0, meta, help, NULL, lo, hi}
#define STR(name, field, meta, help) \
    {name, OT_STR, F(field), sizeof(((TrainConfig *)0)->field), meta, help, NULL, 1, 0}

static const OptSpec TRAIN_OPTS[] = {
    {"model", OT_CHOICE, F(model_kind), 0, NULL, "architecture (default gpt)", "gpt|mlp", 1, 0},
    NUM("layers", OT_INT, model.n_layer, "L", 1, 1024, "transformer blocks / MLP hidden layers (4)"),
    NUM("heads", OT_INT, model.n_head, "H", 1, 1024, "attention heads (4)"),
    NUM("embd", OT_INT, model.n_embd, "C", 1, 65536, "model width / MLP hidden width (256)"),
    NUM("seq-len", OT_INT, model.seq_len, "T", 1, 65536, "context length in tokens (256)"),
    NUM("vocab", OT_INT, model.vocab, "V", 2, 65536, "vocabulary size (256: bytes)"),
    NUM("batch", OT_INT, global_batch, "B", 1, 1 << 24, "global batch in sequences, all ranks (8)"),
    NUM("steps", OT_LONG, steps, "N", 1, 1e12, "total optimizer steps (300)"),
    NUM("lr", OT_FLOAT, optim.lr, "X", 0, 10, "peak learning rate (1e-3)"),
    NUM("min-lr", OT_FLOAT, optim.min_lr, "X", 0, 10, "final learning rate of the cosine decay (1e-4)"),
    NUM("warmup", OT_INT, optim.warmup, "N", 0, 1e9, "linear warm-up steps (20)"),
    NUM("weight-decay", OT_FLOAT, optim.weight_decay, "X", 0, 10, "decoupled weight decay on matrices (0.1)"),
    NUM("beta1", OT_FLOAT, optim.beta1, "X", 0, 0.999999, "AdamW beta1 (0.9)"),
    NUM("beta2", OT_FLOAT, optim.beta2, "X", 0, 0.999999, "AdamW beta2 (0.95)"),
    NUM("adam-eps", OT_FLOAT, optim.eps, "X", 1e-30, 1, "AdamW epsilon (1e-8)"),
    NUM("momentum", OT_FLOAT, optim.momentum, "X", 0, 0.999999, "SGD momentum (0.9)"),
    NUM("grad-clip", OT_FLOAT, optim.grad_clip, "X", 0, 1e9, "global gradient-norm clip, 0 = off (1.0)"),
    {"optimizer", OT_CHOICE, F(optimizer), 0, NULL, "optimizer (adamw)", "adamw|sgd|zo", 1, 0},
    NUM("seed", OT_U64, seed, "S", 0, 1.8e19, "run seed: init and sampling (1337)"),
    NUM("threads", OT_INT, threads, "K", 0, 4096, "threads per rank; 0 = cores / ranks on the node"),
    STR("data", data, "FILE", "token file (default " DEFAULT_DATA ", made on first use)"),
    STR("out", out, "DIR", "run directory (default runs/<model>-<time>)"),
    STR("resume", resume, "DIR", "continue from a checkpoint (run dir, ckpt dir or step dir)"),
    STR("init-from", init_from, "DIR", "start from a checkpoint's weights, fresh optimizer"),
    STR("config", config, "FILE", "key = value lines with these option names; flags override"),
    NUM("dp", OT_INT, dp, "N", 0, 1 << 20, "data-parallel ranks (0 = world size)"),
    NUM("tp", OT_INT, tp, "N", 0, 1 << 20, "tensor-parallel ranks (1)"),
    NUM("pp", OT_INT, pp, "N", 0, 1 << 20, "pipeline stages (1)"),
    NUM("zero", OT_INT, zero, "0|1|2", 0, 2, "ZeRO optimizer-state sharding stage (0)"),
    NUM("bucket-mb", OT_FLOAT, bucket_mb, "MB", 0.001, 1e6, "gradient all-reduce bucket size (4)"),
    NUM("overlap", OT_INT, overlap, "0|1", 0, 1, "start bucket all-reduces during backward (1)"),
    NUM("micro-batches", OT_INT, micro_batches, "M", 1, 1 << 20, "micro-batches per step (1)"),
    {"pp-schedule", OT_CHOICE, F(pp_schedule), 0, NULL, "pipeline schedule (1f1b)", "gpipe|1f1b", 1, 0},
    NUM("zo-eps", OT_FLOAT, zo_eps, "X", 1e-12, 10, "zo: perturbation size (1e-3)"),
    NUM("zo-scale", OT_FLOAT, zo_scale, "X", 0, 1e12, "zo: projected gradient per int8 code unit; 0 = from a warm-up (0)"),
    NUM("zo-samples", OT_INT, zo_samples, "K", 1, 4096, "zo: perturbations per machine per step (1)"),
    NUM("zo-check-every", OT_INT, zo_check_every, "N", 0, 1e9, "zo: compare weight hashes across machines every N steps, 0 = never (10)"),
    NUM("zo-outlier", OT_FLOAT, zo_outlier, "X", 1, 1e12, "zo: skip a sample whose code would exceed X units (1000)"),
    {"on-nan", OT_CHOICE, F(on_nan), 0, NULL, "non-finite loss or gradient: stop with a message, or skip that update (stop)", "stop|skip", 1, 0},
    NUM("save-every", OT_INT, save_every, "N", 0, 1e9, "checkpoint every N steps, 0 = only at the end (100)"),
    NUM("keep-ckpts", OT_INT, keep_ckpts, "K", 0, 1e6, "keep the newest K checkpoints, 0 = all (3)"),
    NUM("eval-every", OT_INT, eval_every, "N", 0, 1e9, "validation loss every N steps, 0 = never (50)"),
    NUM("eval-batches", OT_INT, eval_batches, "N", 1, 1e6, "global batches per validation (4)"),
    NUM("log-every", OT_INT, log_every, "N", 1, 1e9, "print a progress line every N steps (1)"),
    STR("trace", trace, "FILE", "write a Chrome trace-event timeline"),
    {"progress", OT_CHOICE, F(progress), 0, NULL, "progress display (auto: bar on a terminal)",
     "auto|lines|bar", 1, 0},
    {"quiet", OT_FLAG, F(quiet), 0, NULL, "no progress output (metrics.jsonl is still written)", NULL, 1, 0},
    {"overwrite", OT_FLAG, F(overwrite), 0, NULL, "reuse an --out directory that holds a run", NULL, 1, 0},
    {0},
};

const OptSpec *train_option_table(size_t *n)
{
    *n = sizeof TRAIN_OPTS / sizeof TRAIN_OPTS[0] - 1;
    return TRAIN_OPTS;
}

static void default_out_dir(TrainConfig *c)
{
    if (c->out[0]) return;
    char stamp[32];
    time_t now = time(NULL);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&now));
    snprintf(c->out, sizeof c->out, "runs/%s-%s", c->model.kind == MODEL_GPT ? "gpt" : "mlp", stamp);
}

/* Parses flags; returns 0 to go on, or an exit code. */
static int parse_train_args(TrainConfig *c, int argc, char **argv, int *done)
{
    train_config_defaults(c);
    int help = 0;
    *done = 0;
    int rc = opts_parse("train", TRAIN_OPTS, c, argc, argv, 1, NULL, 0, NULL, &help);
    if (rc) return rc;
    if (help) {
        opts_print_help(stdout, "mpitrain train [options]",
                        "Trains a model. Under mpirun/srun every rank runs this command; rank 0 "
                        "coordinates,\nprints progress and writes <out>/metrics.jsonl and "
                        "<out>/ckpt/.",
                        TRAIN_OPTS);
        *done = 1;
        return 0;
    }
    train_args_finish(c);
    return 0;
}

void train_args_finish(TrainConfig *c)
{
    c->model.kind = (ModelKind)c->model_kind;
    c->optim.kind = (OptKind)c->optimizer;
    c->optim.total_steps = c->steps;
    c->bucket_bytes = (long)(c->bucket_mb * 1048576.0);
    if (c->optim.min_lr > c->optim.lr) c->optim.min_lr = c->optim.lr;
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
    Err e = {{0}}, mine = {{0}};
    int bad = 0;
    if (w.rank == 0) {
        if (!cfg.data[0] && !cfg.resume[0]) {
            bad = ensure_default_data(mine.msg, sizeof mine.msg);
            snprintf(cfg.data, sizeof cfg.data, "%s", DEFAULT_DATA);
        }
        if (!cfg.resume[0]) default_out_dir(&cfg);
    }
    if (comm_agree(group_world(), bad, &mine, &e)) return fail(&w, "", &e, 1);
    if (plan_distribute(group_world(), &cfg, &w, &e)) return fail(&w, "invalid plan: ", &e, EXIT_USAGE);
    TrainResult res;
    Progress prog;
    TrainObserver obs = progress_observer(&prog);
    int failed = train_run(&cfg, &w, &obs, &res, &e);
    if (!failed && cfg.trace[0]) {
        int rc = timeline_write(group_world(), cfg.trace, &mine);
        failed = comm_agree(group_world(), rc, &mine, &e);
    }
    trace_disable();
    if (failed) return fail(&w, "", &e, 1);
    comm_finalize();
    return 0;
}
