/* `mpitrain ckpt <subcommand>`: inspect and convert checkpoints. */
#include <ctype.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "launch/commands.h"
#include "base/options.h"
#include "models/model.h"
#include "models/arch.h"
#include "worker/ckpt/ckpt.h"
#include "worker/ckpt/whole.h"
#include "worker/optim/optim.h"
#include "worker/ckpt/safetensors.h"
#include "worker/method/zo/replay.h"
#include "worker/ckpt/reshard.h"
#include "worker/ckpt/hfio.h"
#include "worker/ckpt/llamaio.h"
#include "worker/ckpt/peft.h"
#include "worker/config/config.h"
#include "worker/data/bpe.h"
#include "worker/loop/rundir.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} CkptSubcommand;

static int ckpt_info(int argc, char **argv);
static int ckpt_export(int argc, char **argv);
static int ckpt_replay(int argc, char **argv);
static int ckpt_reshard_cmd(int argc, char **argv);
static int ckpt_import(int argc, char **argv);

static const CkptSubcommand SUBCOMMANDS[] = {
    {"info", ckpt_info, "print a checkpoint's manifest: configs, step, layout, tensors"},
    {"export", ckpt_export, "write the weights as .safetensors, a Hugging Face dir or an llm.c file"},
    {"import", ckpt_import, "make a checkpoint from a Hugging Face dir (GPT-2, Llama, Qwen2/3, Mistral) or an llm.c file"},
    {"replay", ckpt_replay, "rebuild a ZO run's exact weights from a base checkpoint + journal"},
    {"reshard", ckpt_reshard_cmd, "rewrite a checkpoint for another dp x tp x pp / ZeRO layout"},
    {0},
};

static void ckpt_usage(FILE *out)
{
    fprintf(out, "usage: mpitrain ckpt <subcommand> [options] DIR\n\n"
                 "Inspects and converts checkpoints. DIR may be a run directory, a checkpoint\n"
                 "root (holding `latest`) or one step directory.\n\nsubcommands:\n");
    for (const CkptSubcommand *s = SUBCOMMANDS; s->name; s++)
        fprintf(out, "  %-10s %s\n", s->name, s->summary);
    fprintf(out, "\n`mpitrain ckpt <subcommand> --help` describes each one.\n");
}

int cmd_ckpt(int argc, char **argv)
{
    if (argc < 2) {
        ckpt_usage(stderr);
        return EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        ckpt_usage(stdout);
        return 0;
    }
    for (const CkptSubcommand *s = SUBCOMMANDS; s->name; s++)
        if (!strcmp(s->name, sub)) return s->run(argc - 1, argv + 1);
    char names[256] = "";
    for (const CkptSubcommand *s = SUBCOMMANDS; s->name; s++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                 s == SUBCOMMANDS ? "" : ", ", s->name);
    fprintf(stderr, "mpitrain ckpt: unknown subcommand '%s' (subcommands: %s)\n", sub, names);
    return EXIT_USAGE;
}

/* Parses a subcommand's flags and its one DIR argument. Returns -1 to go
 * on, or an exit code (0 after --help). */
static int parse_sub(const char *cmd, const char *usage, const char *summary,
                     const OptSpec *specs, void *target, int argc, char **argv, const char **dir)
{
    const char *pos[2];
    int n_pos = 0, help = 0;
    int rc = opts_parse(cmd, specs, target, argc, argv, 1, pos, 2, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        opts_print_help(stdout, usage, summary, specs);
        return 0;
    }
    if (n_pos != 1) {
        fprintf(stderr, "mpitrain %s: %s (see mpitrain %s --help)\n", cmd,
                n_pos ? "expected one checkpoint directory, got several" : "missing checkpoint directory DIR",
                cmd);
        return EXIT_USAGE;
    }
    *dir = pos[0];
    return -1;
}

static const char *kind_name(int kind)
{
    return model_kind_name((ModelKind)kind);
}

/* Builds the model the checkpoint describes and loads every record into
 * it (and into a whole-model optimizer, so optimizer records are checked
 * too): names, shapes, sizes and CRC-32C checksums. */
static int load_verified(const char *dir, const CkptMeta *meta, Model *m, Err *e)
{
    CkptWhole how = {.max_batch = 1, .dir_as = "checkpoint", .verify_optim = &meta->cfg.optim};
    return ckpt_load_whole(dir, &meta->cfg.model, &how, m, e);
}

