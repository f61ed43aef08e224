#include "worker/data/data.h"
#include "base/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/crc32c.h"
#include "base/fileio.h"
#include "base/le.h"

static void encode_header(unsigned char h[TOKFILE_HEADER_BYTES], int token_bytes, int vocab,
                          uint64_t n_train, uint64_t n_val, int masked)
{
    memset(h, 0, TOKFILE_HEADER_BYTES);
    memcpy(h, TOKFILE_MAGIC, 8);
    /* version 1 where it suffices: such files stay readable by older builds */
    le_put32(h + 8, masked ? TOKFILE_VERSION_MASKED
                    : token_bytes == 4 ? TOKFILE_VERSION_WIDE : TOKFILE_VERSION);
    le_put32(h + 12, (uint32_t)token_bytes);
    le_put32(h + 16, (uint32_t)vocab);
    le_put32(h + 20, TOKFILE_HEADER_BYTES);
    le_put64(h + 24, n_train);
    le_put64(h + 32, n_val);
    le_put32(h + 40, crc32c(0, h, 40));
}

/* ---- opening ---- */

static int map_file(TokenFile *f, Err *e)
{
    uint64_t size;
    int fd = open_input(f->path, &size, e);
    if (fd < 0) return -1;
    if (size == 0) {
        close(fd);
        return err_set(e, "%s: empty file (0 bytes), not a token file", f->path);
    }
    void *m = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    int saved = errno;
    close(fd);
    if (m == MAP_FAILED)
        return err_set(e, "%s: mmap of %llu bytes failed: %s", f->path, (unsigned long long)size,
                       strerror(saved));
    f->map = m;
    f->map_len = (size_t)size;
    return 0;
}

/* File size must be exactly header + (n_train + n_val) * token_bytes (+ one
 * mask byte per token in version 3). */
static int check_size(const TokenFile *f, uint64_t header, int masked, Err *e)
{
    uint64_t n, bytes;
    if (__builtin_add_overflow(f->n_train, f->n_val, &n) ||
        __builtin_mul_overflow(n, (uint64_t)f->token_bytes + (masked != 0), &bytes) ||
        __builtin_add_overflow(bytes, header, &bytes))
        return err_set(e, "%s: header token counts n_train=%" PRIu64 " n_val=%" PRIu64 " overflow",
                       f->path, f->n_train, f->n_val);
    if (bytes != f->map_len)
        return err_set(e, "%s: %s: header says %" PRIu64 " tokens (%" PRIu64 " bytes) but file has %zu bytes",
                       f->path, bytes > f->map_len ? "truncated" : "trailing data", n, bytes,
                       f->map_len);
    return 0;
}

/* The largest vocabulary a token width holds: ids are int in memory, so 4
 * bytes hold up to 2^31-1 tokens. */
static uint32_t width_vocab(uint32_t tb) { return tb == 4 ? INT32_MAX : 1u << (8 * tb); }

static int native_fields(TokenFile *f, const unsigned char *m, uint32_t ver, Err *e)
{
    uint32_t tb = le_get32(m + 12), vocab = le_get32(m + 16), hb = le_get32(m + 20);
    if (hb != TOKFILE_HEADER_BYTES)
        return err_set(e, "%s: header_bytes is %u, expected %d", f->path, hb, TOKFILE_HEADER_BYTES);
    int wide = ver != TOKFILE_VERSION;
    if (tb != 1 && tb != 2 && !(tb == 4 && wide))
        return err_set(e, "%s: token_bytes is %u, must be 1 or 2%s", f->path, tb,
                       wide ? " or 4" : " (4 needs version 2)");
    if (vocab == 0 || vocab > width_vocab(tb))
        return err_set(e, "%s: vocab is %u, must be 1..%u for token_bytes %u", f->path, vocab,
                       width_vocab(tb), tb);
    f->format = TOKFMT_NATIVE;
    f->token_bytes = (int)tb;
    f->vocab = (int)vocab;
    f->n_train = le_get64(m + 24);
    f->n_val = le_get64(m + 32);
    return check_size(f, TOKFILE_HEADER_BYTES, ver == TOKFILE_VERSION_MASKED, e);
}

