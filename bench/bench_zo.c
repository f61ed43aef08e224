/* ZO step cost vs two forward passes of the same model, in one process:
 *   two forwards: L(theta) twice, nothing else;
 *   ZO step:      theta+eps z and theta-eps z written to a scratch buffer,
 *                 two forwards there, then the update from K codes
 *                 (K = machines x samples whose z every rank regenerates).
 * Also the Rademacher generation rate. Prints figures, asserts nothing.
 * usage: bench_zo [--threads T] [--codes K] [--reps N] (reference GPT) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "models/model.h"
#include "models/ops.h"
#include "worker/zo/zo.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    int threads = 2, codes = 4, reps = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--codes")) codes = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    }
    ops_set_threads(threads);
    ModelConfig c = {MODEL_GPT, 4, 4, 256, 256, 256, 0};
    const int B = 8, T = c.seq_len;
    Model m;
    Err e;
    if (model_init(&m, &c, B, 1337, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    int *in = malloc(sizeof(int) * B * T), *tg = malloc(sizeof(int) * B * T);
    for (int i = 0; i < B * T; i++) in[i] = (i * 31) % 256, tg[i] = (i * 17 + 3) % 256;
    float *scratch = model_calloc(m.n_params, sizeof(float));
    int32_t *acc = model_calloc(m.n_params, sizeof(int32_t));
    int8_t *q = malloc(codes);
    for (int k = 0; k < codes; k++) q[k] = (int8_t)(k % 2 ? -17 : 23);
    double best_fwd = 1e9, best_zo = 1e9, best_z = 1e9, best_upd = 1e9;
    model_forward(&m, in, tg, B); /* warm up */
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        model_forward(&m, in, tg, B);
        model_forward(&m, in, tg, B);
        double t1 = now_s();
        float *master = m.params;
        zo_perturb(&m, 1337, (ZoId){(uint32_t)r, 0, 0}, 1e-3f, +1, master, scratch);
        m.params = scratch;
        model_forward(&m, in, tg, B);
        m.params = master;
        zo_perturb(&m, 1337, (ZoId){(uint32_t)r, 0, 0}, 1e-3f, -1, master, scratch);
        m.params = scratch;
        model_forward(&m, in, tg, B);
        m.params = master;
        double t2 = now_s();
        zo_step_update(&m, m.params, acc, 1337, (uint32_t)r, q, codes, 1, 1e-6f, 1e-3f, 0.0f);
        double t3 = now_s();
        zo_perturb(&m, 1337, (ZoId){(uint32_t)r, 1, 0}, 1e-3f, +1, master, scratch);
        double t4 = now_s();
        if (t1 - t0 < best_fwd) best_fwd = t1 - t0;
        if (t3 - t1 < best_zo) best_zo = t3 - t1;
        if (t4 - t3 < best_z) best_z = t4 - t3;
        if (t3 - t2 < best_upd) best_upd = t3 - t2;
    }
    printf("reference GPT %.2fM params, batch %d x %d, %d thread(s), update from %d codes\n",
           m.n_params / 1e6, B, T, threads, codes);
    printf("two forward passes   %8.1f ms\n", best_fwd * 1e3);
    printf("zo step              %8.1f ms  (of which update %.1f ms)\n", best_zo * 1e3, best_upd * 1e3);
    printf("ratio                %8.2f  (target <= 1.30)\n", best_zo / best_fwd);
    printf("z generation         %8.0f M elements/s (theta + eps z into scratch)\n",
           m.n_params / best_z / 1e6);
    printf("zo_ratio=%.3f two_forward_ms=%.2f zo_step_ms=%.2f z_rate_meps=%.0f\n", best_zo / best_fwd,
           best_fwd * 1e3, best_zo * 1e3, m.n_params / best_z / 1e6);
    free(in);
    free(tg);
    free(scratch);
    free(acc);
    free(q);
    model_free(&m);
    return 0;
}