/* ---- info ---------------------------------------------------------------- */

typedef struct {
    int verify;
} InfoArgs;

static const OptSpec INFO_OPTS[] = {
    {"verify", OT_FLAG, offsetof(InfoArgs, verify), 0, NULL,
     "also read every tensor and check its CRC-32C checksum and that it is finite, and load the tokenizer", NULL, 1, 0, NULL},
    {0},
};

static void shape_str(const Mpitrain__TensorRecord *r, char *out, size_t n)
{
    out[0] = 0;
    for (size_t i = 0; i < r->n_shape; i++)
        snprintf(out + strlen(out), n - strlen(out), "%s%" PRId64, i ? "x" : "", r->shape[i]);
    if (!r->n_shape) snprintf(out, n, "scalar");
}

/* A LoRA run's settings and the base its adapters apply to. */
static void print_lora(const Mpitrain__Manifest *mf, const CkptMeta *meta)
{
    const ModelConfig *c = &meta->cfg.model;
    if (c->lora_rank <= 0) return;
    printf("lora           rank %d, alpha %g, targets %s, dropout %g\n", c->lora_rank,
           (double)(c->lora_alpha > 0 ? c->lora_alpha : 8.0f),
           lora_targets_spec(c), (double)c->lora_dropout);
    if (ckpt_has_kind(mf, CKPT_BASE_KIND))
        printf("lora base      saved in this checkpoint (base/ records)%s%s\n",
               meta->base.path[0] ? "; made from " : "", meta->base.path);
    else if (meta->base.path[0])
        printf("lora base      %s (content hash 0x%016llx)\n", meta->base.path,
               (unsigned long long)meta->base.hash);
    else
        printf("lora base      random, from the seed (the run had no --init-from)\n");
}

