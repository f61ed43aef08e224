/* Next-token speed of a transformer (GPT, or the llama family with
 * --model llama) with random weights: the KV-cache decoder
 * (prefill of a prompt batched, and position by position; then one step per
 * token) against the full-context recompute (model_next_logits) that
 * sampling used before. Prints key=value lines; asserts nothing.
 *   bench_decode [--model gpt|llama --layers L --heads H --embd C --seq-len T
 *                 --vocab V --kv-heads K --mlp-hidden F --qkv-bias 0|1
 *                 --prompt P --tokens N --full N --threads K] */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "base/options.h"
#include "models/gpt_decode.h"
#include "models/model.h"
#include "models/ops.h"

typedef struct {
    int model, layers, heads, embd, seq, vocab, prompt, tokens, full, threads;
    int kv_heads, mlp_hidden, qkv_bias;
} Args;

#define F(field) offsetof(Args, field)
static const OptSpec OPTS[] = {
    {"model", OT_CHOICE, F(model), 0, "gpt|llama", "the family", "gpt|mlp|llama", 1, 0, "gpt"},
    {"layers", OT_INT, F(layers), 0, "L", "transformer blocks", NULL, 1, 1024, "4"},
    {"heads", OT_INT, F(heads), 0, "H", "attention heads", NULL, 1, 1024, "4"},
    {"embd", OT_INT, F(embd), 0, "C", "width", NULL, 1, 65536, "256"},
    {"seq-len", OT_INT, F(seq), 0, "T", "context", NULL, 2, 65536, "256"},
    {"vocab", OT_INT, F(vocab), 0, "V", "vocabulary", NULL, 2, 1 << 20, "256"},
    {"kv-heads", OT_INT, F(kv_heads), 0, "K", "llama: key/value heads (0 = --heads)", NULL, 0, 1024, "0"},
    {"mlp-hidden", OT_INT, F(mlp_hidden), 0, "F", "llama: the MLP's hidden units", NULL, 0, 1 << 20, "0"},
    {"qkv-bias", OT_INT, F(qkv_bias), 0, "0|1", "llama: q, k, v biases (Qwen2)", NULL, 0, 1, "0"},
    {"prompt", OT_INT, F(prompt), 0, "P", "prompt tokens (prefill)", NULL, 1, 65536, "16"},
    {"tokens", OT_INT, F(tokens), 0, "N", "decoder steps after the prompt", NULL, 1, 1e6, "100"},
    {"full", OT_INT, F(full), 0, "N", "full-context recomputes to time", NULL, 0, 1e6, "5"},
    {"threads", OT_INT, F(threads), 0, "K", "threads", NULL, 1, 4096, "2"},
    {0},
};
#undef F

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int token(int i, int V) { return (int)((i * 2654435761u) % (unsigned)V); }

int main(int argc, char **argv)
{
    Args a;
    memset(&a, 0, sizeof a);
    int help = 0;
    if (opts_apply_defaults(OPTS, &a) ||
        opts_parse("bench_decode", OPTS, &a, argc, argv, 1, NULL, 0, NULL, &help))
        return 2;
    if (help) {
        opts_print_help(stdout, "bench_decode [options]", "KV-cache decoding vs full recompute.",
                        OPTS);
        return 0;
    }
    if (a.prompt + a.tokens > a.seq) a.tokens = a.seq - a.prompt;
    ops_set_threads(a.threads);
    ModelConfig cfg = {.kind = (ModelKind)a.model, .n_layer = a.layers, .n_head = a.heads,
                       .n_embd = a.embd, .seq_len = a.seq, .vocab = a.vocab,
                       .n_kv_head = a.kv_heads, .mlp_hidden = a.mlp_hidden,
                       .qkv_bias = a.qkv_bias};
    Model m;
    Err e = {{0}};
    if (model_init(&m, &cfg, 1, 1, &e)) {
        fprintf(stderr, "bench_decode: %s\n", e.msg);
        return 1;
    }
    GptDecoder *d = decoder_new(&m, &e);
    int *tok = malloc((size_t)a.seq * sizeof *tok);
    if (!d || !tok) {
        fprintf(stderr, "bench_decode: %s\n", d ? "out of memory" : e.msg);
        return 1;
    }
    for (int i = 0; i < a.seq; i++) tok[i] = token(i, a.vocab);
    printf("model params=%zu layers=%d heads=%d embd=%d T=%d V=%d threads=%d family=%s\n",
           m.n_params, a.layers, a.heads, a.embd, a.seq, a.vocab, a.threads,
           model_kind_name(cfg.kind));

    /* prefill: one batched pass vs one position at a time (after a warm-up
     * that touches every weight and buffer once) */
    decoder_prefill(d, tok, a.prompt);
    decoder_reset(d);
    double t0 = now_s();
    for (int i = 0; i < a.prompt; i++) decoder_step(d, tok[i]);
    double one_by_one = now_s() - t0;
    decoder_reset(d);
    t0 = now_s();
    decoder_prefill(d, tok, a.prompt);
    double batched = now_s() - t0;
    printf("prefill tokens=%d batched_s=%.4f stepwise_s=%.4f speedup=%.1f\n", a.prompt, batched,
           one_by_one, one_by_one / batched);

    t0 = now_s();
    for (int i = 0; i < a.tokens; i++) decoder_step(d, tok[a.prompt + i]);
    double steps = now_s() - t0;
    printf("kv_cache tokens=%d s=%.4f tokens_per_s=%.2f (context %d..%d)\n", a.tokens, steps,
           a.tokens / steps, a.prompt + 1, a.prompt + a.tokens);

    if (a.full > 0) {
        t0 = now_s();
        for (int i = 0; i < a.full; i++) model_next_logits(&m, tok, a.prompt + i + 1);
        double full = now_s() - t0;
        printf("full_recompute tokens=%d s=%.4f tokens_per_s=%.3f speedup_of_cache=%.1f\n", a.full,
               full, a.full / full, (a.tokens / steps) / (a.full / full));
    }
    free(tok);
    decoder_free(d);
    model_free(&m);
    return 0;
}
