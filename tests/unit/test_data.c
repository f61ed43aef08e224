#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/testutil.h"
#include "worker/data/data.h"

/* An independent CRC-32C so the test checks the documented format, not the
 * implementation against itself. */
static uint32_t ref_crc32c(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

static void le32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> 8 * i); }
static void le64(unsigned char *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> 8 * i); }

static char g_dir[4096];

static const char *tmp_path(const char *test, const char *file)
{
    static char p[2][4200];
    static int which;
    if (test) {
        const char *d = test_tmpdir(test);
        cr_assert_not_null(d);
        snprintf(g_dir, sizeof g_dir, "%s", d);
    }
    which ^= 1;
    snprintf(p[which], sizeof p[which], "%s/%s", g_dir, file);
    return p[which];
}

/* A native file built by hand: the header fields as given, `payload` bytes of
 * tokens (value = index & 0xff), and a correct crc unless bad_crc. */
static void write_raw_native(const char *path, uint32_t version, uint32_t tb, uint32_t vocab,
                             uint64_t n_train, uint64_t n_val, size_t payload, int bad_crc)
{
    size_t len = 64 + payload;
    unsigned char *buf = calloc(1, len);
    memcpy(buf, "MPTOKENS", 8);
    le32(buf + 8, version);
    le32(buf + 12, tb);
    le32(buf + 16, vocab);
    le32(buf + 20, 64);
    le64(buf + 24, n_train);
    le64(buf + 32, n_val);
    le32(buf + 40, ref_crc32c(buf, 40) ^ (bad_crc ? 1u : 0u));
    for (size_t i = 0; i < payload; i++) buf[64 + i] = (unsigned char)i;
    cr_assert_eq(test_write_file(path, buf, len), 0);
    free(buf);
}

/* n tokens, token i = i (fits when n <= vocab). */
static uint16_t *iota16(size_t n)
{
    uint16_t *t = malloc(n * sizeof *t + 1);
    for (size_t i = 0; i < n; i++) t[i] = (uint16_t)i;
    return t;
}

static void write_iota(const char *path, uint64_t n_train, uint64_t n_val, int vocab)
{
    uint16_t *t = iota16(n_train + n_val);
    Err e = { "" };
    cr_assert_eq(tokfile_write(path, t, n_train, n_val, vocab, &e), 0, "%s", e.msg);
    free(t);
}

static void expect_open_error(const char *path, const char *want1, const char *want2)
{
    TokenFile f;
    Err e = { "" };
    cr_assert_eq(tokfile_open(&f, path, &e), -1, "opened %s", path);
    cr_assert(strstr(e.msg, path), "message lacks path: %s", e.msg);
    cr_assert(strstr(e.msg, want1), "message lacks '%s': %s", want1, e.msg);
    if (want2) cr_assert(strstr(e.msg, want2), "message lacks '%s': %s", want2, e.msg);
    cr_assert_null(f.map);
    tokfile_close(&f); /* safe after a failed open */
}

Test(data, crc_reference)
{
    cr_assert_eq(ref_crc32c((const unsigned char *)"123456789", 9), 0xE3069283u);
}

Test(data, roundtrip_two_byte_tokens)
{
    const char *path = tmp_path("data_rt2", "tok.bin");
    const uint64_t ntr = 700, nva = 300;
    uint16_t *t = malloc((ntr + nva) * sizeof *t);
    for (uint64_t i = 0; i < ntr + nva; i++) t[i] = (uint16_t)((i * 7919u) % 50257u);
    Err e = { "" };
    cr_assert_eq(tokfile_write(path, t, ntr, nva, 50257, &e), 0, "%s", e.msg);

    size_t len;
    unsigned char *raw = test_read_file(path, &len);
    cr_assert_eq(len, 64 + 2 * (ntr + nva));
    cr_assert_eq(memcmp(raw, "MPTOKENS", 8), 0);
    uint32_t crc = (uint32_t)raw[40] | raw[41] << 8 | raw[42] << 16 | (uint32_t)raw[43] << 24;
    cr_assert_eq(crc, ref_crc32c(raw, 40));
    for (int i = 44; i < 64; i++) cr_assert_eq(raw[i], 0);
    free(raw);

    TokenFile f;
    cr_assert_eq(tokfile_open(&f, path, &e), 0, "%s", e.msg);
    cr_assert_eq(f.format, TOKFMT_NATIVE);
    cr_assert_eq(f.token_bytes, 2);
    cr_assert_eq(f.vocab, 50257);
    cr_assert_eq(f.n_train, ntr);
    cr_assert_eq(f.n_val, nva);
    cr_assert_str_eq(f.path, path);
    for (uint64_t i = 0; i < ntr + nva; i++) cr_assert_eq(tokfile_get(&f, i), t[i]);
    tokfile_close(&f);
    cr_assert_null(f.map);
    free(t);
}

/* Vocabularies above 65536 (Llama 3's 128256, Qwen's 151936): 4-byte
 * tokens in a version 2 file; smaller ones stay version 1. */