static void print_manifest(const char *dir, const Mpitrain__Manifest *mf, const CkptMeta *meta)
{
    const ModelConfig *c = &meta->cfg.model;
    printf("checkpoint     %s\n", dir);
    printf("format         %u\n", mf->format_version);
    if (mf->created_unix) {
        char when[64];
        time_t t = (time_t)mf->created_unix;
        struct tm tm;
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&t, &tm));
        printf("created        %s\n", when);
    }
    printf("model          %s: layers %d, heads %d, embd %d, seq-len %d, vocab %d", kind_name(c->kind),
           c->n_layer, c->n_head, c->n_embd, c->seq_len, c->vocab);
    if (c->kind == MODEL_MLP) printf(", in-dim %d", c->in_dim);
    const TransformerDesc *d = model_transformer(c);
    if (d && d->pos == POS_LEARNED && model_positions(c) != c->seq_len)
        printf(", positions %d", model_positions(c));
    if (d == &LLAMA_TRANSFORMER) {
        TransformerShape ts = transformer_shape(c);
        printf(", kv-heads %d, head-dim %d, mlp %d%s%s", ts.n_kv_head, ts.head_dim, ts.mlp_hidden,
               ts.qk_norm ? ", qk-norm" : "", ts.tied_head ? "" : ", untied head");
    }
    printf("\n");
    /* what an HF export writes back (an import of a llama-family class) */
    if (meta->source_arch[0])
        printf("source         %s, %s\n", meta->source_arch,
               meta->source_dtype[0] ? meta->source_dtype : "F32");
    if (mf->optim || mf->n_settings) {
        const OptimConfig *o = &meta->cfg.optim;
        const char *name = !mf->optim ? optim_name(o->kind) : mf->optim->name ? mf->optim->name : "?";
        printf("optimizer      %s: lr %g, min-lr %g, warmup %d, total-steps %ld, weight-decay %g, "
               "grad-clip %g",
               name, o->lr, o->min_lr, o->warmup, o->total_steps,
               o->weight_decay, o->grad_clip);
        if (o->kind == OPT_ADAMW) printf(", beta1 %g, beta2 %g, eps %g", o->beta1, o->beta2, o->eps);
        if (o->kind == OPT_SGD) printf(", momentum %g", o->momentum);
        printf("\n");
    } else {
        printf("optimizer      (none recorded)\n");
    }
    print_lora(mf, meta);
    printf("step           %lld (optimizer step %lld)\n", (long long)meta->step, (long long)meta->opt_t);
    if (meta->budget_used_s > 0)
        printf("time budget    %.3f s of training used (--time-budget continues from it)\n",
               meta->budget_used_s);
    printf("seed           %" PRIu64 "\n", meta->cfg.seed);
    printf("data           %s, next global batch %" PRIu64 "\n",
           meta->cfg.data[0] ? meta->cfg.data : "(unknown)", meta->data_pos);
    printf("global batch   %d\n", meta->cfg.global_batch);
    if (mf->layout)
        printf("layout         dp %d, tp %d, pp %d, zero %d\n", meta->dp, meta->tp, meta->pp, meta->zero);
    else
        printf("layout         (none recorded)\n");

    int wname = 4, wshape = 5, wfile = 4;
    char shape[128];
    for (size_t i = 0; i < mf->n_tensors; i++) {
        const Mpitrain__TensorRecord *r = mf->tensors[i];
        shape_str(r, shape, sizeof shape);
        int ln = r->name ? (int)strlen(r->name) : 0, ls = (int)strlen(shape),
            lf = r->file ? (int)strlen(r->file) : 0;
        if (ln > wname) wname = ln;
        if (ls > wshape) wshape = ls;
        if (lf > wfile) wfile = lf;
    }
    printf("\ntensors (%zu records)\n", mf->n_tensors);
    printf("  %-*s  %-*s  %-*s  %12s  %12s  %s\n", wname, "name", wshape, "shape", wfile, "file",
           "offset", "bytes", "crc32c");
    uint64_t n_params = 0, n_base = 0, total = 0;
    for (size_t i = 0; i < mf->n_tensors; i++) {
        const Mpitrain__TensorRecord *r = mf->tensors[i];
        shape_str(r, shape, sizeof shape);
        printf("  %-*s  %-*s  %-*s  %12" PRIu64 "  %12" PRIu64 "  0x%08x", wname,
               r->name ? r->name : "?", wshape, shape, wfile, r->file ? r->file : "?", r->offset,
               r->nbytes, r->crc32c);
        /* a record holding part of a tensor (a shard) says which part */
        uint64_t numel = 1;
        for (size_t k = 0; k < r->n_shape; k++) numel *= (uint64_t)r->shape[k];
        if (r->elem_begin || r->elem_count != numel)
            printf("  elements [%" PRIu64 ", %" PRIu64 ")", r->elem_begin,
                   r->elem_begin + r->elem_count);
        printf("\n");
        if (r->name && !strncmp(r->name, "param/", 6)) n_params += r->elem_count;
        if (r->name && !strncmp(r->name, CKPT_BASE_KIND "/", strlen(CKPT_BASE_KIND) + 1))
            n_base += r->elem_count;
        total += r->nbytes;
    }
    printf("\nparameters     %" PRIu64 "%s\n", n_params,
           meta->cfg.model.lora_rank > 0 ? " (the adapters)" : "");
    if (n_base) printf("base params    %" PRIu64 "\n", n_base);
    printf("total bytes    %" PRIu64 " (%.2f MiB)\n", total, (double)total / (1024.0 * 1024.0));
}

/* --verify also loads the tokenizer the checkpoint keeps, if it has a
 * tokenizer/ at all: `sample` and `ckpt export` rely on it. */
static int verify_tokenizer(const char *dir, int vocab, int *n_tokens, Err *e)
{
    char tok[PATH_BUF];
    *n_tokens = 0;
    if (path_fmt(tok, sizeof tok, e, "%s/%s", dir, CKPT_TOKENIZER_SUBDIR)) return -1;
    if (access(tok, F_OK) != 0) return 0;
    Bpe *b = bpe_load(tok, e);
    if (!b) return -1;
    *n_tokens = bpe_vocab_size(b);
    bpe_free(b);
    if (*n_tokens > vocab)
        return err_set(e, "%s: the tokenizer has %d tokens but the model's vocabulary is %d", tok,
                       *n_tokens, vocab);
    return 0;
}

