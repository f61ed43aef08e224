/* tokenizer.json's pipeline around the merges, as Hugging Face tokenizers
 * runs it: added tokens are cut out of the text first (leftmost, longest);
 * each stretch between them is normalized, then split by the
 * pre-tokenizers in turn, and each final piece goes to the BPE model
 * (enc_piece). Decoding runs the decoder chain over the tokens' strings. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "worker/data/bpe.h"
#include "worker/data/bpe_impl.h"

/* ---- growing byte strings ------------------------------------------------- */

typedef struct {
    unsigned char *p;
    size_t n, cap;
} Buf;

static int buf_add(Buf *b, const void *p, size_t n, Err *e)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q) return err_set(e, "out of memory (%zu bytes)", cap);
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

/* s[0..n) with every `from` replaced by `to`, appended to out. */
static int replace_into(Buf *out, const unsigned char *s, size_t n, const char *from, size_t from_len,
                        const char *to, size_t to_len, Err *e)
{
    size_t at = 0;
    while (at < n) {
        const unsigned char *hit = from_len && n - at >= from_len
                                       ? memmem(s + at, n - at, from, from_len)
                                       : NULL;
        size_t stop = hit ? (size_t)(hit - s) : n;
        if (buf_add(out, s + at, stop - at, e)) return -1;
        if (!hit) break;
        if (buf_add(out, to, to_len, e)) return -1;
        at = stop + from_len;
    }
    return 0;
}

/* ---- normalizers ----------------------------------------------------------- */

/* NFC of the well-formed stretches of s (ill-formed bytes pass as they are:
 * tokenizers only ever sees valid UTF-8). ASCII is its own NFC. */
