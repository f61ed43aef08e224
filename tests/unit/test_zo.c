/* Shared-randomness building blocks: the Philox generator against the
 * published known-answer vectors, Rademacher z of a shard equal to the
 * slice of the whole model's z, int8 codes, the update, the journal. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "models/model.h"
#include "models/philox.h"
#include "tests/unit/testutil.h"
#include "worker/method/zo/identity.h"
#include "worker/method/zo/journal.h"
#include "worker/method/zo/zo.h"

/* Random123's kat_vectors for philox4x32_10 */
Test(philox, known_answer_vectors)
{
    struct { uint32_t ctr[4], key[2], out[4]; } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
        Philox4 c = {{kat[i].ctr[0], kat[i].ctr[1], kat[i].ctr[2], kat[i].ctr[3]}};
        uint64_t key = kat[i].key[0] | ((uint64_t)kat[i].key[1] << 32);
        Philox4 r = philox4x32_10(c, key);
        for (int w = 0; w < 4; w++)
            cr_assert_eq(r.v[w], kat[i].out[w], "vector %zu word %d: %08x != %08x", i, w, r.v[w],
                         kat[i].out[w]);
    }
}

/* Eight blocks at once are the eight blocks one by one. */
Test(philox, lanes_equal_single_blocks)
{
    const uint32_t starts[] = {0, 1, 12345, 0xFFFFFF00u};
    for (int s = 0; s < 4; s++) {
        uint32_t w[4][PHILOX_LANES];
        uint64_t key = 0x0123456789ABCDEFull * (s + 1);
        philox4x32_10_lanes(starts[s], 7, 0xDEADBEEFu, 42, key, w);
        for (int i = 0; i < PHILOX_LANES; i++) {
            Philox4 r = philox4x32_10((Philox4){{starts[s] + (uint32_t)i, 7, 0xDEADBEEFu, 42}}, key);
            for (int j = 0; j < 4; j++)
                cr_assert_eq(w[j][i], r.v[j], "start %u lane %d word %d", starts[s], i, j);
        }
    }
}

Test(zo, rademacher_is_balanced_and_reproducible)
{
    ZoId id = {3, 1, 2};
    long plus = 0;
    for (uint64_t g = 0; g < 100000; g++) {
        int z = zo_z(42, id, g);
        cr_assert(z == 1 || z == -1);
        plus += z > 0;
        cr_assert_eq(z, zo_z(42, id, g));
    }
    cr_assert(plus > 49000 && plus < 51000, "%ld of 100000 are +1", plus);
    /* another machine, sample or step is another vector */
    int same = 0;
    for (uint64_t g = 0; g < 1000; g++) same += zo_z(42, id, g) == zo_z(42, (ZoId){3, 2, 2}, g);
    cr_assert(same > 400 && same < 600, "%d of 1000 agree", same);
}

/* theta + step z of every tensor, through the weight view, into out (a
 * whole model's worth: this is the test's copy, not the trainer's). */
static void perturb_all(const Model *m, ZoView *v, float *out)
{
    for (int k = 0; k < m->n_tensors; k++) {
        const ParamInfo *t = &m->tensors[k];
        const float *r = zo_view_weights(v, m, k, 0, t->numel, out + t->offset);
        if (r != out + t->offset) memcpy(out + t->offset, r, t->numel * sizeof *out);
    }
}

/* z of every tensor-parallel shard equals the matching slice of the whole
 * model's z, and so does the update built from it. */
