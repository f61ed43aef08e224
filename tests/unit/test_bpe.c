/* The GPT-2 BPE tokenizer (worker/data/bpe.h) on tiny hand-written
 * vocabularies: the byte alphabet, merge order, tiktoken's merge rule, both
 * file pairs, and errors on broken files. (Parity with tiktoken on real
 * text: tests/cli/tokenizer_test.sh.) */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/unit/testutil.h"
#include "worker/data/bpe.h"

/* GPT-2's byte alphabet, written out independently of bpe_load.c: printable
 * Latin-1 bytes are themselves, the other 68 are U+0100.. in byte order. */
static unsigned alphabet_char(unsigned byte)
{
    unsigned k = 0;
    for (unsigned c = 0; c <= byte; c++) {
        int printable = (c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE;
        if (c == byte) return printable ? c : 256 + k;
        k += !printable;
    }
    return 0;
}

/* The JSON string body of one byte, as \uXXXX (any JSON reader must take it). */
static void put_byte(char **o, unsigned byte) { *o += sprintf(*o, "\\u%04x", alphabet_char(byte)); }

/* The merges-file form (raw UTF-8) of bytes s. */
static void put_merge_token(char **o, const char *s)
{
    for (; *s; s++) {
        unsigned cp = alphabet_char((unsigned char)*s);
        if (cp < 0x80) *(*o)++ = (char)cp;
        else {
            *(*o)++ = (char)(0xC0 | cp >> 6);
            *(*o)++ = (char)(0x80 | (cp & 0x3F));
        }
    }
}

/* A vocabulary of the 256 bytes (id = byte), the merged tokens, then
 * <|endoftext|>; merges "A B" in the order given. */
static const char *make_dir(const char *name, const char *const *merges, int n, int openai)
{
    const char *dir = test_tmpdir(name);
    cr_assert_not_null(dir);
    char *json = malloc(1 << 16), *mt = malloc(1 << 14), *o = json, *m = mt;
    o += sprintf(o, "{\n");
    for (unsigned b = 0; b < 256; b++) {
        o += sprintf(o, "\"");
        put_byte(&o, b);
        o += sprintf(o, "\": %u,\n", b);
    }
    m += sprintf(m, "#version: 0.2\n");
    for (int i = 0; i < n; i++) {
        char a[64], c[64], both[128];
        cr_assert_eq(sscanf(merges[i], "%63s %63s", a, c), 2);
        for (char *q = a; *q; q++) *q = *q == '_' ? ' ' : *q; /* '_' stands for a space */
        for (char *q = c; *q; q++) *q = *q == '_' ? ' ' : *q;
        snprintf(both, sizeof both, "%s%s", a, c);
        o += sprintf(o, "\"");
        for (const char *s = both; *s; s++) put_byte(&o, (unsigned char)*s);
        o += sprintf(o, "\": %d,\n", 256 + i);
        put_merge_token(&m, a);
        *m++ = ' ';
        put_merge_token(&m, c);
        *m++ = '\n';
    }
    o += sprintf(o, "\"<|endoftext|>\": %d}\n", 256 + n);
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, openai ? "encoder.json" : "vocab.json");
    cr_assert_eq(test_write_file(p, json, strlen(json)), 0);
    snprintf(p, sizeof p, "%s/%s", dir, openai ? "vocab.bpe" : "merges.txt");
    cr_assert_eq(test_write_file(p, mt, (size_t)(m - mt)), 0);
    free(json);
    free(mt);
    return dir;
}

static Bpe *load_ok(const char *dir)
{
    Err e = {{0}};
    Bpe *b = bpe_load(dir, &e);
    cr_assert_not_null(b, "bpe_load(%s): %s", dir, e.msg);
    return b;
}

/* The ids of text as a string "1 2 3". */
static const char *ids_of(const Bpe *b, const char *text, size_t n)
{
    static char out[4096];
    int *ids = NULL;
    size_t k = 0, cap = 0;
    Err e = {{0}};
    cr_assert_eq(bpe_encode(b, text, n, &ids, &k, &cap, &e), 0, "%s", e.msg);
    char *o = out;
    *o = 0;
    for (size_t i = 0; i < k; i++) o += sprintf(o, i ? " %d" : "%d", ids[i]);
    free(ids);
    return out;
}

static const char *MERGES[] = {"b c", "a b", "ab c", "l l", "h e", "he ll", "hell o", "_ _"};