Test(data, roundtrip_four_byte_tokens)
{
    const char *path = tmp_path("data_rt4", "tok.bin");
    const uint64_t ntr = 90, nva = 10;
    const int vocab = 151936;
    uint32_t t[100];
    for (uint64_t i = 0; i < ntr + nva; i++) t[i] = (uint32_t)((i * 104729u) % (uint32_t)vocab);
    t[7] = (uint32_t)vocab - 1;
    Err e = { "" };
    cr_assert_eq(tokfile_write32(path, t, ntr, nva, vocab, &e), 0, "%s", e.msg);
    size_t len;
    unsigned char *raw = test_read_file(path, &len);
    cr_assert_eq(len, 64 + 4 * (ntr + nva));
    cr_assert_eq(raw[8], 2, "version 2");
    cr_assert_eq(raw[12], 4, "token_bytes 4");
    free(raw);
    TokenFile f;
    cr_assert_eq(tokfile_open(&f, path, &e), 0, "%s", e.msg);
    cr_assert_eq(f.token_bytes, 4);
    cr_assert_eq(f.vocab, vocab);
    for (uint64_t i = 0; i < ntr + nva; i++) cr_assert_eq(tokfile_get(&f, i), t[i]);
    cr_assert_eq(tokfile_check_vocab(&f, vocab - 1, "the model's --vocab", &e), -1);
    cr_assert(strstr(e.msg, "train token 7 (byte 92) is 151935"), "%s", e.msg);
    tokfile_close(&f);

    t[3] = (uint32_t)vocab;
    cr_assert_eq(tokfile_write32(path, t, ntr, nva, vocab, &e), -1, "a token above the vocabulary");
    for (int i = 0; i < 4; i++) t[i] = (uint32_t)(i * 99);
    cr_assert_eq(tokfile_write32(path, t, 4, 0, 300, &e), 0, "%s", e.msg);
    raw = test_read_file(path, &len);
    cr_assert_eq(raw[8], 1, "2-byte tokens stay version 1");
    free(raw);
}

/* token_bytes 4 in a version 1 header is refused; a corrupt token of a
 * 4-byte file is found at open. */
Test(data, four_byte_tokens_need_version_2)
{
    const char *path = tmp_path("data_v1w4", "tok.bin");
    write_raw_native(path, 1, 4, 100000, 1, 1, 8, 0);
    expect_open_error(path, "token_bytes is 4", "needs version 2");
    /* token 0 is bytes 00 01 02 03: 0x03020100 */
    write_raw_native(path, 2, 4, 100000, 1, 1, 8, 0);
    expect_open_error(path, "train token 0", "is 50462976, at or above the vocabulary 100000");
}

Test(data, roundtrip_one_byte_tokens)
{
    const char *path = tmp_path("data_rt1", "tok.bin");
    uint16_t t[100];
    for (int i = 0; i < 100; i++) t[i] = (uint16_t)(255 - i);
    Err e = { "" };
    cr_assert_eq(tokfile_write(path, t, 90, 10, 256, &e), 0, "%s", e.msg);
    TokenFile f;
    cr_assert_eq(tokfile_open(&f, path, &e), 0, "%s", e.msg);
    cr_assert_eq(f.token_bytes, 1);
    cr_assert_eq(f.map_len, 64 + 100);
    for (int i = 0; i < 100; i++) cr_assert_eq(tokfile_get(&f, (uint64_t)i), t[i]);
    tokfile_close(&f);
}

Test(data, write_rejects_token_out_of_vocab)
{
    const char *path = tmp_path("data_wv", "tok.bin");
    uint16_t t[4] = { 1, 2, 300, 3 };
    Err e = { "" };
    cr_assert_eq(tokfile_write(path, t, 4, 0, 256, &e), -1);
    cr_assert(strstr(e.msg, "300") && strstr(e.msg, path), "%s", e.msg);
    cr_assert_neq(access(path, F_OK), 0, "no file may be left behind");
    cr_assert_eq(tokfile_write(path, t, 4, 0, 0, &e), -1);
    cr_assert(strstr(e.msg, "vocab"), "%s", e.msg);
}

/* The global batch k as seen with `ranks` ranks, concatenated in rank order. */
static void gather_batch(const TokenFile *f, DataSplit s, int T, int B, int ranks, uint64_t k,
                         int *in, int *tg)
{
    for (int r = 0; r < ranks; r++) {
        Loader l;
        Err e = { "" };
        cr_assert_eq(loader_init(&l, f, s, T, B, r, ranks, &e), 0, "%s", e.msg);
        cr_assert_eq(l.local_batch, B / ranks);
        size_t off = (size_t)r * l.local_batch * T;
        loader_batch(&l, k, in + off, tg + off);
    }
}

Test(data, loader_union_over_ranks_equals_global_batch)
{
    const char *path = tmp_path("data_ld", "tok.bin");
    write_iota(path, 1000, 200, 65536);
    TokenFile f;
    Err e = { "" };
    cr_assert_eq(tokfile_open(&f, path, &e), 0, "%s", e.msg);
    enum { T = 8, B = 8 };
    int in1[B * T], tg1[B * T], in[B * T], tg[B * T];
    for (int s = 0; s < 2; s++)
        for (uint64_t k = 0; k < 40; k += 3) {
            gather_batch(&f, (DataSplit)s, T, B, 1, k, in1, tg1);
            for (int ranks = 2; ranks <= 4; ranks *= 2) {
                gather_batch(&f, (DataSplit)s, T, B, ranks, k, in, tg);
                cr_assert_arr_eq(in, in1, sizeof in, "split %d k %d ranks %d", s, (int)k, ranks);
                cr_assert_arr_eq(tg, tg1, sizeof tg);
            }
        }
    tokfile_close(&f);
}

