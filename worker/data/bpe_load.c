/* Loading GPT-2's tokenizer files: vocab.json / encoder.json (a JSON object
 * of token -> id) and merges.txt / vocab.bpe (one merge "A B" per line).
 * Tokens are written in GPT-2's "byte alphabet": each byte is one printable
 * character, so a token's key decodes to its raw bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/json.h"
#include "base/hash.h"
#include "worker/data/bpe.h"
#include "worker/data/bpe_impl.h"

#define VOCAB_MAX_BYTES (64u << 20)
#define MAX_TOKEN_BYTES 4096

typedef struct {
    const char *vocab, *merges;
} FilePair;

static const FilePair PAIRS[2] = {{"vocab.json", "merges.txt"}, {"encoder.json", "vocab.bpe"}};

/* ---- the byte alphabet ------------------------------------------------------ */

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
 * the other 68 for U+0100.. in byte order: 0x00-0x20 (33 of them), 0x7F-0xA0
 * (34), 0xAD (the soft hyphen). */
static int printable(unsigned byte)
{
    return (byte >= 0x21 && byte <= 0x7E) || (byte >= 0xA1 && byte <= 0xAC) || byte >= 0xAE;
}

unsigned bpe_byte_char(unsigned byte)
{
    if (printable(byte)) return byte;
    return 256 + (byte <= 0x20 ? byte : byte <= 0xA0 ? 33 + (byte - 0x7F) : 67);
}

/* The byte a character stands for, or -1 outside the alphabet. */
int bpe_char_byte(unsigned cp)
{
    if (cp < 256) return printable(cp) ? (int)cp : -1;
    unsigned k = cp - 256;
    return k < 33 ? (int)k : k < 67 ? (int)(0x7F + k - 33) : k == 67 ? 0xAD : -1;
}

/* ---- growing buffers -------------------------------------------------------- */

typedef struct {
    void *p;
    size_t len, cap; /* in elements */
} Vec;

static int vec_push(Vec *v, const void *item, size_t size, Err *e)
{
    if (v->len == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 1024;
        void *p = realloc(v->p, cap * size);
        if (!p) return err_set(e, "out of memory (%zu items)", cap);
        v->p = p;
        v->cap = cap;
    }
    memcpy((char *)v->p + v->len++ * size, item, size);
    return 0;
}

/* ---- text reading: UTF-8 and the alphabet ---------------------------------- */

/* One UTF-8 character at *p (before end) into *cp; -1 if ill-formed. */
static int utf8_next(const char **p, const char *end, unsigned *cp)
{
    const unsigned char *s = (const unsigned char *)*p;
    unsigned c = s[0];
    int n = c < 0x80 ? 0 : c >= 0xC2 && c < 0xE0 ? 1 : c >= 0xE0 && c < 0xF0 ? 2
          : c >= 0xF0 && c < 0xF5 ? 3 : -1;
    if (n < 0 || end - (const char *)s <= n) return -1; /* ill-formed, or cut short */
    unsigned v = n ? c & (0x3F >> n) : c;
    for (int k = 1; k <= n; k++) {
        if ((s[k] & 0xC0) != 0x80) return -1;
        v = v << 6 | (s[k] & 0x3F);
    }
    static const unsigned min[4] = {0, 0x80, 0x800, 0x10000};
    if (v < min[n] || v > 0x10FFFF || (v >= 0xD800 && v < 0xE000)) return -1;
    *p += n + 1;
    *cp = v;
    return 0;
}

/* ---- vocab.json ------------------------------------------------------------- */

typedef struct {
    const char *path, *text, *p, *end;
    Err *e;
    Vec bytes, off, ids; /* unsigned char, size_t (start of each token), int */
} VocabIn;

static int line_at(const char *text, const char *p)
{
    int line = 1;
    for (const char *q = text; q < p; q++) line += *q == '\n';
    return line;
}

static int vin_fail(VocabIn *v, const char *what, const char *key)
{
    if (v->p >= v->end)
        return err_set(v->e, "%s:%d: truncated: the file ends early (%s%s%s)", v->path,
                       line_at(v->text, v->p), what, key ? ", token " : "", key ? key : "");
    return err_set(v->e, "%s:%d: %s%s%s%s", v->path, line_at(v->text, v->p), what,
                   key ? " (token " : "", key ? key : "", key ? ")" : "");
}

