/* Fuzz target: the token file header and the batch loader (worker/data.c).
 *
 * Each input is written as a token file and opened with tokfile_open_as:
 *   1. as is, by magic (magic, version, CRC, sizes: MPTOKENS and llm.c);
 *   2. as is, as a headerless nanoGPT file (raw uint16 tokens), alone and
 *      as a train-only and a val-only file beside another;
 *   3. for native files, with the header CRC-32C (bytes 40..43) recomputed,
 *      so mutated token widths, vocab and split sizes get past the checksum.
 * A file that opens is checked against its own header (the mapping is
 * exactly header + (n_train + n_val) * token_bytes), and then for both splits,
 * several sequence lengths T and data-parallel ranks, loader_init and
 * loader_batch read batches at the first, a middle and the largest global
 * batch index; ASan checks every token read lies in the mapping, and every
 * token the loader returns must be below the file's vocab (checked at open;
 * a nanoGPT file declares none, so below 65536).
 *
 * Seeds (MPITRAIN_FUZZ_GEN): native files from tokfile_write (1- and 2-byte
 * tokens), a small llm.c file and a small nanoGPT file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/fuzz/fuzz_util.h"
#include "base/crc32c.h"
#include "worker/data/data.h"

static char g_path[FUZZ_PATH];
static unsigned char *g_buf;
static size_t g_cap;

#define MAX_T 64
#define MAX_B 4
static int g_in[MAX_B * MAX_T], g_tg[MAX_B * MAX_T];

static void seed_native(const char *name, int vocab, uint64_t n_train, uint64_t n_val)
{
    uint64_t n = n_train + n_val;
    uint16_t *t = malloc(n * sizeof *t);
    if (!t) fuzz_die("out of memory");
    for (uint64_t i = 0; i < n; i++) t[i] = (uint16_t)((i * 7 + 3) % (uint64_t)vocab);
    char path[FUZZ_PATH];
    fuzz_join(path, fuzz_workdir("tokfile"), name);
    Err e = {{0}};
    if (tokfile_write(path, t, n_train, n_val, vocab, &e)) fuzz_die("%s", e.msg);
    free(t);
    fuzz_seed_file(name, path);
}

static void seed_llmc(void)
{
    enum { N = 120 };
    unsigned char b[LLMC_HEADER_BYTES + 2 * N];
    memset(b, 0, sizeof b);
    int32_t head[3] = {LLMC_MAGIC, LLMC_VERSION, N};
    memcpy(b, head, sizeof head);
    for (int i = 0; i < N; i++) {
        uint16_t v = (uint16_t)(i * 401 % LLMC_VOCAB);
        memcpy(b + LLMC_HEADER_BYTES + 2 * i, &v, 2);
    }
    fuzz_seed("llmc.bin", b, sizeof b);
    /* the same tokens without the header: a nanoGPT file */
    fuzz_seed("nanogpt.bin", b + LLMC_HEADER_BYTES, sizeof b - LLMC_HEADER_BYTES);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_keep_stderr();
    fuzz_join(g_path, fuzz_workdir("tokfile"), "data.tok");
    if (fuzz_gen_dir()) {
        seed_native("bytes.tok", 256, 90, 20);
        seed_native("wide.tok", 1000, 40, 12);
        seed_native("tiny.tok", 2, 3, 2);
        seed_llmc();
    }
    return 0;
}

static size_t header_of(int format)
{
    return format == TOKFMT_NATIVE ? TOKFILE_HEADER_BYTES
           : format == TOKFMT_LLMC ? LLMC_HEADER_BYTES
                                   : 0;
}

static void exercise(DataFormat fmt, TokUse use)
{
    TokenFile f;
    Err e = {{0}};
    int rc = tokfile_open_as(&f, g_path, fmt, use, &e);
    fuzz_verbose("tokfile_open", rc, &e);
    if (rc) {
        tokfile_close(&f); /* documented safe after a failed open */
        return;
    }
    size_t header = header_of(f.format);
    if (f.header_bytes != header) fuzz_fail("tokfile: header_bytes %zu, expected %zu", f.header_bytes, header);
    unsigned __int128 need =
        ((unsigned __int128)f.n_train + f.n_val) * (unsigned)f.token_bytes + header;
    int raw = f.format == TOKFMT_NANOGPT;
    if ((f.token_bytes != 1 && f.token_bytes != 2) || (f.vocab < 1 && !raw) || need != f.map_len ||
        f.tokens != (const unsigned char *)f.map + header || (use == TOKUSE_VAL && f.n_train)) {
        fuzz_fail("tokfile: opened a file whose header disagrees with its size");
    }
    const int vocab = raw ? 65536 : f.vocab;
    static const int Ts[] = {1, 3, 16, MAX_T};
    for (int split = SPLIT_TRAIN; split <= SPLIT_VAL; split++)
        for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++)
            for (int ranks = 1; ranks <= 2; ranks++) {
                Loader l;
                int T = Ts[ti], B = MAX_B;
                if (loader_init(&l, &f, (DataSplit)split, T, B, ranks - 1, ranks, &e)) continue;
                if (l.local_batch * T > MAX_B * MAX_T) fuzz_die("batch buffers too small");
                const uint64_t ks[] = {0, 1, l.n_windows + 1, UINT64_MAX};
                for (size_t k = 0; k < sizeof ks / sizeof ks[0]; k++) {
                    loader_batch(&l, ks[k], g_in, g_tg);
                    for (int i = 0; i < l.local_batch * T; i++)
                        if (g_in[i] < 0 || g_tg[i] < 0 || g_in[i] >= vocab || g_tg[i] >= vocab) {
                            fuzz_fail("tokfile: loader returned token %d", g_in[i]);
                        }
                }
            }
    tokfile_close(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write_file(g_path, data, size);
    exercise(DATA_AUTO, TOKUSE_BOTH);
    for (int use = TOKUSE_BOTH; use <= TOKUSE_VAL; use++) exercise(DATA_NANOGPT, (TokUse)use);

    if (size < TOKFILE_HEADER_BYTES || memcmp(data, TOKFILE_MAGIC, 8)) return 0;
    if (size > g_cap) {
        g_cap = size;
        free(g_buf);
        if (!(g_buf = malloc(g_cap))) fuzz_die("out of memory");
    }
    memcpy(g_buf, data, size);
    uint32_t crc = crc32c(0, g_buf, 40);
    for (int i = 0; i < 4; i++) g_buf[40 + i] = (unsigned char)(crc >> (8 * i));
    fuzz_write_file(g_path, g_buf, size);
    exercise(DATA_AUTO, TOKUSE_BOTH);
    return 0;
}
