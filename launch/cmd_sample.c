/* `mpitrain sample`: generate text from a GPT checkpoint with the KV-cache
 * decoder (models/gpt_decode.h) and the token picker (models/sample.h).
 * Byte-level checkpoints (vocabulary <= 256) read and write bytes; larger
 * vocabularies need the GPT-2 tokenizer, from the checkpoint's tokenizer/
 * directory or --tokenizer. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "base/options.h"
#include "base/sysinfo.h"
#include "base/utf8.h"
#include "launch/commands.h"
#include "models/arch.h"
#include "models/gpt_decode.h"
#include "models/model.h"
#include "models/ops.h"
#include "models/philox.h"
#include "models/sample.h"
#include "worker/ckpt/ckpt.h"
#include "worker/ckpt/whole.h"
#include "worker/data/bpe.h"
#include "worker/data/data.h"

#define PROMPT_MAX (1 << 16)

typedef struct {
    char ckpt[PATH_LEN];
    char prompt[PROMPT_MAX];
    char tokenizer[PATH_LEN];
    int tokens;
    float temperature;
    int top_k;
    float top_p;
    uint64_t seed;
    int ignore_eot, verbose, no_cache, threads, raw;
} SampleArgs;

#define F(field) offsetof(SampleArgs, field)
static const OptSpec SAMPLE_OPTS[] = {
    {"ckpt", OT_STR, F(ckpt), sizeof(((SampleArgs *)0)->ckpt), "DIR",
     "checkpoint: run dir, checkpoint root or step dir (required)", NULL, 1, 0, NULL},
    {"prompt", OT_STR, F(prompt), PROMPT_MAX, "TEXT",
     "text to continue (default: a newline; with a tokenizer: end-of-text)", NULL, 1, 0, NULL},
    {"tokens", OT_INT, F(tokens), 0, "N", "tokens to generate (200)", NULL, 0, 1e8, NULL},
    {"temperature", OT_FLOAT, F(temperature), 0, "X", "softmax temperature; 0 = greedy (0.8)",
     NULL, 0, 100, NULL},
    {"top-k", OT_INT, F(top_k), 0, "K", "sample among the K likeliest tokens; 0 = all (0)", NULL, 0,
     1 << 24, NULL},
    {"top-p", OT_FLOAT, F(top_p), 0, "P",
     "nucleus: sample among the likeliest tokens whose probability adds up to P (after --top-k); "
     "1 = all (1)", NULL, 1e-9, 1, NULL},
    {"seed", OT_U64, F(seed), 0, "S", "sampling seed; the same seed gives the same text (1337)",
     NULL, 0, 1.8e19, NULL},
    {"tokenizer", OT_STR, F(tokenizer), sizeof(((SampleArgs *)0)->tokenizer), "DIR",
     "GPT-2 tokenizer files (vocab.json + merges.txt or encoder.json + vocab.bpe); default: the "
     "checkpoint's " CKPT_TOKENIZER_SUBDIR "/ directory", NULL, 1, 0, NULL},
    {"threads", OT_INT, F(threads), 0, "K",
     "threads; 0 = the CPUs this process may use (SLURM's share, the affinity mask); on "
     "cores other jobs are busy on, 1 is steadier (0)", NULL, 0, 4096, NULL},
    {"ignore-eot", OT_FLAG, F(ignore_eot), 0, NULL,
     "go on past the end-of-text token (it is then not printed)", NULL, 0, 0, NULL},
    {"verbose", OT_FLAG, F(verbose), 0, NULL, "print tokens/s of the prompt and of the "
     "generation to stderr at the end", NULL, 0, 0, NULL},
    {"no-cache", OT_FLAG, F(no_cache), 0, NULL, "recompute the whole context for every token "
     "(no KV cache; slow; for benchmarks)", NULL, 0, 0, NULL},
    {"raw", OT_FLAG, F(raw), 0, NULL, "print the prompt and the generated text only, without "
     "the newline that otherwise ends a text not ending in one", NULL, 0, 0, NULL},
    {0},
};
#undef F

/* ---- text in and out: bytes, or the GPT-2 tokenizer ---------------------- */