static void shard_matches_whole(ModelConfig c, int tp)
{
    Err e;
    Model whole;
    cr_assert_eq(model_init(&whole, &c, 1, 5, &e), 0, "%s", e.msg);
    float *wz = calloc(whole.n_params, sizeof(float));
    ZoId id = {7, 1, 0};
    ZoView v = {99, id, 1.0f, NULL, NULL};
    perturb_all(&whole, &v, wz);
    for (int r = 0; r < tp; r++) {
        ModelShard sh = {.tp_rank = r, .tp_size = tp, .last_block = -1, .slots = 1};
        Model part;
        cr_assert_eq(model_init_shard(&part, &c, &sh, 1, 5, &e), 0, "%s", e.msg);
        float *pz = calloc(part.n_params, sizeof(float));
        perturb_all(&part, &v, pz);
        for (int k = 0; k < part.n_tensors; k++) {
            const ParamInfo *t = &part.tensors[k];
            const ParamInfo *w = model_find_tensor(&whole, t->name);
            for (size_t i = 0; i < t->numel; i++) {
                size_t gi = model_global_index(&part, t, i) - t->global_offset;
                cr_assert_eq(part.params[t->offset + i], whole.params[w->offset + gi],
                             "init of %s[%zu] differs", t->name, i);
                cr_assert_eq(pz[t->offset + i], wz[w->offset + gi], "z of %s[%zu] on tp rank %d",
                             t->name, i, r);
            }
        }
        free(pz);
        model_free(&part);
    }
    free(wz);
    model_free(&whole);
}

Test(zo, tp_shard_z_is_the_slice_of_the_whole)
{
    shard_matches_whole((ModelConfig){.kind = MODEL_GPT, .n_layer = 2, .n_head = 4, .n_embd = 16,
                                      .seq_len = 8, .vocab = 32}, 2);
    shard_matches_whole((ModelConfig){.kind = MODEL_GPT, .n_layer = 1, .n_head = 4, .n_embd = 16,
                                      .seq_len = 8, .vocab = 32}, 4);
    shard_matches_whole((ModelConfig){.kind = MODEL_MLP, .n_layer = 2, .n_embd = 8, .seq_len = 3,
                                      .vocab = 5}, 2);
}

Test(zo, codes_round_clamp_and_skip)
{
    cr_assert_eq(zo_code(0.26, 0.1, 1000), 3);
    cr_assert_eq(zo_code(-0.26, 0.1, 1000), -3);
    cr_assert_eq(zo_code(50.0, 0.1, 1000), 127);
    cr_assert_eq(zo_code(-50.0, 0.1, 1000), -127);
    cr_assert_eq(zo_code(500.0, 0.1, 1000), ZO_SKIP);
    cr_assert_eq(zo_code(0.0 / 0.0, 0.1, 1000), ZO_SKIP);
    cr_assert_eq(zo_code(1.0 / 0.0, 0.1, 1000), ZO_SKIP);
}

/* The accumulator definition of the update, element by element from zo_z:
 * acc_i = sum over the used codes (here in reverse order) of q z_i, then
 * theta_i - c acc_i - decay theta_i; an element no forward reads (wpe's
 * rows past the context) has no gradient: acc_i = 0. */
static void reference_update(const Model *m, float *params, const uint8_t *active, uint64_t seed,
                             uint32_t step, const int8_t *codes, int machines, int samples,
                             float lr, float scale, float wd)
{
    int used = 0;
    for (int k = 0; k < machines * samples; k++) used += codes[k] != ZO_SKIP;
    float c = used ? lr * scale / (float)used : 0.0f;
    for (int k = 0; k < m->n_tensors; k++) {
        const ParamInfo *t = &m->tensors[k];
        if (active && !active[k]) continue;
        float decay = t->decay ? lr * wd : 0.0f;
        for (size_t i = 0; i < t->numel; i++) {
            int32_t acc = 0;
            for (int j = machines * samples - 1; i < t->live && j >= 0; j--)
                if (codes[j] != ZO_SKIP)
                    acc += codes[j] * zo_z(seed, (ZoId){step, (uint32_t)(j / samples),
                                                        (uint32_t)(j % samples)},
                                           model_global_index(m, t, i));
            float *p = params + t->offset + i;
            *p = *p - c * (float)acc - decay * *p;
        }
    }
}