static void vin_ws(VocabIn *v)
{
    while (v->p < v->end && strchr(" \t\r\n", *v->p) && *v->p) v->p++;
}

/* \uXXXX, with a surrogate pair joined into one character. */
static int unicode_escape(VocabIn *v, unsigned *cp)
{
    const char *why = json_unicode_escape(&v->p, v->end, cp);
    return why ? vin_fail(v, why, NULL) : 0;
}

/* One character of a JSON string (after the opening quote). */
static int string_char(VocabIn *v, unsigned *cp)
{
    if ((unsigned char)*v->p < 0x20) return vin_fail(v, "control character inside a string", NULL);
    if (*v->p != '\\') {
        if (utf8_next(&v->p, v->end, cp)) return vin_fail(v, "invalid UTF-8 in a string", NULL);
        return 0;
    }
    if (++v->p >= v->end) return vin_fail(v, "inside a string escape", NULL);
    const char *plain = *v->p ? strchr("\"\\/bfnrt", *v->p) : NULL;
    if (plain) {
        *cp = (unsigned char)"\"\\/\b\f\n\r\t"[plain - "\"\\/bfnrt"];
        v->p++;
        return 0;
    }
    if (*v->p++ != 'u') return vin_fail(v, "unknown string escape", NULL);
    return unicode_escape(v, cp);
}

/* A quoted token at v->p: its bytes appended to v->bytes; *shown gets the
 * token as written (for messages). */
static int token_in(VocabIn *v, char *shown, size_t shown_n)
{
    const char *start = v->p;
    if (v->p >= v->end || *v->p != '"') return vin_fail(v, "expected a \"token\" string", NULL);
    v->p++;
    while (v->p < v->end && *v->p != '"') {
        unsigned cp;
        if (string_char(v, &cp)) return -1;
        int byte = bpe_char_byte(cp);
        if (byte < 0) {
            snprintf(shown, shown_n, "%.*s", (int)(v->p - start < 60 ? v->p - start : 60), start);
            return err_set(v->e, "%s:%d: token %s\": character U+%04X is not in GPT-2's byte "
                                 "alphabet (not a byte-level BPE vocabulary?)",
                           v->path, line_at(v->text, v->p), shown, cp);
        }
        unsigned char c = (unsigned char)byte;
        if (vec_push(&v->bytes, &c, 1, v->e)) return -1;
    }
    if (v->p >= v->end) return vin_fail(v, "inside a token string", NULL);
    v->p++;
    snprintf(shown, shown_n, "%.*s", (int)(v->p - start < 62 ? v->p - start : 62), start);
    return 0;
}

static int id_in(VocabIn *v, const char *shown)
{
    long long id = 0;
    const char *start = v->p;
    while (v->p < v->end && *v->p >= '0' && *v->p <= '9' && id <= 0x7FFFFFFF)
        id = id * 10 + (*v->p++ - '0');
    if (v->p == start) return vin_fail(v, "expected a token id (a non-negative integer)", shown);
    if (id > 0x7FFFFFFF) return vin_fail(v, "token id too large", shown);
    int i = (int)id;
    return vec_push(&v->ids, &i, sizeof i, v->e);
}

/* "token": id */
static int entry_in(VocabIn *v)
{
    char shown[80] = "";
    size_t start = v->bytes.len;
    if (vec_push(&v->off, &start, sizeof start, v->e) || token_in(v, shown, sizeof shown))
        return -1;
    if (v->bytes.len == start) return vin_fail(v, "empty token", shown);
    if (v->bytes.len - start > MAX_TOKEN_BYTES) return vin_fail(v, "token too long", shown);
    vin_ws(v);
    if (v->p >= v->end || *v->p != ':') return vin_fail(v, "expected ':' after", shown);
    v->p++;
    vin_ws(v);
    return id_in(v, shown);
}

static int object_in(VocabIn *v)
{
    vin_ws(v);
    if (v->p >= v->end || *v->p != '{') return vin_fail(v, "expected '{' (a JSON object)", NULL);
    v->p++;
    for (int first = 1;; first = 0) {
        vin_ws(v);
        if (v->p < v->end && *v->p == '}') break;
        if (!first) {
            if (v->p >= v->end || *v->p != ',')
                return vin_fail(v, "expected ',' or '}' after an entry", NULL);
            v->p++;
        }
        vin_ws(v);
        if (entry_in(v)) return -1;
    }
    v->p++;
    vin_ws(v);
    if (v->p < v->end) return vin_fail(v, "text after the closing '}'", NULL);
    if (!v->ids.len) return err_set(v->e, "%s: the vocabulary is empty", v->path);
    return 0;
}

