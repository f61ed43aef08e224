/* Shared-randomness building blocks: the Philox generator against the
 * published known-answer vectors, Rademacher z of a shard equal to the
 * slice of the whole model's z, int8 codes, the update, the journal. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "models/model.h"
#include "models/philox.h"
#include "tests/unit/testutil.h"
#include "worker/zo/journal.h"
#include "worker/zo/zo.h"

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

/* z of every tensor-parallel shard equals the matching slice of the whole
 * model's z, and so does the update built from it. */
static void shard_matches_whole(ModelConfig c, int tp)
{
    Err e;
    Model whole;
    cr_assert_eq(model_init(&whole, &c, 1, 5, &e), 0, "%s", e.msg);
    float *wz = calloc(whole.n_params, sizeof(float));
    ZoId id = {7, 1, 0};
    zo_perturb(&whole, 99, id, 1.0f, +1, whole.params, wz);
    for (int r = 0; r < tp; r++) {
        ModelShard sh = {r, tp, 0, -1, 1, 0};
        Model part;
        cr_assert_eq(model_init_shard(&part, &c, &sh, 1, 5, &e), 0, "%s", e.msg);
        float *pz = calloc(part.n_params, sizeof(float));
        zo_perturb(&part, 99, id, 1.0f, +1, part.params, pz);
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
    shard_matches_whole((ModelConfig){MODEL_GPT, 2, 4, 16, 8, 32, 0}, 2);
    shard_matches_whole((ModelConfig){MODEL_GPT, 1, 4, 16, 8, 32, 0}, 4);
    shard_matches_whole((ModelConfig){MODEL_MLP, 2, 0, 8, 3, 5, 0}, 2);
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

/* The update is an exact integer sum: the order of machines cannot matter,
 * and skipped codes do nothing. */
Test(zo, update_is_order_independent_and_skips)
{
    ModelConfig c = {MODEL_GPT, 1, 2, 8, 4, 16, 0};
    Err e;
    Model a, b;
    cr_assert_eq(model_init(&a, &c, 1, 1, &e), 0);
    cr_assert_eq(model_init(&b, &c, 1, 1, &e), 0);
    int32_t *acc = calloc(a.n_params, sizeof *acc);
    int8_t codes[6] = {5, -3, ZO_SKIP, 12, 0, -127};
    int used = zo_step_update(&a, a.params, acc, 9, 4, codes, 3, 2, 0.01f, 0.5f, 0.1f);
    cr_assert_eq(used, 5);
    /* the same perturbations accumulated in reverse order */
    memset(acc, 0, b.n_params * sizeof *acc);
    for (int k = 5; k >= 0; k--)
        if (codes[k] != ZO_SKIP && codes[k])
            zo_accumulate(&b, 9, (ZoId){4, (uint32_t)(k / 2), (uint32_t)(k % 2)}, codes[k], acc);
    zo_apply(&b, b.params, acc, 0.01f * 0.5f / 5, 0.01f, 0.1f);
    cr_assert_eq(memcmp(a.params, b.params, a.n_params * sizeof(float)), 0);
    free(acc);
    model_free(&a);
    model_free(&b);
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
    JournalHeader h = {11, 1e-3f, 0.25f, 0.1f, 2, 1234};
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
    JournalHeader h = {11, 1e-3f, 0.25f, 0.1f, 2, 1234};
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
    JournalHeader h = {11, 1e-3f, 0.25f, 0.1f, 2, 1234};
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
    JournalHeader other = {12, 1e-3f, 0.25f, 0.1f, 2, 1234};
    cr_assert_eq(journal_open_append(&j, p, &other, &e), -1);
    cr_assert(strstr(e.msg, "another seed"), "%s", e.msg);
}