Test(bpe, bytes_are_their_own_tokens_and_decode_back)
{
    Bpe *b = load_ok(make_dir("bpe_bytes", MERGES, 8, 0));
    cr_assert_eq(bpe_vocab_size(b), 256 + 8 + 1);
    cr_assert_eq(bpe_eot(b), 264);
    cr_assert_str_eq(ids_of(b, "z", 1), "122");
    cr_assert_str_eq(ids_of(b, "\n", 1), "10");
    /* each byte of an ill-formed sequence is a token of its own */
    cr_assert_str_eq(ids_of(b, "x\xff\xc3y\x80", 5), "120 255 195 121 128");
    for (int id = 0; id < 256; id++) {
        size_t len;
        const unsigned char *p = bpe_token_bytes(b, id, &len);
        cr_assert(p && len == 1 && p[0] == id, "token %d", id);
    }
    size_t len;
    cr_assert_null(bpe_token_bytes(b, 265, &len));
    cr_assert_null(bpe_token_bytes(b, -1, &len));
    const unsigned char *hello = bpe_token_bytes(b, 262, &len);
    cr_assert(len == 5 && !memcmp(hello, "hello", 5));
    bpe_free(b);
}

Test(bpe, merges_apply_in_rank_order)
{
    Bpe *b = load_ok(make_dir("bpe_order", MERGES, 8, 0));
    /* "b c" ranks before "a b": abd -> ab d, but abcd -> a bc -> abc d:
     * tiktoken merges any pair that makes a token ("a"+"bc" = "abc"), not
     * only the pair of its merges line ("ab c") */
    cr_assert_str_eq(ids_of(b, "abd", 3), "257 100");
    cr_assert_str_eq(ids_of(b, "abcd", 4), "258 100");
    /* a whole piece that is a token is that token */
    cr_assert_str_eq(ids_of(b, "hello", 5), "262");
    cr_assert_str_eq(ids_of(b, "hellox", 6), "262 120");
    bpe_free(b);
    static const char *swapped[] = {"a b", "b c"};
    b = load_ok(make_dir("bpe_order2", swapped, 2, 0));
    cr_assert_str_eq(ids_of(b, "abc", 3), "256 99");
    bpe_free(b);
}

/* n copies of unit, and of the ids "want" */
static void repeated(const Bpe *b, const char *unit, int n, const char *want)
{
    char text[4096], ids[4096] = "";
    size_t u = strlen(unit);
    for (int i = 0; i < n; i++) {
        memcpy(text + i * u, unit, u);
        strcat(ids, i ? " " : "");
        strcat(ids, want);
    }
    cr_assert_str_eq(ids_of(b, text, n * u), ids, "%d x '%s'", n, unit);
}

Test(bpe, long_pieces_merge_as_short_ones)
{
    Bpe *b = load_ok(make_dir("bpe_long", MERGES, 8, 0));
    /* up to 128 bytes a piece is merged by scanning, above by a heap */
    repeated(b, "abcd", 3, "258 100");
    repeated(b, "abcd", 200, "258 100");
    repeated(b, "hello", 2, "262");
    repeated(b, "hello", 150, "262");
    repeated(b, "abd", 300, "257 100");
    bpe_free(b);
}

Test(bpe, pieces_follow_gpt2s_pattern)
{
    Bpe *b = load_ok(make_dir("bpe_pattern", MERGES, 8, 0));
    /* "  " is a token, but a run of spaces leaves its last space to the word */
    cr_assert_str_eq(ids_of(b, "   x", 4), "263 32 120");
    /* <|endoftext|> in the text is text, never the end-of-text token */
    const char *eot = "<|endoftext|>";
    cr_assert(!strstr(ids_of(b, eot, strlen(eot)), "264"));
    cr_assert_str_eq(ids_of(b, "it's", 4), "105 116 39 115");
    bpe_free(b);
}

Test(bpe, openai_pair_and_hf_preferred)
{
    const char *dir = make_dir("bpe_openai", MERGES, 8, 1);
    cr_assert(bpe_present(dir));
    Bpe *b = load_ok(dir);
    cr_assert_str_eq(ids_of(b, "abcd", 4), "258 100");
    bpe_free(b);
    /* copy to a new dir: the same pair there */
    char dst[4200];
    snprintf(dst, sizeof dst, "%s/copy/tokenizer", dir);
    Err e = {{0}};
    cr_assert_eq(bpe_copy_files(dir, dst, &e), 0, "%s", e.msg);
    cr_assert(bpe_present(dst));
    b = load_ok(dst);
    cr_assert_str_eq(ids_of(b, "hello", 5), "262");
    bpe_free(b);
    cr_assert(!bpe_present("/nonexistent/tokenizer"));
}

