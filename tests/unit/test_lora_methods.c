/* Issue 24: the methods' view of a LoRA model. --zo-params chooses among
 * the adapters (the base is not in the table it selects from) and refuses a
 * selector of frozen weights by name; ZO's update moves the adapters and
 * never the base; the gradient buckets skip the blocks without adapters. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include "models/model.h"
#include "sharding/partition.h"
#include "worker/method/zo/zo.h"
#include "worker/method/zo/zo_params.h"

static ModelConfig gpt_lora(void)
{
    ModelConfig c = {.kind = MODEL_GPT, .n_layer = 3, .n_head = 2, .n_embd = 16, .seq_len = 8,
                     .vocab = 32, .lora_rank = 2};
    snprintf(c.lora_targets, sizeof c.lora_targets, "c_attn,c_fc");
    return c;
}

static void build(Model *m, const ModelConfig *c)
{
    ModelShard whole = model_shard_whole(0);
    Err e;
    cr_assert_eq(model_init_shard(m, c, &whole, 1, 7, &e), 0, "%s", e.msg);
}

Test(lora_methods, zo_params_select_adapters)
{
    ModelConfig c = gpt_lora();
    Model m;
    build(&m, &c);
    cr_assert_eq(m.n_tensors, 12); /* 3 layers x 2 linears x (A, B) */
    uint8_t active[12];
    Err e;
    uint64_t id;
    cr_assert_eq(zo_params_id(&c, "all", &id, &e), 0, "%s", e.msg);
    cr_assert_eq(id, ZO_PARAMS_ALL_ID);
    cr_assert_eq(zo_params_select(&m, "last:1", active, &e), 0, "%s", e.msg);
    for (int k = 0; k < m.n_tensors; k++)
        cr_assert_eq(active[k], m.tensors[k].block == 3, "%s", m.tensors[k].name);
    cr_assert_eq(zo_params_select(&m, "h.*.lora_B", active, &e), 0, "%s", e.msg);
    for (int k = 0; k < m.n_tensors; k++)
        cr_assert_eq(active[k], strstr(m.tensors[k].name, "lora_B") != NULL, "%s", m.tensors[k].name);
    model_free(&m);
}

Test(lora_methods, zo_params_refuse_frozen_weights)
{
    ModelConfig c = gpt_lora();
    const char *bad[] = {"norms", "biases", "embeddings", "h.0.attn.qkv.w", "all,wte"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        Err e = {0};
        cr_assert_neq(zo_params_validate(&c, bad[i], &e), 0, "%s accepted", bad[i]);
        cr_assert(strstr(e.msg, "only the adapters train"), "%s: %s", bad[i], e.msg);
        cr_assert(strstr(e.msg, "--lora-rank 2"), "%s: %s", bad[i], e.msg);
    }
}

/* One ZO step with every code non-zero: every adapter element moves, no base
 * weight does. */
Test(lora_methods, zo_update_moves_adapters_only)
{
    ModelConfig c = gpt_lora();
    Model m;
    build(&m, &c);
    size_t nb = m.base.n_params;
    float *base = malloc(nb * sizeof *base), *before = malloc(m.n_params * sizeof *before);
    cr_assert(base && before);
    memcpy(base, m.base.params, nb * sizeof *base);
    memcpy(before, m.params, m.n_params * sizeof *before);
    const int8_t codes[2] = {3, -5};
    cr_assert_eq(zo_step_update(&m, m.params, NULL, 7, 0, codes, 1, 2, 0.1f, 1.0f, 0), 2);
    cr_assert_eq(memcmp(base, m.base.params, nb * sizeof *base), 0, "the base moved");
    size_t moved = 0;
    for (size_t i = 0; i < m.n_params; i++) moved += m.params[i] != before[i];
    cr_assert_eq(moved, m.n_params, "%zu of %zu adapter elements moved", moved, m.n_params);
    free(base);
    free(before);
    model_free(&m);
}

/* The embedding's block and the head's have no adapters: no bucket holds
 * them, and the buckets cover every adapter once. */
Test(lora_methods, buckets_skip_blocks_without_adapters)
{
    ModelConfig c = gpt_lora();
    Model m;
    build(&m, &c);
    size_t lo[8];
    Range r[8];
    int first[8];
    cr_assert_eq(m.n_blocks, 5);
    model_block_offsets(&m, lo);
    cr_assert_eq(lo[0], lo[1], "the embedding block owns no adapter");
    cr_assert_eq(lo[4], lo[5], "the head block owns no adapter");
    int nb = make_buckets(lo, m.n_blocks, 1, r, first);
    cr_assert_eq(nb, 3);
    size_t covered = 0;
    for (int i = 0; i < nb; i++) {
        cr_assert(first[i] >= 1 && first[i] <= 3, "bucket %d closes at block %d", i, first[i]);
        covered += r[i].hi - r[i].lo;
    }
    cr_assert_eq(covered, m.n_params);
    model_free(&m);
}