static int parse_native(TokenFile *f, Err *e)
{
    const unsigned char *m = f->map;
    if (f->map_len < TOKFILE_HEADER_BYTES)
        return err_set(e, "%s: truncated: file has %zu bytes, less than the %d-byte header",
                       f->path, f->map_len, TOKFILE_HEADER_BYTES);
    uint32_t ver = le_get32(m + 8);
    if (ver != TOKFILE_VERSION && ver != TOKFILE_VERSION_WIDE && ver != TOKFILE_VERSION_MASKED)
        return err_set(e, "%s: header version is %u, this build reads versions %d to %d", f->path,
                       ver, TOKFILE_VERSION, TOKFILE_VERSION_MASKED);
    uint32_t stored = le_get32(m + 40), want = crc32c(0, m, 40);
    if (stored != want)
        return err_set(e, "%s: header crc mismatch: stored 0x%08x, computed 0x%08x (corrupt header)",
                       f->path, stored, want);
    return native_fields(f, m, ver, e);
}

static int parse_llmc(TokenFile *f, Err *e)
{
    const unsigned char *m = f->map;
    if (f->map_len < LLMC_HEADER_BYTES)
        return err_set(e, "%s: truncated: llm.c header needs %d bytes but file has %zu bytes",
                       f->path, LLMC_HEADER_BYTES, f->map_len);
    int32_t ver = (int32_t)le_get32(m + 4), ntok = (int32_t)le_get32(m + 8);
    if (ver != LLMC_VERSION)
        return err_set(e, "%s: llm.c header version is %d, only version %d (uint16 tokens) is supported",
                       f->path, (int)ver, LLMC_VERSION);
    if (ntok < 0)
        return err_set(e, "%s: llm.c header token count is %d (negative)", f->path, (int)ntok);
    f->format = TOKFMT_LLMC;
    f->token_bytes = 2;
    f->vocab = LLMC_VOCAB;
    f->n_val = (uint64_t)ntok / 10;
    f->n_train = (uint64_t)ntok - f->n_val;
    return check_size(f, LLMC_HEADER_BYTES, 0, e);
}

/* nanoGPT's train.bin / val.bin: nothing but little-endian uint16 tokens. */
static int parse_nanogpt(TokenFile *f, Err *e)
{
    if (f->map_len % 2)
        return err_set(e, "%s: %zu bytes, an odd number: a nanoGPT file is uint16 tokens (2 bytes "
                          "each), so this one is truncated or is not one",
                       f->path, f->map_len);
    uint64_t n = f->map_len / 2;
    f->format = TOKFMT_NANOGPT;
    f->token_bytes = 2;
    f->vocab = 0;
    f->n_val = n / 10;
    f->n_train = n - f->n_val;
    return 0;
}

static int has_native_magic(const TokenFile *f)
{
    return f->map_len >= 8 && memcmp(f->map, TOKFILE_MAGIC, 8) == 0;
}

static int has_llmc_magic(const TokenFile *f)
{
    return f->map_len >= 4 && le_get32(f->map) == LLMC_MAGIC;
}

/* What the first bytes say the file is, for a message: "the file ...". */
static const char *looks_like(const TokenFile *f, char *buf, size_t n)
{
    if (has_native_magic(f)) return "is an MPTOKENS file (it starts with \"" TOKFILE_MAGIC "\")";
    if (has_llmc_magic(f)) return "is an llm.c file (it starts with the magic 20240520)";
    int at = snprintf(buf, n, "has no known header (first bytes");
    for (size_t i = 0; i < 8 && i < f->map_len && at > 0 && (size_t)at < n; i++)
        at += snprintf(buf + at, n - (size_t)at, " %02x", ((const unsigned char *)f->map)[i]);
    if (at > 0 && (size_t)at < n) snprintf(buf + at, n - (size_t)at, ")");
    return buf;
}

/* --data-format named one format and the file is another. */
static int wrong_format(const TokenFile *f, const char *asked, Err *e)
{
    char buf[64];
    int known = has_native_magic(f) || has_llmc_magic(f);
    return err_set(e, "%s: --data-format %s, but the file %s; %s", f->path, asked,
                   looks_like(f, buf, sizeof buf),
                   known ? "use --data-format auto"
                         : "a headerless nanoGPT file needs --data-format nanogpt");
}

