/* The one definition of a training run's settings. Each line: the option
 * name (--name on the command line, `name = value` in a config file, a key
 * of config.json and of the plan's settings), its type, the field, the
 * metavar, the default as typed, the range, and the help text. */
#include "worker/config/config.h"
#include "worker/data/bpe.h"

#include "base/fileio.h"
#include "base/json.h"
#include "models/arch.h"
#include "worker/data/data.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define F(field) offsetof(TrainConfig, field)
#define NUM(name, type, field, meta, def, lo, hi, help) \
    {name, type, F(field), 0, meta, help, NULL, lo, hi, def}
#define STR(name, field, meta, help) \
    {name, OT_STR, F(field), sizeof(((TrainConfig *)0)->field), meta, help, NULL, 1, 0, NULL}
#define CHOICE(name, field, choices, def, help) \
    {name, OT_CHOICE, F(field), 0, NULL, help, choices, 1, 0, def}
#define FLAG(name, field, help) {name, OT_FLAG, F(field), 0, NULL, help, NULL, 1, 0, NULL}

/* The model and optimizer kinds are stored by choice index: the choices
 * are listed in the enums' order. */
_Static_assert(MODEL_GPT == 0 && MODEL_MLP == 1 && MODEL_LLAMA == 2, "--model choices follow ModelKind");
_Static_assert(OPT_ADAMW == 0 && OPT_SGD == 1 && OPT_ZO == 2, "--optimizer choices follow OptKind");
_Static_assert(DATA_AUTO == 0 && DATA_MPTOKENS == 1 && DATA_LLMC == 2 && DATA_NANOGPT == 3,
               "--data-format choices follow DataFormat");
_Static_assert(sizeof(ModelKind) == sizeof(int) && sizeof(OptKind) == sizeof(int),
               "choices are stored as int");

