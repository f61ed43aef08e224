/* The parts of one backprop step on one rank, in CPU seconds of one thread
 * (CLOCK_THREAD_CPUTIME_ID: on a machine other jobs share, the wall clock
 * is theirs too), against what the planner's cost model charges for them:
 *   gemm       the planner's sgemm rate at the model's shapes;
 *   fwd+bwd    forward and backward of the local batch (matmuls, attention,
 *              layernorm, GELU, the loss head);
 *   zero_grad, grad norm (sum of squares), AdamW: the per-parameter passes;
 *   forward    one forward alone (a ZO step runs 2K of them).
 * Prints figures, asserts nothing. Run it with --threads 1 (the thread's
 * clock measures one thread).
 * usage: bench_step [--shape ref|small|tiny|25m] [--batch B] [--reps N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "coordinator/plan/planner.h"
#include "models/cost.h"
#include "models/model.h"
#include "models/ops.h"
#include "worker/optim/optim.h"

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* best of reps */
#define BEST(var, expr)                                  \
    do {                                                 \
        var = 1e9;                                       \
        for (int r_ = 0; r_ < reps; r_++) {              \
            double t0_ = cpu_s();                        \
            expr;                                        \
            double d_ = cpu_s() - t0_;                   \
            if (d_ < var) var = d_;                      \
        }                                                \
    } while (0)

int main(int argc, char **argv)
{
    int B = 4, reps = 5;
    const char *shape = "ref";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--batch")) B = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--shape")) shape = argv[i + 1];
    }
    ops_set_threads(1);
    ModelConfig c = {.kind = MODEL_GPT, .n_layer = 4, .n_head = 4, .n_embd = 256, .seq_len = 256, .vocab = 256};
    if (!strcmp(shape, "small")) c = (ModelConfig){.kind = MODEL_GPT, .n_layer = 4, .n_head = 4, .n_embd = 128, .seq_len = 128, .vocab = 256};
    if (!strcmp(shape, "tiny")) c = (ModelConfig){.kind = MODEL_GPT, .n_layer = 2, .n_head = 4, .n_embd = 64, .seq_len = 64, .vocab = 256};
    if (!strcmp(shape, "25m")) c = (ModelConfig){.kind = MODEL_GPT, .n_layer = 8, .n_head = 8, .n_embd = 512, .seq_len = 128, .vocab = 256};
    const int T = c.seq_len;
    Model m;
    Err e;
    if (model_init(&m, &c, B, 1337, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    Optimizer o;
    OptimConfig oc = {OPT_ADAMW, 1e-3f, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 0, 1.0f, 0, 100};
    if (optim_init(&o, &oc, 0, m.n_params, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    int *in = malloc(sizeof(int) * B * T), *tg = malloc(sizeof(int) * B * T);
    for (int i = 0; i < B * T; i++) in[i] = (i * 31) % c.vocab, tg[i] = (i * 17 + 3) % c.vocab;
    model_forward(&m, in, tg, B); /* warm up */
    model_backward(&m, in, tg, B, 1.0f);
    double fb, fwd, zero, norm, adam, sink = 0;
    BEST(fb, (model_forward(&m, in, tg, B), model_backward(&m, in, tg, B, 1.0f / (B * T))));
    BEST(fwd, sink += model_forward(&m, in, tg, B));
    BEST(zero, model_zero_grad(&m));
    BEST(norm, sink += sum_squares(m.grads, m.n_params));
    BEST(adam, optim_update(&o, &m, m.params, m.grads, 1e-4f, 1.0f));
    double gemm = planner_measure_gemm(&c, B * T);
    double flops = cost_train_flops_per_token(&c) * B * T;
    double blocks[64] = {0}, bsum = 0;
    model_block_costs(&c, blocks);
    for (int b = 0; b < model_n_blocks(&c); b++) bsum += blocks[b] * B;
    printf("GPT (%s) %d x %d wide, T=%d, V=%d: %.2fM params, batch %d, 1 thread, thread CPU time, best of %d\n",
           shape, c.n_layer, c.n_embd, T, c.vocab, m.n_params / 1e6, B, reps);
    printf("sgemm at the model's shapes   %8.1f GFLOP/s (planner_measure_gemm)\n", gemm);
    printf("fwd+bwd                       %8.2f ms  = %.1f model GFLOP/s = %.2f of sgemm\n", fb * 1e3,
           flops / fb / 1e9, flops / fb / 1e9 / gemm);
    printf("  the planner's block costs   %8.2f ms  at sgemm x 0.85\n", bsum / (gemm * 1e9 * 0.85) * 1e3);
    printf("forward                       %8.2f ms  (%.2f of fwd+bwd)\n", fwd * 1e3, fwd / fb);
    printf("zero_grad                     %8.2f ms  %.2f ns/param\n", zero * 1e3, zero / m.n_params * 1e9);
    printf("grad norm (sum of squares)    %8.2f ms  %.2f ns/param\n", norm * 1e3, norm / m.n_params * 1e9);
    printf("AdamW update                  %8.2f ms  %.2f ns/param\n", adam * 1e3, adam / m.n_params * 1e9);
    printf("bench_step: fb_ms=%.3f fwd_ms=%.3f zero_ns=%.3f norm_ns=%.3f adam_ns=%.3f gemm=%.1f eff=%.3f sink=%g\n",
           fb * 1e3, fwd * 1e3, zero / m.n_params * 1e9, norm / m.n_params * 1e9,
           adam / m.n_params * 1e9, gemm, flops / fb / 1e9 / gemm, sink > 0 ? 1.0 : 0.0);
    free(in);
    free(tg);
    optim_free(&o);
    model_free(&m);
    return 0;
}