/* Places the parsed tokens by id; ids must be 0..n-1, each once. */
static int vocab_place(Bpe *b, VocabIn *v)
{
    int n = (int)v->ids.len;
    const int *ids = v->ids.p;
    const size_t *at = v->off.p;
    b->n = n;
    b->off = calloc((size_t)n + 1, sizeof *b->off);
    b->bytes = malloc(v->bytes.len ? v->bytes.len : 1);
    size_t *len = calloc((size_t)n, sizeof *len);
    int rc = !b->off || !b->bytes || !len ? err_set(v->e, "%s: out of memory", v->path) : 0;
    for (int i = 0; !rc && i < n; i++) {
        size_t l = (i + 1 < n ? at[i + 1] : v->bytes.len) - at[i];
        if (ids[i] >= n || len[ids[i]])
            rc = err_set(v->e, "%s: token %d of %d has id %d, %s", v->path, i + 1, n, ids[i],
                         ids[i] >= n ? "outside 0..n-1 (ids must be dense)" : "which an earlier token has");
        else len[ids[i]] = l;
    }
    for (int i = 0; !rc && i < n; i++) b->off[i + 1] = b->off[i] + len[i];
    for (int i = 0; !rc && i < n; i++)
        memcpy(b->bytes + b->off[ids[i]], (const unsigned char *)v->bytes.p + at[i], len[ids[i]]);
    free(len);
    return rc;
}

static int load_vocab(Bpe *b, const char *path, Err *e)
{
    void *text;
    size_t len;
    if (read_file(path, VOCAB_MAX_BYTES, &text, &len, e)) return -1;
    VocabIn v = {.path = path, .text = text, .p = text, .end = (const char *)text + len, .e = e};
    int rc = object_in(&v);
    if (!rc) rc = vocab_place(b, &v);
    free(v.bytes.p);
    free(v.off.p);
    free(v.ids.p);
    free(text);
    return rc;
}

/* ---- merges.txt ------------------------------------------------------------- */

/* A token of a merges line (UTF-8 in the byte alphabet) as raw bytes. */
static int merge_token(const char *s, const char *end, unsigned char *out, size_t *n)
{
    *n = 0;
    while (s < end) {
        unsigned cp;
        if (utf8_next(&s, end, &cp) || bpe_char_byte(cp) < 0 || *n >= MAX_TOKEN_BYTES) return -1;
        out[(*n)++] = (unsigned char)bpe_char_byte(cp);
    }
    return *n ? 0 : -1;
}

typedef struct {
    const char *path, *vocab_path;
    int line, index; /* line of the file; merges so far */
} MergeAt;

/* Gives the token a merge line makes its rank. */
static int merge_line(Bpe *b, MergeAt *m, const char *s, const char *end, Err *e)
{
    const char *sp = memchr(s, ' ', (size_t)(end - s));
    unsigned char buf[2 * MAX_TOKEN_BYTES];
    size_t na, nb;
    if (!sp || memchr(sp + 1, ' ', (size_t)(end - sp - 1)))
        return err_set(e, "%s:%d: expected two tokens separated by one space: \"%.*s\"", m->path,
                       m->line, (int)(end - s > 80 ? 80 : end - s), s);
    if (merge_token(s, sp, buf, &na) || merge_token(sp + 1, end, buf + na, &nb))
        return err_set(e, "%s:%d: a token is empty or not in GPT-2's byte alphabet: \"%.*s\"",
                       m->path, m->line, (int)(end - s > 80 ? 80 : end - s), s);
    int ia = bpe_lookup(b, buf, na), ib = bpe_lookup(b, buf + na, nb);
    int ic = bpe_lookup(b, buf, na + nb);
    if (ia < 0 || ib < 0)
        return err_set(e, "%s:%d: token \"%.*s\" is not in %s", m->path, m->line,
                       (int)(ia < 0 ? sp - s : end - sp - 1), ia < 0 ? s : sp + 1, m->vocab_path);
    if (ic < 0)
        return err_set(e, "%s:%d: the merge \"%.*s\" makes a token that is not in %s", m->path,
                       m->line, (int)(end - s), s, m->vocab_path);
    if (b->rank[ic] == BPE_NO_RANK) b->rank[ic] = 256 + m->index;
    m->index++;
    return 0;
}