static int parse_auto(TokenFile *f, Err *e)
{
    if (has_native_magic(f)) return parse_native(f, e);
    if (has_llmc_magic(f)) return parse_llmc(f, e);
    char buf[64];
    return err_set(e, "%s: bad magic: not a token file: the file %s, expected \"%s\" or llm.c magic %d "
                      "(a headerless nanoGPT .bin is read only with --data-format nanogpt)",
                   f->path, looks_like(f, buf, sizeof buf), TOKFILE_MAGIC, LLMC_MAGIC);
}

static int parse_as(TokenFile *f, DataFormat fmt, Err *e)
{
    int native = has_native_magic(f), llmc = has_llmc_magic(f);
    switch (fmt) {
    case DATA_AUTO: return parse_auto(f, e);
    case DATA_MPTOKENS: return native ? parse_native(f, e) : wrong_format(f, "mptokens", e);
    case DATA_LLMC: return llmc ? parse_llmc(f, e) : wrong_format(f, "llmc", e);
    case DATA_NANOGPT:
        /* a header read as tokens would train on garbage */
        return native || llmc ? wrong_format(f, "nanogpt", e) : parse_nanogpt(f, e);
    }
    return err_set(e, "%s: unknown data format %d", f->path, (int)fmt);
}

static size_t header_size(int format)
{
    return format == TOKFMT_NATIVE ? TOKFILE_HEADER_BYTES
           : format == TOKFMT_LLMC ? LLMC_HEADER_BYTES
                                   : 0;
}

/* The splits a file supplies. Native files carry theirs; llm.c and nanoGPT
 * files carry none, so alone they give mpitrain's (the last 10%), and
 * beside a separate val file all their tokens serve the one split. */
static void apply_use(TokenFile *f, TokUse use)
{
    uint64_t n = f->n_train + f->n_val;
    f->derived_split = f->format != TOKFMT_NATIVE && use == TOKUSE_BOTH;
    if (use == TOKUSE_VAL) {
        f->n_train = 0;
        f->n_val = n;
    } else if (use == TOKUSE_TRAIN && f->format != TOKFMT_NATIVE) {
        f->n_train = n;
        f->n_val = 0;
    }
}

/* ---- the tokens against the vocabulary ---- */

/* The largest of n tokens. Plain loops the compiler vectorizes: every open
 * reads the whole corpus once, so this runs at memory speed. */
static uint32_t max_u8(const unsigned char *p, uint64_t n)
{
    unsigned char m = 0;
    for (uint64_t i = 0; i < n; i++) m = p[i] > m ? p[i] : m;
    return m;
}

static uint32_t max_u16le(const unsigned char *p, uint64_t n)
{
    uint16_t m = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint16_t v = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
        m = v > m ? v : m;
    }
    return m;
}

static uint32_t max_u32le(const unsigned char *p, uint64_t n)
{
    uint32_t m = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t v = le_get32(p + 4 * i);
        m = v > m ? v : m;
    }
    return m;
}

static uint64_t tokfile_count(const TokenFile *f) { return f->n_train + f->n_val; }

static uint32_t max_token(const TokenFile *f)
{
    uint64_t n = tokfile_count(f);
    return f->token_bytes == 1 ? max_u8(f->tokens, n)
           : f->token_bytes == 2 ? max_u16le(f->tokens, n)
                                 : max_u32le(f->tokens, n);
}

int tokfile_check_vocab(const TokenFile *f, int vocab, const char *whose, Err *e)
{
    if (vocab < 1) return err_set(e, "%s: vocabulary %d must be at least 1", f->path, vocab);
    if (f->max_token < (uint32_t)vocab) return 0;
    /* only a bad file pays for finding the first bad token (there is one:
     * the maximum is) */
    uint64_t i = 0, n = tokfile_count(f);
    while (i < n && tokfile_get(f, i) < (uint32_t)vocab) i++;
    int val = i >= f->n_train;
    return err_set(e, "%s: %s token %" PRIu64 " (byte %" PRIu64 ") is %u, at or above the "
                      "vocabulary %d (%s); the file is corrupt or was made for another tokenizer",
                   f->path, val ? "val" : "train", val ? i - f->n_train : i,
                   (uint64_t)f->header_bytes + i * (uint64_t)f->token_bytes, tokfile_get(f, i),
                   vocab, whose);
}

