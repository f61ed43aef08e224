/* Hostile files: every reader checks sizes before it allocates, and says
 * what is wrong. A manifest claiming a terabyte tensor is an error, not an
 * allocation. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "models/model.h"
#include "tests/unit/testutil.h"
#include "worker/ckpt/ckpt.h"
#include "worker/ckpt/safetensors.h"
#include "base/fileio.h"
#include "base/crc32c.h"
#include "worker/data/data.h"
#include "worker/method/zo/journal.h"

/* Writes dir/manifest.pb for the given model config and records. */
static void write_manifest(const char *dir, ModelConfig mc, Mpitrain__TensorRecord **recs, size_t n,
                           uint32_t version)
{
    static CkptMeta meta;
    ckpt_meta_init(&meta);
    meta.cfg.model = mc;
    CkptManifestPB pb;
    Err e;
    cr_assert_eq(ckpt_meta_to_pb(&meta, &pb, &e), 0, "%s", e.msg);
    pb.mf.format_version = version;
    pb.mf.n_tensors = n;
    pb.mf.tensors = recs;
    cr_assert_eq(ckpt_write_manifest_pb(dir, &pb.mf, &e), 0, "%s", e.msg);
    ckpt_manifest_pb_free(&pb);
}

static const ModelConfig TINY = {.kind = MODEL_GPT, .n_layer = 1, .n_head = 2, .n_embd = 8,
                                 .seq_len = 4, .vocab = 16};