static int load_merges(Bpe *b, const char *path, const char *vocab_path, Err *e)
{
    void *text;
    size_t len;
    if (read_file(path, VOCAB_MAX_BYTES, &text, &len, e)) return -1;
    MergeAt m = {path, vocab_path, 0, 0};
    const char *s = text, *end = s + len;
    int rc = 0;
    while (!rc && s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s)), *le = nl ? nl : end;
        m.line++;
        const char *ce = le > s && le[-1] == '\r' ? le - 1 : le;
        int skip = ce == s || (m.line == 1 && ce - s >= 8 && !memcmp(s, "#version", 8));
        if (!skip) rc = merge_line(b, &m, s, ce, e);
        s = le + 1;
    }
    free(text);
    if (!rc && !m.index) rc = err_set(e, "%s: no merges in the file", path);
    return rc;
}

/* ---- the whole load --------------------------------------------------------- */

static int bytes_ranked(Bpe *b, const char *vocab_path, Err *e)
{
    for (unsigned c = 0; c < 256; c++) {
        unsigned char byte = (unsigned char)c;
        int id = bpe_lookup(b, &byte, 1);
        if (id < 0)
            return err_set(e, "%s: no token for byte 0x%02x (character U+%04X): not a byte-level "
                              "vocabulary", vocab_path, c, bpe_byte_char(c));
        b->byte_id[c] = id;
        b->rank[id] = BPE_BYTE_RANK;
    }
    return 0;
}

static int find_pair(const char *dir, int *which, Err *e)
{
    char a[PATH_BUF], m[PATH_BUF];
    for (int k = 0; k < 2; k++) {
        if (path_fmt(a, sizeof a, e, "%s/%s", dir, PAIRS[k].vocab) ||
            path_fmt(m, sizeof m, e, "%s/%s", dir, PAIRS[k].merges))
            return -1;
        int ha = access(a, F_OK) == 0, hm = access(m, F_OK) == 0;
        if (ha != hm)
            return err_set(e, "%s: has %s but not %s (the pair belongs together)", dir,
                           ha ? PAIRS[k].vocab : PAIRS[k].merges, ha ? PAIRS[k].merges : PAIRS[k].vocab);
        if (ha) {
            *which = k;
            return 0;
        }
    }
    if (access(dir, F_OK) != 0) return err_set(e, "%s: tokenizer directory not found", dir);
    return err_set(e, "%s: no tokenizer files (expected tokenizer.json, vocab.json + merges.txt, "
                      "or encoder.json + vocab.bpe)", dir);
}

/* Whether dir has tokenizer.json (which then wins over a pair). */
static int has_hf(const char *dir)
{
    char p[PATH_BUF];
    Err e;
    return path_fmt(p, sizeof p, &e, "%s/%s", dir, HF_TOKENIZER_FILE) == 0 && access(p, F_OK) == 0;
}

/* Which files of dir bpe_load reads: tokenizer.json, unless dir has a
 * file pair too and tokenizer.json says no more than the pair (GPT-2's
 * pipeline: ByteLevel with GPT-2's pattern, no normalizer, plain BPE), as
 * a GPT-2 directory from the Hub does: then the pair, tiktoken-exact as
 * mpitrain always read it. */
static int uses_hf(const char *dir)
{
    int k;
    Err e;
    if (!has_hf(dir)) return 0;
    if (find_pair(dir, &k, &e)) return 1;
    return !hf_is_gpt2(dir);
}

int bpe_present(const char *dir)
{
    int which;
    Err e;
    return has_hf(dir) || find_pair(dir, &which, &e) == 0;
}

static int load_files(Bpe *b, const char *dir, Err *e)
{
    int k;
    char vp[PATH_BUF], mp[PATH_BUF];
    if (find_pair(dir, &k, e) || path_fmt(vp, sizeof vp, e, "%s/%s", dir, PAIRS[k].vocab) ||
        path_fmt(mp, sizeof mp, e, "%s/%s", dir, PAIRS[k].merges) || load_vocab(b, vp, e))
        return -1;
    b->rank = malloc((size_t)b->n * sizeof *b->rank);
    if (!b->rank) return err_set(e, "%s: out of memory", vp);
    for (int i = 0; i < b->n; i++) b->rank[i] = BPE_NO_RANK;
    b->eot = -1;
    b->bos = -1;
    b->pair_mask = 0;
    /* the bytes -> id table first: merges are checked against it */
    if (bpe_build_tables(b, e)) return err_wrap(e, "%s", vp);
    if (bytes_ranked(b, vp, e) || load_merges(b, mp, vp, e) || bpe_build_tables(b, e)) return -1;
    b->eot = bpe_lookup(b, (const unsigned char *)"<|endoftext|>", 13);
    return 0;
}