/* A mask byte holds only the TOKMASK_* bits. */
static int check_mask(const TokenFile *f, Err *e)
{
    uint64_t n = tokfile_count(f), i = 0;
    unsigned bad = 0;
    for (uint64_t j = 0; j < n; j++) bad |= f->mask[j];
    if (!(bad & ~(TOKMASK_COUNTS | TOKMASK_START))) return 0;
    while ((f->mask[i] & ~(TOKMASK_COUNTS | TOKMASK_START)) == 0) i++;
    return err_set(e, "%s: mask byte of token %" PRIu64 " (byte %" PRIu64 ") is 0x%02x: only "
                      "bits 0 (counts) and 1 (starts an example) are defined; the file is corrupt",
                   f->path, i, (uint64_t)f->header_bytes + n * (uint64_t)f->token_bytes + i,
                   f->mask[i]);
}

/* The vocabulary the file itself declares, for the check at open. */
static const char *own_vocab_name(const TokenFile *f)
{
    return f->format == TOKFMT_LLMC ? "llm.c's GPT-2" : "header";
}

int tokfile_open_as(TokenFile *f, const char *path, DataFormat fmt, TokUse use, Err *e)
{
    memset(f, 0, sizeof *f);
    if (strlen(path) >= sizeof f->path) return err_set(e, "%s: path too long", path);
    snprintf(f->path, sizeof f->path, "%s", path);
    if (map_file(f, e)) return -1;
    if (parse_as(f, fmt, e)) {
        tokfile_close(f);
        return -1;
    }
    apply_use(f, use);
    f->header_bytes = header_size(f->format);
    f->tokens = (const unsigned char *)f->map + f->header_bytes;
    if (f->format == TOKFMT_NATIVE && le_get32((const unsigned char *)f->map + 8) == TOKFILE_VERSION_MASKED)
        f->mask = f->tokens + tokfile_count(f) * (uint64_t)f->token_bytes;
    f->max_token = max_token(f);
    if (f->mask && check_mask(f, e)) {
        tokfile_close(f);
        return -1;
    }
    if (f->vocab && tokfile_check_vocab(f, f->vocab, own_vocab_name(f), e)) {
        tokfile_close(f);
        return -1;
    }
    return 0;
}

int tokfile_open(TokenFile *f, const char *path, Err *e)
{
    return tokfile_open_as(f, path, DATA_AUTO, TOKUSE_BOTH, e);
}

void tokfile_close(TokenFile *f)
{
    if (f->map) munmap(f->map, f->map_len);
    memset(f, 0, sizeof *f);
}

/* ---- writing ---- */

/* Tokens of either width in memory (uint16_t t16, or uint32_t t32). */
typedef struct {
    const uint16_t *t16;
    const uint32_t *t32;
} Tokens;

static uint32_t token_at(Tokens t, uint64_t i) { return t.t16 ? t.t16[i] : t.t32[i]; }

static int write_tokens(AtomicFile *af, Tokens t, uint64_t n, int tb, Err *e)
{
    unsigned char buf[16384];
    size_t fill = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t v = token_at(t, i);
        if (tb == 4) le_put32(buf + fill, v);
        else if (tb == 2) le_put16(buf + fill, (uint16_t)v);
        else buf[fill] = (unsigned char)v;
        fill += (size_t)tb;
        if (fill + 4 > sizeof buf) {
            if (atomic_write(af, buf, fill, e)) return -1;
            fill = 0;
        }
    }
    return atomic_write(af, buf, fill, e);
}