/* bpe_load(dir) fails and the message holds each of the strings. */
static void load_fails(const char *dir, const char *want1, const char *want2)
{
    Err e = {{0}};
    Bpe *b = bpe_load(dir, &e);
    cr_assert_null(b, "bpe_load(%s) should fail", dir);
    cr_assert(strstr(e.msg, want1), "message '%s' lacks '%s'", e.msg, want1);
    if (want2) cr_assert(strstr(e.msg, want2), "message '%s' lacks '%s'", e.msg, want2);
}

static void write_in(const char *dir, const char *name, const char *text)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    cr_assert_eq(test_write_file(p, text, strlen(text)), 0);
}

Test(bpe, missing_files)
{
    load_fails("/nonexistent/tokenizer", "not found", NULL);
    const char *dir = test_tmpdir("bpe_empty");
    load_fails(dir, "no tokenizer files", "vocab.json");
    write_in(dir, "vocab.json", "{}");
    load_fails(dir, "merges.txt", "vocab.json");
}

/* A broken file of a tokenizer dir, and what the error must say. */
typedef struct {
    const char *file, *text, *want1, *want2;
} Broken;

static void each_fails(const char *dir, const Broken *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        write_in(dir, cases[i].file, cases[i].text);
        load_fails(dir, cases[i].want1, cases[i].want2);
    }
}

Test(bpe, corrupt_vocab_json)
{
    static const Broken cases[] = {
        {"vocab.json", "{\"a\": 0,\n \"b\": 1,\n \"c\"", "vocab.json:3", "truncated"},
        {"vocab.json", "{\"a\": 0,\n \"b\" 1}", "vocab.json:2", "expected ':'"},
        {"vocab.json", "{\"a\": 0, \"b\": 0}", "vocab.json", "id 0"},
        {"vocab.json", "{\"a\": 0, \"b\": 7}", "id 7", "dense"},
        /* a surrogate pair is one character (U+1F600), outside the alphabet */
        {"vocab.json", "{\"a\": 0,\n\"\\ud83d\\ude00\": 1}", "vocab.json:2", "U+1F600"},
        {"vocab.json", "{\"\\ud83d\": 0}", "vocab.json:1", "surrogate"},
        {"vocab.json", "{\"a\": 0, \"b\": 1}", "no token for byte", "vocab.json"},
        {"vocab.json", "", "vocab.json", "truncated"},
        {"vocab.json", "{\"a\": 0, \"a\": 1}", "vocab.json", "same bytes"},
    };
    each_fails(make_dir("bpe_corrupt", MERGES, 8, 0), cases, sizeof cases / sizeof *cases);
}

Test(bpe, merges_with_unknown_tokens)
{
    static const char *good[] = {"a b"};
    static const Broken cases[] = {
        {"merges.txt", "#version: 0.2\na b\nqq r\n", "merges.txt:3", "\"qq\" is not in"},
        {"merges.txt", "#version: 0.2\nb a\n", "merges.txt:2", "makes a token"},
        {"merges.txt", "#version: 0.2\na b c\n", "merges.txt:2", "two tokens"},
        {"merges.txt", "#version: 0.2\n", "merges.txt", "no merges"},
    };
    each_fails(make_dir("bpe_badmerge", good, 1, 0), cases, sizeof cases / sizeof *cases);
}

/* ---- copying: what a checkpoint or an export ships beside the model --------- */

static void copy_fails(const char *src, const char *dst, const char *want1, const char *want2)
{
    Err e = {{0}};
    cr_assert_eq(bpe_copy_files(src, dst, &e), -1, "copied %s to %s", src, dst);
    cr_assert(strstr(e.msg, want1), "message '%s' lacks '%s'", e.msg, want1);
    if (want2) cr_assert(strstr(e.msg, want2), "message '%s' lacks '%s'", e.msg, want2);
    cr_assert(access(dst, F_OK) != 0, "%s was created", dst);
}

