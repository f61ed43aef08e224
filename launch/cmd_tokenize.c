/* `mpitrain tokenize`: text -> token ids (or, with --decode, ids -> the
 * bytes of the text) with the tokenizer of a directory (worker/data/bpe.h:
 * tokenizer.json, or GPT-2's file pairs). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "base/fileio.h"
#include "base/options.h"
#include "launch/commands.h"
#include "worker/data/bpe.h"

typedef struct {
    char tokenizer[PATH_LEN];
    int decode, bench, no_special;
} TokenizeArgs;

#define F(field) offsetof(TokenizeArgs, field)
static const OptSpec TOKENIZE_OPTS[] = {
    {"tokenizer", OT_STR, F(tokenizer), sizeof(((TokenizeArgs *)0)->tokenizer), "DIR",
     "directory with tokenizer.json (+ tokenizer_config.json), or vocab.json + merges.txt, or "
     "encoder.json + vocab.bpe (required)", NULL, 1, 0, NULL},
    {"no-special", OT_FLAG, F(no_special), 0, NULL,
     "leave out the special tokens a text gets (tokenizer.json's template, such as Llama's "
     "BOS; add_special_tokens=False)", NULL, 1, 0, NULL},
    {"decode", OT_FLAG, F(decode), 0, NULL,
     "read token ids (separated by blanks) and write the bytes they stand for", NULL, 1, 0, NULL},
    {"bench", OT_FLAG, F(bench), 0, NULL,
     "print the time and MB/s of the encoding alone (no file reading or printing) to stderr", NULL,
     1, 0, NULL},
    {0},
};
#undef F

/* The whole of an input (a file or stdin, which may be a pipe). */
static int read_all(const char *path, char **out, size_t *len, Err *e)
{
    FILE *f = path ? fopen(path, "rb") : stdin;
    const char *name = path ? path : "stdin";
    if (!f) return err_set(e, "%s: cannot open: %s", name, strerror(errno));
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        char *bigger = n == cap ? realloc(buf, cap *= 2) : buf;
        if (!bigger) free(buf);
        buf = bigger;
    }
    int bad = !buf || ferror(f);
    if (path) fclose(f);
    if (bad) {
        free(buf);
        return err_set(e, "%s: %s", name, buf ? "read error" : "out of memory");
    }
    *out = buf;
    *len = n;
    return 0;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Writes id in decimal at p; returns the digits written. (snprintf per id
 * was most of the time of tokenizing a big file.) */
static size_t put_id(char *p, unsigned id)
{
    char tmp[12];
    size_t n = 0;
    do tmp[n++] = (char)('0' + id % 10); while ((id /= 10) > 0);
    for (size_t i = 0; i < n; i++) p[i] = tmp[n - 1 - i];
    return n;
}

/* The ids on one line, space-separated. */
static int print_ids(const int *ids, size_t n)
{
    char buf[1 << 16];
    size_t fill = 0;
    for (size_t i = 0; i < n; i++) {
        if (fill > sizeof buf - 16) {
            if (fwrite(buf, 1, fill, stdout) != fill) return -1;
            fill = 0;
        }
        if (i) buf[fill++] = ' ';
        fill += put_id(buf + fill, (unsigned)ids[i]);
    }
    buf[fill++] = '\n';
    return fwrite(buf, 1, fill, stdout) == fill && fflush(stdout) == 0 ? 0 : -1;
}

static int encode(const Bpe *b, const TokenizeArgs *a, const char *text, size_t len, Err *e)
{
    int *ids = NULL;
    size_t n = 0, cap = 0;
    double t0 = now_s();
    int rc = a->no_special ? bpe_encode(b, text, len, &ids, &n, &cap, e)
                           : bpe_encode_doc(b, text, len, &ids, &n, &cap, e);
    double dt = now_s() - t0;
    if (!rc && a->bench)
        fprintf(stderr, "tokenize: %zu bytes -> %zu tokens in %.3f s: %.2f MB/s (PCRE2 %s)\n", len,
                n, dt, dt > 0 ? (double)len / dt / 1e6 : 0.0, bpe_uses_jit(b) ? "JIT" : "interpreter");
    if (!rc && print_ids(ids, n)) rc = err_set(e, "writing the ids to stdout failed");
    free(ids);
    return rc;
}