static int write_file(const char *path, Tokens tokens, const uint8_t *mask, uint64_t n_train,
                      uint64_t n_val, int vocab, int max_vocab, Err *e)
{
    if (vocab < 1 || vocab > max_vocab)
        return err_set(e, "%s: vocab %d out of range 1..%d", path, vocab, max_vocab);
    uint64_t n;
    if (__builtin_add_overflow(n_train, n_val, &n))
        return err_set(e, "%s: n_train + n_val overflows", path);
    for (uint64_t i = 0; i < n; i++)
        if (token_at(tokens, i) >= (uint32_t)vocab)
            return err_set(e, "%s: token %" PRIu64 " is %u, not below vocab %d", path, i,
                           (unsigned)token_at(tokens, i), vocab);
    int tb = vocab <= 256 ? 1 : vocab <= 65536 ? 2 : 4;
    unsigned char h[TOKFILE_HEADER_BYTES];
    encode_header(h, tb, vocab, n_train, n_val, mask != NULL);
    AtomicFile af;
    if (atomic_open(&af, path, e) || atomic_write(&af, h, sizeof h, e)) return -1;
    if (write_tokens(&af, tokens, n, tb, e)) return -1;
    if (mask && atomic_write(&af, mask, (size_t)n, e)) return -1;
    return atomic_commit(&af, e);
}

int tokfile_write(const char *path, const uint16_t *tokens, uint64_t n_train, uint64_t n_val,
                  int vocab, Err *e)
{
    return write_file(path, (Tokens){tokens, NULL}, NULL, n_train, n_val, vocab, 65536, e);
}

int tokfile_write32(const char *path, const uint32_t *tokens, uint64_t n_train, uint64_t n_val,
                    int vocab, Err *e)
{
    return write_file(path, (Tokens){NULL, tokens}, NULL, n_train, n_val, vocab, INT32_MAX, e);
}

int tokfile_write_masked(const char *path, const uint32_t *tokens, const uint8_t *mask,
                         uint64_t n_train, uint64_t n_val, int vocab, Err *e)
{
    return write_file(path, (Tokens){NULL, tokens}, mask, n_train, n_val, vocab, INT32_MAX, e);
}

/* ---- loader ---- */

static const char *split_name(DataSplit s) { return s == SPLIT_TRAIN ? "train" : "val"; }

/* Where a split lives in the token stream. A split of mpitrain's (llm.c and
 * nanoGPT files): the val split is the last 10%, widened to T+1 tokens if
 * that leaves train T+1 tokens too. */
static void split_range(const TokenFile *f, DataSplit s, int T, uint64_t *start, uint64_t *len)
{
    uint64_t nv = f->n_val, n = f->n_train + f->n_val, need = (uint64_t)T + 1;
    if (f->derived_split && nv < need && n >= 2 * need) nv = need;
    *start = s == SPLIT_TRAIN ? 0 : n - nv;
    *len = s == SPLIT_TRAIN ? n - nv : nv;
}

static int loader_check(const TokenFile *f, DataSplit split, int T, int global_batch, int rank,
                        int ranks, Err *e)
{
    if (split != SPLIT_TRAIN && split != SPLIT_VAL)
        return err_set(e, "%s: unknown data split %d", f->path, (int)split);
    if (T < 1) return err_set(e, "%s: sequence length T=%d must be at least 1", f->path, T);
    if (global_batch < 1)
        return err_set(e, "%s: global batch %d must be at least 1", f->path, global_batch);
    if (ranks < 1 || rank < 0 || rank >= ranks)
        return err_set(e, "data-parallel rank %d out of range for %d ranks", rank, ranks);
    if (global_batch % ranks != 0)
        return err_set(e, "global batch %d is not divisible by %d data-parallel ranks",
                       global_batch, ranks);
    return 0;
}

int loader_init(Loader *l, const TokenFile *f, DataSplit split, int T, int global_batch,
                int rank, int ranks, Err *e)
{
    memset(l, 0, sizeof *l);
    if (loader_check(f, split, T, global_batch, rank, ranks, e)) return -1;
    uint64_t start, len;
    split_range(f, split, T, &start, &len);
    if (len < (uint64_t)T + 1)
        return err_set(e, "%s: %s split has %" PRIu64 " tokens, fewer than the %" PRIu64
                       " (T+1) needed for one sequence of length T=%d",
                       f->path, split_name(split), len, (uint64_t)T + 1, T);
    *l = (Loader){ .file = f, .split = split, .T = T, .global_batch = global_batch,
                   .rank = rank, .ranks = ranks, .local_batch = global_batch / ranks,
                   .split_start = start, .split_len = len, .n_windows = (len - 1) / (uint64_t)T };
    return 0;
}

