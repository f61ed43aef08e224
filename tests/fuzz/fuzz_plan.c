/* Fuzz target: the coordinator's plan message (coordinator/plan/plan.c).
 *
 * The input is the serialized Plan protobuf. The harness recomputes the
 * FNV-1a hash a real broadcast would carry, so every input reaches the
 * decoder, and passes the world size the plan claims (when it is sane) so the
 * decoder goes on past the world check into plan_to_config, check_derived
 * and plan_resolve.
 *
 * Property: a plan the decoder accepts must re-encode (plan_encode) into a
 * plan that decodes again and re-encodes to the same bytes. A violation
 * aborts with "plan round trip" in the message.
 *
 * Seeds (MPITRAIN_FUZZ_GEN): plans encoded by plan_encode for a handful of
 * layouts (dp, tp, pp, ZeRO, micro-batches, GPT and MLP, AdamW, SGD, ZO). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "coordinator/plan/plan.h"
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
        c.model = (ModelConfig){.kind = (ModelKind)s->kind, .n_layer = s->layers,
                                .n_head = s->heads, .n_embd = s->embd, .seq_len = s->seq,
                                .vocab = s->vocab};
        c.optim.kind = (OptKind)s->optimizer;
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
            fuzz_say("fuzz_plan: no seed %s: %s", s->name, e.msg);
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
    fuzz_keep_stderr();
    make_seeds();
    return 0;
}

/* The world size the plan names, if it is one a job could have; 0 = skip
 * the input: the stage balancer is O(pp x blocks^2), ~1e9 steps at pp 1040
 * with 1024 layers, about 1 s in a release build but 10+ s under ASan, and
 * the decoder runs it twice (four times with the round trip). Known; keep
 * the fuzzer fast instead of reporting it as a hang. */
static double setting(const Mpitrain__Plan *p, const char *key)
{
    double v = 0;
    for (size_t i = 0; i < p->n_settings; i++)
        if (p->settings[i]->key && p->settings[i]->value && !strcmp(p->settings[i]->key, key))
            v = strtod(p->settings[i]->value, NULL);
    return v;
}

static int claimed_world(const uint8_t *data, size_t size)
{
    Mpitrain__Plan *p = mpitrain__plan__unpack(NULL, size, data);
    if (!p) return 1;
    int w = p->world_size >= 1 && p->world_size <= (1 << 20) ? p->world_size : 1;
    double layers = setting(p, "layers"), pp = setting(p, "pp");
    double blocks = layers + 2.0;
    if (pp < 1) pp = 1;
    if (pp <= 1040 && layers <= 1024 && pp * blocks * blocks > 2e7) w = 0;
    mpitrain__plan__free_unpacked(p, NULL);
    return w;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int world = claimed_world(data, size);
    if (!world) return 0;
    Err e = {{0}};
    int rc = plan_decode(data, size, plan_hash(data, size), world, &g_cfg, &e);
    fuzz_verbose("plan_decode", rc, &e);
    if (rc) return 0;
    fuzz_touch(g_cfg.data, strlen(g_cfg.data));

    /* accepted: it must survive its own round trip. Compared as encoded
     * bytes, not as TrainConfig: proto3 drops -0.0 like 0.0, so a plan may
     * decode to -0.0 and come back as +0.0 (the same value). */
    uint8_t *buf = NULL, *again = NULL;
    size_t len = 0, again_len = 0;
    if (plan_encode(&g_cfg, world, &buf, &len, &e))
        fuzz_fail("plan round trip: an accepted plan does not re-encode: %s", e.msg);
    if (plan_decode(buf, len, plan_hash(buf, len), world, &g_again, &e))
        fuzz_fail("plan round trip: an accepted plan, re-encoded, is refused: %s", e.msg);
    if (plan_encode(&g_again, world, &again, &again_len, &e))
        fuzz_fail("plan round trip: a re-decoded plan does not encode: %s", e.msg);
    if (len != again_len || memcmp(buf, again, len))
        fuzz_fail("plan round trip: encode(decode(encode(plan))) differs from encode(plan) "
                  "(%zu vs %zu bytes)", len, again_len);
    free(buf);
    free(again);
    return 0;
}