Test(bpe, copy_follows_no_link_out_of_the_source)
{
    char src[4100], outside[4100], dst[4200], p[4300], q[4300];
    snprintf(outside, sizeof outside, "%s", make_dir("bpe_outside", MERGES, 8, 0));
    snprintf(src, sizeof src, "%s", make_dir("bpe_linked", MERGES, 8, 0));
    snprintf(dst, sizeof dst, "%s/out", src);
    /* a vocabulary that loads, but lives outside the source directory */
    snprintf(p, sizeof p, "%s/vocab.json", src);
    snprintf(q, sizeof q, "%s/vocab.json", outside);
    cr_assert_eq(unlink(p), 0);
    cr_assert_eq(symlink(q, p), 0);
    copy_fails(src, dst, "symbolic link", "vocab.json");
    /* a link within the directory is just another name of its file */
    snprintf(q, sizeof q, "%s/real_vocab.json", src);
    cr_assert_eq(unlink(p), 0);
    snprintf(p, sizeof p, "%s/vocab.json", outside);
    size_t len;
    void *text = test_read_file(p, &len);
    cr_assert_not_null(text);
    cr_assert_eq(test_write_file(q, text, len), 0);
    free(text);
    snprintf(p, sizeof p, "%s/vocab.json", src);
    cr_assert_eq(symlink("real_vocab.json", p), 0);
    Err e = {{0}};
    cr_assert_eq(bpe_copy_files(src, dst, &e), 0, "%s", e.msg);
    struct stat st;
    snprintf(p, sizeof p, "%s/vocab.json", dst);
    cr_assert(lstat(p, &st) == 0 && S_ISREG(st.st_mode), "the copy is not a plain file");
}

Test(bpe, copy_keeps_each_files_mode)
{
    const char *src = make_dir("bpe_modes", MERGES, 8, 0);
    char dst[4200], p[4300];
    snprintf(dst, sizeof dst, "%s/out", src);
    snprintf(p, sizeof p, "%s/vocab.json", src);
    cr_assert_eq(chmod(p, 0600), 0);
    snprintf(p, sizeof p, "%s/merges.txt", src);
    cr_assert_eq(chmod(p, 0640), 0);
    mode_t old = umask(022);
    Err e = {{0}};
    int rc = bpe_copy_files(src, dst, &e);
    umask(old);
    cr_assert_eq(rc, 0, "%s", e.msg);
    struct stat st;
    snprintf(p, sizeof p, "%s/vocab.json", dst);
    cr_assert(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600, "vocab.json is %o, not 600",
              st.st_mode & 0777);
    snprintf(p, sizeof p, "%s/merges.txt", dst);
    cr_assert(stat(p, &st) == 0 && (st.st_mode & 0777) == 0640, "merges.txt is %o, not 640",
              st.st_mode & 0777);
}

Test(bpe, copy_refuses_files_that_do_not_load)
{
    const char *src = make_dir("bpe_garbage", MERGES, 8, 0);
    char dst[4200];
    snprintf(dst, sizeof dst, "%s/out", src);
    write_in(src, "vocab.json", "-----BEGIN OPENSSH PRIVATE KEY-----\n");
    copy_fails(src, dst, "vocab.json", "not copying the tokenizer");
}

/* ---- tokenizer.json ----------------------------------------------------------
 * A SentencePiece-style vocabulary: <unk>, the 256 <0xXX> byte tokens, and a
 * few pieces; Metaspace splits and marks words, byte_fallback covers the
 * rest, merges come as pairs and as strings. */