static const OptSpec TABLE[] = {
    CHOICE("model", model.kind, "gpt|mlp|llama", "gpt", "architecture: gpt (GPT-2's blocks), mlp, llama (Llama, Qwen2/3, Mistral, SmolLM: RMSNorm, rotary positions, grouped kv heads, SwiGLU; see docs/llama.md)"),
    NUM("layers", OT_INT, model.n_layer, "L", "4", 1, 1024, "transformer blocks / MLP hidden layers"),
    NUM("heads", OT_INT, model.n_head, "H", "4", 1, 1024, "attention heads"),
    NUM("embd", OT_INT, model.n_embd, "C", "256", 1, 65536, "model width / MLP hidden width"),
    NUM("seq-len", OT_INT, model.seq_len, "T", "256", 1, 65536, "context length in tokens"),
    NUM("vocab", OT_INT, model.vocab, "V", "256", 2, MODEL_MAX_VOCAB, "vocabulary size (256: bytes)"),
    NUM("positions", OT_INT, model.positions, "N", "0", 0, MODEL_MAX_ROPE_POSITIONS, "gpt: rows of the position table (at most 65536), >= --seq-len: training uses the first --seq-len, sample may use all; llama: the context the model was made for (max_position_embeddings); 0 = --seq-len (with --init-from: the source's)"),
    NUM("kv-heads", OT_INT, model.n_kv_head, "H", "0", 0, 1024, "llama: key/value heads, dividing --heads (grouped-query attention); 0 = --heads"),
    NUM("head-dim", OT_INT, model.head_dim, "D", "0", 0, 65536, "llama: size of one attention head; 0 = --embd / --heads"),
    NUM("mlp-hidden", OT_INT, model.mlp_hidden, "F", "0", 0, 1 << 20, "llama: the SwiGLU MLP's hidden units (intermediate_size)"),
    NUM("norm-eps", OT_FLOAT, model.norm_eps, "X", "0", 0, 1, "llama: RMSNorm epsilon; 0 = 1e-5"),
    NUM("rope-theta", OT_FLOAT, model.rope_theta, "X", "0", 0, 1e12, "llama: rotary base frequency; 0 = 10000"),
    NUM("rope-factor", OT_FLOAT, model.rope_factor, "X", "0", 0, 1e6, "llama: llama3 rotary scaling factor; 0 = no scaling"),
    NUM("rope-low-freq", OT_FLOAT, model.rope_low_freq, "X", "0", 0, 1e6, "llama: llama3 scaling's low_freq_factor"),
    NUM("rope-high-freq", OT_FLOAT, model.rope_high_freq, "X", "0", 0, 1e6, "llama: llama3 scaling's high_freq_factor"),
    NUM("rope-original-ctx", OT_INT, model.rope_orig_ctx, "N", "0", 0, 1 << 24, "llama: llama3 scaling's original_max_position_embeddings"),
    NUM("qkv-bias", OT_INT, model.qkv_bias, "0|1", "0", 0, 1, "llama: the q, k, v projections carry biases (Qwen2)"),
    NUM("attn-out-bias", OT_INT, model.attn_out_bias, "0|1", "0", 0, 1, "llama: the attention's output projection carries a bias"),
    NUM("mlp-bias", OT_INT, model.mlp_bias, "0|1", "0", 0, 1, "llama: the MLP's gate, up and down projections carry biases"),
    NUM("qk-norm", OT_INT, model.qk_norm, "0|1", "0", 0, 1, "llama: RMSNorm of every q and k head before rotation (Qwen3)"),
    NUM("untied-head", OT_INT, model.untied_head, "0|1", "0", 0, 1, "llama: the head has its own weights instead of the token embedding's"),
    NUM("lora-rank", OT_INT, model.lora_rank, "R", "0", 0, 4096, "LoRA: train rank-R adapters on --lora-targets instead of every weight; the base weights are frozen (no gradient, no optimizer state, no perturbation); 0 = off; see docs/lora.md"),
    NUM("lora-alpha", OT_FLOAT, model.lora_alpha, "A", "8", 0, 1e6, "LoRA: the adapters' scale is A / R (PEFT's lora_alpha); 0 = 8"),
    NUM("lora-dropout", OT_FLOAT, model.lora_dropout, "P", "0", 0, 0.999, "LoRA: dropout on the adapters' input (PEFT's lora_dropout)"),
    STR("lora-targets", model.lora_targets, "NAMES", "LoRA: the linears that get adapters, by Hugging Face module name, comma-separated: llama q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj; gpt c_attn,c_proj,c_fc; or all-linear (every one but the head); default PEFT's: q_proj,v_proj / c_attn"),
    STR("lora-from", lora_from, "DIR", "LoRA: continue from a PEFT adapter directory (adapter_config.json + adapter_model.safetensors) on the --init-from base; --lora-rank, --lora-alpha and --lora-targets come from it (docs/lora.md)"),
    FLAG("lora-save-base", lora_save_base, "LoRA: copy the frozen base into every checkpoint (base/ records), so it stands alone; without it a checkpoint refers to the --init-from source by path and content hash"),
    NUM("in-dim", OT_INT, model.in_dim, "D", "0", 0, 1 << 26, "mlp: input features; 0 = seq-len x vocab (one-hot tokens)"),
    NUM("batch", OT_INT, global_batch, "B", "8", 1, 1 << 24, "global batch in sequences, all ranks"),
    NUM("steps", OT_LONG, steps, "N", "300", 1, 1e12, "total optimizer steps (with --time-budget and no --steps: no limit)"),
    NUM("time-budget", OT_DURATION, time_budget_s, "DURATION", "0", 0, 1e9, "end the run with a checkpoint once this much training time is used (90, 90s, 15m, 1h30m, 1.5h; the steps' own time, not start-up, evaluation or checkpoints); the lr's cosine runs over the budget instead of --steps; 0 = none"),
    CHOICE("optimizer", optim.kind, "adamw|sgd|zo", "adamw", "optimizer"),
    NUM("lr", OT_FLOAT, optim.lr, "X", "1e-3", 0, 10, "peak learning rate"),
    NUM("min-lr", OT_FLOAT, optim.min_lr, "X", "1e-4", 0, 10, "final learning rate of the cosine decay"),
    NUM("warmup", OT_INT, optim.warmup, "N", "20", 0, 1e9, "linear warm-up steps"),
    NUM("weight-decay", OT_FLOAT, optim.weight_decay, "X", "0.1", 0, 10, "decoupled weight decay on matrices"),
    NUM("beta1", OT_FLOAT, optim.beta1, "X", "0.9", 0, 0.999999, "AdamW beta1"),
    NUM("beta2", OT_FLOAT, optim.beta2, "X", "0.95", 0, 0.999999, "AdamW beta2"),
    NUM("adam-eps", OT_FLOAT, optim.eps, "X", "1e-8", 1e-30, 1, "AdamW epsilon"),
    NUM("momentum", OT_FLOAT, optim.momentum, "X", "0.9", 0, 0.999999, "SGD momentum"),
    NUM("grad-clip", OT_FLOAT, optim.grad_clip, "X", "1.0", 0, 1e9, "global gradient-norm clip, 0 = off"),
    NUM("seed", OT_U64, seed, "S", "1337", 0, 1.8e19, "run seed: init and sampling"),
    NUM("threads", OT_INT, threads, "K", "0", 0, 4096, "threads per rank; 0 = cores / ranks on the node"),
    STR("data", data, "FILE", "token file (default " DEFAULT_DATA ", made on first use)"),
    STR("val-data", val_data, "FILE", "validation tokens from this file (llm.c's _val.bin, nanoGPT's val.bin) instead of --data's val split"),
    CHOICE("data-format", data_format, "auto|mptokens|llmc|nanogpt", "auto", "how --data and --val-data are read; auto: MPTOKENS or llm.c by magic (a headerless nanoGPT .bin needs nanogpt)"),
    FLAG("shuffle", shuffle, "read the training windows in a random order drawn from --seed, a new order each pass over the split (every window once a pass), instead of file order as llm.c does; every layout reads the single rank's order; validation stays in file order"),
    FLAG("doc-attention", doc_attention, "packed examples stay apart: attention and positions (wpe rows, rotary angles) restart at each example's first token, which a masked file from prepare --format jsonl marks, so each example computes what it would alone (Megatron's --reset-attention-mask with --reset-position-ids); training, validation and zo alike; transformers only (docs/task.md)"),
    STR("out", out, "DIR", "run directory (default runs/<model>-<time>)"),
    STR("resume", resume, "DIR", "continue from a checkpoint (run dir, ckpt dir or step dir)"),
    STR("init-from", init_from, "SRC", "start from these weights, fresh optimizer: a checkpoint, a Hugging Face dir (GPT-2, Llama, Qwen2/3, Mistral; or a GPT-2 .safetensors) or an llm.c model file; the model's shape comes from SRC (docs/gpt2.md, docs/llama.md)"),
    STR("tokenizer", tokenizer, "DIR", "tokenizer files (tokenizer.json + tokenizer_config.json, vocab.json + merges.txt, or encoder.json + vocab.bpe) kept in every checkpoint, for sample (default: the --resume or --init-from source's, if it has one)"),
    STR("config", config, "FILE", "settings file: `key = value` lines or a JSON object (a run's config.json) with these option names; flags override"),
    NUM("dp", OT_INT, dp, "N", "0", 0, 1 << 20, "data-parallel ranks (0 = world size)"),
    NUM("tp", OT_INT, tp, "N", "0", 0, 1 << 20, "tensor-parallel ranks (0 = 1, or the planner's choice)"),
    NUM("pp", OT_INT, pp, "N", "0", 0, 1 << 20, "pipeline stages (0 = 1, or the planner's choice)"),
    NUM("zero", OT_INT, zero, "0|1|2", "0", 0, 2, "ZeRO optimizer-state sharding stage"),
    NUM("bucket-mb", OT_FLOAT, bucket_mb, "MB", "4", 0.001, 1e6, "gradient all-reduce bucket size (at most an eighth of the gradient, so that a small one overlaps backward too)"),
    NUM("overlap", OT_INT, overlap, "0|1", "1", 0, 1, "start bucket all-reduces during backward"),
    CHOICE("link-probe", link_probe, "auto|off", "auto", "measure the link between ranks for the planner (auto: when a prediction needs it, a few KB first, 10 MB only on a fast link); off: assume the default link"),
    NUM("diloco", OT_INT, diloco, "H", "0", 0, 1e9, "DiLoCo for slow links: each data-parallel replica takes H inner steps on its own data, then the replicas average their pseudo-gradients once and take an outer Nesterov step; 0 = off (gradients all-reduced every step); see docs/diloco.md"),
    NUM("outer-lr", OT_FLOAT, outer_lr, "X", "0.7", 0, 10, "DiLoCo: outer learning rate"),
    NUM("outer-momentum", OT_FLOAT, outer_momentum, "X", "0.9", 0, 0.999999, "DiLoCo: outer Nesterov momentum"),
    NUM("diloco-overlap", OT_INT, diloco_overlap, "0|1", "0", 0, 1, "DiLoCo: 1 = each outer all-reduce runs behind the next H inner steps and is applied one outer step late"),
    NUM("diloco-fragments", OT_INT, diloco_fragments, "F", "1", 1, 4096, "elastic DiLoCo: Streaming DiLoCo's fragments: the weights are synchronised a fragment (1/F of them) every H/F inner steps, so each is every H steps and a round sends 1/F of the bytes; H must be a multiple of F"),
    CHOICE("diloco-wire", diloco_wire, "fp32|bf16|int8|int4", "fp32", "DiLoCo: the pseudo-gradient on the wire: fp32, or with error feedback bf16 (1/2 the bytes), int8 or int4 (block-wise absmax codes, 64 values per f32 scale: 0.27 and 0.14 of the bytes)"),
    NUM("micro-batches", OT_INT, micro_batches, "M", "1", 1, 1 << 20, "micro-batches per step"),
    CHOICE("pp-schedule", pp_schedule, "gpipe|1f1b", "1f1b", "pipeline schedule"),
    NUM("zo-eps", OT_FLOAT, zo_eps, "X", "1e-3", 1e-12, 10, "zo: perturbation size"),
    NUM("zo-scale", OT_FLOAT, zo_scale, "X", "0", 0, 1e12, "zo: projected gradient per int8 code unit; 0 = from a warm-up"),
    NUM("zo-sparse", OT_FLOAT, zo_sparse, "F", "0", 0, 1, "zo: perturb and update only the fraction F of each tensor's weights smallest in magnitude at the step (Sparse MeZO's mask; 0 = every weight; docs/zo.md)"),
    NUM("zo-samples", OT_INT, zo_samples, "K", "1", 1, 4096, "zo: perturbations per machine per step"),
    NUM("zo-check-every", OT_INT, zo_check_every, "N", "10", 0, 1e9, "zo: compare weight hashes across machines every N steps, 0 = never"),
    NUM("zo-outlier", OT_FLOAT, zo_outlier, "X", "1000", 1, 1e12, "zo: skip a sample whose code would exceed X units"),
    FLAG("zo-one-sided", zo_one_sided, "zo: one-sided differences, (L(theta + eps z) - L(theta)) / eps: K+1 forward passes a step for --zo-samples K instead of 2K; the codes, the wire and the replay are unchanged (docs/zo.md)"),
    {"zo-params", OT_STR, F(zo_params), sizeof(((TrainConfig *)0)->zo_params), "SPEC",
     "zo: perturb and update only these tensors, the rest stay frozen: comma-separated presets "
     "all, norms, biases, embeddings, last:K (the last K blocks and lnf) or tensor-name globs "
     "(h.*.attn.*, lnf.?); see docs/zo.md", NULL, 1, 0, "all"},
    CHOICE("on-nan", on_nan, "stop|skip", "stop", "non-finite loss or gradient: stop with a message, or skip that update"),
    NUM("save-every", OT_INT, save_every, "N", "100", 0, 1e9, "checkpoint every N steps, 0 = only at the end"),
    NUM("keep-ckpts", OT_INT, keep_ckpts, "K", "3", 0, 1e6, "keep the newest K checkpoints, 0 = all"),
    FLAG("keep-best", keep_best, "also keep the checkpoint of the lowest validation loss: a step whose evaluation is the lowest so far is saved, <out>/ckpt/best names it (a pointer like latest) and rotation never deletes it; needs --eval-every"),
    NUM("eval-every", OT_INT, eval_every, "N", "50", 0, 1e9, "validation loss every N steps, 0 = never"),
    NUM("eval-batches", OT_INT, eval_batches, "N", "4", 1, 1e6, "global batches per validation"),
    STR("eval-task", eval_task, "FILE", "a multiple-choice task (JSONL {\"context\", \"choices\", \"answer\"}, docs/task.md) scored at every --eval-every and at the last step: its accuracy and accuracy_norm in the progress line and metrics.jsonl (task_accuracy, task_accuracy_norm)"),
    NUM("log-every", OT_INT, log_every, "N", "1", 1, 1e9, "print a progress line every N steps"),
    STR("trace", trace, "FILE", "write a Chrome trace-event timeline"),
    CHOICE("progress", progress, "auto|lines|bar", "auto", "progress display (auto: bar on a terminal)"),
    NUM("peak-gflops", OT_FLOAT, peak_gflops, "X", "0", 0, 1e9, "peak GFLOP/s of one rank (its cores' FMA rate), for metrics.jsonl's mfu; 0 = unknown, no mfu"),
    FLAG("quiet", quiet, "no progress output (metrics.jsonl is still written)"),
    FLAG("overwrite", overwrite, "reuse an --out directory that holds a run"),
    STR("swarm-listen", swarm_listen, "ADDR", "zo: start a swarm run whose machines join and leave live over libfabric: listen on ADDR (HOST:PORT for tcp); with --swarm-join: this machine's own address (default: the host's address on the route to the keeper, any free port); see docs/swarm.md"),
    STR("swarm-join", swarm_join, "ADDR", "zo: join the swarm run listening at ADDR: its configuration, then its journal (catch-up), then contribute from the next step"),
    CHOICE("swarm-provider", swarm_provider, "tcp|shm", "tcp", "zo swarm: libfabric provider (tcp across hosts, shm on one host)"),
    NUM("swarm-deadline", OT_FLOAT, swarm_deadline, "SECONDS", "10", 0.01, 1e6, "zo swarm: how long the keeper waits for a step's codes once its own are ready; a machine that misses it is left out of that step"),
    NUM("swarm-misses", OT_INT, swarm_misses, "N", "3", 1, 1e6, "zo swarm: deadlines missed in a row that drop a machine from the roster (it can rejoin by catch-up)"),
    NUM("swarm-wait", OT_INT, swarm_wait, "N", "1", 1, 256, "zo swarm keeper: wait for N machines (itself included) before deciding the first step"),
    {0},
};