typedef struct {
    Bpe *bpe;   /* NULL: byte-level */
    int n_ids;  /* ids the sampler may pick: the model's vocabulary, capped by the tokenizer's */
    int eot;    /* end-of-text id, or -1 */
} Vocab;

/* The checkpoint's tokenizer, or --tokenizer; none for a byte-level model
 * that names none. */
static int open_vocab(const SampleArgs *a, const char *dir, int V, Vocab *v, Err *e)
{
    *v = (Vocab){NULL, V, -1};
    if (bpe_for_ckpt(dir, a->tokenizer, V, &v->bpe, e)) return -1;
    if (!v->bpe) return 0;
    int tv = bpe_vocab_size(v->bpe);
    if (tv < v->n_ids) v->n_ids = tv; /* a padded model vocabulary: never pick past the tokenizer's */
    v->eot = bpe_eot(v->bpe);
    if (v->eot >= V) v->eot = -1;
    return 0;
}

/* The prompt's ids (malloc'd into *ids), with the special tokens a text
 * gets (Llama's BOS); an empty prompt starts from those, else from
 * end-of-text (tokenizer) or a newline (bytes). */
static int encode_prompt(const Vocab *v, const char *text, int V, int **ids, size_t *n, Err *e)
{
    size_t len = strlen(text), cap = 0;
    *ids = NULL;
    *n = 0;
    if (v->bpe && len == 0 && bpe_encode_doc(v->bpe, "", 0, ids, n, &cap, e)) return -1;
    if (*n) return 0;
    if (v->bpe && len == 0 && v->eot >= 0) {
        if (!(*ids = malloc(sizeof **ids))) return err_set(e, "out of memory");
        (*ids)[(*n)++] = v->eot;
        return 0;
    }
    if (!v->bpe && len == 0 && V <= '\n')
        return err_set(e, "vocabulary %d has no newline to start from; pass --prompt", V);
    if (len == 0) text = "\n", len = 1;
    if (v->bpe) {
        if (bpe_encode_doc(v->bpe, text, len, ids, n, &cap, e)) return err_wrap(e, "--prompt");
    } else {
        if (!(*ids = malloc(len * sizeof **ids))) return err_set(e, "out of memory");
        bytes_to_tokens(text, len, *ids);
        *n = len;
    }
    for (size_t i = 0; i < *n; i++)
        if (!v->bpe && (*ids)[i] >= V)
            return err_set(e, "--prompt: byte 0x%02x at position %zu is outside the checkpoint's "
                              "vocabulary of %d",
                           (unsigned)(*ids)[i], i, V);
        else if ((*ids)[i] >= V)
            return err_set(e, "--prompt: token %d at position %zu is outside the checkpoint's "
                              "vocabulary of %d",
                           (*ids)[i], i, V);
    return 0;
}

/* Writes token id as valid UTF-8 (a token may hold part of a character). */
static void put_token(const Vocab *v, Utf8Out *out, int id, int *last)
{
    if (!v->bpe) {
        utf8_put(out, (unsigned char)id, stdout);
        *last = id;
        return;
    }
    size_t len = 0;
    const unsigned char *b = bpe_token_bytes(v->bpe, id, &len);
    for (size_t i = 0; b && i < len; i++) utf8_put(out, b[i], stdout);
    if (b && len) *last = b[len - 1];
}

/* ---- the context: KV cache, or the whole-context recompute --------------- */

typedef struct {
    Model *m;
    GptDecoder *dec; /* NULL: --no-cache */
    int *hist;       /* the tokens in the context (T) */
    int n, T;
} Context;

/* Starts from the last (at most T) of the n prompt ids. */
static const float *ctx_start(Context *c, const int *ids, size_t n)
{
    size_t keep = n > (size_t)c->T ? (size_t)c->T : n;
    memmove(c->hist, ids + (n - keep), keep * sizeof *ids); /* ids may be hist itself */
    c->n = (int)keep;
    if (!c->dec) return model_next_logits(c->m, c->hist, c->n);
    decoder_reset(c->dec);
    return decoder_prefill(c->dec, c->hist, c->n);
}

/* Appends tok. A full context slides: the cache keeps the last T/2 tokens
 * (re-read in one pass); the recompute path drops one token at a time. */