/* Blank-separated ids -> the text they stand for; nothing is written
 * unless every id is good. */
static int decode(const Bpe *b, const char *name, const char *text, Err *e)
{
    int *ids = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (const char *p = text; !rc;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long id = strtol(p, &end, 10);
        size_t at = n + 1;
        if (end == p || errno || !strchr(" \t\r\n", *end))
            rc = err_set(e, "%s: item %zu \"%.*s\" is not a token id", name, at,
                         (int)(strcspn(p, " \t\r\n") > 20 ? 20 : strcspn(p, " \t\r\n")), p);
        else if (!bpe_token_bytes(b, id < 0 || id > 1L << 30 ? -1 : (int)id, &(size_t){0}))
            rc = err_set(e, "%s: item %zu: token id %ld is outside the vocabulary (0..%d)", name, at,
                         id, bpe_vocab_size(b) - 1);
        else if (n == cap && !(ids = realloc(ids, (cap = cap ? 2 * cap : 4096) * sizeof *ids)))
            rc = err_set(e, "out of memory (%zu ids)", cap);
        else ids[n++] = (int)id;
        p = end;
    }
    unsigned char *out = NULL;
    size_t len = 0;
    if (!rc) rc = bpe_decode(b, ids, n, &out, &len, e);
    if (!rc && ((len && fwrite(out, 1, len, stdout) != len) || fflush(stdout)))
        rc = err_set(e, "writing to stdout failed");
    free(out);
    free(ids);
    return rc;
}

static int run(const TokenizeArgs *a, const char *path, Err *e)
{
    char *text = NULL;
    size_t len = 0;
    Bpe *b = bpe_load(a->tokenizer, e);
    if (!b) return -1;
    int rc = read_all(path, &text, &len, e);
    if (!rc) {
        if (a->decode) {
            text[len] = 0; /* read_all leaves room: len < its capacity */
            rc = decode(b, path ? path : "stdin", text, e);
        } else {
            rc = encode(b, a, text, len, e);
        }
        free(text);
    }
    bpe_free(b);
    return rc;
}

int cmd_tokenize(int argc, char **argv)
{
    TokenizeArgs a = {{0}, 0, 0, 0};
    const char *inputs[2];
    int n_in = 0, help = 0;
    int rc = opts_parse("tokenize", TOKENIZE_OPTS, &a, argc, argv, 1, inputs, 2, &n_in, &help);
    if (rc) return rc;
    if (help) {
        opts_print_help(stdout, "mpitrain tokenize --tokenizer DIR [--decode] [FILE]",
                        "Prints the token ids of FILE (or stdin) on one line, space-separated: "
                        "tokenizer.json's as Hugging Face tokenizers'\nencode (special tokens in the "
                        "text are matched; the template's, such as BOS, added unless --no-special); "
                        "GPT-2's\nfile pairs' as tiktoken's gpt2 encoding (<|endoftext|> in the text "
                        "is ordinary text). --decode turns ids back\ninto the text's bytes.",
                        TOKENIZE_OPTS);
        return 0;
    }
    if (!a.tokenizer[0]) {
        fprintf(stderr, "mpitrain tokenize: --tokenizer DIR is required\n");
        return EXIT_USAGE;
    }
    if (n_in > 1) {
        fprintf(stderr, "mpitrain tokenize: one input file at most (got '%s' and '%s')\n", inputs[0],
                inputs[1]);
        return EXIT_USAGE;
    }
    Err e = {{0}};
    if (run(&a, n_in ? inputs[0] : NULL, &e)) {
        fprintf(stderr, "mpitrain tokenize: %s\n", e.msg);
        return 1;
    }
    return 0;
}