_Static_assert(sizeof TABLE / sizeof TABLE[0] - 1 <= TRAIN_CONFIG_MAX_ENTRIES,
               "TrainGiven has a bit for every settings entry");

const OptSpec *train_config_table(size_t *n)
{
    if (n) *n = sizeof TABLE / sizeof TABLE[0] - 1;
    return TABLE;
}

int train_config_is_setting(const OptSpec *s) { return strcmp(s->name, "config") != 0; }

int train_config_is_model_setting(const OptSpec *s)
{
    /* unsigned: an offset below the model's wraps past the end */
    return s->offset - F(model) < sizeof(ModelConfig);
}

void train_config_defaults(TrainConfig *c)
{
    memset(c, 0, sizeof *c);
    if (opts_apply_defaults(TABLE, c)) {
        /* a default that its own range refuses: a bug in the table above */
        fprintf(stderr, "mpitrain: internal error: the settings table has a bad default\n");
        abort();
    }
    train_config_finish(c);
}

/* Bytes the parse writes for a numeric entry (the two fillings below). */
static size_t field_bytes(const OptSpec *s)
{
    return s->type == OT_LONG || s->type == OT_U64 || s->type == OT_DURATION ? 8 : 4;
}

static int any_given(const TrainConfig *c)
{
    for (size_t i = 0; i < sizeof c->given.words / sizeof c->given.words[0]; i++)
        if (c->given.words[i]) return 1;
    return 0;
}