Test(data, loader_windows_and_shifted_targets)
{
    const char *path = tmp_path("data_win", "tok.bin");
    write_iota(path, 1000, 200, 65536); /* token value = position */
    TokenFile f;
    Err e = { "" };
    cr_assert_eq(tokfile_open(&f, path, &e), 0, "%s", e.msg);
    enum { T = 16, B = 4 };
    int in[B * T], tg[B * T];
    for (int s = 0; s < 2; s++) {
        Loader l;
        cr_assert_eq(loader_init(&l, &f, (DataSplit)s, T, B, 0, 1, &e), 0, "%s", e.msg);
        uint64_t start = s ? 1000 : 0, len = s ? 200 : 1000;
        cr_assert_eq(l.split_start, start);
        cr_assert_eq(l.n_windows, (len - 1) / T);
        for (uint64_t k = 0; k < 30; k++) {
            loader_batch(&l, k, in, tg);
            for (int j = 0; j < B; j++) {
                uint64_t w = (k * B + (uint64_t)j) % l.n_windows;
                for (int t = 0; t < T; t++) {
                    cr_assert_eq(in[j * T + t], (int)(start + w * T + (uint64_t)t));
                    cr_assert_eq(tg[j * T + t], in[j * T + t] + 1);
                    if (t + 1 < T) cr_assert_eq(in[j * T + t + 1], tg[j * T + t]);
                }
            }
        }
    }
    tokfile_close(&f);
}

/* --shuffle: each pass over the split reads every window once, a pass in
 * an order of its own, one that crosses a batch boundary mid-batch
 * included (B does not divide n_windows); ranks read the single rank's
 * batch; the same seed, the same order; windows stay whole (targets the
 * inputs shifted). */