static int ckpt_info(int argc, char **argv)
{
    InfoArgs a = {0};
    const char *path = NULL;
    int rc = parse_sub("ckpt info", "mpitrain ckpt info [--verify] DIR",
                       "Prints a checkpoint's manifest: model and optimizer configuration, step, "
                       "seed, data position,\nglobal batch, layout and one line per tensor record.",
                       INFO_OPTS, &a, argc, argv, &path);
    if (rc >= 0) return rc;
    Err e = {{0}};
    char dir[PATH_LEN];
    Mpitrain__Manifest *mf = NULL;
    if (ckpt_resolve(path, dir, sizeof dir, &e) || ckpt_read_manifest(dir, &mf, &e)) {
        fprintf(stderr, "mpitrain ckpt info: %s\n", e.msg);
        return 1;
    }
    CkptMeta meta;
    if (ckpt_meta_from_pb(mf, &meta, &e)) {
        fprintf(stderr, "mpitrain ckpt info: checkpoint %s: %s\n", dir, e.msg);
        mpitrain__manifest__free_unpacked(mf, NULL);
        return 1;
    }
    print_manifest(dir, mf, &meta);
    rc = 0;
    if (a.verify) {
        Model m;
        fflush(stdout);
        int n_tokens = 0, loaded = load_verified(dir, &meta, &m, &e) == 0;
        if (loaded) model_free(&m);
        if (!loaded || verify_tokenizer(dir, meta.cfg.model.vocab, &n_tokens, &e)) {
            fprintf(stderr, "mpitrain ckpt info: %s\n", e.msg);
            rc = 1;
        } else {
            printf("verified       all %zu records read back with matching checksums%s\n",
                   mf->n_tensors, n_tokens ? "; the tokenizer loads" : "");
        }
    }
    mpitrain__manifest__free_unpacked(mf, NULL);
    return rc;
}

/* ---- export -------------------------------------------------------------- */

typedef struct {
    int format; /* index into EXPORT_FORMATS */
    char out[PATH_LEN];
    int dtype;  /* index into EXPORT_DTYPES; -1 = the one the model came in */
    char max_shard[32]; /* hf: --max-shard-size as typed */
    int merge_lora;     /* --merge-lora: a LoRA run's adapters added into the base first */
} ExportArgs;

/* --dtype's choices, as safetensors names them */
static const char *const EXPORT_DTYPES[] = {"F32", "F16", "BF16"};

enum { EXPORT_SAFETENSORS = 0, EXPORT_HF = 1, EXPORT_LLMC = 2, EXPORT_PEFT = 3 };

static const OptSpec EXPORT_OPTS[] = {
    {"format", OT_CHOICE, offsetof(ExportArgs, format), 0, NULL,
     "safetensors: mpitrain's names; hf: a Hugging Face GPT-2 directory (config.json + "
     "model.safetensors); llmc: an llm.c model file (version 3, f32); peft: a LoRA run's "
     "adapters as a PEFT directory (adapter_config.json + adapter_model.safetensors)",
     "safetensors|hf|llmc|peft", 1, 0, NULL},
    {"out", OT_STR, offsetof(ExportArgs, out), sizeof(((ExportArgs *)0)->out), "PATH",
     "file to write (a directory for hf; required)", NULL, 1, 0, NULL},
    {"dtype", OT_CHOICE, offsetof(ExportArgs, dtype), 0, NULL,
     "hf: the weights' dtype (default: the one the model came in at import, f32 for a model "
     "trained from scratch); peft: the adapters' (default f32)", "f32|f16|bf16", 1, 0, NULL},
    {"merge-lora", OT_FLAG, offsetof(ExportArgs, merge_lora), 0, NULL,
     "hf, llmc: a LoRA run's adapters added into its base weights (W += alpha/r B A), the "
     "merged model written", NULL, 1, 0, NULL},
    {"max-shard-size", OT_STR, offsetof(ExportArgs, max_shard), sizeof(((ExportArgs *)0)->max_shard),
     "SIZE", "hf, llama family: larger weights go into shards of at most SIZE with "
     "model.safetensors.index.json, as transformers' max_shard_size (5GB = 5*10^9 bytes, 5GiB = "
     "5*2^30; a plain number is bytes)", NULL, 1, 0, "5GB"},
    {0},
};

static int export_safetensors(const Model *m, const CkptMeta *meta, const char *out, Err *e)
{
    const ModelConfig *c = &meta->cfg.model;
    char v[7][32];
    snprintf(v[0], sizeof v[0], "%d", c->n_layer);
    snprintf(v[1], sizeof v[1], "%d", c->n_head);
    snprintf(v[2], sizeof v[2], "%d", c->n_embd);
    snprintf(v[3], sizeof v[3], "%d", c->seq_len);
    snprintf(v[4], sizeof v[4], "%d", c->vocab);
    snprintf(v[5], sizeof v[5], "%d", c->in_dim);
    snprintf(v[6], sizeof v[6], "%lld", (long long)meta->step);
    const char *kv[] = {
        "mpitrain_model", kind_name(c->kind),
        "n_layer", v[0], "n_head", v[1], "n_embd", v[2], "seq_len", v[3], "vocab", v[4],
        "step", v[6],
        "in_dim", v[5], /* last: mlp only */
    };
    int pairs = (int)(sizeof kv / sizeof kv[0] / 2) - (c->kind == MODEL_MLP ? 0 : 1);
    return safetensors_write(out, m, kv, pairs, e);
}