static int steps_given(const TrainConfig *c)
{
    for (const OptSpec *s = TABLE; s->name; s++)
        if (!strcmp(s->name, "steps")) return train_config_was_given(c, s);
    return 0;
}

void train_config_finish(TrainConfig *c)
{
    /* the budget alone ends the run. Only the parsing rank knows what was
     * given (given != 0: at least --time-budget was); the plan carries the
     * limit to the other ranks as steps' value, which this leaves alone */
    if (c->time_budget_s > 0 && any_given(c) && !steps_given(c)) c->steps = TRAIN_STEPS_UNLIMITED;
    c->optim.total_steps = c->steps;
    if (c->optim.min_lr > c->optim.lr) c->optim.min_lr = c->optim.lr;
}

/* Two parses over different fillings of the numeric fields: a field both
 * leave equal was written by the parse (a given value is written alike into
 * both, an untouched field keeps its two fillings). */
TrainGiven train_config_given(int argc, char **argv, int first)
{
    TrainConfig *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    TrainGiven given = {{0}};
    int help = 0;
    if (!a || !b) goto out;
    for (const OptSpec *s = TABLE; s->name; s++)
        if (s->type != OT_STR) memset((char *)b + s->offset, 0xA5, field_bytes(s));
    if (opts_parse("train", TABLE, a, argc, argv, first, NULL, 0, NULL, &help) ||
        opts_parse("train", TABLE, b, argc, argv, first, NULL, 0, NULL, &help))
        goto out;
    for (const OptSpec *s = TABLE; s->name; s++) {
        size_t n = field_bytes(s), i = (size_t)(s - TABLE);
        if (s->type != OT_STR && !memcmp((char *)a + s->offset, (char *)b + s->offset, n))
            given.words[i / 64] |= 1ull << (i % 64);
    }
out:
    free(a);
    free(b);
    return given;
}