static int nfc_into(Buf *out, const unsigned char *s, size_t n, Err *e)
{
    size_t at = 0;
    while (at < n) {
        size_t end = at, ascii = 1, k;
        while (end < n && (k = utf8_char_len(s + end, n - end))) {
            ascii &= s[end] < 0x80;
            end += k;
        }
        if (ascii) {
            if (buf_add(out, s + at, end - at, e)) return -1;
        } else {
            utf8proc_uint8_t *dst = NULL;
            utf8proc_ssize_t len = utf8proc_map(s + at, (utf8proc_ssize_t)(end - at), &dst,
                                                UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            if (len < 0) return err_set(e, "NFC: %s", utf8proc_errmsg(len));
            int rc = buf_add(out, dst, (size_t)len, e);
            free(dst);
            if (rc) return -1;
        }
        if (end < n && buf_add(out, s + end, 1, e)) return -1; /* an ill-formed byte */
        at = end + (end < n);
    }
    return 0;
}

static int norm_step(const NormStep *st, Buf *out, const unsigned char *s, size_t n, Err *e)
{
    switch (st->kind) {
    case NORM_NFC: return nfc_into(out, s, n, e);
    case NORM_PREPEND:
        /* tokenizers prepends to a non-empty string only */
        return n && buf_add(out, st->to, st->to_len, e) ? -1 : buf_add(out, s, n, e);
    case NORM_REPLACE: return replace_into(out, s, n, st->from, st->from_len, st->to, st->to_len, e);
    }
    return err_set(e, "normalizer %d unknown", (int)st->kind);
}

/* ---- pre-tokenizers ------------------------------------------------------- */

static int pretok(Enc *c, const Bpe *b, int step, const unsigned char *p, size_t n, int first);

/* Split with behavior Isolated: every match is a piece, and so is every
 * stretch between matches. An empty match splits nothing. */
static int split_isolated(Enc *c, const Bpe *b, int step, const pcre2_code *re, int jit,
                          const unsigned char *p, size_t n, int first)
{
    size_t gap = 0, search = 0, start, end;
    while (search < n) {
        if (enc_match(c, re, jit, p, n, search, &start, &end)) return -1;
        if (start >= n) break;
        if (end == start) {
            size_t k = utf8_char_len(p + start, n - start);
            search = start + (k ? k : 1);
            continue;
        }
        if (pretok(c, b, step + 1, p + gap, start - gap, first && gap == 0) ||
            pretok(c, b, step + 1, p + start, end - start, first && start == 0))
            return -1;
        gap = search = end;
    }
    return pretok(c, b, step + 1, p + gap, n - gap, first && gap == 0);
}

static int byte_level(Enc *c, const Bpe *b, int step, const unsigned char *p, size_t n, int first)
{
    const PreStep *st = &b->pre[step];
    Buf buf = {0};
    if (st->prefix_space && p[0] != ' ') {
        if (buf_add(&buf, " ", 1, enc_err(c)) || buf_add(&buf, p, n, enc_err(c))) {
            free(buf.p);
            return -1;
        }
        p = buf.p;
        n = buf.n;
    }
    int rc = st->re ? split_isolated(c, b, step, st->re, st->jit, p, n, first)
                    : pretok(c, b, step + 1, p, n, first);
    free(buf.p);
    return rc;
}

/* Spaces become the replacement; the replacement is prepended (always, or
 * to the text's first piece); with split, each replacement starts a piece
 * (behavior MergedWithNext). */
static int metaspace(Enc *c, const Bpe *b, int step, const unsigned char *p, size_t n, int first)
{
    const PreStep *st = &b->pre[step];
    Buf buf = {0};
    /* prepended unless the text, spaces replaced, starts with the replacement */
    int lead = (st->scheme == PREPEND_ALWAYS || (st->scheme == PREPEND_FIRST && first)) &&
               p[0] != ' ' && !(n >= st->rep_len && !memcmp(p, st->rep, st->rep_len));
    int rc = lead ? buf_add(&buf, st->rep, st->rep_len, enc_err(c)) : 0;
    if (!rc) rc = replace_into(&buf, p, n, " ", 1, st->rep, st->rep_len, enc_err(c));
    size_t at = 0;
    while (!rc && at < buf.n) {
        size_t next = buf.n;
        if (st->split) {
            const unsigned char *hit = buf.n - at > st->rep_len
                                           ? memmem(buf.p + at + 1, buf.n - at - 1, st->rep, st->rep_len)
                                           : NULL;
            if (hit) next = (size_t)(hit - buf.p);
        }
        rc = pretok(c, b, step + 1, buf.p + at, next - at, first && at == 0);
        at = next;
    }
    free(buf.p);
    return rc;
}

static int pretok(Enc *c, const Bpe *b, int step, const unsigned char *p, size_t n, int first)
{
    if (!n) return 0;
    if (step == b->n_pre) return enc_piece(c, p, n);
    const PreStep *st = &b->pre[step];
    switch (st->kind) {
    case PRE_SPLIT: return split_isolated(c, b, step, st->re, st->jit, p, n, first);
    case PRE_BYTELEVEL: return byte_level(c, b, step, p, n, first);
    case PRE_METASPACE: return metaspace(c, b, step, p, n, first);
    }
    return err_set(enc_err(c), "pre-tokenizer %d unknown", (int)st->kind);
}

/* ---- the text: added tokens, then the rest ------------------------------- */

static int stretch(Enc *c, const Bpe *b, const unsigned char *p, size_t n, int first)
{
    if (!n) return 0;
    if (!b->n_norm) return pretok(c, b, 0, p, n, first);
    Buf in = {0}, out = {0};
    int rc = 0;
    for (int i = 0; !rc && i < b->n_norm; i++) {
        out.n = 0;
        rc = norm_step(&b->norm[i], &out, i ? in.p : p, i ? in.n : n, enc_err(c));
        Buf t = in;
        in = out;
        out = t;
    }
    if (!rc) rc = pretok(c, b, 0, in.p, in.n, first);
    free(in.p);
    free(out.p);
    return rc;
}

/* The longest added token at s[0..n), or NULL. */
static const AddedTok *added_at(const Bpe *b, const unsigned char *s, size_t n)
{
    for (int i = b->added_first[s[0]]; i < b->added_first[s[0] + 1]; i++) {
        const AddedTok *a = &b->added[i];
        if (a->len <= n && !memcmp(a->s, s, a->len)) return a;
    }
    return NULL;
}

int hf_encode_text(Enc *c, const Bpe *b, const unsigned char *s, size_t n)
{
    size_t from = 0;
    for (size_t at = 0; at < n; at++) {
        if (b->added_first[s[at]] == b->added_first[s[at] + 1]) continue;
        const AddedTok *a = added_at(b, s + at, n - at);
        if (!a) continue;
        if (stretch(c, b, s + from, at - from, from == 0) || enc_id(c, a->id)) return -1;
        from = at + a->len;
        at = from - 1;
    }
    return stretch(c, b, s + from, n - from, from == 0);
}

/* ---- decoding -------------------------------------------------------------- */

typedef struct {
    Buf *t;     /* the tokens' strings */
    size_t n;
} Toks;

static void toks_free(Toks *k)
{
    for (size_t i = 0; i < k->n; i++) free(k->t[i].p);
    free(k->t);
    k->t = NULL;
    k->n = 0;
}

/* ByteLevel: each character of GPT-2's alphabet back to its byte; a token
 * with a character outside the alphabet stays as it is. */
static int dec_byte_level(Buf *t, Err *e)
{
    Buf out = {0};
    for (size_t at = 0, k; at < t->n; at += k) {
        k = utf8_char_len(t->p + at, t->n - at);
        unsigned cp = 0;
        for (size_t j = 0; k && j < k; j++) cp = j ? cp << 6 | (t->p[at + j] & 0x3F)
                                                   : t->p[at] & (k == 1 ? 0x7F : 0xFF >> (k + 1));
        int byte = k ? bpe_char_byte(cp) : -1;
        if (byte < 0) {
            free(out.p);
            return 0;
        }
        unsigned char u = (unsigned char)byte;
        if (buf_add(&out, &u, 1, e)) return -1;
    }
    free(t->p);
    *t = out;
    return 0;
}

static int dec_replace(Buf *t, const DecStep *st, Err *e)
{
    Buf out = {0};
    if (replace_into(&out, t->p, t->n, st->from, st->from_len, st->to, st->to_len, e)) {
        free(out.p);
        return -1;
    }
    free(t->p);
    *t = out;
    return 0;
}

/* Strip: up to `start` leading and `stop` trailing copies of content. */
static void dec_strip(Buf *t, const DecStep *st)
{
    size_t k = st->from_len, head = 0, tail = 0;
    for (int i = 0; i < st->start && t->n - head >= k && !memcmp(t->p + head, st->from, k); i++)
        head += k;
    for (int i = 0; i < st->stop && t->n - head - tail >= k &&
                    !memcmp(t->p + t->n - tail - k, st->from, k);
         i++)
        tail += k;
    memmove(t->p, t->p + head, t->n - head - tail);
    t->n -= head + tail;
}

/* Metaspace: the replacement becomes a space, and in the first token
 * vanishes (unless prepend_scheme is never), as tokenizers decodes. */
static int dec_metaspace(Buf *t, const DecStep *st, int first, Err *e)
{
    DecStep r = *st;
    r.to = first && st->scheme != PREPEND_NEVER ? "" : " ";
    r.to_len = strlen(r.to);
    return dec_replace(t, &r, e);
}

static int hex_digit(unsigned char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
         : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The byte of a "<0xXX>" token, or -1. */
static int fallback_byte(const Buf *t)
{
    if (t->n != 6 || memcmp(t->p, "<0x", 3) || t->p[5] != '>') return -1;
    int hi = hex_digit(t->p[3]), lo = hex_digit(t->p[4]);
    return hi < 0 || lo < 0 ? -1 : hi << 4 | lo;
}

static int valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t at = 0, k; at < n; at += k)
        if (!(k = utf8_char_len(s + at, n - at))) return 0;
    return 1;
}