/* transformers' size strings: "5GB" (10^9), "500MB", "2GiB" (2^30), "123"
 * (bytes); 0 when it does not parse or is below 1 byte. */
static uint64_t parse_shard_size(const char *s)
{
    static const struct { const char *unit; double mult; } UNITS[] = {
        {"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
        {"KIB", 1024.0}, {"MIB", 1048576.0}, {"GIB", 1073741824.0}, {"TIB", 1099511627776.0}};
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v > 0)) return 0;
    char unit[8];
    if (strlen(end) >= sizeof unit) return 0;
    snprintf(unit, sizeof unit, "%s", end);
    for (char *p = unit; *p; p++) *p = (char)toupper((unsigned char)*p);
    for (size_t i = 0; i < sizeof UNITS / sizeof UNITS[0]; i++)
        if (!strcmp(unit, UNITS[i].unit))
            return v * UNITS[i].mult >= 1 && v * UNITS[i].mult < 1.8e19 ? (uint64_t)(v * UNITS[i].mult) : 0;
    return 0;
}

/* The HF directory of the model's family. */
static int export_hf(const Model *m, const CkptMeta *meta, const ExportArgs *a, const char *tok,
                     const char *dtype, Err *e)
{
    if (model_transformer(&m->cfg) != &LLAMA_TRANSFORMER) return gpt2_export_hf(m, tok, dtype, a->out, e);
    LlamaExport x = {dtype, meta->source_arch, tok, parse_shard_size(a->max_shard)};
    return llama_export_hf(m, &x, a->out, e);
}

/* What a LoRA run's checkpoint exports as, and what a plain one does not:
 * its adapters (peft) or its merged model (--merge-lora), never its base
 * alone. */
static int check_lora_export(const char *dir, const CkptMeta *meta, const ExportArgs *a, Err *e)
{
    int lora = meta->cfg.model.lora_rank > 0;
    if (a->format == EXPORT_PEFT && !lora)
        return err_set(e, "--format peft: checkpoint %s is not a LoRA run's (--lora-rank 0: every "
                          "weight trained, there are no adapters); export it with --format hf",
                       dir);
    if (a->format == EXPORT_PEFT && a->merge_lora)
        return err_set(e, "--merge-lora with --format peft: PEFT's format holds the adapters "
                          "themselves; drop --merge-lora, or write the merged model with --format hf");
    if (a->merge_lora && !lora)
        return err_set(e, "--merge-lora: checkpoint %s is not a LoRA run's (--lora-rank 0): "
                          "there are no adapters to merge; drop the flag", dir);
    if (a->merge_lora && a->format == EXPORT_SAFETENSORS)
        return err_set(e, "--merge-lora applies to --format hf and llmc");
    if (lora && a->format != EXPORT_PEFT && !a->merge_lora)
        return err_set(e, "checkpoint %s is a LoRA run's (rank %d adapters on a frozen base): "
                          "--format %s would leave the adapters out; pass --merge-lora to write "
                          "the merged model, or --format peft for the adapters alone", dir,
                       meta->cfg.model.lora_rank,
                       a->format == EXPORT_HF ? "hf" : a->format == EXPORT_LLMC ? "llmc" : "safetensors");
    return 0;
}