int train_config_was_given(const TrainConfig *c, const OptSpec *s)
{
    ptrdiff_t i = s - TABLE;
    return i >= 0 && i < TRAIN_CONFIG_MAX_ENTRIES && (c->given.words[i / 64] >> (i % 64) & 1);
}

int train_config_leaves_choice(const TrainConfig *c, const OptSpec *s)
{
    /* the settings a checkpoint or a swarm takes over whose value 0 means
     * "choose for me"; --in-dim 0 is not one: seq-len x vocab is a rule,
     * and a checkpoint keeps the 0 */
    static const char *const CHOOSE[] = {"zo-scale"};
    for (size_t i = 0; i < sizeof CHOOSE / sizeof CHOOSE[0]; i++)
        if (!strcmp(s->name, CHOOSE[i])) return *(const float *)((const char *)c + s->offset) == 0;
    return 0;
}

size_t train_config_bucket_bytes(const TrainConfig *c)
{
    return (size_t)(c->bucket_mb * 1048576.0);
}

int train_config_validate(const TrainConfig *c, Err *e)
{
    if (model_config_validate(&c->model, e)) return -1;
    if (optim_config_validate(&c->optim, e)) return -1;
    if (c->global_batch < 1) return err_set(e, "--batch %d: must be at least 1", c->global_batch);
    if (c->steps < 1) return err_set(e, "--steps %ld: must be at least 1", c->steps);
    if (c->micro_batches < 1)
        return err_set(e, "--micro-batches %d: must be at least 1", c->micro_batches);
    if (c->global_batch % c->micro_batches)
        return err_set(e, "--micro-batches %d does not divide --batch %d", c->micro_batches,
                       c->global_batch);
    if (!c->out[0]) return err_set(e, "--out: a run directory is required");
    if (!c->data[0]) return err_set(e, "--data: a token file is required");
    if (c->keep_best && c->eval_every <= 0)
        return err_set(e, "--keep-best picks checkpoints by validation loss: it needs --eval-every "
                          "N (N > 0)");
    if (c->eval_every > 0 && c->eval_batches < 1)
        return err_set(e, "--eval-batches %d: must be at least 1", c->eval_batches);
    if (c->doc_attention && !model_transformer(&c->model))
        return err_set(e, "--doc-attention: an mlp has no attention or positions to keep "
                          "examples apart in; it needs --model gpt or llama");
    if (c->tokenizer[0] && !bpe_present(c->tokenizer))
        return err_set(e, "--tokenizer %s: no tokenizer files there (tokenizer.json, vocab.json + "
                          "merges.txt, or encoder.json + vocab.bpe)", c->tokenizer);
    return 0;
}

