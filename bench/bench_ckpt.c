/* Checkpoint write and read throughput (MB/s) for a model of a given size,
 * with the optimizer state, fsync included; compare with dd in
 * bench/ckpt_io.sh. usage: bench_ckpt DIR [--layers L --embd C] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "models/model.h"
#include "worker/ckpt/ckpt.h"
#include "base/fileio.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_ckpt DIR [--layers L] [--embd C]\n");
        return 2;
    }
    int layers = 12, embd = 512;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--layers")) layers = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--embd")) embd = atoi(argv[i + 1]);
    }
    ModelConfig c = {.kind = MODEL_GPT, .n_layer = layers, .n_head = 8, .n_embd = embd,
                     .seq_len = 256, .vocab = 256};
    Model m;
    Optimizer o;
    Err e;
    OptimConfig oc = {OPT_ADAMW, 1e-3f, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 0, 1, 0, 10};
    if (model_init(&m, &c, 1, 1, &e) || optim_init(&o, &oc, 0, m.n_params, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    for (size_t i = 0; i < m.n_params; i++) o.m[i] = o.v[i] = m.params[i];
    CkptMeta meta;
    ckpt_meta_init(&meta);
    meta.cfg.model = c;
    meta.cfg.optim = oc;
    meta.step = 1;
    double mb = 3.0 * m.n_params * sizeof(float) / 1e6;
    char out[4400];
    double t0 = now_s();
    if (ckpt_save(argv[1], &meta, &m, &o, out, sizeof out, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    double t1 = now_s();
    if (ckpt_load(out, &m, &o, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    double t2 = now_s();
    printf("checkpoint %.1f MB (%.1fM params + AdamW state): write %.0f MB/s (%.2f s, fsynced), "
           "read+verify %.0f MB/s (%.2f s)\n",
           mb, m.n_params / 1e6, mb / (t1 - t0), t1 - t0, mb / (t2 - t1), t2 - t1);
    printf("ckpt_write_mbps=%.0f ckpt_read_mbps=%.0f ckpt_mb=%.1f\n", mb / (t1 - t0), mb / (t2 - t1), mb);
    optim_free(&o);
    model_free(&m);
    return 0;
}