/* ByteFallback: a run of <0xXX> tokens becomes its bytes, or one U+FFFD per
 * byte when they are not UTF-8. */
static int dec_byte_fallback(Toks *k, Err *e)
{
    Toks out = {calloc(k->n ? k->n : 1, sizeof(Buf)), 0};
    if (!out.t) return err_set(e, "out of memory");
    int rc = 0;
    for (size_t i = 0; !rc && i < k->n;) {
        Buf run = {0};
        size_t j = i;
        for (int byte; j < k->n && (byte = fallback_byte(&k->t[j])) >= 0 && !rc; j++) {
            unsigned char u = (unsigned char)byte;
            rc = buf_add(&run, &u, 1, e);
        }
        if (j == i) {
            out.t[out.n++] = k->t[i];
            k->t[i] = (Buf){0};
            i++;
            continue;
        }
        if (!rc && !valid_utf8(run.p, run.n)) {
            Buf bad = {0};
            for (size_t b = 0; !rc && b < run.n; b++) rc = buf_add(&bad, "\xEF\xBF\xBD", 3, e);
            free(run.p);
            run = bad;
        }
        out.t[out.n++] = run;
        i = j;
    }
    toks_free(k);
    *k = out;
    return rc;
}

static int dec_fuse(Toks *k, Err *e)
{
    Buf all = {0};
    for (size_t i = 0; i < k->n; i++)
        if (buf_add(&all, k->t[i].p, k->t[i].n, e)) {
            free(all.p);
            return -1;
        }
    toks_free(k);
    k->t = malloc(sizeof(Buf));
    if (!k->t) {
        free(all.p);
        return err_set(e, "out of memory");
    }
    k->t[0] = all;
    k->n = 1;
    return 0;
}