/* A value as its JSON type: numbers as numbers, flags as booleans, names
 * and paths as strings. The number is the same text --config reads. */
static void json_setting(JsonOut *j, const OptSpec *s, const TrainConfig *c)
{
    char v[PATH_BUF];
    opts_format(s, c, v, sizeof v);
    const char *field = (const char *)c + s->offset;
    switch (s->type) {
    case OT_INT: json_int(j, *(const int *)field); break;
    case OT_LONG: json_int(j, *(const long *)field); break;
    case OT_U64: json_uint(j, *(const uint64_t *)field); break;
    case OT_FLOAT: json_sig(j, *(const float *)field, opts_float_digits(*(const float *)field)); break;
    case OT_FLAG: json_bool(j, *(const int *)field); break;
    default: json_str(j, v); break;
    }
}

int train_config_write_json(const TrainConfig *c, const char *path, Err *e)
{
    JsonOut j;
    json_init(&j, NULL);
    json_begin_object(&j);
    for (const OptSpec *s = TABLE; s->name; s++) {
        if (!train_config_is_setting(s)) continue;
        json_newline(&j);
        json_setting(json_key(&j, s->name), s, c);
    }
    json_newline(&j);
    json_end_object(&j);
    json_newline(&j);
    int rc = json_finish(&j) ? err_set(e, "%s: %s", path, j.error)
                             : write_file_atomic(path, j.buf, j.len, e);
    json_free(&j);
    return rc;
}

void train_config_default_out(TrainConfig *c)
{
    if (c->out[0]) return;
    char stamp[32];
    time_t now = time(NULL);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&now));
    snprintf(c->out, sizeof c->out, "runs/%s-%s", model_kind_name(c->model.kind), stamp);
}