static int export_to(const char *dir, const CkptMeta *meta, const ExportArgs *a, Err *e)
{
    int format = a->format;
    const char *out = a->out;
    const char *dtype = a->dtype >= 0 ? EXPORT_DTYPES[a->dtype]
                        : meta->source_dtype[0] && format != EXPORT_PEFT ? meta->source_dtype : "F32";
    Model m;
    if (load_verified(dir, meta, &m, e)) return -1;
    char tok[PATH_BUF];
    int rc = 0;
    if (a->merge_lora) rc = model_merge_adapters(&m, e);
    WeightTable w = model_weight_table(&m);
    /* --out's folders are made (hf and peft make their own directory) */
    if (rc || (format != EXPORT_HF && format != EXPORT_PEFT && mkdir_parent(out, e))) {
        rc = -1;
    } else if (format == EXPORT_PEFT) {
        rc = peft_export(&m, meta->base.path, dtype, out, e);
        w = (WeightTable){m.tensors, m.n_tensors, m.params, m.n_params, 0};
    } else if (format == EXPORT_SAFETENSORS) {
        rc = export_safetensors(&m, meta, out, e);
    } else if (format == EXPORT_HF) {
        rc = path_fmt(tok, sizeof tok, e, "%s/%s", dir, CKPT_TOKENIZER_SUBDIR);
        if (!rc) rc = export_hf(&m, meta, a, tok, dtype, e);
    } else {
        rc = gpt2_export_llmc(&m, out, e);
    }
    if (!rc)
        printf("wrote %s: %d tensors, %zu parameters, step %lld%s\n", out, w.n_tensors, w.n_params,
               (long long)meta->step, a->merge_lora ? " (adapters merged)" : "");
    model_free(&m);
    return rc;
}

static int ckpt_export(int argc, char **argv)
{
    ExportArgs a = {0, "", -1, "5GB", 0};
    const char *path = NULL;
    int rc = parse_sub("ckpt export", "mpitrain ckpt export DIR --format safetensors|hf|llmc|peft --out PATH [--dtype f32|f16|bf16] [--max-shard-size 5GB] [--merge-lora]",
                       "Writes the model weights of a checkpoint (shapes unsharded) to another "
                       "format, after\nchecking every checksum: safetensors with mpitrain's names "
                       "(f32), a Hugging Face directory\n(config.json, generation_config.json, "
                       "model.safetensors or its shards and index and, with the\ncheckpoint's "
                       "tokenizer, its files) of GPT2LMHeadModel or the class a llama-family model\n"
                       "came as (LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, "
                       "MistralForCausalLM), or an llm.c\nGPT-2 file (f32). Each file appears whole "
                       "or not at all. A LoRA run's checkpoint exports its adapters\n(--format "
                       "peft) or, with --merge-lora, the merged model (docs/lora.md).",
                       EXPORT_OPTS, &a, argc, argv, &path);
    if (rc >= 0) return rc;
    if (!a.out[0]) {
        fprintf(stderr, "mpitrain ckpt export: --out PATH is required (see mpitrain ckpt export --help)\n");
        return EXIT_USAGE;
    }
    if (a.format == EXPORT_HF && !parse_shard_size(a.max_shard)) {
        fprintf(stderr, "mpitrain ckpt export: --max-shard-size %s: a size such as 5GB, 500MB, "
                        "2GiB or a number of bytes\n", a.max_shard);
        return EXIT_USAGE;
    }
    if (a.dtype >= 0 && a.format != EXPORT_HF && a.format != EXPORT_PEFT) {
        fprintf(stderr, "mpitrain ckpt export: --dtype applies to --format hf only, and to peft "
                        "(the other formats are f32)\n");
        return EXIT_USAGE;
    }
    Err e = {{0}};
    char dir[PATH_LEN];
    CkptMeta meta;
    rc = ckpt_resolve(path, dir, sizeof dir, &e) || ckpt_load_meta(dir, &meta, &e) ? 1 : 0;
    if (!rc && check_lora_export(dir, &meta, &a, &e)) rc = EXIT_USAGE;
    if (!rc && export_to(dir, &meta, &a, &e)) rc = 1;
    if (rc) fprintf(stderr, "mpitrain ckpt export: %s\n", e.msg);
    return rc;
}

/* ---- import -------------------------------------------------------------- */

/* The options of a subcommand whose one option is --out DIR (import, replay). */
typedef struct {
    char out[PATH_LEN];
    int overwrite;
} OutDirArgs;

static const OptSpec IMPORT_OPTS[] = {
    {"out", OT_STR, offsetof(OutDirArgs, out), sizeof(((OutDirArgs *)0)->out), "DIR",
     "checkpoint root to write (DIR/step_00000000 and DIR/latest; required)", NULL, 1, 0, NULL},
    {"overwrite", OT_FLAG, offsetof(OutDirArgs, overwrite), 0, NULL,
     "replace --out when it exists (only a checkpoint root, never through a link)", NULL, 1, 0, NULL},
    {0},
};