void loader_shuffle(Loader *l, uint64_t seed)
{
    uint64_t key = mix64(seed ^ 0x53485546464C45ull); /* "SHUFFLE" */
    l->shuffle_key = key ? key : 1;
}

/* Where the i-th window from w0 starts in the file (mod n_windows; each
 * pass over the split in its own order when shuffled). */
static uint64_t window_base(const Loader *l, uint64_t w0, uint64_t i)
{
    const uint64_t n = l->n_windows;
    uint64_t w = (w0 % n + i) % n;
    if (l->shuffle_key) {
        /* the pass: w0's, and one more if i carried past the split's end */
        uint64_t pass = w0 / n + (w0 % n + i) / n;
        w = permute_index(w, n, mix64(l->shuffle_key + pass));
    }
    return l->split_start + w * (uint64_t)l->T;
}

void loader_windows(const Loader *l, uint64_t w0, int n, int *inputs, int *targets)
{
    const uint64_t T = (uint64_t)l->T;
    for (int i = 0; i < n; i++) {
        uint64_t base = window_base(l, w0, (uint64_t)i);
        int *in = inputs + (size_t)i * T, *tg = targets + (size_t)i * T;
        uint32_t cur = tokfile_get(l->file, base);
        for (uint64_t t = 0; t < T; t++) {
            uint32_t next = tokfile_get(l->file, base + t + 1);
            in[t] = (int)cur;
            tg[t] = (int)next;
            cur = next;
        }
        const uint8_t *mask = l->file->mask;
        if (mask)
            for (uint64_t t = 0; t < T; t++)
                if (!(mask[base + t + 1] & TOKMASK_COUNTS)) tg[t] = -1; /* TARGET_IGNORED */
    }
}

uint64_t loader_counted(const Loader *l, uint64_t w0, uint64_t n)
{
    const uint64_t T = (uint64_t)l->T;
    if (!l->file->mask) return n * T;
    uint64_t count = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t base = window_base(l, w0, i);
        for (uint64_t t = 1; t <= T; t++) count += l->file->mask[base + t] & TOKMASK_COUNTS;
    }
    return count;
}

void loader_positions(const Loader *l, uint64_t w0, int n, int *pos)
{
    const int T = l->T;
    const uint8_t *mask = l->file->mask;
    for (int i = 0; i < n; i++) {
        const uint8_t *m = mask ? mask + window_base(l, w0, (uint64_t)i) : NULL;
        int *p = pos + (size_t)i * T;
        p[0] = 0;
        for (int t = 1; t < T; t++) p[t] = m && (m[t] & TOKMASK_START) ? 0 : p[t - 1] + 1;
    }
}

/* Window index of sequence `first` of global batch k: k*global_batch +
 * first, kept below 2^64 as a multiple of n plus the place mod n, whose
 * pass counts on (a shuffled loader orders each pass its own way) until
 * 2^64 / n passes: no run reads that many. */
static uint64_t batch_window(const Loader *l, uint64_t k, uint64_t first)
{
    const uint64_t n = l->n_windows;
    unsigned __int128 g = (unsigned __int128)k * (uint64_t)l->global_batch + first;
    unsigned __int128 passes = (unsigned __int128)(UINT64_MAX / n);
    return (uint64_t)((g / n % passes) * n + g % n);
}

/* Window index of this rank's first sequence of global batch k. */
static uint64_t rank_window(const Loader *l, uint64_t k)
{
    return batch_window(l, k, (uint64_t)l->rank * (uint64_t)l->local_batch);
}

uint64_t loader_batch_counted(const Loader *l, uint64_t k, int whole)
{
    return whole ? loader_counted(l, batch_window(l, k, 0), l->global_batch)
                 : loader_counted(l, rank_window(l, k), l->local_batch);
}

void loader_batch(const Loader *l, uint64_t k, int *inputs, int *targets)
{
    loader_windows(l, rank_window(l, k), l->local_batch, inputs, targets);
}

void loader_batch_positions(const Loader *l, uint64_t k, int *pos)
{
    loader_positions(l, rank_window(l, k), l->local_batch, pos);
}

/* ---- prepare (byte-level) ---- */

