/* Fuzz target: the coordinator's plan message (coordinator/plan.c).
 *
 * The input is the serialized Plan protobuf. The harness recomputes the
 * FNV-1a hash a real broadcast would carry, so every input reaches the
 * decoder, and passes the world size the plan claims (when it is sane) so the
 * decoder goes on past the world check into plan_to_config, check_derived
 * and plan_resolve.
 *
 * Property: a plan the decoder accepts must re-encode (plan_encode) into a
 * plan that decodes again, to the same configuration. A violation aborts
 * with "plan round trip" in the message.
 *
 * Seeds (MPITRAIN_FUZZ_GEN): plans encoded by plan_encode for a handful of
 * layouts (dp, tp, pp, ZeRO, micro-batches, GPT and MLP, AdamW, SGD, ZO). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "coordinator/plan.h"
#include "mpitrain.pb-c.h"
#include "tests/fuzz/fuzz_util.h"

static TrainConfig g_cfg, g_again;

typedef struct {
    const char *name;
    int world, kind, layers, heads, embd, seq, vocab;
    int dp, tp, pp, zero, micro, batch, optimizer;
} PlanSeed;

static const PlanSeed SEEDS[] = {
    {"gpt_1", 1, MODEL_GPT, 1, 2, 8, 8, 256, 1, 1, 1, 0, 1, 2, OPT_ADAMW},
    {"gpt_dp2", 2, MODEL_GPT, 2, 2, 8, 8, 256, 2, 1, 1, 0, 1, 4, OPT_ADAMW},
    {"gpt_tp2_pp2", 4, MODEL_GPT, 2, 2, 8, 8, 64, 1, 2, 2, 0, 2, 4, OPT_ADAMW},
    {"gpt_dp2_pp2_zero1_sgd", 4, MODEL_GPT, 2, 2, 8, 8, 64, 2, 1, 2, 1, 1, 4, OPT_SGD},
    {"gpt_dp3_zero2", 3, MODEL_GPT, 1, 1, 4, 4, 16, 3, 1, 1, 2, 1, 6, OPT_ADAMW},
    {"mlp_dp2", 2, MODEL_MLP, 2, 0, 16, 4, 16, 2, 1, 1, 0, 1, 4, OPT_ADAMW},
    {"gpt_zo_dp2", 2, MODEL_GPT, 1, 2, 8, 8, 256, 2, 1, 1, 0, 1, 2, OPT_ZO},
};

static void make_seeds(void)
{
    if (!fuzz_gen_dir()) return;
    for (size_t i = 0; i < sizeof SEEDS / sizeof SEEDS[0]; i++) {
        const PlanSeed *s = &SEEDS[i];
        TrainConfig c;
        train_config_defaults(&c);
        c.model = (ModelConfig){(ModelKind)s->kind, s->layers, s->heads, s->embd, s->seq,
                                s->vocab, 0};
        c.model_kind = s->kind;
        c.optim.kind = (OptKind)s->optimizer;
        c.optimizer = s->optimizer;
        c.optim.total_steps = c.steps = 10;
        c.dp = s->dp;
        c.tp = s->tp;
        c.pp = s->pp;
        c.zero = s->zero;
        c.micro_batches = s->micro;
        c.global_batch = s->batch;
        c.predicted_step_ms = 12.5;
        if (s->optimizer == OPT_ZO) {
            c.zo_samples = 2;
            c.zo_scale = 0.01f;
        }
        snprintf(c.data, sizeof c.data, "data/kjv.tok");
        snprintf(c.out, sizeof c.out, "runs/fuzz-%s", s->name);
        uint8_t *buf = NULL;
        size_t len = 0;
        Err e = {{0}};
        if (plan_resolve(&c, s->world, 0, &e) || plan_encode(&c, s->world, &buf, &len, &e)) {
            fprintf(stderr, "fuzz_plan: no seed %s: %s\n", s->name, e.msg);
            continue;
        }
        fuzz_seed(s->name, buf, len);
        free(buf);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    make_seeds();
    return 0;
}

/* The world size the plan names, if it is one a job could have. */
static int claimed_world(const uint8_t *data, size_t size)
{
    Mpitrain__Plan *p = mpitrain__plan__unpack(NULL, size, data);
    if (!p) return 1;
    int w = p->world_size >= 1 && p->world_size <= (1 << 20) ? p->world_size : 1;
    mpitrain__plan__free_unpacked(p, NULL);
    return w;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int world = claimed_world(data, size);
    Err e = {{0}};
    if (plan_decode(data, size, plan_hash(data, size), world, &g_cfg, &e)) return 0;
    fuzz_touch(g_cfg.data, strlen(g_cfg.data));

    /* accepted: it must survive its own round trip */
    uint8_t *buf = NULL;
    size_t len = 0;
    if (plan_encode(&g_cfg, world, &buf, &len, &e)) {
        fprintf(stderr, "plan round trip: an accepted plan does not re-encode: %s\n", e.msg);
        abort();
    }
    if (plan_decode(buf, len, plan_hash(buf, len), world, &g_again, &e)) {
        fprintf(stderr, "plan round trip: an accepted plan, re-encoded, is refused: %s\n", e.msg);
        abort();
    }
    free(buf);
    if (memcmp(&g_cfg, &g_again, sizeof g_cfg)) {
        const unsigned char *a = (const void *)&g_cfg, *b = (const void *)&g_again;
        size_t at = 0;
        while (a[at] == b[at]) at++;
        fprintf(stderr, "plan round trip: re-decoded config differs at byte %zu of TrainConfig\n",
                at);
        abort();
    }
    return 0;
}