static int ckpt_import(int argc, char **argv)
{
    OutDirArgs a = {"", 0};
    const char *src = NULL;
    int rc = parse_sub("ckpt import", "mpitrain ckpt import SRC --out DIR",
                       "Makes a step-0 mpitrain checkpoint: SRC is a Hugging Face directory "
                       "(config.json +\nmodel.safetensors or model.safetensors.index.json and its "
                       "shards, or that one .safetensors\nfile) of GPT-2, Llama, Qwen2, Qwen3 or "
                       "Mistral, or an llm.c model file (gpt2_124M.bin).\nThe shape comes from the "
                       "source; anything mpitrain would not compute exactly is refused\nby name. "
                       "Tokenizer files next to config.json go to <step>/tokenizer/.",
                       IMPORT_OPTS, &a, argc, argv, &src);
    if (rc >= 0) return rc;
    if (!a.out[0]) {
        fprintf(stderr, "mpitrain ckpt import: --out DIR is required (see mpitrain ckpt import --help)\n");
        return EXIT_USAGE;
    }
    Err e = {{0}};
    WeightSource s;
    /* the default settings: the optimizer, seed and batch a later --resume
     * continues with */
    CkptMeta meta;
    ckpt_meta_init(&meta);
    char written[PATH_BUF], aside[PATH_BUF];
    rc = wsource_open(src, &s, &e);
    if (!rc && s.kind == WSRC_CKPT)
        rc = err_set(&e, "%s is already an mpitrain checkpoint", src);
    int claimed = !rc && !ckpt_root_claim(a.out, a.overwrite, src, aside, sizeof aside, &e);
    if (!rc && !claimed) rc = EXIT_USAGE;
    if (!rc) rc = wsource_import(&s, a.out, &meta, written, sizeof written, &e);
    if (claimed) ckpt_root_settle(a.out, aside, rc);
    if (!rc) {
        const ModelConfig *c = &s.model;
        if (s.kind == WSRC_HF_LLAMA)
            printf("imported %s (Hugging Face %s, %s): %d layers, %d heads, %d kv-heads, embd %d, "
                   "mlp %d, seq-len %d, vocab %d%s -> %s\n", src, s.arch, s.dtype, c->n_layer,
                   c->n_head, c->n_kv_head, c->n_embd, c->mlp_hidden, c->seq_len, c->vocab,
                   c->untied_head ? ", untied head" : "", written);
        else
            printf("imported %s (%s): %d layers, %d heads, embd %d, seq-len %d, vocab %d -> %s\n", src,
                   wsource_kind_name(s.kind), c->n_layer, c->n_head, c->n_embd, c->seq_len,
                   c->vocab, written);
    }
    wsource_close(&s);
    if (rc) {
        fprintf(stderr, "mpitrain ckpt import: %s\n", e.msg);
        return rc == EXIT_USAGE ? EXIT_USAGE : 1;
    }
    return 0;
}

/* ---- replay -------------------------------------------------------------- */

typedef struct {
    char out[PATH_LEN];
    char zo_params[256];
    int overwrite;
} ReplayArgs;

static const OptSpec REPLAY_OPTS[] = {
    {"out", OT_STR, offsetof(ReplayArgs, out), sizeof(((ReplayArgs *)0)->out), "DIR",
     "checkpoint root to write (DIR/step_N and DIR/latest)", NULL, 1, 0, NULL},
    {"zo-params", OT_STR, offsetof(ReplayArgs, zo_params), sizeof(((ReplayArgs *)0)->zo_params),
     "SPEC", "the run's --zo-params (the journal knows its id and refuses another)", NULL, 1, 0,
     "all"},
    {"overwrite", OT_FLAG, offsetof(ReplayArgs, overwrite), 0, NULL,
     "replace --out when it exists (only a checkpoint root, never through a link)", NULL, 1, 0, NULL},
    {0},
};