static const float *ctx_push(Context *c, int tok)
{
    if (c->n == c->T) {
        int keep = c->dec ? (c->T / 2 > 0 ? c->T / 2 : 1) : c->T;
        memmove(c->hist, c->hist + (c->n - keep + 1), (size_t)(keep - 1) * sizeof *c->hist);
        c->hist[keep - 1] = tok;
        c->n = keep;
        if (c->dec) return ctx_start(c, c->hist, (size_t)c->n);
    } else {
        c->hist[c->n++] = tok;
    }
    return c->dec ? decoder_step(c->dec, tok) : model_next_logits(c->m, c->hist, c->n);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- the command ------------------------------------------------------------ */

static void sample_usage(FILE *out)
{
    opts_print_help(out, "mpitrain sample --ckpt DIR [--prompt TEXT] [options]",
                    "Generates text from a GPT checkpoint and prints the prompt followed by the "
                    "generated text\n(valid UTF-8). Byte-level checkpoints (vocabulary <= 256) "
                    "need no tokenizer; larger ones use\nthe GPT-2 tokenizer of the checkpoint or "
                    "of --tokenizer, and stop at end-of-text. The same\ncheckpoint, prompt and "
                    "--seed always give the same text. When the context (T tokens) is\nfull, "
                    "its oldest half is dropped: the last T/2 tokens are read again and "
                    "generation goes on.",
                    SAMPLE_OPTS);
}

typedef struct {
    Model m;
    int model_ok;
    Vocab voc;
    Context ctx;
    TokenPicker pick;
    int *ids;
} SampleState;

static void state_free(SampleState *s)
{
    decoder_free(s->ctx.dec);
    free(s->ctx.hist);
    picker_free(&s->pick);
    free(s->ids);
    bpe_free(s->voc.bpe);
    if (s->model_ok) model_free(&s->m);
}

/* The context a sample builds: every position a position table keeps,
 * also past the shorter context the model was last trained at; under
 * rotary positions (no table, up to 2^30 of them) what the prompt and the
 * new tokens need, at most the model's positions: a context of all of
 * Llama 3.2's 131072 would cost the decoder a (T,T) score block. */
static int sample_context(const ModelConfig *c, size_t need)
{
    int positions = model_positions(c);
    if (model_transformer(c)->pos == POS_LEARNED) return positions;
    size_t ctx = need < 1 ? 1 : need;
    if (ctx > (size_t)positions) ctx = (size_t)positions;
    return ctx > MODEL_MAX_SEQ_LEN ? MODEL_MAX_SEQ_LEN : (int)ctx;
}

static int load_model(SampleState *s, const SampleArgs *a, const char *dir, const CkptMeta *meta,
                      size_t n_prompt, Err *e)
{
    ModelConfig full = meta->cfg.model;
    full.seq_len = sample_context(&full, n_prompt + (size_t)a->tokens);
    const ModelConfig *c = &full;
    CkptWhole how = {.max_batch = 1, .forward_only = 1};
    if (ckpt_load_whole(dir, c, &how, &s->m, e)) return -1;
    s->model_ok = 1;
    /* a LoRA run's adapters go into the weights once: the KV-cache
     * decoder reads the weights alone */
    if (model_merge_adapters(&s->m, e)) return err_wrap(e, "%s", dir);
    s->ctx = (Context){&s->m, NULL, calloc((size_t)c->seq_len, sizeof(int)), 0, c->seq_len};
    int no_picker = picker_init(&s->pick, a->temperature, a->top_k, a->top_p, c->vocab);
    if (!s->ctx.hist || no_picker)
        return err_set(e, "out of memory");
    if (!a->no_cache && !(s->ctx.dec = decoder_new(&s->m, e))) return err_wrap(e, "%s", dir);
    return 0;
}

static void report_speed(const SampleArgs *a, size_t n_prompt, double prefill_s, int made,
                         double gen_s)
{
    if (!a->verbose) return;
    fprintf(stderr, "mpitrain sample: prompt %zu tokens in %.3f s; generated %d tokens in %.3f s "
                    "(%.1f tokens/s, %s)\n",
            n_prompt, prefill_s, made, gen_s, gen_s > 0 ? made / gen_s : 0.0,
            a->no_cache ? "no cache" : "kv cache");
}

/* Generates a->tokens tokens (fewer at end-of-text) after the prompt. */
static int generate(SampleState *s, const SampleArgs *a, size_t n_prompt, Err *e)
{
    double t0 = now_s();
    const float *logits = ctx_start(&s->ctx, s->ids, n_prompt);
    int read = s->ctx.n; /* the prompt's last T tokens at most */
    double t1 = now_s();
    int last = a->prompt[0] ? (unsigned char)a->prompt[strlen(a->prompt) - 1] : '\n';
    int made = 0, rc = 0, tty = isatty(fileno(stdout));
    Utf8Out out;
    utf8_init(&out);
    for (int i = 0; i < a->tokens; i++) {
        if (!logits) {
            rc = err_set(e, "out of memory computing logits");
            break;
        }
        double u = philox_uniform(a->seed, RNG_SAMPLE, (uint64_t)i);
        int tok = picker_pick(&s->pick, logits, s->voc.n_ids, u);
        if (tok == s->voc.eot && !a->ignore_eot) break;
        made++;
        if (tok != s->voc.eot) put_token(&s->voc, &out, tok, &last);
        if (tty || last == '\n') fflush(stdout);
        if (i + 1 < a->tokens) logits = ctx_push(&s->ctx, tok);
    }
    utf8_finish(&out, stdout);
    /* the shell's prompt (or the next line of a file) starts on a line of its own */
    if (!rc && last != '\n' && !a->raw) putchar('\n');
    report_speed(a, (size_t)read, t1 - t0, made, now_s() - t1);
    return rc;
}

static int run_sample(const SampleArgs *a, Err *e)
{
    char dir[PATH_LEN];
    CkptMeta meta;
    if (ckpt_resolve(a->ckpt, dir, sizeof dir, e) || ckpt_load_meta(dir, &meta, e)) return -1;
    const ModelConfig *c = &meta.cfg.model;
    if (a->threads > 0) ops_set_threads(a->threads);
    else {
        int bound;
        ops_set_threads(sys_usable_cpus(&bound));
    }
    if (!model_transformer(c))
        return err_set(e, "%s: this is an %s checkpoint; sampling needs a gpt checkpoint", dir,
                       model_kind_name(c->kind));
    SampleState s;
    memset(&s, 0, sizeof s);
    size_t n_prompt = 0;
    int rc = open_vocab(a, dir, c->vocab, &s.voc, e);
    if (!rc) rc = encode_prompt(&s.voc, a->prompt, c->vocab, &s.ids, &n_prompt, e);
    if (!rc) rc = load_model(&s, a, dir, &meta, n_prompt, e);
    if (!rc) {
        fwrite(a->prompt, 1, strlen(a->prompt), stdout);
        fflush(stdout);
        rc = generate(&s, a, n_prompt, e);
    }
    if (fflush(stdout) != 0 && !rc) rc = err_set(e, "writing to stdout failed");
    state_free(&s);
    return rc;
}

int cmd_sample(int argc, char **argv)
{
    SampleArgs *a = calloc(1, sizeof *a);
    if (!a) {
        fprintf(stderr, "mpitrain sample: out of memory\n");
        return 1;
    }
    a->tokens = 200;
    a->temperature = 0.8f;
    a->top_p = 1.0f;
    a->seed = 1337;
    /* every usable CPU: on an idle 2-core machine GPT-2 124M samples 39
     * tokens/s on 2 threads against 21 on 1 (bench_decode); on cores other
     * jobs were busy on, 2 threads swung from 2 to 8 tokens/s and 1 held
     * 15-21, hence the advice in --threads' help */
    a->threads = 0;
    int help = 0;
    int rc = opts_parse("sample", SAMPLE_OPTS, a, argc, argv, 1, NULL, 0, NULL, &help);
    if (!rc && help) {
        sample_usage(stdout);
    } else if (!rc && !a->ckpt[0]) {
        fprintf(stderr, "mpitrain sample: --ckpt DIR is required (see mpitrain sample --help)\n");
        rc = EXIT_USAGE;
    } else if (!rc) {
        Err e = {{0}};
        if (run_sample(a, &e)) {
            fflush(stdout);
            fprintf(stderr, "mpitrain sample: %s\n", e.msg);
            rc = 1;
        }
    }
    free(a);
    return rc;
}
