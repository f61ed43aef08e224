/* Fuzz target: the GPT-2 BPE tokenizer (worker/data/bpe.h).
 *
 * The first byte of an input picks what the rest is:
 *   0: a vocab.json, beside a small valid merges.txt;
 *   1: a merges.txt, beside a small valid vocab.json;
 *   2: text, encoded with the small valid tokenizer.
 * A tokenizer that loads must encode text (the input's rest for 2, a fixed
 * text with every byte value for 0 and 1) into ids below its vocabulary
 * whose bytes, joined, are the text again (ill-formed UTF-8 included).
 *
 * Seeds (MPITRAIN_FUZZ_GEN): the small tokenizer's two files and a text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/fuzz/fuzz_util.h"
#include "worker/data/bpe.h"

static char g_dir[FUZZ_PATH], g_vocab[FUZZ_PATH], g_merges[FUZZ_PATH];
static char *g_good_vocab, *g_good_merges;
static Bpe *g_good;
static unsigned char g_all_bytes[512];

static const char *const MERGES[] = {"h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or",
                                     "Ġwor l", "Ġworl d", "Ġ Ġ", "e Ġ", "ĠĠ ĠĠ"};
#define N_MERGES (sizeof MERGES / sizeof *MERGES)

/* GPT-2's byte alphabet: the code point that stands for byte b. */
static unsigned alphabet(unsigned b)
{
    int printable = (b > 32 && b < 127) || (b > 160 && b != 173);
    return printable ? b : 256 + (b <= 32 ? b : b <= 160 ? b - 94 : 67);
}

/* vocab.json: the 256 bytes (as \u escapes), the merged tokens (as written
 * in MERGES, joined), <|endoftext|>. */
static char *make_vocab(void)
{
    char *v = malloc(1 << 14), *o = v;
    if (!v) fuzz_die("out of memory");
    o += sprintf(o, "{");
    for (unsigned b = 0; b < 256; b++) o += sprintf(o, "\"\\u%04x\": %u, ", alphabet(b), b);
    for (size_t i = 0; i < N_MERGES; i++) {
        const char *sp = strchr(MERGES[i], ' ');
        o += sprintf(o, "\"%.*s%s\": %zu, ", (int)(sp - MERGES[i]), MERGES[i], sp + 1, 256 + i);
    }
    sprintf(o, "\"<|endoftext|>\": %zu}", 256 + N_MERGES);
    return v;
}

static char *make_merges(void)
{
    char *m = malloc(1 << 12), *o = m;
    if (!m) fuzz_die("out of memory");
    o += sprintf(o, "#version: 0.2\n");
    for (size_t i = 0; i < N_MERGES; i++) o += sprintf(o, "%s\n", MERGES[i]);
    return m;
}

static void write_pair(const void *vocab, size_t nv, const void *merges, size_t nm)
{
    fuzz_write_file(g_vocab, vocab, nv);
    fuzz_write_file(g_merges, merges, nm);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_keep_stderr();
    const char *w = fuzz_workdir("bpe");
    fuzz_join(g_dir, w, "tok");
    Err e = {{0}};
    if (mkdir_p(g_dir, &e)) fuzz_die("%s", e.msg);
    fuzz_join(g_vocab, g_dir, "vocab.json");
    fuzz_join(g_merges, g_dir, "merges.txt");
    g_good_vocab = make_vocab();
    g_good_merges = make_merges();
    write_pair(g_good_vocab, strlen(g_good_vocab), g_good_merges, strlen(g_good_merges));
    if (!(g_good = bpe_load(g_dir, &e))) fuzz_die("the small tokenizer does not load: %s", e.msg);
    for (int i = 0; i < 512; i++) g_all_bytes[i] = (unsigned char)(i < 256 ? i : "hello world  e "[i % 15]);
    size_t nv = strlen(g_good_vocab), nm = strlen(g_good_merges);
    char *seed = malloc(nv + nm + 1);
    if (!seed) fuzz_die("out of memory");
    seed[0] = 0;
    memcpy(seed + 1, g_good_vocab, nv);
    fuzz_seed("vocab.json", seed, nv + 1);
    seed[0] = 1;
    memcpy(seed + 1, g_good_merges, nm);
    fuzz_seed("merges.txt", seed, nm + 1);
    free(seed);
    static const char text[] = "\002hello world, it's   \xff\xc3 \xe6\x97\xa5\xe6\x9c\xac 123 <|endoftext|>";
    fuzz_seed("text", text, sizeof text - 1);
    return 0;
}

/* encode, check every id, decode: the text again. */
static void round_trip(const Bpe *b, const unsigned char *text, size_t n)
{
    int *ids = NULL;
    size_t k = 0, cap = 0;
    Err e = {{0}};
    if (bpe_encode(b, (const char *)text, n, &ids, &k, &cap, &e)) fuzz_fail("bpe_encode: %s", e.msg);
    if (k > n) fuzz_fail("bpe: %zu ids for %zu bytes", k, n);
    size_t at = 0;
    for (size_t i = 0; i < k; i++) {
        size_t len;
        const unsigned char *p = bpe_token_bytes(b, ids[i], &len);
        if (!p) fuzz_fail("bpe: id %d outside the vocabulary %d", ids[i], bpe_vocab_size(b));
        if (len > n - at || memcmp(p, text + at, len)) fuzz_fail("bpe: token %zu decodes wrongly", i);
        at += len;
    }
    if (at != n) fuzz_fail("bpe: ids decode to %zu bytes of %zu", at, n);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size) return 0;
    int mode = data[0] % 3;
    const uint8_t *rest = data + 1;
    size_t n = size - 1;
    if (mode == 2) {
        round_trip(g_good, rest, n);
        return 0;
    }
    if (mode == 0) write_pair(rest, n, g_good_merges, strlen(g_good_merges));
    else write_pair(g_good_vocab, strlen(g_good_vocab), rest, n);
    Err e = {{0}};
    Bpe *b = bpe_load(g_dir, &e);
    fuzz_verbose("bpe_load", b ? 0 : -1, &e);
    if (b) {
        round_trip(b, g_all_bytes, sizeof g_all_bytes);
        bpe_free(b);
    }
    return 0;
}