static const char *make_hf_dir(const char *name, const char *extra_pre)
{
    const char *dir = test_tmpdir(name);
    char *json = malloc(1 << 16), *o = json, path[512];
    o += sprintf(o, "{\"version\": \"1.0\", \"truncation\": null, \"added_tokens\": [{\"id\": 0, "
                    "\"content\": \"<unk>\", \"special\": true, \"lstrip\": false, \"rstrip\": false, "
                    "\"single_word\": false, \"normalized\": false}, {\"id\": 262, \"content\": "
                    "\"<s>\", \"special\": true}], \"normalizer\": null, \"pre_tokenizer\": "
                    "{\"type\": \"Sequence\", \"pretokenizers\": [%s{\"type\": \"Metaspace\", "
                    "\"replacement\": \"\\u2581\", \"prepend_scheme\": \"always\", \"split\": true}]}, "
                    "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": "
                    "{\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], "
                    "\"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [262]}}}, \"decoder\": "
                    "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Metaspace\", \"replacement\": "
                    "\"\\u2581\", \"prepend_scheme\": \"always\"}, {\"type\": \"ByteFallback\"}, "
                    "{\"type\": \"Fuse\"}]}, \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", "
                    "\"byte_fallback\": true, \"fuse_unk\": true, \"vocab\": {\"<unk>\": 0",
                extra_pre);
    for (int b = 0; b < 256; b++) o += sprintf(o, ", \"<0x%02X>\": %d", b, b + 1);
    o += sprintf(o, ", \"\\u2581\": 257, \"h\": 258, \"i\": 259, \"\\u2581h\": 260, \"\\u2581hi\": 261}, "
                    "\"merges\": [[\"\\u2581\", \"h\"], \"\\u2581h i\"]}}");
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    cr_assert_eq(test_write_file(path, json, (size_t)(o - json)), 0);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    const char *cfg = "{\"bos_token\": \"<s>\", \"eos_token\": {\"content\": \"<unk>\"}}";
    cr_assert_eq(test_write_file(path, cfg, strlen(cfg)), 0);
    free(json);
    return dir;
}

Test(bpe, tokenizer_json_pieces_fallback_template_decode)
{
    char dir[512]; /* test_tmpdir's buffer is reused */
    snprintf(dir, sizeof dir, "%s", make_hf_dir("hf_small", ""));
    cr_assert(bpe_present(dir));
    Bpe *b = load_ok(dir);
    cr_assert(bpe_is_hf(b));
    cr_assert_eq(bpe_vocab_size(b), 263);
    cr_assert_eq(bpe_eot(b), 0, "eos_token from tokenizer_config.json");
    /* ▁hi ▁hi, then "\n" by its byte, "é" by its two bytes, <s> as the added token */
    cr_assert_str_eq(ids_of(b, "hi hi\n\xc3\xa9<s>", 11), "261 261 11 196 170 262");
    int *ids = NULL;
    size_t n = 0, cap = 0;
    Err e = {""};
    cr_assert_eq(bpe_encode_doc(b, "hi", 2, &ids, &n, &cap, &e), 0, "%s", e.msg);
    cr_assert_eq(n, 2);
    cr_assert_eq(ids[0], 262, "the template's <s> first");
    unsigned char *text;
    size_t len;
    int back[] = {261, 257, 260, 11, 196, 170, 0, 0};
    cr_assert_eq(bpe_decode(b, back, 8, &text, &len, &e), 0, "%s", e.msg);
    /* the first token loses its ▁, the byte tokens join into é */
    cr_assert_eq(len, 18);
    cr_assert_eq(memcmp(text, "hi  h\n\xc3\xa9<unk><unk>", 18), 0, "%.*s", (int)len, text);
    free(text);
    int lone[] = {196, 257, 261};
    cr_assert_eq(bpe_decode(b, lone, 3, &text, &len, &e), 0, "%s", e.msg);
    cr_assert_eq(len, 7);
    cr_assert_eq(memcmp(text, "\xef\xbf\xbd  hi", 7), 0, "a lone lead byte decodes to U+FFFD");
    free(text);
    free(ids);

    const char *dst = test_tmpdir("hf_small_copy");
    cr_assert_eq(bpe_copy_files(dir, dst, &e), 0, "%s", e.msg);
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dst);
    cr_assert_eq(access(path, F_OK), 0, "the config is copied too");
    bpe_free(load_ok(dst));
    const char *exp = test_tmpdir("hf_small_export");
    cr_assert_eq(bpe_export_hf(dir, exp, &e), 0, "%s", e.msg);
    snprintf(path, sizeof path, "%s/tokenizer.json", exp);
    cr_assert_eq(access(path, F_OK), 0, "export writes tokenizer.json");
    bpe_free(b);
}

Test(bpe, tokenizer_json_refusals_name_the_component)
{
    Err e = {""};
    Bpe *b = bpe_load(make_hf_dir("hf_punct", "{\"type\": \"Punctuation\", \"behavior\": \"Isolated\"}, "), &e);
    cr_assert_null(b);
    cr_assert(strstr(e.msg, "tokenizer.json: pre_tokenizer type Punctuation is not supported"), "%s", e.msg);
}