static int ckpt_replay(int argc, char **argv)
{
    ReplayArgs a = {"", "all", 0};
    const char *pos[3];
    int n_pos = 0, help = 0;
    int rc = opts_parse("ckpt replay", REPLAY_OPTS, &a, argc, argv, 1, pos, 3, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        opts_print_help(stdout, "mpitrain ckpt replay BASE JOURNAL --out DIR",
                        "Applies every step of a ZO journal (zo/journal.bin in the run directory) "
                        "from the base\ncheckpoint's step on, and writes the resulting weights: "
                        "the same bits as the live run.",
                        REPLAY_OPTS);
        return 0;
    }
    if (n_pos != 2 || !a.out[0]) {
        fprintf(stderr, "mpitrain ckpt replay: needs BASE JOURNAL and --out DIR (see mpitrain "
                        "ckpt replay --help)\n");
        return EXIT_USAGE;
    }
    Err e = {{0}};
    long step = 0;
    char written[PATH_BUF], warning[PATH_BUF + 128], aside[PATH_BUF];
    /* the journal (a run's zo/journal.bin) cannot lie in a root that holds
     * only checkpoints; the base can */
    if (ckpt_root_claim(a.out, a.overwrite, pos[0], aside, sizeof aside, &e)) {
        fprintf(stderr, "mpitrain ckpt replay: %s\n", e.msg);
        return EXIT_USAGE;
    }
    rc = zo_replay(pos[0], pos[1], a.zo_params, a.out, &step, written, sizeof written, warning,
                   sizeof warning, &e);
    ckpt_root_settle(a.out, aside, rc);
    if (rc == 0 && warning[0]) fprintf(stderr, "mpitrain ckpt replay: warning: %s\n", warning);
    if (rc) {
        fprintf(stderr, "mpitrain ckpt replay: %s\n", e.msg);
        return 1;
    }
    printf("replayed to step %ld: %s\n", step, written);
    return 0;
}

/* ---- reshard ------------------------------------------------------------- */

typedef struct {
    int dp, tp, pp, zero;
    char out[PATH_LEN];
    int overwrite;
} ReshardArgs;

static const OptSpec RESHARD_OPTS[] = {
    {"dp", OT_INT, offsetof(ReshardArgs, dp), 0, "N", "data-parallel ranks of the target (1)", NULL, 1, 1 << 20, NULL},
    {"tp", OT_INT, offsetof(ReshardArgs, tp), 0, "N", "tensor-parallel ranks of the target (1)", NULL, 1, 1 << 20, NULL},
    {"pp", OT_INT, offsetof(ReshardArgs, pp), 0, "N", "pipeline stages of the target (1)", NULL, 1, 1 << 20, NULL},
    {"zero", OT_INT, offsetof(ReshardArgs, zero), 0, "0|1|2", "ZeRO stage of the target (0)", NULL, 0, 2, NULL},
    {"out", OT_STR, offsetof(ReshardArgs, out), sizeof(((ReshardArgs *)0)->out), "DIR",
     "checkpoint root to write (DIR/step_N and DIR/latest)", NULL, 1, 0, NULL},
    {"overwrite", OT_FLAG, offsetof(ReshardArgs, overwrite), 0, NULL,
     "replace --out when it exists (only a checkpoint root, never through a link)", NULL, 1, 0, NULL},
    {0},
};

static int ckpt_reshard_cmd(int argc, char **argv)
{
    ReshardArgs a = {1, 1, 1, 0, "", 0};
    const char *dir = NULL;
    int rc = parse_sub("ckpt reshard", "mpitrain ckpt reshard DIR --dp N --tp N --pp N [--zero Z] --out DIR2",
                       "Rewrites a checkpoint (any layout) as one saved by a dp x tp x pp job with "
                       "ZeRO stage Z:\nthe same tensors, sliced per target rank. `train --resume` "
                       "also reshards on the fly.",
                       RESHARD_OPTS, &a, argc, argv, &dir);
    if (rc >= 0) return rc;
    if (!a.out[0]) {
        fprintf(stderr, "mpitrain ckpt reshard: --out DIR is required (see mpitrain ckpt reshard --help)\n");
        return EXIT_USAGE;
    }
    Err e = {{0}};
    char written[PATH_BUF], aside[PATH_BUF];
    if (ckpt_root_claim(a.out, a.overwrite, dir, aside, sizeof aside, &e)) {
        fprintf(stderr, "mpitrain ckpt reshard: %s\n", e.msg);
        return EXIT_USAGE;
    }
    rc = ckpt_reshard(dir, a.dp, a.tp, a.pp, a.zero, a.out, written, sizeof written, &e);
    ckpt_root_settle(a.out, aside, rc);
    if (rc) {
        fprintf(stderr, "mpitrain ckpt reshard: %s\n", e.msg);
        return 1;
    }
    printf("resharded to dp %d x tp %d x pp %d, zero %d: %s\n", a.dp, a.tp, a.pp, a.zero, written);
    return 0;
}