Bpe *bpe_load(const char *dir, Err *e)
{
    Bpe *b = calloc(1, sizeof *b);
    if (!b) {
        err_set(e, "%s: out of memory", dir);
        return NULL;
    }
    if (uses_hf(dir) ? hf_load(b, dir, e) : load_files(b, dir, e) || bpe_compile_pattern(b, e)) {
        bpe_free(b);
        return NULL;
    }
    return b;
}

void bpe_free(Bpe *b)
{
    if (!b) return;
    free(b->bytes);
    free(b->off);
    free(b->rank);
    free(b->tok_tab);
    free(b->pair_tab);
    if (b->re) pcre2_code_free(b->re);
    hf_free(b);
    free(b);
}

/* ---- copying the files ------------------------------------------------------ */

/* The file a tokenizer name of src_dir stands for, into real (malloc'd): a
 * symbolic link may point within src_dir, never out of it. A copy ships
 * beside the model, so `vocab.json -> ~/.ssh/id_rsa` must not carry the key
 * along (nor have it parsed, and quoted in an error, as a vocabulary). */
static int inside_source(const char *src_dir, const char *name, char **real, Err *e)
{
    char path[PATH_BUF], *dir = NULL;
    *real = NULL;
    if (path_fmt(path, sizeof path, e, "%s/%s", src_dir, name)) return -1;
    if (!(dir = realpath(src_dir, NULL)) || !(*real = realpath(path, NULL))) {
        int rc = err_set(e, "%s: cannot resolve: %s", dir ? path : src_dir, strerror(errno));
        free(dir);
        return rc;
    }
    size_t n = strlen(dir);
    int rc = 0;
    if (strncmp(*real, dir, n) || (*real)[n == 1 ? 0 : n] != '/')
        rc = err_set(e, "%s: a symbolic link to %s, outside %s: refusing to copy it (put the file "
                        "itself in the directory)", path, *real, src_dir);
    free(dir);
    if (rc) {
        free(*real);
        *real = NULL;
    }
    return rc;
}

/* data with the "#version" first line and the final newline HF's
 * GPT2Tokenizer expects of merges.txt (it drops the first and the last line
 * unread); *len grows to match. Returns data itself when nothing is missing. */
static char *as_hf_merges(char *data, size_t *len)
{
    static const char version[] = "#version: 0.2\n";
    int head = *len < 8 || memcmp(data, "#version", 8);
    int tail = *len && data[*len - 1] != '\n';
    if (!head && !tail) return data;
    char *out = malloc(*len + sizeof version);
    if (!out) return NULL;
    size_t at = head ? sizeof version - 1 : 0;
    memcpy(out, version, at);
    memcpy(out + at, data, *len);
    *len += at;
    if (tail) out[(*len)++] = '\n';
    return out;
}

/* Copies file src (resolved) to dst_dir/name, its permission bits kept
 * (never widened: a 0600 file stays 0600); as_merges: in HF's merges.txt
 * form. */
static int copy_one(const char *src, const char *dst_dir, const char *name, int as_merges, Err *e)
{
    char d[PATH_BUF];
    void *data = NULL;
    size_t len;
    struct stat st;
    if (path_fmt(d, sizeof d, e, "%s/%s", dst_dir, name) || read_file(src, VOCAB_MAX_BYTES, &data, &len, e))
        return -1;
    char *out = as_merges ? as_hf_merges(data, &len) : data;
    AtomicFile af;
    int rc = !out ? err_set(e, "%s: out of memory", src) : 0;
    if (!rc && stat(src, &st) != 0) rc = err_set(e, "%s: cannot stat: %s", src, strerror(errno));
    if (!rc) rc = atomic_open(&af, d, e);
    if (!rc) rc = atomic_narrow_mode(&af, st.st_mode, e);
    if (!rc) rc = atomic_write(&af, out, len, e);
    if (!rc) rc = atomic_commit(&af, e);
    if (out != data) free(out);
    free(data);
    return rc;
}