static void random_codes(int8_t *codes, int n, uint64_t seed)
{
    for (int k = 0; k < n; k++) {
        int v = (int)(philox_uniform(seed, RNG_SAMPLE, (uint64_t)k) * 256) - 128;
        codes[k] = (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
    }
}

/* The streaming update (pieces, z regenerated per piece) against the
 * accumulator definition on random codes, skips included: whole models and
 * tensor-parallel shards (runs per row and per group), all tensors and a
 * subset (the others must not move at all). */
static void streaming_matches_reference(ModelConfig c, ModelShard sh, int use_mask)
{
    Err e;
    Model a, b;
    cr_assert_eq(model_init_shard(&a, &c, &sh, 1, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(model_init_shard(&b, &c, &sh, 1, 1, &e), 0, "%s", e.msg);
    uint8_t *active = NULL;
    if (use_mask) {
        active = calloc(a.n_tensors, 1);
        for (int k = 0; k < a.n_tensors; k += 2) active[k] = 1;
    }
    float *before = malloc(a.n_params * sizeof(float));
    memcpy(before, a.params, a.n_params * sizeof(float));
    enum { M = 3, S = 5 };
    for (uint32_t step = 0; step < 3; step++) {
        int8_t codes[M * S];
        random_codes(codes, M * S, 100 + step);
        codes[4] = ZO_SKIP;
        int used = zo_step_update(&a, a.params, active, 9, step, codes, M, S, 0.01f, 0.5f, 0.1f);
        int want = 0;
        for (int k = 0; k < M * S; k++) want += codes[k] != ZO_SKIP;
        cr_assert_eq(used, want);
        reference_update(&b, b.params, active, 9, step, codes, M, S, 0.01f, 0.5f, 0.1f);
    }
    cr_assert_eq(memcmp(a.params, b.params, a.n_params * sizeof(float)), 0,
                 "streaming update differs from the accumulator definition");
    for (int k = 0; active && k < a.n_tensors; k++) {
        const ParamInfo *t = &a.tensors[k];
        int moved = memcmp(a.params + t->offset, before + t->offset, t->numel * sizeof(float));
        cr_expect(active[k] ? moved != 0 : moved == 0, "%s: %s", t->name,
                  active[k] ? "active but unchanged" : "inactive but changed");
    }
    free(before);
    free(active);
    model_free(&a);
    model_free(&b);
}

Test(zo, streaming_update_equals_the_accumulator_definition)
{
    /* 4096-element pieces: the 64-wide fc matrix of 256 x 64 has several */
    ModelConfig gpt = {.kind = MODEL_GPT, .n_layer = 1, .n_head = 2, .n_embd = 64, .seq_len = 4,
                       .vocab = 40};
    const ModelShard half = {.tp_rank = 1, .tp_size = 2, .last_block = -1, .slots = 1};
    streaming_matches_reference(gpt, model_shard_whole(0), 0);
    streaming_matches_reference(gpt, model_shard_whole(0), 1);
    streaming_matches_reference(gpt, half, 0);
    streaming_matches_reference((ModelConfig){.kind = MODEL_MLP, .n_layer = 2, .n_embd = 8,
                                              .seq_len = 3, .vocab = 5},
                                half, 1);
    /* 300 positions, a context of 4: wpe's rows 4..299 take the decay alone
     * (its 4800 elements: a piece partly read, then one not read at all) */
    ModelConfig longer = {.kind = MODEL_GPT, .n_layer = 1, .n_head = 2, .n_embd = 16, .seq_len = 4,
                          .vocab = 40, .positions = 300};
    streaming_matches_reference(longer, model_shard_whole(0), 0);
    streaming_matches_reference(longer, half, 0);
}

Test(zo, rows_past_the_context_get_no_step)
{
    Err e;
    Model m;
    ModelConfig c = {.kind = MODEL_GPT, .n_layer = 1, .n_head = 2, .n_embd = 16, .seq_len = 4,
                     .vocab = 40, .positions = 8};
    ModelShard whole = model_shard_whole(0);
    cr_assert_eq(model_init_shard(&m, &c, &whole, 1, 1, &e), 0, "%s", e.msg);
    const ParamInfo *wpe = model_find_tensor(&m, "wpe");
    cr_assert(wpe && wpe->shape[0] == 8 && wpe->live == 4 * 16);
    float *before = malloc(m.n_params * sizeof(float));
    memcpy(before, m.params, m.n_params * sizeof(float));
    int8_t codes[4] = {100, -50, 7, 120};
    zo_step_update(&m, m.params, NULL, 9, 0, codes, 2, 2, 0.01f, 0.5f, 0.0f);
    const float *now = m.params + wpe->offset, *was = before + wpe->offset;
    cr_expect(memcmp(now, was, wpe->live * sizeof(float)) != 0, "the context's rows moved");
    cr_expect(memcmp(now + wpe->live, was + wpe->live, (wpe->numel - wpe->live) * sizeof(float)) == 0,
              "rows past the context must not move (no weight decay here)");
    free(before);
    model_free(&m);
}

/* --zo-sparse: each tensor's threshold keeps the fraction asked for, the
 * update moves only those weights (a zero-initialised tensor, LoRA's B, all
 * of it), and the view perturbs exactly the weights the update moves. */
Test(zo, sparse_mask_moves_the_smallest_weights_only)
{
    Err e;
    Model m;
    ModelConfig c = {.kind = MODEL_GPT, .n_layer = 1, .n_head = 2, .n_embd = 16, .seq_len = 4,
                     .vocab = 40};
    ModelShard whole = model_shard_whole(0);
    cr_assert_eq(model_init_shard(&m, &c, &whole, 1, 1, &e), 0, "%s", e.msg);
    float *tau = malloc(m.n_tensors * sizeof *tau), *before = malloc(m.n_params * sizeof(float));
    cr_assert_eq(zo_thresholds(&m, m.params, NULL, 0.25f, tau), 0);
    for (int k = 0; k < m.n_tensors; k++) {
        const ParamInfo *t = &m.tensors[k];
        size_t in = 0;
        for (size_t i = 0; i < t->live; i++) in += fabsf(m.params[t->offset + i]) <= tau[k];
        /* the quarter, plus ties (a LayerNorm gain of ones is all ties) */
        cr_expect(in >= t->live / 4 && (in <= t->live / 4 + 1 || tau[k] == 0 || tau[k] == 1),
                  "%s: %zu of %zu under tau %g", t->name, in, t->live, tau[k]);
    }
    memcpy(before, m.params, m.n_params * sizeof(float));
    int8_t codes[2] = {100, -70};
    cr_assert_eq(zo_step_update_sparse(&m, m.params, NULL, 9, 0, codes, 1, 2, 0.01f, 0.5f, 0.0f, 0.25f, NULL), 2);
    size_t moved = 0, masked = 0;
    for (int k = 0; k < m.n_tensors; k++) {
        const ParamInfo *t = &m.tensors[k];
        for (size_t i = 0; i < t->live; i++) {
            size_t j = t->offset + i;
            int in = fabsf(before[j]) <= tau[k];
            masked += in;
            moved += m.params[j] != before[j];
            if (!in) cr_assert_eq(m.params[j], before[j], "%s[%zu] above tau moved", t->name, i);
        }
    }
    cr_expect(moved > masked / 2, "%zu of %zu masked weights moved", moved, masked);
    /* the view of theta + eps z perturbs the same weights */
    ZoView v = {9, {0, 0, 0}, 1e-2f, NULL, tau};
    memcpy(m.params, before, m.n_params * sizeof(float));
    for (int k = 0; k < m.n_tensors; k++) {
        const ParamInfo *t = &m.tensors[k];
        float *d = malloc(t->live * sizeof *d);
        const float *w = zo_view_weights(&v, &m, k, 0, t->live, d);
        for (size_t i = 0; i < t->live; i++)
            cr_assert_eq(w[i] != before[t->offset + i], fabsf(before[t->offset + i]) <= tau[k],
                         "%s[%zu]: perturbed where the update would not move it, or not", t->name, i);
        free(d);
    }
    free(tau);
    free(before);
    model_free(&m);
}

/* ---- the ZO step before and after the memory rework ----------------------- */

/* The definition the trainer used before the rework: theta +- eps z written
 * into a whole-model copy (from zo_z, element by element), the training
 * forward (every layer's activations, the (N,V) logits) run on the copy,
 * and the accumulator update. The trainer now runs a forward-only model
 * through the weight view and updates piece by piece; both must give the
 * same losses and the same weight bits. */
static double reference_loss(Model *m, const float *theta, uint64_t seed, ZoId id, float step,
                             const int *in, const int *tg, int B, float *copy)
{
    for (int k = 0; k < m->n_tensors; k++) {
        const ParamInfo *t = &m->tensors[k];
        for (size_t i = 0; i < t->numel; i++)
            copy[t->offset + i] = theta[t->offset + i] +
                                  step * (float)zo_z(seed, id, model_global_index(m, t, i));
    }
    float *master = m->params;
    m->params = copy;
    double l = model_forward(m, in, tg, B);
    m->params = master;
    return l;
}

static double view_loss(Model *m, uint64_t seed, ZoId id, float step, const int *in,
                        const int *tg, int B)
{
    Err e;
    ZoView v = {seed, id, step, NULL, NULL};
    cr_assert_eq(model_set_weight_view(m, zo_view_weights, &v, &e), 0, "%s", e.msg);
    double l = model_forward(m, in, tg, B);
    model_set_weight_view(m, NULL, NULL, &e);
    return l;
}

static void same_trajectory(ModelConfig c, int B)
{
    enum { MACHINES = 2, SAMPLES = 2, STEPS = 4 };
    const uint64_t seed = 77;
    const float eps = 1e-3f, scale = 2e-3f, lr = 3e-3f, wd = 0.01f;
    Err e;
    Model old, now;
    ModelShard train = model_shard_whole(0), lean = model_shard_whole(1);
    cr_assert_eq(model_init_shard(&old, &c, &train, B, 3, &e), 0);
    cr_assert_eq(model_init_shard(&now, &c, &lean, B, 3, &e), 0);
    cr_assert_null(now.grads);
    float *copy = malloc(old.n_params * sizeof(float));
    int n = B * c.seq_len;
    int *in = malloc(sizeof(int) * n), *tg = malloc(sizeof(int) * n);
    for (uint32_t step = 0; step < STEPS; step++) {
        int8_t codes_old[MACHINES * SAMPLES], codes_now[MACHINES * SAMPLES];
        for (int mm = 0; mm < MACHINES; mm++) {
            for (int i = 0; i < n; i++) { /* each machine its own batch */
                in[i] = (int)((i * 7 + mm * 13 + step * 3) % (uint32_t)c.vocab);
                tg[i] = (int)((i * 5 + mm + step) % (uint32_t)c.vocab);
            }
            for (int s = 0; s < SAMPLES; s++) {
                ZoId id = {step, (uint32_t)mm, (uint32_t)s};
                double lp = reference_loss(&old, old.params, seed, id, eps, in, tg, B, copy);
                double lm = reference_loss(&old, old.params, seed, id, -eps, in, tg, B, copy);
                double np = view_loss(&now, seed, id, eps, in, tg, B);
                double nm = view_loss(&now, seed, id, -eps, in, tg, B);
                cr_assert(memcmp(&lp, &np, sizeof lp) == 0 && memcmp(&lm, &nm, sizeof lm) == 0,
                          "step %u machine %d sample %d: losses %.17g/%.17g before, %.17g/%.17g "
                          "after", step, mm, s, lp, lm, np, nm);
                codes_old[mm * SAMPLES + s] = zo_code((lp - lm) / (2.0 * eps) / n, scale, 1000);
                codes_now[mm * SAMPLES + s] = zo_code((np - nm) / (2.0 * eps) / n, scale, 1000);
            }
        }
        reference_update(&old, old.params, NULL, seed, step, codes_old, MACHINES, SAMPLES, lr,
                         scale, wd);
        zo_step_update(&now, now.params, NULL, seed, step, codes_now, MACHINES, SAMPLES, lr, scale,
                       wd);
    }
    cr_assert_eq(memcmp(old.params, now.params, old.n_params * sizeof(float)), 0,
                 "weights differ after %d steps", STEPS);
    free(copy);
    free(in);
    free(tg);
    model_free(&old);
    model_free(&now);
}

Test(zo, trajectory_unchanged_by_the_memory_rework)
{
    same_trajectory((ModelConfig){.kind = MODEL_GPT, .n_layer = 3, .n_head = 2, .n_embd = 32,
                                  .seq_len = 16, .vocab = 41}, 2);
    same_trajectory((ModelConfig){.kind = MODEL_GPT, .n_layer = 1, .n_head = 2, .n_embd = 8,
                                  .seq_len = 256, .vocab = 40000}, 2); /* vocabulary tiles */
    same_trajectory((ModelConfig){.kind = MODEL_MLP, .n_layer = 2, .n_embd = 16, .seq_len = 4,
                                  .vocab = 7}, 3);
}

static const char *journal_file(const char *name)
{
    static char p[4400];
    snprintf(p, sizeof p, "%s/%s", test_tmpdir(name), "journal.bin");
    return p;
}

static void write_journal(const char *path, int steps)
{
    Journal j;
    Err e;
    ZoIdentity h = {.seed = 11, .eps = 1e-3f, .scale = 0.25f, .weight_decay = 0.1f,
                    .samples = 2, .global_params = 1234};
    cr_assert_eq(journal_open_append(&j, path, &h, &e), 0, "%s", e.msg);
    cr_assert_eq(journal_append_roster(&j, 0, 3, 0, &e), 0);
    for (int s = 0; s < steps; s++) {
        int8_t codes[6] = {(int8_t)s, 1, 2, 3, ZO_SKIP, -5};
        cr_assert_eq(journal_append_step(&j, (uint32_t)s, 3, 2, 0, 0.5f, codes, &e), 0);
    }
    journal_close(&j);
}

static int read_all(const char *path, Err *e, long *records)
{
    Journal j;
    if (journal_open_read(&j, path, e)) return -1;
    JournalRecord r;
    int rc;
    while ((rc = journal_next(&j, &r, e)) == 1) {}
    *records = j.index;
    journal_close(&j);
    return rc;
}

/* --zo-sparse's fraction lives in a version 3 header, under its checksum */
Test(journal, sparse_header_round_trips_under_its_checksum)
{
    const char *p = journal_file("jsparse");
    Journal j;
    Err e;
    ZoIdentity h = {.seed = 11, .eps = 1e-3f, .scale = 0.25f, .samples = 2, .global_params = 1234,
                    .sparse = 0.3f};
    cr_assert_eq(journal_open_append(&j, p, &h, &e), 0, "%s", e.msg);
    journal_close(&j);
    cr_assert_eq(journal_open_read(&j, p, &e), 0, "%s", e.msg);
    cr_assert_eq(j.h.sparse, 0.3f);
    cr_assert_eq(zo_identity_diff(&j.h, &h, ZO_ID_ALL & ~ZO_ID_BASE), 0u);
    journal_close(&j);
    FILE *f = fopen(p, "r+b");
    fseek(f, 60, SEEK_SET);
    fputc(0x7f, f); /* the fraction's low byte */
    fclose(f);
    cr_assert_neq(journal_open_read(&j, p, &e), 0);
    cr_assert(strstr(e.msg, "checksum mismatch"), "%s", e.msg);
}

Test(journal, round_trip)
{
    const char *p = journal_file("jrt");
    write_journal(p, 5);
    Journal j;
    Err e;
    cr_assert_eq(journal_open_read(&j, p, &e), 0, "%s", e.msg);
    cr_assert_eq(j.h.seed, 11);
    cr_assert_eq(j.h.scale, 0.25f);
    JournalRecord r;
    cr_assert_eq(journal_next(&j, &r, &e), 1);
    cr_assert_eq(r.type, JREC_ROSTER);
    cr_assert_eq(r.machines, 3);
    for (int s = 0; s < 5; s++) {
        cr_assert_eq(journal_next(&j, &r, &e), 1);
        cr_assert_eq(r.step, (uint32_t)s);
        cr_assert_eq(r.codes[0], s);
        cr_assert_eq(r.codes[4], ZO_SKIP);
    }
    cr_assert_eq(journal_next(&j, &r, &e), 0);
    journal_close(&j);
}

Test(journal, truncated_and_corrupted_name_the_record)
{
    const char *p = journal_file("jbad");
    write_journal(p, 5);
    size_t len;
    unsigned char *b = test_read_file(p, &len);
    Err e;
    long n;
    /* flip a code byte of the third step: intact records follow, so it is
     * damage inside the journal, not a torn tail */
    unsigned char *c = malloc(len);
    memcpy(c, b, len);
    size_t rec = 64 + (8 + 12 + 4) + 2 * (8 + 26 + 4) + 8 + 20;
    c[rec] ^= 0x40;
    cr_assert_eq(test_write_file(p, c, len), 0);
    cr_assert_eq(read_all(p, &e, &n), -1);
    cr_assert(strstr(e.msg, "record 4") && strstr(e.msg, "checksum"), "%s", e.msg);
    /* a foreign file */
    cr_assert_eq(test_write_file(p, "hello world, not a journal at all; padding padding padding.", 60), 0);
    cr_assert_eq(read_all(p, &e, &n), -1);
    cr_assert(strstr(e.msg, "header") || strstr(e.msg, "magic"), "%s", e.msg);
    free(b);
    free(c);
}

/* Reads p to its end: the records read, the torn bytes dropped. */
static int read_torn(const char *p, Err *e, long *records, long *torn_off, long *torn_bytes)
{
    Journal j;
    if (journal_open_read(&j, p, e)) return -1;
    JournalRecord r;
    int rc;
    while ((rc = journal_next(&j, &r, e)) == 1) {}
    *records = j.index;
    *torn_off = j.torn_off;
    *torn_bytes = j.torn_bytes;
    char msg[8192];
    if (j.torn_bytes) {
        journal_torn_message(&j, msg, sizeof msg);
        cr_assert(strstr(msg, "dropped a torn last record") && strstr(msg, "cut short"), "%s", msg);
    }
    journal_close(&j);
    return rc;
}

/* 64-byte header, a 24-byte roster, then 38-byte steps (3 machines x 2). */
#define STEP_END(k) (64 + 24 + 38 * (k))

Test(journal, torn_last_record_is_dropped)
{
    const char *p = journal_file("jtorn");
    write_journal(p, 5);
    size_t len;
    unsigned char *b = test_read_file(p, &len);
    cr_assert_eq(len, (size_t)STEP_END(5));
    Err e;
    long n, off, bytes;
    /* cut short: in the payload, inside the header, a lone byte */
    size_t cuts[] = {3, 30, 35, 37};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        cr_assert_eq(test_write_file(p, b, len - cuts[i]), 0);
        cr_assert_eq(read_torn(p, &e, &n, &off, &bytes), 0, "cut %zu: %s", cuts[i], e.msg);
        cr_assert_eq(n, 5, "the roster and four whole steps");
        cr_assert_eq(off, STEP_END(4));
        cr_assert_eq(bytes, 38 - (long)cuts[i]);
    }
    /* whole length, but the last record's CRC fails (its last bytes never
     * reached the disk) */
    unsigned char *c = malloc(len);
    cr_assert(c);
    memcpy(c, b, len);
    c[len - 1] ^= 0xff;
    cr_assert_eq(test_write_file(p, c, len), 0);
    cr_assert_eq(read_torn(p, &e, &n, &off, &bytes), 0, "%s", e.msg);
    cr_assert(n == 5 && off == STEP_END(4) && bytes == 38);
    /* zeros where a record should be (a power cut extended the file) */
    memset(c + STEP_END(4), 0, 38);
    cr_assert_eq(test_write_file(p, c, len), 0);
    cr_assert_eq(read_torn(p, &e, &n, &off, &bytes), 0, "%s", e.msg);
    cr_assert(n == 5 && bytes == 38);
    free(b);
    free(c);
}

Test(journal, append_cuts_off_a_torn_tail)
{
    const char *p = journal_file("jtornapp");
    write_journal(p, 5);
    size_t len;
    unsigned char *b = test_read_file(p, &len);
    cr_assert_eq(test_write_file(p, b, len - 10), 0);
    Journal j;
    Err e;
    ZoIdentity h = {.seed = 11, .eps = 1e-3f, .scale = 0.25f, .weight_decay = 0.1f,
                    .samples = 2, .global_params = 1234};
    cr_assert_eq(journal_open_append(&j, p, &h, &e), 0, "%s", e.msg);
    cr_assert(j.torn_off == STEP_END(4) && j.torn_bytes == 28);
    int8_t codes[6] = {4, 1, 2, 3, ZO_SKIP, -5};
    cr_assert_eq(journal_append_step(&j, 4, 3, 2, 0, 0.5f, codes, &e), 0);
    journal_close(&j);
    /* the rewritten step 4 lands where the torn one began: the same file */
    size_t len2;
    unsigned char *b2 = test_read_file(p, &len2);
    cr_assert(len2 == len && !memcmp(b, b2, len), "the journal equals the uninterrupted one");
    long n, off, bytes;
    cr_assert_eq(read_torn(p, &e, &n, &off, &bytes), 0, "%s", e.msg);
    cr_assert(n == 6 && bytes == 0);
    free(b);
    free(b2);
}

Test(journal, damage_before_the_tail_stays_an_error)
{
    const char *p = journal_file("jmid");
    write_journal(p, 5);
    size_t len;
    unsigned char *b = test_read_file(p, &len);
    Err e;
    long n, off, bytes;
    /* the second-to-last record cut short by a bad length: the last one is
     * still intact after it */
    unsigned char *c = malloc(len);
    cr_assert(c);
    memcpy(c, b, len);
    c[STEP_END(3) + 4] = 0xff;
    cr_assert_eq(test_write_file(p, c, len), 0);
    cr_assert_eq(read_torn(p, &e, &n, &off, &bytes), -1);
    cr_assert(strstr(e.msg, "record 5") && strstr(e.msg, "truncated record"), "%s", e.msg);
    /* a torn tail does not hide damage before it */
    memcpy(c, b, len);
    c[STEP_END(1) + 10] ^= 1;
    cr_assert_eq(test_write_file(p, c, len - 5), 0);
    cr_assert_eq(read_torn(p, &e, &n, &off, &bytes), -1);
    cr_assert(strstr(e.msg, "record 3") && strstr(e.msg, "checksum"), "%s", e.msg);
    /* and appending refuses it */
    Journal j;
    ZoIdentity h = {.seed = 11, .eps = 1e-3f, .scale = 0.25f, .weight_decay = 0.1f,
                    .samples = 2, .global_params = 1234};
    cr_assert_eq(journal_open_append(&j, p, &h, &e), -1);
    size_t len2;
    unsigned char *b2 = test_read_file(p, &len2);
    cr_assert_eq(len2, len - 5, "a refused journal is left as it was");
    free(b);
    free(b2);
    free(c);
}

Test(journal, append_refuses_another_runs_journal)
{
    const char *p = journal_file("jother");
    write_journal(p, 2);
    Journal j;
    Err e;
    ZoIdentity other = {.seed = 12, .eps = 1e-3f, .scale = 0.25f, .weight_decay = 0.1f,
                        .samples = 2, .global_params = 1234};
    cr_assert_eq(journal_open_append(&j, p, &other, &e), -1);
    cr_assert(strstr(e.msg, "another seed"), "%s", e.msg);
}

/* One comparison of run identities: floats by their bits (a NaN equals
 * itself), the base only when both sides know it, the first difference
 * the lowest bit. */
Test(zo, identity_diff)
{
    ZoIdentity a = {.seed = 1, .global_params = 100, .samples = 2, .eps = 1e-3f,
                    .scale = __builtin_nanf(""), .weight_decay = 0.1f};
    ZoIdentity b = a;
    cr_assert_eq(zo_identity_diff(&a, &b, ZO_ID_ALL), 0u);
    b.base_id = 7; /* a does not know its base */
    cr_assert_eq(zo_identity_diff(&a, &b, ZO_ID_ALL), 0u);
    a.base_id = 8;
    cr_assert_eq(zo_identity_diff(&a, &b, ZO_ID_ALL), (unsigned)ZO_ID_BASE);
    b.samples = 3;
    b.weight_decay = 0.2f;
    const unsigned d = zo_identity_diff(&a, &b, ZO_ID_ALL);
    cr_assert_eq(d, (unsigned)(ZO_ID_SAMPLES | ZO_ID_DECAY | ZO_ID_BASE));
    cr_assert_eq(zo_identity_first(d), (unsigned)ZO_ID_SAMPLES);
    cr_assert_eq(zo_identity_diff(&a, &b, ZO_ID_SEED | ZO_ID_DECAY), (unsigned)ZO_ID_DECAY);
    cr_assert_eq(zo_identity_first(0), 0u);
}