Test(hostile, manifest_with_an_absurd_model_is_refused_before_allocating)
{
    const char *dir = test_tmpdir("absurd_model");
    ModelConfig huge = {.kind = MODEL_GPT, .n_layer = 1024, .n_head = 64, .n_embd = 65536,
                        .seq_len = 65536, .vocab = 65536};
    write_manifest(dir, huge, NULL, 0, CKPT_FORMAT_VERSION);
    CkptMeta meta;
    Err e;
    cr_assert_eq(ckpt_load_meta(dir, &meta, &e), 0, "%s", e.msg);
    Model m;
    cr_assert_eq(model_init(&m, &meta.cfg.model, 1, 1, &e), -1);
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
    ZoIdentity h = {.seed = 1, .eps = 1e-3f, .scale = 0.1f, .weight_decay = 0,
                    .samples = 1, .global_params = 100};
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

/* ---- named pipes: refused at once, never waited on --------------------------
 * Each case has a timeout: were the check to regress, open() would wait for
 * a writer forever, and the case fails instead of hanging the suite. */

static const char *fifo_in(const char *dir, const char *name)
{
    static char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
    cr_assert_eq(mkfifo(path, 0600), 0, "mkfifo %s", path);
    return path;
}

static void names_the_pipe(const Err *e, const char *name)
{
    cr_assert(strstr(e->msg, name) && strstr(e->msg, "named pipe"), "%s", e->msg);
}

Test(hostile, a_fifo_is_no_input_file, .timeout = 60)
{
    const char *p = fifo_in(test_tmpdir("fifo_read"), "p");
    void *data;
    size_t len;
    Err e = {{0}};
    cr_assert_eq(read_file(p, 1 << 20, &data, &len, &e), -1);
    names_the_pipe(&e, p);
    cr_assert_eq(open_input(p, NULL, &e), -1);
    names_the_pipe(&e, p);
    TokenFile f;
    cr_assert_eq(tokfile_open(&f, p, &e), -1);
    names_the_pipe(&e, p);
    StIndex ix;
    cr_assert_eq(safetensors_read_index(p, &ix, &e), -1);
    names_the_pipe(&e, p);
}

Test(hostile, a_fifo_data_file_in_a_checkpoint_is_refused, .timeout = 60)
{
    const char *dir = test_tmpdir("fifo_ckpt");
    Model m;
    Err e = {{0}};
    cr_assert_eq(model_init(&m, &TINY, 1, 1, &e), 0, "%s", e.msg);
    CkptMeta meta;
    ckpt_meta_init(&meta);
    meta.cfg.model = TINY;
    char step[4400], root[4400];
    snprintf(root, sizeof root, "%s/ckpt", dir);
    cr_assert_eq(ckpt_save(root, &meta, &m, NULL, step, sizeof step, &e), 0, "%s", e.msg);
    fifo_in(step, "rank_00000.bin");
    cr_assert_eq(ckpt_load(step, &m, NULL, &e), -1);
    names_the_pipe(&e, "rank_00000.bin");
    /* and a `latest` pointer that is a pipe */
    fifo_in(root, "latest");
    char out[4400];
    cr_assert_eq(ckpt_resolve(root, out, sizeof out, &e), -1);
    names_the_pipe(&e, "latest");
    model_free(&m);
}

/* ---- non-finite weights -------------------------------------------------------- */

Test(hostile, a_checkpoint_with_a_nan_weight_does_not_load)
{
    const char *dir = test_tmpdir("nan_ckpt");
    Model m;
    Err e = {{0}};
    cr_assert_eq(model_init(&m, &TINY, 1, 1, &e), 0, "%s", e.msg);
    const ParamInfo *t = model_find_tensor(&m, "lnf.w");
    cr_assert_not_null(t);
    m.params[t->offset + 3] = NAN;
    CkptMeta meta;
    ckpt_meta_init(&meta);
    meta.cfg.model = TINY;
    char step[4400];
    char root[4400];
    snprintf(root, sizeof root, "%s/ckpt", dir);
    cr_assert_eq(ckpt_save(root, &meta, &m, NULL, step, sizeof step, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_load(step, &m, NULL, &e), -1, "a NaN weight loaded");
    cr_assert(strstr(e.msg, "param/lnf.w") && strstr(e.msg, "element 3") && strstr(e.msg, "nan"),
              "%s", e.msg);
    model_free(&m);
}

/* A safetensors file of the given header (padded) and data_len bytes of
 * data, each float set to fill. */
static const char *st_file(const char *name, const char *header, size_t data_len, float fill)
{
    static char path[4400];
    snprintf(path, sizeof path, "%s/m.safetensors", test_tmpdir(name));
    size_t hl = strlen(header), pad = (8 - hl % 8) % 8;
    size_t total = 8 + hl + pad + data_len;
    unsigned char *b = calloc(1, total);
    uint64_t n = hl + pad;
    memcpy(b, &n, 8);
    memcpy(b + 8, header, hl);
    memset(b + 8 + hl, ' ', pad);
    for (size_t i = 0; i + 4 <= data_len; i += 4) memcpy(b + 8 + n + i, &fill, 4);
    cr_assert_eq(test_write_file(path, b, total), 0);
    free(b);
    return path;
}

static void st_index_fails(const char *path, const char *want1, const char *want2)
{
    StIndex ix;
    Err e = {{0}};
    cr_assert_eq(safetensors_read_index(path, &ix, &e), -1, "%s was accepted", path);
    cr_assert(strstr(e.msg, want1), "message '%s' lacks '%s'", e.msg, want1);
    if (want2) cr_assert(strstr(e.msg, want2), "message '%s' lacks '%s'", e.msg, want2);
}

#define ST_T(n, b, e) "\"" n "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[" #b "," #e "]}"

Test(hostile, safetensors_ranges_must_tile_the_data)
{
    StIndex ix;
    Err e = {{0}};
    const char *ok = st_file("st_ok", "{" ST_T("b", 8, 16) "," ST_T("a", 0, 8) "}", 16, 1.0f);
    cr_assert_eq(safetensors_read_index(ok, &ix, &e), 0, "%s", e.msg);
    safetensors_index_free(&ix);
    st_index_fails(st_file("st_overlap", "{" ST_T("ln_1", 0, 8) "," ST_T("ln_2", 0, 8) "}", 8, 1.0f),
                   "overlap", "ln_2");
    st_index_fails(st_file("st_overlap2", "{" ST_T("a", 0, 8) "," ST_T("b", 4, 12) "}", 12, 1.0f),
                   "'a' and 'b' overlap", NULL);
    st_index_fails(st_file("st_hole0", "{" ST_T("a", 8, 16) "}", 16, 1.0f),
                   "data bytes 0..8, before the first tensor 'a'", NULL);
    st_index_fails(st_file("st_hole", "{" ST_T("a", 0, 8) "," ST_T("b", 12, 20) "}", 20, 1.0f),
                   "data bytes 8..12, between tensors 'a' and 'b'", NULL);
    st_index_fails(st_file("st_tail", "{" ST_T("a", 0, 8) "}", 12, 1.0f), "4 bytes after", NULL);
}

Test(hostile, safetensors_nan_or_inf_values_are_refused_by_name)
{
    StIndex ix;
    Err e = {{0}};
    float out[2];
    const char *p = st_file("st_nan", "{" ST_T("wte.weight", 0, 8) "}", 8, NAN);
    cr_assert_eq(safetensors_read_index(p, &ix, &e), 0, "%s", e.msg);
    cr_assert_eq(safetensors_read_f32(p, &ix.t[0], out, &e), -1);
    cr_assert(strstr(e.msg, "'wte.weight'") && strstr(e.msg, "element 0") && strstr(e.msg, "non-finite"),
              "%s", e.msg);
    safetensors_index_free(&ix);
    p = st_file("st_inf", "{" ST_T("wpe.weight", 0, 8) "}", 8, -INFINITY);
    cr_assert_eq(safetensors_read_index(p, &ix, &e), 0, "%s", e.msg);
    cr_assert_eq(safetensors_read_f32(p, &ix.t[0], out, &e), -1);
    cr_assert(strstr(e.msg, "'wpe.weight'") && strstr(e.msg, "-inf"), "%s", e.msg);
    safetensors_index_free(&ix);
}