/* alone: one token decoded on its own (bpe_token_bytes): no Fuse, no
 * Strip, no first-token rule. */
static int dec_step(const DecStep *st, Toks *k, int alone, Err *e)
{
    if (st->kind == DEC_BYTEFALLBACK) return dec_byte_fallback(k, e);
    if (st->kind == DEC_FUSE) return alone ? 0 : dec_fuse(k, e);
    if (st->kind == DEC_STRIP && alone) return 0;
    for (size_t i = 0; i < k->n; i++) {
        int rc = 0;
        switch (st->kind) {
        case DEC_BYTELEVEL: rc = dec_byte_level(&k->t[i], e); break;
        case DEC_REPLACE: rc = dec_replace(&k->t[i], st, e); break;
        case DEC_STRIP: dec_strip(&k->t[i], st); break;
        case DEC_METASPACE: rc = dec_metaspace(&k->t[i], st, i == 0 && !alone, e); break;
        default: break;
        }
        if (rc) return -1;
    }
    return 0;
}

static int decode_ids(const Bpe *b, const int *ids, size_t n, int alone, unsigned char **out,
                      size_t *len, Err *e)
{
    Toks k = {calloc(n ? n : 1, sizeof(Buf)), 0};
    if (!k.t) return err_set(e, "out of memory (%zu tokens)", n);
    int rc = 0;
    for (size_t i = 0; !rc && i < n; i++, k.n++) {
        int id = ids[i];
        if (id < 0 || id >= b->n || !b->present[id]) {
            rc = err_set(e, "token id %d is outside the vocabulary (0..%d)", id, b->n - 1);
            break;
        }
        rc = buf_add(&k.t[i], b->str_bytes + b->str_off[id], b->str_off[id + 1] - b->str_off[id], e);
    }
    for (int s = 0; !rc && s < b->n_dec; s++) rc = dec_step(&b->dec[s], &k, alone, e);
    Buf all = {0};
    for (size_t i = 0; !rc && i < k.n; i++) rc = buf_add(&all, k.t[i].p, k.t[i].n, e);
    toks_free(&k);
    if (!rc && !all.p && !(all.p = malloc(1))) rc = err_set(e, "out of memory");
    if (rc) {
        free(all.p);
        return -1;
    }
    *out = all.p;
    *len = all.n;
    return 0;
}

int hf_decode(const Bpe *b, const int *ids, size_t n, unsigned char **out, size_t *len, Err *e)
{
    return decode_ids(b, ids, n, 0, out, len, e);
}

int hf_decode_one(const Bpe *b, int id, unsigned char **out, size_t *len, Err *e)
{
    return decode_ids(b, &id, 1, 1, out, len, e);
}
