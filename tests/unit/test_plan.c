/* coordinator/plan/plan.c without MPI: plan_resolve's checks and messages, the
 * memory estimate, and the encode/decode round trip with its hash and its
 * re-validation of a plan that was corrupted or tampered with. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/plan/plan.h"
#include "models/cost.h"
#include "mpitrain.pb-c.h"
#include "sharding/partition.h"
#include "worker/config/config.h"

static void small_cfg(TrainConfig *c)
{
    train_config_defaults(c);
    c->model = (ModelConfig){.kind = MODEL_GPT, .n_layer = 2, .n_head = 2, .n_embd = 32,
                             .seq_len = 16, .vocab = 64};
    snprintf(c->data, sizeof c->data, "x.tok");
    snprintf(c->out, sizeof c->out, "runs/x");
}

#define ASSERT_MSG_HAS(e, needle)                                                              \
    cr_assert(strstr((e).msg, (needle)) != NULL, "message \"%s\" lacks \"%s\"", (e).msg, (needle))

/* ---- plan_resolve ------------------------------------------------------------- */

Test(plan_resolve, fills_dp_from_world)
{
    TrainConfig c;
    small_cfg(&c);
    Err e = {{0}};
    cr_assert_eq(plan_resolve(&c, 4, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(c.dp, 4);
    cr_assert_eq(c.tp, 1);
    cr_assert_eq(c.pp, 1);

    small_cfg(&c);
    cr_assert_eq(plan_resolve(&c, 1, 0, &e), 0, "%s", e.msg);
    cr_assert(c.dp == 1 && c.tp == 1 && c.pp == 1);
}

Test(plan_resolve, explicit_layout_that_matches_is_kept)
{
    TrainConfig c;
    small_cfg(&c);
    c.dp = 2;
    c.tp = 1;
    c.pp = 1;
    Err e = {{0}};
    cr_assert_eq(plan_resolve(&c, 2, 0, &e), 0, "%s", e.msg);
    cr_assert(c.dp == 2 && c.tp == 1 && c.pp == 1);
}

Test(plan_resolve, refuses_world_size_mismatch)
{
    TrainConfig c;
    small_cfg(&c);
    c.dp = 2;
    Err e = {{0}};
    cr_assert_eq(plan_resolve(&c, 4, 0, &e), -1);
    ASSERT_MSG_HAS(e, "4 ranks");
    ASSERT_MSG_HAS(e, "--dp 2");
    ASSERT_MSG_HAS(e, "= 2");
    ASSERT_MSG_HAS(e, "--dp");

    small_cfg(&c);
    c.dp = 8;
    e.msg[0] = 0;
    cr_assert_eq(plan_resolve(&c, 4, 0, &e), -1);
    ASSERT_MSG_HAS(e, "4 ranks");
    ASSERT_MSG_HAS(e, "--dp 8");
}

Test(plan_resolve, refuses_world_not_a_multiple_of_tp_pp)
{
    TrainConfig c;
    small_cfg(&c);
    c.tp = 2;
    Err e = {{0}};
    cr_assert_eq(plan_resolve(&c, 3, 0, &e), -1);
    ASSERT_MSG_HAS(e, "3 ranks");
    ASSERT_MSG_HAS(e, "--tp 2");
}

Test(plan_resolve, refuses_dp_not_dividing_batch)
{
    TrainConfig c;
    small_cfg(&c);
    c.global_batch = 8;
    c.dp = 3;
    Err e = {{0}};
    cr_assert_eq(plan_resolve(&c, 3, 0, &e), -1);
    ASSERT_MSG_HAS(e, "--dp 3 does not divide global batch 8");

    /* the same through the world-size default */
    small_cfg(&c);
    e.msg[0] = 0;
    cr_assert_eq(plan_resolve(&c, 3, 0, &e), -1);
    ASSERT_MSG_HAS(e, "--dp 3 does not divide global batch 8");
}

Test(plan_resolve, refuses_micro_batches_not_dividing_per_rank_batch)
{
    TrainConfig c;
    small_cfg(&c);
    c.global_batch = 8;
    c.micro_batches = 4; /* divides 8 but not the 2 sequences of each of 4 ranks */
    Err e = {{0}};
    cr_assert_eq(plan_resolve(&c, 4, 0, &e), -1);
    ASSERT_MSG_HAS(e, "--micro-batches 4");
    ASSERT_MSG_HAS(e, "2 sequences");

    /* and micro-batches that divide neither */
    small_cfg(&c);
    c.micro_batches = 3;
    e.msg[0] = 0;
    cr_assert_eq(plan_resolve(&c, 1, 0, &e), -1);
    ASSERT_MSG_HAS(e, "--micro-batches");

    /* a fitting one passes */
    small_cfg(&c);
    c.micro_batches = 2;
    cr_assert_eq(plan_resolve(&c, 4, 0, &e), 0, "%s", e.msg);
}

Test(plan_resolve, tp_and_pp_layouts_and_their_limits)
{
    TrainConfig c;
    Err e = {{0}};
    small_cfg(&c); /* 2 heads, width 32, 2 layers = 4 blocks */
    c.tp = 2;
    c.pp = 2;
    cr_assert_eq(plan_resolve(&c, 4, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(c.dp, 1);
    cr_assert_eq(c.stage_first[0], 0);
    cr_assert_eq(c.stage_first[2], 4);
    cr_assert(c.stage_first[1] > 0 && c.stage_first[1] < 4);

    small_cfg(&c);
    c.tp = 4; /* 2 heads cannot be split 4 ways */
    cr_assert_eq(plan_resolve(&c, 4, 0, &e), -1);
    ASSERT_MSG_HAS(e, "--tp 4 does not divide --heads 2");

    small_cfg(&c);
    c.pp = 5; /* more stages than blocks */
    cr_assert_eq(plan_resolve(&c, 5, 0, &e), -1);
    ASSERT_MSG_HAS(e, "--pp 5");

    small_cfg(&c);
    c.pp = 2;
    c.zero = 2;
    cr_assert_eq(plan_resolve(&c, 2, 0, &e), -1);
    ASSERT_MSG_HAS(e, "--zero 2 with --pp 2");

    small_cfg(&c);
    c.model.kind = MODEL_MLP;
    c.pp = 2;
    cr_assert_eq(plan_resolve(&c, 2, 0, &e), -1);
    ASSERT_MSG_HAS(e, "pipeline");
}

Test(plan_resolve, refuses_zero_with_zo)
{
    TrainConfig c;
    small_cfg(&c);
    c.optim.kind = OPT_ZO;
    c.zero = 1;
    Err e = {{0}};
    cr_assert_eq(plan_resolve(&c, 2, 0, &e), -1);
    ASSERT_MSG_HAS(e, "--zero 1");
}

Test(plan_resolve, refuses_missing_data_and_out)
{
    TrainConfig c;
    small_cfg(&c);
    c.data[0] = 0;
    Err e = {{0}};
    cr_assert_eq(plan_resolve(&c, 1, 0, &e), -1);
    ASSERT_MSG_HAS(e, "--data");
    small_cfg(&c);
    c.out[0] = 0;
    cr_assert_eq(plan_resolve(&c, 1, 0, &e), -1);
    ASSERT_MSG_HAS(e, "--out");
}

Test(plan_resolve, memory_check)
{
    TrainConfig c;
    small_cfg(&c);
    Err e = {{0}};
    cr_assert_eq(plan_resolve(&c, 2, 1000, &e), -1);
    ASSERT_MSG_HAS(e, "GB per rank");
    /* and says what to change */
    cr_assert(strstr(e.msg, "--batch") || strstr(e.msg, "--micro-batches") || strstr(e.msg, "--zero"),
              "no suggestion in \"%s\"", e.msg);

    /* plenty of memory, or no check at all, passes */
    small_cfg(&c);
    cr_assert_eq(plan_resolve(&c, 2, (size_t)64 << 30, &e), 0, "%s", e.msg);
    small_cfg(&c);
    cr_assert_eq(plan_resolve(&c, 2, 0, &e), 0, "%s", e.msg);
    /* exactly the estimate is enough */
    size_t need = plan_memory_per_rank(&c);
    small_cfg(&c);
    cr_assert_eq(plan_resolve(&c, 2, need, &e), 0, "%s", e.msg);
    small_cfg(&c);
    cr_assert_eq(plan_resolve(&c, 2, need - 1, &e), -1);
}

Test(plan_memory, zero_shards_optimizer_state)
{
    TrainConfig c;
    small_cfg(&c);
    c.zero = 1;
    c.dp = 1;
    size_t m1 = plan_memory_per_rank(&c);
    c.dp = 4;
    size_t m4 = plan_memory_per_rank(&c);
    cr_assert_lt(m4, m1, "zero 1: dp 4 needs %zu, dp 1 needs %zu", m4, m1);

    /* at dp 4, ZeRO-1 and ZeRO-2 need less than no ZeRO (this build's ZeRO-2
     * keeps the full gradient buffer plus a reduce-scatter shard, so it is
     * not below ZeRO-1) */
    c.zero = 0;
    size_t z0 = plan_memory_per_rank(&c);
    c.zero = 1;
    size_t z1 = plan_memory_per_rank(&c);
    c.zero = 2;
    size_t z2 = plan_memory_per_rank(&c);
    cr_assert_lt(z1, z0);
    cr_assert_lt(z2, z0);

    /* the weights alone are a floor */
    size_t n = cost_param_count(&c.model);
    cr_assert_geq(m4, n * sizeof(float));
    /* adamw keeps more state than sgd, sgd more than zo */
    c.zero = 0;
    c.optim.kind = OPT_ADAMW;
    size_t adam = plan_memory_per_rank(&c);
    c.optim.kind = OPT_SGD;
    size_t sgd = plan_memory_per_rank(&c);
    c.optim.kind = OPT_ZO;
    size_t zo = plan_memory_per_rank(&c);
    cr_assert(adam > sgd && sgd > zo, "adamw %zu sgd %zu zo %zu", adam, sgd, zo);
}

/* ---- encode / decode ---------------------------------------------------------- */

static void rich_cfg(TrainConfig *c)
{
    small_cfg(c);
    c->optim = (OptimConfig){OPT_SGD, 3e-3f, 2e-4f, 0.8f, 0.97f, 1e-7f, 0.05f, 0.85f, 0.5f, 7, 0};
    c->global_batch = 12;
    c->steps = 77;
    c->optim.total_steps = 77;
    c->seed = 0xdeadbeefcafef00dull; /* all 64 bits */
    c->threads = 3;
    c->micro_batches = 3;
    snprintf(c->data, sizeof c->data, "data/some corpus.tok");
    snprintf(c->out, sizeof c->out, "runs/rich");
    snprintf(c->init_from, sizeof c->init_from, "runs/base/ckpt");
    snprintf(c->trace, sizeof c->trace, "trace.json");
    c->save_every = 7;
    c->keep_ckpts = 2;
    c->eval_every = 5;
    c->eval_batches = 3;
    c->log_every = 2;
    c->zero = 1;
    c->pp_schedule = 1;
    c->progress = 1;
    c->quiet = 1;
    c->overwrite = 1;
    c->bucket_mb = 0.0123f;
    c->overlap = 0;
}

static void assert_same_plan(const TrainConfig *a, const TrainConfig *b)
{
    cr_assert_eq(a->model.kind, b->model.kind);
    cr_assert_eq(a->model.n_layer, b->model.n_layer);
    cr_assert_eq(a->model.n_head, b->model.n_head);
    cr_assert_eq(a->model.n_embd, b->model.n_embd);
    cr_assert_eq(a->model.seq_len, b->model.seq_len);
    cr_assert_eq(a->model.vocab, b->model.vocab);
    cr_assert_eq(a->model.in_dim, b->model.in_dim);
    cr_assert_eq(a->optim.kind, b->optim.kind);
    /* floats must survive bit for bit */
    cr_assert(memcmp(&a->optim.lr, &b->optim.lr, sizeof(float)) == 0, "lr %g vs %g", a->optim.lr, b->optim.lr);
    cr_assert(memcmp(&a->optim.min_lr, &b->optim.min_lr, sizeof(float)) == 0);
    cr_assert(memcmp(&a->optim.beta1, &b->optim.beta1, sizeof(float)) == 0);
    cr_assert(memcmp(&a->optim.beta2, &b->optim.beta2, sizeof(float)) == 0);
    cr_assert(memcmp(&a->optim.eps, &b->optim.eps, sizeof(float)) == 0);
    cr_assert(memcmp(&a->optim.weight_decay, &b->optim.weight_decay, sizeof(float)) == 0);
    cr_assert(memcmp(&a->optim.momentum, &b->optim.momentum, sizeof(float)) == 0);
    cr_assert(memcmp(&a->optim.grad_clip, &b->optim.grad_clip, sizeof(float)) == 0);
    cr_assert_eq(a->optim.warmup, b->optim.warmup);
    cr_assert_eq(a->optim.total_steps, b->optim.total_steps);
    cr_assert_eq(a->global_batch, b->global_batch);
    cr_assert_eq(a->steps, b->steps);
    cr_assert_eq(a->seed, b->seed, "seed %llx vs %llx", (unsigned long long)a->seed,
                 (unsigned long long)b->seed);
    cr_assert_eq(a->threads, b->threads);
    cr_assert_eq(a->micro_batches, b->micro_batches);
    cr_assert_str_eq(a->data, b->data);
    cr_assert_str_eq(a->out, b->out);
    cr_assert_str_eq(a->resume, b->resume);
    cr_assert_str_eq(a->init_from, b->init_from);
    cr_assert_str_eq(a->trace, b->trace);
    cr_assert_eq(a->save_every, b->save_every);
    cr_assert_eq(a->keep_ckpts, b->keep_ckpts);
    cr_assert_eq(a->eval_every, b->eval_every);
    cr_assert_eq(a->eval_batches, b->eval_batches);
    cr_assert_eq(a->log_every, b->log_every);
    cr_assert_eq(a->dp, b->dp);
    cr_assert_eq(a->tp, b->tp);
    cr_assert_eq(a->pp, b->pp);
    cr_assert_eq(a->zero, b->zero);
    cr_assert_eq(a->pp_schedule, b->pp_schedule);
    cr_assert_eq(a->progress, b->progress);
    cr_assert_eq(!!a->quiet, !!b->quiet);
    cr_assert_eq(!!a->overwrite, !!b->overwrite);
    cr_assert(memcmp(&a->bucket_mb, &b->bucket_mb, sizeof(float)) == 0);
    cr_assert_eq(!!a->overlap, !!b->overlap);
}

/* Resolves cfg for world ranks and encodes it. */
static void encode_ok(TrainConfig *c, int world, uint8_t **buf, size_t *len)
{
    Err e = {{0}};
    cr_assert_eq(plan_resolve(c, world, 0, &e), 0, "resolve: %s", e.msg);
    cr_assert_eq(plan_encode(c, world, buf, len, &e), 0, "encode: %s", e.msg);
    cr_assert_not_null(*buf);
    cr_assert_gt(*len, 0);
}

Test(plan_codec, round_trip_defaults)
{
    TrainConfig c, d;
    small_cfg(&c);
    uint8_t *buf;
    size_t len;
    encode_ok(&c, 4, &buf, &len);
    Err e = {{0}};
    memset(&d, 0x5a, sizeof d);
    cr_assert_eq(plan_decode(buf, len, plan_hash(buf, len), 4, &d, &e), 0, "%s", e.msg);
    assert_same_plan(&c, &d);
    free(buf);
}

Test(plan_codec, round_trip_every_field)
{
    TrainConfig c, d;
    rich_cfg(&c);
    uint8_t *buf;
    size_t len;
    encode_ok(&c, 4, &buf, &len);
    cr_assert_eq(c.dp, 4);
    Err e = {{0}};
    cr_assert_eq(plan_decode(buf, len, plan_hash(buf, len), 4, &d, &e), 0, "%s", e.msg);
    assert_same_plan(&c, &d);

    /* re-encoding the decoded plan gives the very same bytes */
    uint8_t *buf2;
    size_t len2;
    cr_assert_eq(plan_encode(&d, 4, &buf2, &len2, &e), 0, "%s", e.msg);
    cr_assert_eq(len2, len);
    cr_assert(memcmp(buf, buf2, len) == 0, "re-encoded plan differs");
    cr_assert_eq(plan_hash(buf2, len2), plan_hash(buf, len));
    free(buf);
    free(buf2);
}

Test(plan_codec, round_trip_other_optimizers_and_resume)
{
    const OptKind kinds[] = {OPT_ADAMW, OPT_ZO};
    for (int i = 0; i < 2; i++) {
        TrainConfig c, d;
        rich_cfg(&c);
        c.optim.kind = kinds[i];
        c.zero = kinds[i] == OPT_ZO ? 0 : 2;
        c.overlap = 1;
        c.quiet = 0;
        snprintf(c.resume, sizeof c.resume, "runs/rich/ckpt/step_00000010");
        c.dp = 2;
        uint8_t *buf;
        size_t len;
        encode_ok(&c, 2, &buf, &len);
        Err e = {{0}};
        cr_assert_eq(plan_decode(buf, len, plan_hash(buf, len), 2, &d, &e), 0, "%s", e.msg);
        assert_same_plan(&c, &d);
        free(buf);
    }
}

Test(plan_codec, encoding_is_deterministic_and_hash_sensitive)
{
    TrainConfig a, b;
    small_cfg(&a);
    small_cfg(&b);
    uint8_t *ba, *bb;
    size_t la, lb;
    encode_ok(&a, 2, &ba, &la);
    encode_ok(&b, 2, &bb, &lb);
    cr_assert(la == lb && memcmp(ba, bb, la) == 0);
    cr_assert_eq(plan_hash(ba, la), plan_hash(bb, lb));
    free(bb);
    small_cfg(&b);
    b.seed++;
    encode_ok(&b, 2, &bb, &lb);
    cr_assert_neq(plan_hash(ba, la), plan_hash(bb, lb));
    free(ba);
    free(bb);
    /* FNV-1a of nothing is its offset basis */
    cr_assert_eq(plan_hash("", 0), 0xcbf29ce484222325ull);
}

Test(plan_codec, any_flipped_byte_is_a_hash_mismatch)
{
    TrainConfig c, d;
    rich_cfg(&c);
    uint8_t *buf;
    size_t len;
    encode_ok(&c, 4, &buf, &len);
    uint64_t h = plan_hash(buf, len);
    uint8_t *bad = malloc(len);
    cr_assert_not_null(bad);
    const uint8_t flips[] = {0x01, 0x80, 0xff};
    for (size_t i = 0; i < len; i++)
        for (int f = 0; f < 3; f++) {
            memcpy(bad, buf, len);
            bad[i] ^= flips[f];
            Err e = {{0}};
            cr_assert_eq(plan_decode(bad, len, h, 4, &d, &e), -1, "byte %zu ^ %02x accepted", i,
                         flips[f]);
            cr_assert(strstr(e.msg, "hash mismatch"), "byte %zu: \"%s\"", i, e.msg);
        }
    /* truncated or extended */
    Err e = {{0}};
    cr_assert_eq(plan_decode(buf, len - 1, h, 4, &d, &e), -1);
    ASSERT_MSG_HAS(e, "hash mismatch");
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = 0;
    cr_assert_eq(plan_decode(longer, len + 1, h, 4, &d, &e), -1);
    ASSERT_MSG_HAS(e, "hash mismatch");
    /* the right hash with the wrong bytes' neighbour */
    cr_assert_eq(plan_decode(buf, len, h ^ 1, 4, &d, &e), -1);
    ASSERT_MSG_HAS(e, "hash mismatch");
    free(longer);
    free(bad);
    free(buf);
}

Test(plan_codec, wrong_world_size_is_refused)
{
    TrainConfig c, d;
    small_cfg(&c);
    uint8_t *buf;
    size_t len;
    encode_ok(&c, 4, &buf, &len);
    uint64_t h = plan_hash(buf, len);
    const int worlds[] = {1, 2, 3, 5, 8};
    for (int i = 0; i < 5; i++) {
        Err e = {{0}};
        cr_assert_eq(plan_decode(buf, len, h, worlds[i], &d, &e), -1);
        char want[64];
        snprintf(want, sizeof want, "%d ranks", 4);
        ASSERT_MSG_HAS(e, want);
        snprintf(want, sizeof want, "has %d", worlds[i]);
        ASSERT_MSG_HAS(e, want);
    }
    free(buf);
}

/* ---- tampering: the hash matches but the contents are wrong ------------------- */

typedef void (*Tamper)(Mpitrain__Plan *p, void *saved);

/* Setting values a tamper replaced, restored before the message is freed. */
static struct {
    Mpitrain__Setting *s;
    char *old;
} g_put[8];
static int g_nput;

/* Replaces the value of setting `key` (which must be in the plan). */
static void put(Mpitrain__Plan *p, const char *key, const char *value)
{
    for (size_t i = 0; i < p->n_settings; i++)
        if (!strcmp(p->settings[i]->key, key)) {
            cr_assert_lt(g_nput, 8);
            g_put[g_nput].s = p->settings[i];
            g_put[g_nput++].old = p->settings[i]->value;
            p->settings[i]->value = (char *)value;
            return;
        }
    cr_assert_fail("the plan has no setting %s", key);
}

static void unput(void)
{
    while (g_nput > 0) {
        g_nput--;
        g_put[g_nput].s->value = g_put[g_nput].old;
    }
}

/* Unpacks the plan, lets fn change it, repacks, and decodes the result with
 * a matching hash; `undo` restores pointers fn borrowed so the unpacked
 * message frees cleanly. Returns plan_decode's verdict. */
static int decode_tampered(const uint8_t *buf, size_t len, int world, Tamper fn, Tamper undo,
                           TrainConfig *out, Err *e)
{
    Mpitrain__Plan *p = mpitrain__plan__unpack(NULL, len, buf);
    cr_assert_not_null(p);
    void *saved[8] = {0};
    fn(p, saved);
    size_t n = mpitrain__plan__get_packed_size(p);
    uint8_t *t = malloc(n ? n : 1);
    cr_assert_not_null(t);
    mpitrain__plan__pack(p, t);
    unput();
    if (undo) undo(p, saved);
    mpitrain__plan__free_unpacked(p, NULL);
    int rc = plan_decode(t, n, plan_hash(t, n), world, out, e);
    free(t);
    return rc;
}

static void t_none(Mpitrain__Plan *p, void *s) { (void)p; (void)s; }
static void t_world8(Mpitrain__Plan *p, void *s) { (void)s; p->world_size = 8; }
static void t_version(Mpitrain__Plan *p, void *s) { (void)s; p->version = PLAN_VERSION + 1; }
static void t_shard_lo(Mpitrain__Plan *p, void *s) { (void)s; p->shards[1]->lo += 1; }
static void t_shard_hi(Mpitrain__Plan *p, void *s) { (void)s; p->shards[3]->hi -= 1; }
static void t_shard_rank(Mpitrain__Plan *p, void *s) { (void)s; p->shards[2]->dp_rank = 0; }
static void t_slice(Mpitrain__Plan *p, void *s) { (void)s; p->dp_slices[1]->first_seq += 1; }
static void t_slice_n(Mpitrain__Plan *p, void *s) { (void)s; p->dp_slices[0]->n_seq = 8; }
static void t_nparams(Mpitrain__Plan *p, void *s) { (void)s; p->n_params += 1; }
static void t_heads(Mpitrain__Plan *p, void *s) { (void)s; put(p, "heads", "3"); }
static void t_layers(Mpitrain__Plan *p, void *s) { (void)s; put(p, "layers", "3"); }
static void t_batch(Mpitrain__Plan *p, void *s) { (void)s; put(p, "batch", "6"); }
static void t_tp(Mpitrain__Plan *p, void *s) { (void)s; put(p, "tp", "2"); }
static void t_steps(Mpitrain__Plan *p, void *s) { (void)s; put(p, "steps", "0"); }
static void t_micro(Mpitrain__Plan *p, void *s) { (void)s; put(p, "micro-batches", "0"); }
static void t_nshards(Mpitrain__Plan *p, void *s)
{
    ((size_t *)s)[0] = p->n_shards;
    p->n_shards -= 1;
}
static void u_nshards(Mpitrain__Plan *p, void *s) { p->n_shards = ((size_t *)s)[0]; }
static void t_dp2(Mpitrain__Plan *p, void *s) { (void)s; put(p, "dp", "2"); }
static void t_nosettings(Mpitrain__Plan *p, void *s)
{
    ((size_t *)s)[0] = p->n_settings;
    p->n_settings = 0;
}
static void u_nosettings(Mpitrain__Plan *p, void *s) { p->n_settings = ((size_t *)s)[0]; }
static void t_badkey(Mpitrain__Plan *p, void *s)
{
    (void)s;
    ((char **)s)[0] = p->settings[0]->key;
    p->settings[0]->key = "not-a-setting";
}
static void u_badkey(Mpitrain__Plan *p, void *s) { p->settings[0]->key = ((char **)s)[0]; }

typedef struct {
    const char *what;
    Tamper fn, undo;
    int world;         /* world the tampered plan is decoded in */
    const char *needle; /* expected in the message */
} TamperCase;

Test(plan_tamper, consistent_hash_but_bad_contents_is_refused)
{
    TrainConfig c, d;
    small_cfg(&c); /* gpt, batch 8, world 4 -> dp 4: 2 sequences per rank */
    uint8_t *buf;
    size_t len;
    encode_ok(&c, 4, &buf, &len);
    const TamperCase cases[] = {
        {"world size 8", t_world8, NULL, 8, "--dp 4"},
        {"version", t_version, NULL, 4, "version"},
        {"shard lo", t_shard_lo, NULL, 4, "shard range of dp rank 1"},
        {"shard hi", t_shard_hi, NULL, 4, "shard range of dp rank 3"},
        {"shard rank", t_shard_rank, NULL, 4, "shard range of dp rank 2"},
        {"slice first", t_slice, NULL, 4, "batch slice of dp rank 1"},
        {"slice count", t_slice_n, NULL, 4, "batch slice of dp rank 0"},
        {"n_params", t_nparams, NULL, 4, "n_params"},
        {"layers", t_layers, NULL, 4, "n_params"},
        {"heads", t_heads, NULL, 4, "--heads 3"},
        {"batch", t_batch, NULL, 4, "batch slice"},
        {"tp", t_tp, NULL, 4, "--tp 2"},
        {"steps", t_steps, NULL, 4, "--steps"},
        {"micro", t_micro, NULL, 4, "--micro-batches"},
        {"n_shards", t_nshards, u_nshards, 4, "shards for --dp 4"},
        {"dp 2", t_dp2, NULL, 4, "--dp 2"},
        {"no settings", t_nosettings, u_nosettings, 4, "dp 0"},
        {"unknown setting", t_badkey, u_badkey, 4, "not-a-setting"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Err e = {{0}};
        int rc = decode_tampered(buf, len, cases[i].world, cases[i].fn, cases[i].undo, &d, &e);
        cr_assert_eq(rc, -1, "tampered %s was accepted", cases[i].what);
        cr_assert(strstr(e.msg, cases[i].needle), "tampered %s: \"%s\" lacks \"%s\"",
                  cases[i].what, e.msg, cases[i].needle);
    }
    /* the untouched plan through the same path still decodes */
    Err e = {{0}};
    cr_assert_eq(decode_tampered(buf, len, 4, t_none, NULL, &d, &e), 0, "%s", e.msg);
    assert_same_plan(&c, &d);
    free(buf);
}

/* ---- garbage with a matching hash ------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64: deterministic across runs and platforms */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

Test(plan_garbage, random_bytes_are_refused_cleanly)
{
    uint64_t s = 20240501;
    uint8_t bytes[512];
    for (int trial = 0; trial < 400; trial++) {
        size_t len = (size_t)(rng_next(&s) % sizeof bytes);
        for (size_t i = 0; i < len; i++) bytes[i] = (uint8_t)rng_next(&s);
        TrainConfig d;
        Err e = {{0}};
        int rc = plan_decode(bytes, len, plan_hash(bytes, len), 4, &d, &e);
        cr_assert_eq(rc, -1, "trial %d: %zu random bytes decoded as a plan", trial, len);
        cr_assert(e.msg[0], "trial %d: refused without a message", trial);
        cr_assert(strstr(e.msg, "plan"), "trial %d: message \"%s\" does not say it is the plan",
                  trial, e.msg);
    }
    /* nothing at all decodes as an empty message, which has no version */
    TrainConfig d;
    Err e = {{0}};
    cr_assert_eq(plan_decode(bytes, 0, plan_hash(bytes, 0), 4, &d, &e), -1);
    ASSERT_MSG_HAS(e, "version");
}

/* A resolved plan after decoding must be one the trainer can run. */
static void assert_runnable(const TrainConfig *d, int world, int trial)
{
    Err e = {{0}};
    cr_assert(d->dp >= 1 && d->tp == 1 && d->pp == 1, "trial %d: accepted layout dp %d tp %d pp %d",
              trial, d->dp, d->tp, d->pp);
    cr_assert_eq(d->dp * d->tp * d->pp, world, "trial %d", trial);
    cr_assert_eq(train_config_validate(d, &e), 0, "trial %d: accepted plan fails validation: %s",
                 trial, e.msg);
    cr_assert_eq(d->global_batch % d->dp, 0, "trial %d", trial);
    cr_assert_eq((d->global_batch / d->dp) % d->micro_batches, 0, "trial %d", trial);
}

Test(plan_garbage, mutated_plans_are_refused_or_valid, .timeout = 60)
{
    TrainConfig c;
    rich_cfg(&c);
    uint8_t *buf;
    size_t len;
    encode_ok(&c, 4, &buf, &len);
    uint8_t *m = malloc(len + 16);
    cr_assert_not_null(m);
    uint64_t s = 7;
    int accepted = 0;
    for (int trial = 0; trial < 600; trial++) {
        memcpy(m, buf, len);
        size_t n = len;
        int edits = 1 + (int)(rng_next(&s) % 4);
        for (int k = 0; k < edits; k++) {
            uint64_t r = rng_next(&s);
            size_t at = (size_t)(r >> 8) % n;
            switch (r % 4) {
            case 0: m[at] = (uint8_t)(r >> 40); break;            /* overwrite */
            case 1: m[at] ^= (uint8_t)(1u << ((r >> 40) % 8)); break; /* flip a bit */
            case 2: if (n > 1) n = at ? at : 1; break;            /* truncate */
            default: m[at] = (uint8_t)((r >> 40) | 0x80); break;  /* make a varint run on */
            }
        }
        TrainConfig d;
        Err e = {{0}};
        int rc = plan_decode(m, n, plan_hash(m, n), 4, &d, &e);
        cr_assert(rc == 0 || rc == -1, "trial %d: rc %d", trial, rc);
        if (rc) {
            cr_assert(e.msg[0], "trial %d: refused without a message", trial);
        } else {
            accepted++;
            assert_runnable(&d, 4, trial);
        }
    }
    cr_log_info("%d of 600 mutated plans were still valid plans", accepted);
    free(m);
    free(buf);
}

/* ---- layouts and plans that must be refused without crashing or hanging ------ */

/* regression in coordinator/plan/plan.c (resolve_mesh: tp*pp int overflow -> world % 0 -> SIGFPE): guarded since the fix. */
Test(plan_resolve, huge_tp_times_pp_is_refused_not_a_crash, .timeout = 10)
{
    /* the CLI accepts --tp and --pp up to 1<<20 each; their int product
     * overflows (65536 * 65536 wraps to 0) */
    TrainConfig c;
    small_cfg(&c);
    c.tp = 65536;
    c.pp = 65536;
    Err e = {{0}};
    cr_assert_eq(plan_resolve(&c, 4, 0, &e), -1);
    cr_assert(e.msg[0]);
}

/* regression in coordinator/plan/plan.c (resolve_mesh accepts negative dp/tp/pp): guarded since the fix. */
Test(plan_resolve, negative_layout_is_refused)
{
    /* not reachable from the CLI (its minimum is 0) but reachable from a plan */
    TrainConfig c;
    small_cfg(&c);
    c.tp = -1;
    Err e = {{0}};
    int rc = plan_resolve(&c, 4, 0, &e);
    cr_assert_eq(rc, -1, "accepted dp %d tp %d pp %d", c.dp, c.tp, c.pp);
    small_cfg(&c);
    c.dp = -2;
    c.tp = 1;
    c.pp = -2;
    rc = plan_resolve(&c, 4, 0, &e);
    cr_assert_eq(rc, -1, "accepted dp %d tp %d pp %d", c.dp, c.tp, c.pp);
}

static void t_mlp_neg_layers(Mpitrain__Plan *p, void *s)
{
    (void)s;
    put(p, "model", "mlp");
    put(p, "layers", "-1");
}
static void t_dp0(Mpitrain__Plan *p, void *s)
{
    /* dp 0 with no slices and no shards: nothing derived left to check */
    size_t *sv = s;
    sv[0] = p->n_dp_slices;
    sv[1] = p->n_shards;
    p->n_dp_slices = p->n_shards = 0;
    put(p, "dp", "0");
}
static void u_dp0(Mpitrain__Plan *p, void *s)
{
    size_t *sv = s;
    p->n_dp_slices = sv[0];
    p->n_shards = sv[1];
}
static void t_dp0_tp_neg(Mpitrain__Plan *p, void *s)
{
    t_dp0(p, s);
    put(p, "tp", "-1");
}
static void t_dp0_tp_huge(Mpitrain__Plan *p, void *s)
{
    t_dp0(p, s);
    put(p, "tp", "65536");
    put(p, "pp", "65536");
}
static void t_optname(Mpitrain__Plan *p, void *s)
{
    (void)s;
    put(p, "optimizer", "adamw2");
}

/* regression in coordinator/plan/plan.c (check_derived counted the parameters, now cost_param_count, before validating the model): guarded since the fix. */
Test(plan_tamper, mlp_with_negative_layers_does_not_hang, .timeout = 10)
{
    TrainConfig c, d;
    small_cfg(&c);
    uint8_t *buf;
    size_t len;
    encode_ok(&c, 4, &buf, &len);
    Err e = {{0}};
    cr_assert_eq(decode_tampered(buf, len, 4, t_mlp_neg_layers, NULL, &d, &e), -1);
    cr_assert(e.msg[0]);
    free(buf);
}

static int decode_small_tampered(Tamper fn, Tamper undo, TrainConfig *d, Err *e)
{
    TrainConfig c;
    small_cfg(&c);
    uint8_t *buf;
    size_t len;
    encode_ok(&c, 4, &buf, &len);
    int rc = decode_tampered(buf, len, 4, fn, undo, d, e);
    free(buf);
    return rc;
}

/* regression in coordinator/plan/plan.c (resolve_mesh accepts negative tp; check_derived accepts dp 0): guarded since the fix. */
Test(plan_tamper, dp0_negative_tp_is_refused, .timeout = 10)
{
    TrainConfig d;
    Err e = {{0}};
    int rc = decode_small_tampered(t_dp0_tp_neg, u_dp0, &d, &e);
    cr_assert_eq(rc, -1, "dp 0 tp -1 accepted as dp %d tp %d pp %d", d.dp, d.tp, d.pp);
}

/* regression in coordinator/plan/plan.c (resolve_mesh: tp*pp overflow -> SIGFPE): guarded since the fix. */
Test(plan_tamper, dp0_huge_tp_pp_is_refused_not_a_crash, .timeout = 10)
{
    TrainConfig d;
    Err e = {{0}};
    cr_assert_eq(decode_small_tampered(t_dp0_tp_huge, u_dp0, &d, &e), -1);
}

/* regression in coordinator/plan/plan.c (check_derived accepts dp 0 with no slices/shards): guarded since the fix. */
Test(plan_tamper, dp0_without_derived_ranges_is_refused, .timeout = 10)
{
    TrainConfig d;
    Err e = {{0}};
    int rc = decode_small_tampered(t_dp0, u_dp0, &d, &e);
    cr_assert_eq(rc, -1, "a plan with --dp 0 and no shard ranges was accepted (as dp %d)", d.dp);
}

/* regression in coordinator/plan/plan.c (plan_to_config maps an unknown optimizer name to adamw): guarded since the fix. */
Test(plan_tamper, unknown_optimizer_name_is_refused)
{
    TrainConfig c, d;
    small_cfg(&c);
    c.optim.kind = OPT_SGD;
    uint8_t *buf;
    size_t len;
    encode_ok(&c, 4, &buf, &len);
    Err e = {{0}};
    int rc = decode_tampered(buf, len, 4, t_optname, NULL, &d, &e);
    cr_assert_eq(rc, -1, "optimizer \"adamw2\" accepted as %d", (int)d.optim.kind);
    ASSERT_MSG_HAS(e, "adamw2");
    free(buf);
}