void bytes_to_tokens(const char *text, size_t n, int *out)
{
    for (size_t i = 0; i < n; i++) out[i] = (unsigned char)text[i];
}

static int input_size(const char *path, uint64_t *size, Err *e)
{
    int fd = open_input(path, size, e);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

/* Append a whole input file; with vocab 256 and token_bytes 1 the token
 * section is exactly the bytes. On error the temporary is dropped. */
static int copy_input(AtomicFile *af, const char *path, uint64_t *count, Err *e)
{
    FILE *in = fopen_input(path, NULL, e);
    if (!in) {
        atomic_abort(af);
        return -1;
    }
    unsigned char buf[16384];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, in)) > 0) {
        if (atomic_write(af, buf, got, e)) {
            fclose(in);
            return -1;
        }
        *count += got;
    }
    int bad = ferror(in);
    fclose(in);
    if (bad) {
        atomic_abort(af);
        return err_set(e, "%s: read error", path);
    }
    return 0;
}

static int prepare_sizes(const char *const *paths, int n_paths, uint64_t *sizes, uint64_t *total,
                         Err *e)
{
    *total = 0;
    for (int i = 0; i < n_paths; i++) {
        if (input_size(paths[i], &sizes[i], e)) return -1;
        *total += sizes[i];
    }
    if (*total == 0)
        return err_set(e, "prepare: input is empty (%d file(s), first %s): nothing to tokenize",
                       n_paths, paths[0]);
    return 0;
}

/* The mask of --mark-documents after the tokens: every byte counted, each
 * file's first byte an example's start. */
static int write_document_mask(AtomicFile *af, const uint64_t *sizes, int n_paths, Err *e)
{
    unsigned char buf[16384];
    memset(buf, TOKMASK_COUNTS, sizeof buf);
    for (int i = 0; i < n_paths; i++)
        for (uint64_t done = 0; done < sizes[i];) {
            size_t k = sizes[i] - done < sizeof buf ? (size_t)(sizes[i] - done) : sizeof buf;
            buf[0] = (unsigned char)(TOKMASK_COUNTS | (done == 0 ? TOKMASK_START : 0));
            if (atomic_write(af, buf, k, e)) return -1;
            done += k;
        }
    return 0;
}

static int write_text_files(const char *const *paths, int n_paths, const char *out_path,
                            double val_fraction, int mark_docs, uint64_t *sizes, Err *e)
{
    uint64_t total, done = 0;
    if (prepare_sizes(paths, n_paths, sizes, &total, e)) return -1;
    uint64_t n_val = (uint64_t)((double)total * val_fraction + 0.5);
    if (n_val == 0 || n_val >= total)
        return err_set(e, "prepare: val fraction %g of %" PRIu64 " bytes leaves an empty %s split",
                       val_fraction, total, n_val == 0 ? "val" : "train");
    unsigned char h[TOKFILE_HEADER_BYTES];
    encode_header(h, 1, 256, total - n_val, n_val, mark_docs);
    AtomicFile af;
    if (atomic_open(&af, out_path, e) || atomic_write(&af, h, sizeof h, e)) return -1;
    for (int i = 0; i < n_paths; i++)
        if (copy_input(&af, paths[i], &done, e)) return -1;
    if (done != total) {
        atomic_abort(&af);
        return err_set(e, "%s: inputs changed size while preparing (%" PRIu64 " bytes, then %" PRIu64 ")",
                       out_path, total, done);
    }
    if (mark_docs && write_document_mask(&af, sizes, n_paths, e)) return -1;
    return atomic_commit(&af, e);
}

int prepare_text_files(const char *const *paths, int n_paths, const char *out_path,
                       double val_fraction, int mark_docs, Err *e)
{
    if (n_paths < 1) return err_set(e, "prepare: no input text files given");
    if (!(val_fraction > 0.0 && val_fraction < 1.0))
        return err_set(e, "prepare: val fraction %g must be strictly between 0 and 1", val_fraction);
    uint64_t *sizes = malloc((size_t)n_paths * sizeof *sizes);
    if (!sizes) return err_set(e, "prepare: out of memory for %d file sizes", n_paths);
    int rc = write_text_files(paths, n_paths, out_path, val_fraction, mark_docs, sizes, e);
    free(sizes);
    return rc;
}
