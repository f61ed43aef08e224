/* Hostile files: every reader checks sizes before it allocates, and says
 * what is wrong. A manifest claiming a terabyte tensor is an error, not an
 * allocation. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "models/model.h"
#include "tests/unit/testutil.h"
#include "worker/ckpt/ckpt.h"
#include "base/crc32c.h"
#include "worker/data/data.h"
#include "worker/zo/journal.h"

/* Writes dir/manifest.pb for the given model config and records. */
static void write_manifest(const char *dir, ModelConfig mc, Mpitrain__TensorRecord **recs, size_t n,
                           uint32_t version)
{
    CkptMeta meta;
    memset(&meta, 0, sizeof meta);
    meta.model = mc;
    meta.optim.kind = OPT_ADAMW;
    Mpitrain__Manifest mf;
    Mpitrain__ModelConfigPB m;
    Mpitrain__OptimConfigPB o;
    Mpitrain__Layout ly;
    ckpt_meta_to_pb(&meta, &mf, &m, &o, &ly);
    mf.format_version = version;
    mf.n_tensors = n;
    mf.tensors = recs;
    Err e;
    cr_assert_eq(ckpt_write_manifest_pb(dir, &mf, &e), 0, "%s", e.msg);
}

static const ModelConfig TINY = {MODEL_GPT, 1, 2, 8, 4, 16, 0, 0};

Test(hostile, manifest_with_an_absurd_model_is_refused_before_allocating)
{
    const char *dir = test_tmpdir("absurd_model");
    ModelConfig huge = {MODEL_GPT, 1024, 64, 65536, 65536, 65536, 0, 0};
    write_manifest(dir, huge, NULL, 0, CKPT_FORMAT_VERSION);
    CkptMeta meta;
    Err e;
    cr_assert_eq(ckpt_load_meta(dir, &meta, &e), 0, "%s", e.msg);
    Model m;
    cr_assert_eq(model_init(&m, &meta.model, 1, 1, &e), -1);
    cr_assert(strstr(e.msg, "GB") && strstr(e.msg, "memory"), "%s", e.msg);
}

Test(hostile, record_claiming_a_terabyte_is_an_error)
{
    const char *dir = test_tmpdir("tb_record");
    Mpitrain__TensorRecord r;
    mpitrain__tensor_record__init(&r);
    int64_t shape[2] = {16, 8};
    r.name = "param/wte";
    r.n_shape = 2;
    r.shape = shape;
    r.dtype = "f32";
    r.file = "rank_00000.bin";
    r.elem_count = 1ull << 38; /* 1 TB of floats */
    r.nbytes = r.elem_count * 4;
    Mpitrain__TensorRecord *recs[1] = {&r};
    write_manifest(dir, TINY, recs, 1, CKPT_FORMAT_VERSION);
    Model m;
    Err e;
    cr_assert_eq(model_init(&m, &TINY, 1, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_load(dir, &m, NULL, &e), -1);
    cr_assert(strstr(e.msg, "param/wte") && strstr(e.msg, "outside"), "%s", e.msg);
    model_free(&m);
}

Test(hostile, wrong_format_version_is_named)
{
    const char *dir = test_tmpdir("bad_version");
    write_manifest(dir, TINY, NULL, 0, 99);
    CkptMeta meta;
    Err e;
    cr_assert_eq(ckpt_load_meta(dir, &meta, &e), -1);
    cr_assert(strstr(e.msg, "format_version 99"), "%s", e.msg);
}

Test(hostile, token_header_claiming_a_petabyte_is_truncated_not_mapped)
{
    const char *dir = test_tmpdir("pb_tokens");
    char path[4400];
    snprintf(path, sizeof path, "%s/t.tok", dir);
    uint16_t toks[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    Err e;
    cr_assert_eq(tokfile_write(path, toks, 6, 2, 256, &e), 0, "%s", e.msg);
    size_t len;
    unsigned char *b = test_read_file(path, &len);
    uint64_t huge = 1ull << 50;
    memcpy(b + 24, &huge, 8);
    uint32_t crc = crc32c(0, b, 40);
    memcpy(b + 40, &crc, 4);
    cr_assert_eq(test_write_file(path, b, len), 0);
    TokenFile f;
    cr_assert_eq(tokfile_open(&f, path, &e), -1);
    cr_assert(strstr(e.msg, "truncated") || strstr(e.msg, "overflow"), "%s", e.msg);
    free(b);
}

Test(hostile, journal_record_with_absurd_length_is_an_error)
{
    const char *dir = test_tmpdir("absurd_journal");
    char path[4400];
    snprintf(path, sizeof path, "%s/j.bin", dir);
    Journal j;
    Err e;
    JournalHeader h = {1, 1e-3f, 0.1f, 0, 1, 100};
    cr_assert_eq(journal_open_append(&j, path, &h, &e), 0, "%s", e.msg);
    journal_close(&j);
    FILE *f = fopen(path, "ab");
    uint32_t head[2] = {JREC_STEP, 0xFFFFFFF0u};
    fwrite(head, 4, 2, f);
    fclose(f);
    /* at the very end it is a torn tail: dropped, nothing allocated for it */
    cr_assert_eq(journal_open_read(&j, path, &e), 0);
    JournalRecord r;
    cr_assert_eq(journal_next(&j, &r, &e), 0, "%s", e.msg);
    cr_assert_eq(j.torn_bytes, 8);
    journal_close(&j);
    /* with an intact record after it, it is damage: an error */
    uint32_t roster[5] = {JREC_ROSTER, 12, 0, 1, 0};
    unsigned char rec[24];
    memcpy(rec, roster, 20);
    uint32_t crc = crc32c(0, rec, 20);
    memcpy(rec + 20, &crc, 4);
    f = fopen(path, "ab");
    fwrite(rec, 1, sizeof rec, f);
    fclose(f);
    cr_assert_eq(journal_open_read(&j, path, &e), 0);
    cr_assert_eq(journal_next(&j, &r, &e), -1);
    cr_assert(strstr(e.msg, "record 1") && strstr(e.msg, "absurd"), "%s", e.msg);
    journal_close(&j);
}