/* The files a copy takes from dir, each resolved and within dir, with the
 * name it gets in the copy (export: HF's names): tokenizer.json and
 * tokenizer_config.json (when there), else the pair. */
typedef struct {
    char *real[2];
    const char *name[2];
    int n, hf_merges; /* hf_merges: real[1] is a merges file to put in HF's form */
} Sources;

static void sources_free(Sources *s)
{
    for (int i = 0; i < 2; i++) free(s->real[i]);
    memset(s, 0, sizeof *s);
}

static int sources_of(const char *dir, int export, Sources *s, Err *e)
{
    int k;
    memset(s, 0, sizeof *s);
    if (uses_hf(dir)) {
        char cfg[PATH_BUF];
        s->name[0] = HF_TOKENIZER_FILE;
        s->name[1] = HF_CONFIG_FILE;
        s->n = path_fmt(cfg, sizeof cfg, e, "%s/%s", dir, HF_CONFIG_FILE) ? 0
               : access(cfg, F_OK) == 0                                   ? 2
                                                                          : 1;
    } else {
        if (find_pair(dir, &k, e)) return -1;
        s->name[0] = PAIRS[export ? 0 : k].vocab;
        s->name[1] = PAIRS[export ? 0 : k].merges;
        s->n = 2;
        s->hf_merges = export;
        if (inside_source(dir, PAIRS[k].vocab, &s->real[0], e) ||
            inside_source(dir, PAIRS[k].merges, &s->real[1], e)) {
            sources_free(s);
            return -1;
        }
        return 0;
    }
    for (int i = 0; i < s->n; i++)
        if (inside_source(dir, s->name[i], &s->real[i], e)) {
            sources_free(s);
            return -1;
        }
    return s->n ? 0 : -1;
}

Bpe *bpe_load_copyable(const char *dir, Err *e)
{
    Sources s;
    if (sources_of(dir, 0, &s, e)) return NULL;
    sources_free(&s);
    return bpe_load(dir, e);
}

static int copy_sources(const Sources *s, const char *dst_dir, Err *e)
{
    if (mkdir_p(dst_dir, e)) return -1;
    for (int i = 0; i < s->n; i++)
        if (copy_one(s->real[i], dst_dir, s->name[i], i == 1 && s->hf_merges, e)) return -1;
    return 0;
}

/* Only a tokenizer that loads is copied: a checkpoint or an export ships
 * it as the model's, and `sample` would fail on it much later. */
int bpe_copy_files(const char *src_dir, const char *dst_dir, Err *e)
{
    Sources s;
    Bpe *b = NULL;
    int rc = sources_of(src_dir, 0, &s, e);
    if (!rc && !(b = bpe_load(src_dir, e))) rc = err_wrap(e, "not copying the tokenizer of %s", src_dir);
    bpe_free(b);
    if (!rc && copy_sources(&s, dst_dir, e)) rc = err_wrap(e, "copying the tokenizer to %s", dst_dir);
    sources_free(&s);
    return rc;
}

int bpe_export_hf(const char *src_dir, const char *dst_dir, Err *e)
{
    Sources s;
    int rc = sources_of(src_dir, 1, &s, e);
    if (!rc && copy_sources(&s, dst_dir, e)) rc = err_wrap(e, "writing the tokenizer to %s", dst_dir);
    sources_free(&s);
    return rc;
}

int bpe_for_ckpt(const char *step_dir, const char *override, int vocab, Bpe **b, Err *e)
{
    char own[PATH_BUF];
    snprintf(own, sizeof own, "%s/%s", step_dir, CKPT_TOKENIZER_SUBDIR);
    const char *dir = override && override[0] ? override : bpe_present(own) ? own : NULL;
    *b = NULL;
    if (!dir && vocab > 256)
        return err_set(e, "%s: vocabulary %d needs a tokenizer and the checkpoint has none (no "
                          "%s/); pass --tokenizer DIR with tokenizer.json, or GPT-2's "
                          "vocab.json + merges.txt (or encoder.json + vocab.bpe)",
                       step_dir, vocab, own);
    if (dir && !(*b = bpe_load(dir, e))) return err_wrap(e, "tokenizer");
    return 0;
}
