/* ZO step cost vs two forward passes of the same model, in one process:
 *   two forwards: L(theta) twice, nothing else (the forward-only plan
 *                 `mpitrain eval` runs);
 *   ZO step:      L(theta + eps z) and L(theta - eps z) through the weight
 *                 view (each block perturbed into a block-sized scratch as
 *                 it runs), then the streaming update from K codes
 *                 (K = machines x samples whose z every rank regenerates).
 * Also the Rademacher generation rate. Prints figures, asserts nothing.
 * Shapes: ref (the reference GPT), 25m, gpt2 (GPT-2 124M, T=1024, B=1), and
 * the llama family's smol (SmolLM2-135M) and qwen05b (Qwen2.5-0.5B), T=1024,
 * B=1, random weights.
 * usage: bench_zo [--threads T] [--codes K] [--reps N] [--shape ref|25m|gpt2|smol|qwen05b] [--cpu-time] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "models/model.h"
#include "models/ops.h"
#include "worker/method/zo/zo.h"

/* CLOCK_PROCESS_CPUTIME_ID with --cpu-time: on a machine other jobs share,
 * one thread's CPU seconds are the honest figure (wall time is theirs too) */
static clockid_t clock_id = CLOCK_MONOTONIC;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(clock_id, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double view_forward(Model *m, ZoView *v, const int *in, const int *tg, int B)
{
    Err e;
    model_set_weight_view(m, zo_view_weights, v, &e);
    double l = model_forward(m, in, tg, B);
    model_set_weight_view(m, NULL, NULL, &e);
    return l;
}

int main(int argc, char **argv)
{
    int threads = 2, codes = 4, reps = 5;
    const char *shape = "ref";
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--cpu-time")) clock_id = CLOCK_PROCESS_CPUTIME_ID;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--cpu-time")) i--;
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--codes")) codes = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--shape")) shape = argv[i + 1];
    }
    ops_set_threads(threads);
    ModelConfig c = {.kind = MODEL_GPT, .n_layer = 4, .n_head = 4, .n_embd = 256, .seq_len = 256,
                     .vocab = 256};
    int B = 8;
    if (!strcmp(shape, "25m")) c = (ModelConfig){.kind = MODEL_GPT, .n_layer = 8, .n_head = 8,
                                                 .n_embd = 512, .seq_len = 128, .vocab = 256};
    if (!strcmp(shape, "gpt2")) c = (ModelConfig){.kind = MODEL_GPT, .n_layer = 12, .n_head = 12,
                                                  .n_embd = 768, .seq_len = 1024,
                                                  .vocab = 50257}, B = 1;
    if (!strcmp(shape, "smol")) c = (ModelConfig){.kind = MODEL_LLAMA, .n_layer = 30, .n_head = 9,
                                                  .n_kv_head = 3, .n_embd = 576,
                                                  .mlp_hidden = 1536, .seq_len = 1024,
                                                  .vocab = 49152}, B = 1;
    if (!strcmp(shape, "qwen05b")) c = (ModelConfig){.kind = MODEL_LLAMA, .n_layer = 24,
                                                     .n_head = 14, .n_kv_head = 2, .n_embd = 896,
                                                     .mlp_hidden = 4864, .seq_len = 1024,
                                                     .vocab = 151936, .qkv_bias = 1}, B = 1;
    const int T = c.seq_len;
    ModelShard lean = model_shard_whole(1);
    Model m;
    Err e;
    if (model_init_shard(&m, &c, &lean, B, 1337, &e) ||
        model_set_weight_view(&m, zo_view_weights, NULL, &e) ||
        model_set_weight_view(&m, NULL, NULL, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    int *in = malloc(sizeof(int) * B * T), *tg = malloc(sizeof(int) * B * T);
    for (int i = 0; i < B * T; i++) in[i] = (i * 31) % c.vocab, tg[i] = (i * 17 + 3) % c.vocab;
    int8_t *q = malloc(codes);
    for (int k = 0; k < codes; k++) q[k] = (int8_t)(k % 2 ? -17 : 23);
    double best_fwd = 1e9, best_zo = 1e9, best_z = 1e9, best_upd = 1e9;
    model_forward(&m, in, tg, B); /* warm up */
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        model_forward(&m, in, tg, B);
        model_forward(&m, in, tg, B);
        double t1 = now_s();
        ZoView plus = {1337, {(uint32_t)r, 0, 0}, 1e-3f, NULL, NULL}, minus = plus;
        minus.step = -1e-3f;
        view_forward(&m, &plus, in, tg, B);
        view_forward(&m, &minus, in, tg, B);
        double t2 = now_s();
        zo_step_update(&m, m.params, NULL, 1337, (uint32_t)r, q, codes, 1, 1e-6f, 1e-3f, 0.0f);
        double t3 = now_s();
        for (int k = 0; k < m.n_tensors; k++) /* every tensor's z, into the view scratch */
            for (size_t i = 0; i < m.tensors[k].numel; i += m.view_floats)
                zo_view_weights(&plus, &m, k, i,
                                m.tensors[k].numel - i < m.view_floats ? m.tensors[k].numel - i
                                                                        : m.view_floats,
                                m.view_scratch);
        double t4 = now_s();
        if (t1 - t0 < best_fwd) best_fwd = t1 - t0;
        if (t3 - t1 < best_zo) best_zo = t3 - t1;
        if (t4 - t3 < best_z) best_z = t4 - t3;
        if (t3 - t2 < best_upd) best_upd = t3 - t2;
    }
    printf("GPT (%s) %.2fM params, batch %d x %d, %d thread(s), update from %d codes, %s\n",
           shape, m.n_params / 1e6, B, T, threads, codes,
           clock_id == CLOCK_MONOTONIC ? "wall time" : "process CPU time");
    printf("two forward passes   %8.1f ms\n", best_fwd * 1e3);
    printf("zo step              %8.1f ms  (of which update %.1f ms)\n", best_zo * 1e3, best_upd * 1e3);
    printf("ratio                %8.2f  (target <= 1.10)\n", best_zo / best_fwd);
    printf("z generation         %8.0f M elements/s (theta + eps z into the view scratch)\n",
           m.n_params / best_z / 1e6);
    printf("view scratch         %8.1f MB (weights %.1f MB)\n", m.view_floats * 4e-6,
           m.n_params * 4e-6);
    printf("zo_ratio=%.3f two_forward_ms=%.2f zo_step_ms=%.2f z_rate_meps=%.0f\n", best_zo / best_fwd,
           best_fwd * 1e3, best_zo * 1e3, m.n_params / best_z / 1e6);
    free(in);
    free(tg);
    free(q);
    model_free(&m);
    return 0;
}