Test(data, shuffled_loader_reads_each_window_once_a_pass)
{
    const char *path = tmp_path("data_shuf", "tok.bin");
    write_iota(path, 8 * 37 + 1, 40, 65536); /* 37 windows of 8 */
    TokenFile f;
    Err e = { "" };
    cr_assert_eq(tokfile_open(&f, path, &e), 0, "%s", e.msg);
    enum { T = 8, B = 4, PASSES = 3, N = 37 };
    int order[PASSES * N + B], in[B * T], tg[B * T], in1[B * T], tg1[B * T];
    int n = 0;
    for (uint64_t k = 0; n < PASSES * N; k++) {
        Loader l;
        cr_assert_eq(loader_init(&l, &f, SPLIT_TRAIN, T, B, 0, 1, &e), 0, "%s", e.msg);
        loader_shuffle(&l, 5);
        loader_batch(&l, k, in1, tg1);
        for (int j = 0; j < B; j++, n++) {
            order[n] = in1[j * T] / T;
            cr_assert_eq(in1[j * T] % T, 0, "a whole window");
            for (int t = 0; t < T; t++) cr_assert_eq(tg1[j * T + t], in1[j * T + t] + 1);
        }
        for (int r = 0; r < 2; r++) { /* two ranks: halves of the same batch */
            Loader lr;
            cr_assert_eq(loader_init(&lr, &f, SPLIT_TRAIN, T, B, r, 2, &e), 0, "%s", e.msg);
            loader_shuffle(&lr, 5);
            loader_batch(&lr, k, in + r * (B / 2) * T, tg + r * (B / 2) * T);
        }
        cr_assert_arr_eq(in, in1, sizeof in, "batch %d: 2 ranks read the single rank's", (int)k);
    }
    for (int p = 0; p < PASSES; p++) {
        int seen[N] = {0}, in_order = 0;
        for (int i = 0; i < N; i++) {
            cr_assert(order[p * N + i] >= 0 && order[p * N + i] < N);
            cr_assert_eq(seen[order[p * N + i]]++, 0, "pass %d: window %d twice", p, order[p * N + i]);
            in_order += order[p * N + i] == i;
        }
        cr_expect(in_order < N / 4, "pass %d: %d of %d windows in file order", p, in_order, N);
    }
    cr_expect(memcmp(order, order + N, N * sizeof *order), "pass 2 repeats pass 1's order");
    Loader l, l2;
    cr_assert_eq(loader_init(&l, &f, SPLIT_TRAIN, T, B, 0, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(loader_init(&l2, &f, SPLIT_TRAIN, T, B, 0, 1, &e), 0, "%s", e.msg);
    loader_shuffle(&l, 5);
    loader_shuffle(&l2, 6);
    loader_batch(&l, 9, in, tg);
    loader_batch(&l2, 9, in1, tg1);
    cr_expect(memcmp(in, in1, sizeof in), "another seed, another order");
    tokfile_close(&f);
}

Test(data, loader_wraps_around)
{
    const char *path = tmp_path("data_wrap", "tok.bin");
    write_iota(path, 21, 9, 65536); /* train: 21 tokens, T=4 -> 5 windows */
    TokenFile f;
    Err e = { "" };
    cr_assert_eq(tokfile_open(&f, path, &e), 0, "%s", e.msg);
    Loader l;
    cr_assert_eq(loader_init(&l, &f, SPLIT_TRAIN, 4, 4, 1, 2, &e), 0, "%s", e.msg);
    cr_assert_eq(l.n_windows, 5);
    int in[2 * 4], tg[2 * 4];
    loader_batch(&l, 1, in, tg); /* global sequences 6,7 -> windows 1,2 */
    cr_assert_eq(in[0], 4);
    cr_assert_eq(in[4], 8);
    loader_batch(&l, 2, in, tg); /* global sequences 10,11 -> windows 0,1 */
    cr_assert_eq(in[0], 0);
    cr_assert_eq(in[4], 4);
    cr_assert_eq(tg[7], 8);
    /* the last window reaches the final train token, never into val */
    loader_batch(&l, 3, in, tg); /* 14,15 -> 4,0 */
    cr_assert_eq(in[0], 16);
    cr_assert_eq(tg[3], 20);
    tokfile_close(&f);
}

Test(data, error_missing_file)
{
    const char *path = tmp_path("data_miss", "nope.bin");
    expect_open_error(path, "cannot open", NULL);
}

Test(data, error_truncated_and_trailing)
{
    const char *path = tmp_path("data_trunc", "tok.bin");
    write_iota(path, 100, 20, 1000);
    size_t len;
    unsigned char *raw = test_read_file(path, &len);
    cr_assert_eq(len, 64 + 240);
    cr_assert_eq(test_write_file(path, raw, len - 3), 0);
    expect_open_error(path, "truncated: header says 120 tokens (304 bytes) but file has 301 bytes", NULL);
    cr_assert_eq(test_write_file(path, raw, 40), 0);
    expect_open_error(path, "truncated", "40 bytes");
    unsigned char *big = calloc(1, len + 5);
    memcpy(big, raw, len);
    cr_assert_eq(test_write_file(path, big, len + 5), 0);
    expect_open_error(path, "trailing data", "309 bytes");
    free(big);
    free(raw);
}

Test(data, error_wrong_magic)
{
    const char *path = tmp_path("data_magic", "foreign.txt");
    const char *text = "this is just some text, not a token file at all\n";
    cr_assert_eq(test_write_file(path, text, strlen(text)), 0);
    expect_open_error(path, "magic", NULL);
    cr_assert_eq(test_write_file(path, "", 0), 0);
    expect_open_error(path, "empty", NULL);
}

Test(data, error_wrong_version)
{
    const char *path = tmp_path("data_ver", "tok.bin");
    write_raw_native(path, 7, 1, 256, 10, 0, 10, 0);
    expect_open_error(path, "version", "7");
}

Test(data, error_token_bytes_3)
{
    const char *path = tmp_path("data_tb", "tok.bin");
    write_raw_native(path, 1, 3, 1000, 10, 0, 30, 0);
    expect_open_error(path, "token_bytes", "3");
}

Test(data, error_vocab_zero_and_too_big)
{
    const char *path = tmp_path("data_vocab", "tok.bin");
    write_raw_native(path, 1, 1, 0, 10, 0, 10, 0);
    expect_open_error(path, "vocab", "0");
    write_raw_native(path, 1, 1, 1000, 10, 0, 10, 0);
    expect_open_error(path, "vocab", "1000");
}

Test(data, error_bad_header_crc)
{
    const char *path = tmp_path("data_crc", "tok.bin");
    write_raw_native(path, 1, 1, 256, 10, 0, 10, 1);
    expect_open_error(path, "crc", NULL);
    write_raw_native(path, 1, 1, 256, 10, 0, 10, 0);
    TokenFile f;
    Err e = { "" };
    cr_assert_eq(tokfile_open(&f, path, &e), 0, "%s", e.msg);
    tokfile_close(&f);
}

Test(data, error_batch_not_divisible)
{
    const char *path = tmp_path("data_div", "tok.bin");
    write_iota(path, 100, 20, 1000);
    TokenFile f;
    Err e = { "" };
    cr_assert_eq(tokfile_open(&f, path, &e), 0, "%s", e.msg);
    Loader l;
    cr_assert_eq(loader_init(&l, &f, SPLIT_TRAIN, 4, 10, 0, 4, &e), -1);
    cr_assert(strstr(e.msg, "10") && strstr(e.msg, "4"), "%s", e.msg);
    cr_assert_eq(loader_init(&l, &f, SPLIT_TRAIN, 4, 8, 4, 4, &e), -1);
    cr_assert(strstr(e.msg, "rank"), "%s", e.msg);
    tokfile_close(&f);
}

Test(data, error_split_too_short)
{
    const char *path = tmp_path("data_short", "tok.bin");
    write_iota(path, 100, 3, 1000);
    TokenFile f;
    Err e = { "" };
    cr_assert_eq(tokfile_open(&f, path, &e), 0, "%s", e.msg);
    Loader l;
    cr_assert_eq(loader_init(&l, &f, SPLIT_VAL, 8, 2, 0, 1, &e), -1);
    cr_assert(strstr(e.msg, path) && strstr(e.msg, "val") && strstr(e.msg, "3 tokens") &&
              strstr(e.msg, "9"), "%s", e.msg);
    cr_assert_eq(loader_init(&l, &f, SPLIT_TRAIN, 100, 2, 0, 1, &e), -1);
    cr_assert(strstr(e.msg, "train") && strstr(e.msg, "100 tokens"), "%s", e.msg);
    cr_assert_eq(loader_init(&l, &f, SPLIT_TRAIN, 99, 2, 0, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(l.n_windows, 1);
    tokfile_close(&f);
}

static void write_llmc(const char *path, int32_t magic, int32_t version, int32_t ntok)
{
    size_t len = 1024 + 2 * (size_t)ntok;
    unsigned char *buf = calloc(1, len);
    le32(buf, (uint32_t)magic);
    le32(buf + 4, (uint32_t)version);
    le32(buf + 8, (uint32_t)ntok);
    for (int32_t i = 0; i < ntok; i++) {
        uint16_t v = (uint16_t)(i * 37 % 50257);
        buf[1024 + 2 * i] = (unsigned char)(v & 0xff);
        buf[1024 + 2 * i + 1] = (unsigned char)(v >> 8);
    }
    cr_assert_eq(test_write_file(path, buf, len), 0);
    free(buf);
}

Test(data, llmc_file_opens_and_splits_90_10)
{
    const char *path = tmp_path("data_llmc", "train.bin");
    write_llmc(path, 20240520, 1, 1000);
    TokenFile f;
    Err e = { "" };
    cr_assert_eq(tokfile_open(&f, path, &e), 0, "%s", e.msg);
    cr_assert_eq(f.format, TOKFMT_LLMC);
    cr_assert_eq(f.token_bytes, 2);
    cr_assert_eq(f.n_train, 900);
    cr_assert_eq(f.n_val, 100);
    for (int i = 0; i < 1000; i++) cr_assert_eq(tokfile_get(&f, (uint64_t)i), (uint32_t)(i * 37 % 50257));
    Loader l;
    cr_assert_eq(loader_init(&l, &f, SPLIT_VAL, 16, 2, 0, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(l.split_start, 900);
    cr_assert_eq(l.split_len, 100);
    tokfile_close(&f);
}

Test(data, llmc_val_widened_to_one_sequence)
{
    const char *path = tmp_path("data_llmc_w", "small.bin");
    write_llmc(path, 20240520, 1, 50); /* 10% = 5 tokens < T+1 = 9 */
    TokenFile f;
    Err e = { "" };
    cr_assert_eq(tokfile_open(&f, path, &e), 0, "%s", e.msg);
    Loader tr, va;
    cr_assert_eq(loader_init(&va, &f, SPLIT_VAL, 8, 1, 0, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(loader_init(&tr, &f, SPLIT_TRAIN, 8, 1, 0, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(va.split_len, 9);
    cr_assert_eq(va.split_start, 41);
    cr_assert_eq(tr.split_len, 41);
    tokfile_close(&f);
}

Test(data, llmc_errors)
{
    const char *path = tmp_path("data_llmc_e", "bad.bin");
    write_llmc(path, 20240520, 2, 10);
    expect_open_error(path, "version", "2");
    write_llmc(path, 20240520, 1, 10);
    size_t len;
    unsigned char *raw = test_read_file(path, &len);
    cr_assert_eq(test_write_file(path, raw, len - 2), 0);
    expect_open_error(path, "truncated", "10 tokens");
    cr_assert_eq(test_write_file(path, raw, 100), 0);
    expect_open_error(path, "truncated", "100 bytes");
    free(raw);
}

Test(data, prepare_two_text_files)
{
    const char *a = tmp_path("data_prep", "a.txt");
    char pa[4200], pb[4200], out[4200];
    snprintf(pa, sizeof pa, "%s", a);
    snprintf(pb, sizeof pb, "%s", tmp_path(NULL, "b.txt"));
    snprintf(out, sizeof out, "%s", tmp_path(NULL, "out.bin"));
    const char *ta = "hello \xff", *tb = "world!\n"; /* 7 + 7 bytes, one high byte */
    cr_assert_eq(test_write_file(pa, ta, 7), 0);
    cr_assert_eq(test_write_file(pb, tb, 7), 0);
    const char *paths[2] = { pa, pb };
    Err e = { "" };
    cr_assert_eq(prepare_text_files(paths, 2, out, 0.25, 0, &e), 0, "%s", e.msg); /* 3.5 -> 4 */
    TokenFile f;
    cr_assert_eq(tokfile_open(&f, out, &e), 0, "%s", e.msg);
    cr_assert_eq(f.vocab, 256);
    cr_assert_eq(f.token_bytes, 1);
    cr_assert_eq(f.n_train, 10);
    cr_assert_eq(f.n_val, 4);
    const char all[] = "hello \xffworld!\n";
    int want[14];
    bytes_to_tokens(all, 14, want);
    cr_assert_eq(want[6], 255);
    for (int i = 0; i < 14; i++) cr_assert_eq(tokfile_get(&f, (uint64_t)i), (uint32_t)want[i]);
    tokfile_close(&f);
}

Test(data, prepare_errors)
{
    const char *a = tmp_path("data_prep_e", "a.txt");
    char pa[4200], missing[4200], out[4200], empty[4200];
    snprintf(pa, sizeof pa, "%s", a);
    snprintf(missing, sizeof missing, "%s", tmp_path(NULL, "missing.txt"));
    snprintf(out, sizeof out, "%s", tmp_path(NULL, "out.bin"));
    snprintf(empty, sizeof empty, "%s", tmp_path(NULL, "empty.txt"));
    cr_assert_eq(test_write_file(pa, "abcdefghij", 10), 0);
    cr_assert_eq(test_write_file(empty, "", 0), 0);
    Err e = { "" };
    const char *p1[2] = { pa, missing };
    cr_assert_eq(prepare_text_files(p1, 2, out, 0.1, 0, &e), -1);
    cr_assert(strstr(e.msg, missing), "%s", e.msg);
    cr_assert_neq(access(out, F_OK), 0);
    const char *p2[1] = { empty };
    cr_assert_eq(prepare_text_files(p2, 1, out, 0.1, 0, &e), -1);
    cr_assert(strstr(e.msg, "empty"), "%s", e.msg);
    const char *p3[1] = { pa };
    cr_assert_eq(prepare_text_files(p3, 1, out, 0.0, 0, &e), -1);
    cr_assert(strstr(e.msg, "0"), "%s", e.msg);
    cr_assert_eq(prepare_text_files(p3, 1, out, 1.0, 0, &e), -1);
    cr_assert_neq(access(out, F_OK), 0);
    cr_assert_eq(prepare_text_files(p3, 1, out, 0.2, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(access(out, F_OK), 0);
}

/* ---- hostile tokens: every token is checked against the vocabulary ---- */

/* The open fails and the message names the file, the split, the token's
 * offset in it, its value and the vocabulary it broke. */
static void expect_token_error(const char *path, const char *where, const char *vocab)
{
    char want[256];
    snprintf(want, sizeof want, "%s, at or above the vocabulary %s", where, vocab);
    expect_open_error(path, want, "corrupt or was made for another tokenizer");
}

Test(data, one_byte_tokens_above_the_header_vocab_are_refused)
{
    const char *path = tmp_path("data_hv1", "corpus.tok");
    /* token i = i & 0xff under a header vocab of 100: token 100 is the first bad one */
    write_raw_native(path, 1, 1, 100, 150, 50, 200, 0);
    expect_token_error(path, "train token 100 (byte 164) is 100", "100 (header)");
    write_raw_native(path, 1, 1, 100, 90, 110, 200, 0);
    expect_token_error(path, "val token 10 (byte 164) is 100", "100 (header)");
    write_raw_native(path, 1, 1, 256, 150, 50, 200, 0);
    TokenFile f;
    Err e = { "" };
    cr_assert_eq(tokfile_open(&f, path, &e), 0, "every byte is below 256: %s", e.msg);
    tokfile_close(&f);
}

/* Overwrites token i of a file whose tokens start at byte `header`. */
static void poke16(const char *path, size_t header, uint64_t i, uint16_t v)
{
    size_t len;
    unsigned char *raw = test_read_file(path, &len);
    cr_assert_not_null(raw);
    cr_assert_lt(header + 2 * i + 1, len);
    raw[header + 2 * i] = (unsigned char)(v & 0xff);
    raw[header + 2 * i + 1] = (unsigned char)(v >> 8);
    cr_assert_eq(test_write_file(path, raw, len), 0);
    free(raw);
}

Test(data, two_byte_tokens_above_the_header_vocab_are_refused)
{
    const char *path = tmp_path("data_hv2", "wide.tok");
    write_iota(path, 100, 20, 1000);
    poke16(path, 64, 57, 4660);
    poke16(path, 64, 110, 1000);
    expect_token_error(path, "train token 57 (byte 178) is 4660", "1000 (header)");
    write_iota(path, 100, 20, 1000);
    poke16(path, 64, 119, 1000); /* the very last token, exactly the vocab */
    expect_token_error(path, "val token 19 (byte 302) is 1000", "1000 (header)");
}

Test(data, llmc_tokens_above_gpt2_vocab_are_refused)
{
    const char *path = tmp_path("data_hvl", "train.bin");
    write_llmc(path, 20240520, 1, 1000);
    poke16(path, 1024, 950, 65535); /* the val split is the last 100 tokens */
    expect_token_error(path, "val token 50 (byte 2924) is 65535", "50257");
    write_llmc(path, 20240520, 1, 1000);
    poke16(path, 1024, 3, 50257);
    expect_token_error(path, "train token 3 (byte 1030) is 50257", "50257");
}

/* ---- nanoGPT's raw uint16 files, --data-format and a separate val file ---- */

/* n raw little-endian uint16 tokens, token i = (i * 13) % mod. */
static void write_nanogpt(const char *path, size_t n, unsigned mod)
{
    unsigned char *buf = malloc(2 * n + 1);
    cr_assert_not_null(buf);
    for (size_t i = 0; i < n; i++) {
        uint16_t v = (uint16_t)(i * 13 % mod);
        buf[2 * i] = (unsigned char)(v & 0xff);
        buf[2 * i + 1] = (unsigned char)(v >> 8);
    }
    cr_assert_eq(test_write_file(path, buf, 2 * n), 0);
    free(buf);
}

static void expect_open_as_error(const char *path, DataFormat fmt, const char *want1,
                                 const char *want2)
{
    TokenFile f;
    Err e = { "" };
    cr_assert_eq(tokfile_open_as(&f, path, fmt, TOKUSE_BOTH, &e), -1, "opened %s", path);
    cr_assert(strstr(e.msg, path), "message lacks path: %s", e.msg);
    cr_assert(strstr(e.msg, want1), "message lacks '%s': %s", want1, e.msg);
    if (want2) cr_assert(strstr(e.msg, want2), "message lacks '%s': %s", want2, e.msg);
    cr_assert_null(f.map);
}

Test(data, nanogpt_file_opens_only_when_asked)
{
    const char *path = tmp_path("data_ngpt", "train.bin");
    write_nanogpt(path, 1000, 50257);
    expect_open_error(path, "bad magic", "--data-format nanogpt");
    TokenFile f;
    Err e = { "" };
    cr_assert_eq(tokfile_open_as(&f, path, DATA_NANOGPT, TOKUSE_BOTH, &e), 0, "%s", e.msg);
    cr_assert_eq(f.format, TOKFMT_NANOGPT);
    cr_assert_eq(f.token_bytes, 2);
    cr_assert_eq(f.vocab, 0, "a raw file declares no vocab");
    cr_assert_eq(f.header_bytes, 0);
    cr_assert_eq(f.n_train, 900);
    cr_assert_eq(f.n_val, 100);
    for (uint64_t i = 0; i < 1000; i++) cr_assert_eq(tokfile_get(&f, i), (uint32_t)(i * 13 % 50257));
    Loader l;
    cr_assert_eq(loader_init(&l, &f, SPLIT_VAL, 16, 2, 0, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(l.split_start, 900);
    tokfile_close(&f);
}

Test(data, nanogpt_tokens_are_checked_against_the_model_vocab)
{
    const char *path = tmp_path("data_ngpt_v", "train.bin");
    write_nanogpt(path, 500, 65536); /* token 20 = 260 is the first at or above 256 */
    TokenFile f;
    Err e = { "" };
    cr_assert_eq(tokfile_open_as(&f, path, DATA_NANOGPT, TOKUSE_BOTH, &e), 0, "%s", e.msg);
    cr_assert_eq(tokfile_check_vocab(&f, 65536, "the model's --vocab", &e), 0, "%s", e.msg);
    cr_assert_eq(tokfile_check_vocab(&f, 256, "the model's --vocab", &e), -1);
    cr_assert(strstr(e.msg, path) && strstr(e.msg, "train token 20 (byte 40) is 260, at or above "
                                                   "the vocabulary 256 (the model's --vocab)"),
              "%s", e.msg);
    tokfile_close(&f);
}

Test(data, odd_length_nanogpt_file_is_refused)
{
    const char *path = tmp_path("data_ngpt_odd", "val.bin");
    write_nanogpt(path, 100, 50257);
    size_t len;
    unsigned char *raw = test_read_file(path, &len);
    cr_assert_eq(test_write_file(path, raw, len - 1), 0);
    free(raw);
    expect_open_as_error(path, DATA_NANOGPT, "199 bytes, an odd number", "uint16");
}

Test(data, wrong_data_format_is_named)
{
    char tok[4200], bin[4200], raw[4200];
    snprintf(tok, sizeof tok, "%s", tmp_path("data_fmt", "corpus.tok"));
    snprintf(bin, sizeof bin, "%s", tmp_path(NULL, "gpt2.bin"));
    snprintf(raw, sizeof raw, "%s", tmp_path(NULL, "raw.bin"));
    write_iota(tok, 100, 20, 256);
    expect_open_as_error(tok, DATA_LLMC, "--data-format llmc, but the file is an MPTOKENS file", NULL);
    expect_open_as_error(tok, DATA_NANOGPT, "--data-format nanogpt, but the file is an MPTOKENS", NULL);
    write_llmc(bin, 20240520, 1, 100);
    expect_open_as_error(bin, DATA_MPTOKENS, "--data-format mptokens, but the file is an llm.c", NULL);
    expect_open_as_error(bin, DATA_NANOGPT, "--data-format nanogpt, but the file is an llm.c", NULL);
    write_nanogpt(raw, 100, 50257);
    expect_open_as_error(raw, DATA_MPTOKENS, "--data-format mptokens, but the file has no known header (first bytes 00 00 0d 00",
                         "needs --data-format nanogpt");
    TokenFile f;
    Err e = { "" };
    cr_assert_eq(tokfile_open_as(&f, tok, DATA_MPTOKENS, TOKUSE_BOTH, &e), 0, "%s", e.msg);
    tokfile_close(&f);
    cr_assert_eq(tokfile_open_as(&f, bin, DATA_LLMC, TOKUSE_BOTH, &e), 0, "%s", e.msg);
    tokfile_close(&f);
}

Test(data, a_separate_val_file_gives_each_file_one_split)
{
    const char *tr = tmp_path("data_use", "train.bin");
    char va[4200];
    snprintf(va, sizeof va, "%s", tmp_path(NULL, "val.bin"));
    write_nanogpt(tr, 50, 50257); /* alone, its last 10% would be val, widened to T+1 */
    write_nanogpt(va, 20, 50257);
    TokenFile t, v;
    Err e = { "" };
    cr_assert_eq(tokfile_open_as(&t, tr, DATA_NANOGPT, TOKUSE_TRAIN, &e), 0, "%s", e.msg);
    cr_assert_eq(tokfile_open_as(&v, va, DATA_NANOGPT, TOKUSE_VAL, &e), 0, "%s", e.msg);
    cr_assert_eq(t.n_train, 50);
    cr_assert_eq(t.n_val, 0);
    cr_assert_eq(v.n_train, 0);
    cr_assert_eq(v.n_val, 20);
    Loader lt, lv;
    cr_assert_eq(loader_init(&lt, &t, SPLIT_TRAIN, 8, 1, 0, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(loader_init(&lv, &v, SPLIT_VAL, 8, 1, 0, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(lt.split_len, 50, "no tokens of the train file are kept back for val");
    cr_assert_eq(lv.split_start, 0);
    cr_assert_eq(lv.split_len, 20);
    tokfile_close(&t);
    tokfile_close(&v);
    /* a native file keeps its header's train split beside a val file; a val file is all val */
    const char *nat = tmp_path(NULL, "corpus.tok");
    write_iota(nat, 100, 20, 256);
    cr_assert_eq(tokfile_open_as(&t, nat, DATA_AUTO, TOKUSE_TRAIN, &e), 0, "%s", e.msg);
    cr_assert_eq(t.n_train, 100);
    tokfile_close(&t);
    cr_assert_eq(tokfile_open_as(&v, nat, DATA_AUTO, TOKUSE_VAL, &e), 0, "%s", e.msg);
    cr_assert_eq(v.n_val, 120);
    tokfile_close(&v);
}

Test(data, val_file_tokens_are_named_as_val)
{
    const char *path = tmp_path("data_use_v", "val.bin");
    write_llmc(path, 20240520, 1, 100);
    poke16(path, 1024, 7, 50300);
    TokenFile f;
    Err e = { "" };
    cr_assert_eq(tokfile_open_as(&f, path, DATA_LLMC, TOKUSE_VAL, &e), -1);
    cr_assert(strstr(e.msg, "val token 7 (byte 1038) is 50300"), "%s", e.msg);
}

/* Version 3: a loss mask after the tokens. The loader gives -1 for a target
 * the mask does not count, and counts the rest; a mask byte with bits
 * beyond the two defined ones, and a file torn in its mask, are refused. */
Test(data, masked_file_roundtrip_and_loader_targets)
{
    const char *path = tmp_path("data_mask", "tok.bin");
    const uint64_t ntr = 40, nva = 10;
    uint32_t t[50];
    uint8_t m[50];
    for (uint64_t i = 0; i < ntr + nva; i++) {
        t[i] = (uint32_t)(i % 7);
        m[i] = (uint8_t)((i % 3 == 0 ? TOKMASK_COUNTS : 0) | (i % 10 == 0 ? TOKMASK_START : 0));
    }
    Err e = { "" };
    cr_assert_eq(tokfile_write_masked(path, t, m, ntr, nva, 7, &e), 0, "%s", e.msg);
    size_t len;
    unsigned char *raw = test_read_file(path, &len);
    cr_assert_eq(len, 64 + 2 * (ntr + nva), "one byte per token, then one mask byte each");
    cr_assert_eq(raw[8], 3, "version 3");
    cr_assert_eq(raw[64 + 50 + 9], m[9]);
    TokenFile f;
    cr_assert_eq(tokfile_open(&f, path, &e), 0, "%s", e.msg);
    cr_assert_not_null(f.mask);
    Loader l;
    const int T = 4;
    cr_assert_eq(loader_init(&l, &f, SPLIT_TRAIN, T, 2, 0, 1, &e), 0, "%s", e.msg);
    int in[8], tg[8];
    loader_batch(&l, 1, in, tg); /* windows 2 and 3: tokens 8..16 */
    uint64_t counted = 0;
    for (int i = 0; i < 8; i++) {
        uint64_t pos = 8 + (uint64_t)i + 1; /* the target's place in the file */
        int want = pos % 3 == 0 ? (int)(pos % 7) : -1;
        cr_expect_eq(tg[i], want, "target %d (token %llu): %d, expected %d", i,
                     (unsigned long long)pos, tg[i], want);
        cr_expect_eq(in[i], (int)((pos - 1) % 7));
        counted += want >= 0;
    }
    cr_expect_eq(loader_batch_counted(&l, 1, 1), counted);
    cr_expect_eq(loader_counted(&l, 2, 2), counted);
    /* doc positions: 0 at each window's start and at token 10 (a start),
     * then counting up: windows 2 and 3 hold tokens 8..11 and 12..15 */
    int pos[8], want_pos[8] = {0, 1, 0, 1, 0, 1, 2, 3};
    loader_batch_positions(&l, 1, pos);
    for (int i = 0; i < 8; i++)
        cr_expect_eq(pos[i], want_pos[i], "position %d: %d, expected %d", i, pos[i], want_pos[i]);
    /* rank 1 of 2 gets window 3 of batch 1 */
    Loader l1;
    cr_assert_eq(loader_init(&l1, &f, SPLIT_TRAIN, T, 2, 1, 2, &e), 0, "%s", e.msg);
    loader_batch_positions(&l1, 1, pos);
    cr_expect(!memcmp(pos, want_pos + 4, 4 * sizeof *pos), "rank 1's share");
    tokfile_close(&f);

    raw[64 + 50 + 4] = 0x80; /* an undefined bit */
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp);
    fwrite(raw, 1, len, fp);
    fclose(fp);
    expect_open_error(path, "mask byte of token 4", "0x80");
    fp = fopen(path, "wb"); /* torn: half the mask */
    fwrite(raw, 1, len - 25, fp);
    fclose(fp);
    expect_open_error(path, "truncated", "50 tokens");
    free(raw);
}
