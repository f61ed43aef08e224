/* Loading Hugging Face tokenizers' tokenizer.json (+ tokenizer_config.json)
 * into a Bpe. What is read (docs/tokenizers.md): model BPE (vocab, merges
 * as "a b" strings or ["a", "b"] pairs, byte_fallback, ignore_merges,
 * fuse_unk, unk_token); normalizers NFC, Prepend, Replace (String),
 * Sequence; pre-tokenizers Split (Regex or String, Isolated, not inverted),
 * ByteLevel, Metaspace, Sequence; added tokens (no lstrip, rstrip,
 * single_word; normalized only where no normalizer runs); post-processors
 * TemplateProcessing, ByteLevel (ids unchanged), Sequence; decoders
 * ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace (String),
 * Sequence. Anything else is refused by name: a guess would give other
 * ids than the model was trained on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "worker/data/bpe.h"
#include "worker/data/bpe_impl.h"
#include "worker/data/jtree.h"

#define HF_MAX_BYTES (256u << 20)

typedef struct {
    Bpe *b;
    JtDoc *doc;
    const char *path;  /* of tokenizer.json, for messages */
    Err *e;
} Ld;

static int refuse(Ld *l, const char *what, const Jt *type)
{
    return err_set(l->e, "%s: %s type %s is not supported", l->path, what,
                   type && type->type == JT_STR ? type->v.str : "(missing)");
}

static int bad(Ld *l, const Jt *at, const char *what)
{
    return err_set(l->e, "%s:%d: %s", l->path, at ? jt_line(l->doc, at) : 1, what);
}

static int flag(const Jt *o, const char *key, int dflt)
{
    const Jt *v = jt_get(o, key);
    return v && v->type == JT_BOOL ? (int)v->v.num : dflt;
}

static char *dup_str(const Jt *v, size_t *len)
{
    char *s = malloc(v->n + 1);
    if (s) memcpy(s, v->v.str, v->n + 1);
    *len = v->n;
    return s;
}

/* A {"String": s} pattern (Replace): its text; a Regex one is refused. */
static const Jt *string_pattern(Ld *l, const Jt *o, const char *what)
{
    const Jt *pat = jt_get(o, "pattern");
    const Jt *s = jt_get(pat, "String");
    if (s && s->type == JT_STR && s->n) return s;
    if (jt_get(pat, "Regex")) {
        err_set(l->e, "%s: %s with a Regex pattern is not supported (only String)", l->path, what);
        return NULL;
    }
    bad(l, o, "a pattern must be {\"String\": \"...\"}");
    return NULL;
}

/* Appends item (size bytes) to the array *arr of *n items. */
static int append(Ld *l, void *arr, int *n, const void *item, size_t size)
{
    void **p = arr;
    char *grown = realloc(*p, (size_t)(*n + 1) * size);
    if (!grown) return err_set(l->e, "out of memory");
    memcpy(grown + (size_t)*n * size, item, size);
    *p = grown;
    ++*n;
    return 0;
}

/* ---- normalizer ----------------------------------------------------------- */

static int add_norm(Ld *l, NormStep st)
{
    return append(l, &l->b->norm, &l->b->n_norm, &st, sizeof st);
}

static int normalizer(Ld *l, const Jt *o)
{
    if (!o || o->type == JT_NULL) return 0;
    const Jt *type = jt_get(o, "type");
    NormStep st = {0};
    if (jt_is(type, "Sequence")) {
        const Jt *list = jt_get(o, "normalizers");
        if (!list || list->type != JT_ARR) return bad(l, o, "normalizer Sequence without normalizers");
        for (uint32_t i = 0; i < list->n; i++)
            if (normalizer(l, &list->v.items[i])) return -1;
        return 0;
    }
    if (jt_is(type, "NFC")) {
        st.kind = NORM_NFC;
    } else if (jt_is(type, "Prepend")) {
        const Jt *p = jt_get(o, "prepend");
        if (!p || p->type != JT_STR) return bad(l, o, "normalizer Prepend without prepend");
        st.kind = NORM_PREPEND;
        st.to = dup_str(p, &st.to_len);
    } else if (jt_is(type, "Replace")) {
        const Jt *from = string_pattern(l, o, "normalizer Replace"), *to = jt_get(o, "content");
        if (!from) return -1;
        if (!to || to->type != JT_STR) return bad(l, o, "normalizer Replace without content");
        st.kind = NORM_REPLACE;
        st.from = dup_str(from, &st.from_len);
        st.to = dup_str(to, &st.to_len);
    } else {
        return refuse(l, "normalizer", type);
    }
    return add_norm(l, st);
}

/* ---- pre-tokenizer ---------------------------------------------------------- */

static int add_pre(Ld *l, PreStep st)
{
    if (!append(l, &l->b->pre, &l->b->n_pre, &st, sizeof st)) return 0;
    if (st.re) pcre2_code_free(st.re);
    return -1;
}

/* prepend_scheme (or the older add_prefix_space) of a Metaspace. */
static int prepend_scheme(Ld *l, const Jt *o, int *scheme)
{
    const Jt *s = jt_get(o, "prepend_scheme");
    if (!s || s->type == JT_NULL) {
        *scheme = flag(o, "add_prefix_space", 1) ? PREPEND_ALWAYS : PREPEND_NEVER;
        return 0;
    }
    if (jt_is(s, "always")) *scheme = PREPEND_ALWAYS;
    else if (jt_is(s, "first")) *scheme = PREPEND_FIRST;
    else if (jt_is(s, "never")) *scheme = PREPEND_NEVER;
    else
        return err_set(l->e, "%s: Metaspace prepend_scheme %s is not supported", l->path,
                       s->type == JT_STR ? s->v.str : "(not a string)");
    return 0;
}

static int replacement(Ld *l, const Jt *o, char *rep, size_t *len)
{
    const Jt *r = jt_get(o, "replacement");
    if (!r || r->type != JT_STR || !r->n || r->n >= 8 ||
        utf8_char_len((const unsigned char *)r->v.str, r->n) != r->n)
        return bad(l, o, "Metaspace replacement must be one character");
    memcpy(rep, r->v.str, r->n);
    *len = r->n;
    return 0;
}

static int split_step(Ld *l, const Jt *o, PreStep *st)
{
    const Jt *pat = jt_get(o, "pattern"), *rx = jt_get(pat, "Regex"), *str = jt_get(pat, "String");
    const Jt *behavior = jt_get(o, "behavior");
    if (!jt_is(behavior, "Isolated"))
        return err_set(l->e, "%s: pre_tokenizer Split behavior %s is not supported (only Isolated)",
                       l->path, behavior && behavior->type == JT_STR ? behavior->v.str : "(missing)");
    if (flag(o, "invert", 0))
        return err_set(l->e, "%s: pre_tokenizer Split with invert true is not supported", l->path);
    const Jt *p = rx && rx->type == JT_STR ? rx : str && str->type == JT_STR ? str : NULL;
    if (!p || !p->n) return bad(l, o, "Split needs a pattern {\"Regex\": ...} or {\"String\": ...}");
    /* the window search of enc_match sees no text before the window */
    if (p == rx && (strstr(p->v.str, "(?<=") || strstr(p->v.str, "(?<!") || strstr(p->v.str, "\\G")))
        return err_set(l->e, "%s: pre_tokenizer Split pattern with a look-behind or \\G is not "
                             "supported", l->path);
    st->kind = PRE_SPLIT;
    st->re = bpe_compile(p->v.str, p->n, p == rx ? 0 : PCRE2_LITERAL, &st->jit,
                         "the Split pattern", l->e);
    return st->re ? 0 : err_wrap(l->e, "%s", l->path);
}

/* Digits (SmolLM2's first step): every numeric character a piece of its
 * own (individual_digits), or every run of them (behavior Contiguous).
 * Numeric as tokenizers' Rust has it, char::is_numeric: the categories
 * Nd, Nl and No, \p{N} (transformers.js tests \d, ASCII digits only). */
static int digits_step(Ld *l, const Jt *o, PreStep *st)
{
    const char *pattern = flag(o, "individual_digits", 0) ? "\\p{N}" : "\\p{N}+";
    st->kind = PRE_SPLIT;
    st->re = bpe_compile(pattern, PCRE2_ZERO_TERMINATED, 0, &st->jit, "the Digits pattern", l->e);
    return st->re ? 0 : err_wrap(l->e, "%s", l->path);
}

static int pre_tokenizer(Ld *l, const Jt *o)
{
    if (!o || o->type == JT_NULL) return 0;
    const Jt *type = jt_get(o, "type");
    PreStep st = {0};
    if (l->b->n_pre && l->b->pre[l->b->n_pre - 1].kind == PRE_BYTELEVEL)
        return err_set(l->e, "%s: a pre_tokenizer after ByteLevel is not supported", l->path);
    if (jt_is(type, "Sequence")) {
        const Jt *list = jt_get(o, "pretokenizers");
        if (!list || list->type != JT_ARR) return bad(l, o, "pre_tokenizer Sequence without pretokenizers");
        for (uint32_t i = 0; i < list->n; i++)
            if (pre_tokenizer(l, &list->v.items[i])) return -1;
        return 0;
    }
    if (jt_is(type, "Split")) {
        if (split_step(l, o, &st)) return -1;
    } else if (jt_is(type, "ByteLevel")) {
        st.kind = PRE_BYTELEVEL;
        st.prefix_space = flag(o, "add_prefix_space", 0);
        if (flag(o, "use_regex", 1) &&
            !(st.re = bpe_compile(BPE_GPT2_PATTERN, PCRE2_ZERO_TERMINATED, 0, &st.jit,
                                  "GPT-2's pattern", l->e)))
            return -1;
        l->b->byte_level = 1;
    } else if (jt_is(type, "Digits")) {
        if (digits_step(l, o, &st)) return -1;
    } else if (jt_is(type, "Metaspace")) {
        st.kind = PRE_METASPACE;
        st.split = flag(o, "split", 1);
        if (replacement(l, o, st.rep, &st.rep_len) || prepend_scheme(l, o, &st.scheme)) return -1;
    } else {
        return refuse(l, "pre_tokenizer", type);
    }
    return add_pre(l, st);
}

/* ---- decoder ----------------------------------------------------------------- */

static int add_dec(Ld *l, DecStep st)
{
    if (!append(l, &l->b->dec, &l->b->n_dec, &st, sizeof st)) return 0;
    free(st.from);
    free(st.to);
    return -1;
}

static int count(const Jt *o, const char *key)
{
    const Jt *v = jt_get(o, key);
    return v && v->type == JT_NUM && v->v.num >= 0 && v->v.num < 1e6 ? (int)v->v.num : -1;
}

static int decoder(Ld *l, const Jt *o)
{
    if (!o || o->type == JT_NULL) return 0;
    const Jt *type = jt_get(o, "type");
    DecStep st = {0};
    if (jt_is(type, "Sequence")) {
        const Jt *list = jt_get(o, "decoders");
        if (!list || list->type != JT_ARR) return bad(l, o, "decoder Sequence without decoders");
        for (uint32_t i = 0; i < list->n; i++)
            if (decoder(l, &list->v.items[i])) return -1;
        return 0;
    }
    if (jt_is(type, "ByteLevel")) {
        st.kind = DEC_BYTELEVEL;
    } else if (jt_is(type, "ByteFallback")) {
        st.kind = DEC_BYTEFALLBACK;
    } else if (jt_is(type, "Fuse")) {
        st.kind = DEC_FUSE;
    } else if (jt_is(type, "Replace")) {
        const Jt *from = string_pattern(l, o, "decoder Replace"), *to = jt_get(o, "content");
        if (!from) return -1;
        if (!to || to->type != JT_STR) return bad(l, o, "decoder Replace without content");
        st.kind = DEC_REPLACE;
        st.from = dup_str(from, &st.from_len);
        st.to = dup_str(to, &st.to_len);
    } else if (jt_is(type, "Strip")) {
        const Jt *c = jt_get(o, "content");
        st.kind = DEC_STRIP;
        st.start = count(o, "start");
        st.stop = count(o, "stop");
        if (!c || c->type != JT_STR || !c->n || st.start < 0 || st.stop < 0)
            return bad(l, o, "decoder Strip needs content (a character), start and stop");
        st.from = dup_str(c, &st.from_len);
    } else if (jt_is(type, "Metaspace")) {
        char rep[8];
        st.kind = DEC_METASPACE;
        if (replacement(l, o, rep, &st.from_len) || prepend_scheme(l, o, &st.scheme)) return -1;
        st.from = malloc(st.from_len + 1);
        if (st.from) memcpy(st.from, rep, st.from_len);
    } else {
        return refuse(l, "decoder", type);
    }
    if ((st.kind == DEC_REPLACE && (!st.from || !st.to)) ||
        ((st.kind == DEC_STRIP || st.kind == DEC_METASPACE) && !st.from)) {
        free(st.from);
        free(st.to);
        return err_set(l->e, "out of memory");
    }
    return add_dec(l, st);
}

/* ---- the vocabulary -------------------------------------------------------- */

/* A token as tokenizer.json writes it -> the bytes it is kept as: GPT-2's
 * alphabet decoded (byte-level vocabularies; a token with any other
 * character stays as written, as tokenizers' ByteLevel decoder does), else
 * its UTF-8. Appends to *dst (room: n bytes). Returns the bytes. */
static size_t token_bytes(const Bpe *b, const char *s, size_t n, unsigned char *dst)
{
    if (b->byte_level) {
        size_t k = 0;
        for (size_t at = 0, c; at < n; at += c) {
            const unsigned char *p = (const unsigned char *)s + at;
            c = utf8_char_len(p, n - at);
            unsigned cp = c == 1 ? p[0] : c == 2 ? (unsigned)(p[0] & 0x1F) << 6 | (p[1] & 0x3F) : 0;
            int byte = c && c <= 2 ? bpe_char_byte(cp) : -1;
            if (byte < 0) {
                k = 0;
                break;
            }
            dst[k++] = (unsigned char)byte;
        }
        if (k || !n) return k;
    }
    memcpy(dst, s, n);
    return n;
}

typedef struct {
    const char *s;
    uint32_t n;
} Str;

/* Places every token (vocab, then added tokens) by id: b->n, present,
 * special, bytes/off (encoding form), str_bytes/str_off (as written). */
static int place_tokens(Ld *l, const Jt *vocab, const Jt *added)
{
    Bpe *b = l->b;
    long long max = -1;
    for (uint32_t i = 0; i < vocab->n; i++) {
        const Jt *v = &vocab->v.items[i];
        if (v->type != JT_NUM || v->v.num < 0 || v->v.num > 0x7FFFFFFE || v->v.num != (int)v->v.num)
            return bad(l, v, "a vocab id must be an integer 0..2^31-2");
        if (v->v.num > max) max = (long long)v->v.num;
    }
    for (uint32_t i = 0; added && i < added->n; i++) {
        const Jt *id = jt_get(&added->v.items[i], "id");
        if (!id || id->type != JT_NUM || id->v.num < 0 || id->v.num > 0x7FFFFFFE)
            return bad(l, &added->v.items[i], "an added token needs an id 0..2^31-2");
        if (id->v.num > max) max = (long long)id->v.num;
    }
    if (max < 0) return err_set(l->e, "%s: the vocabulary is empty", l->path);
    /* a few unused ids are fine (padding); a lone huge id would make tables
     * of billions of entries */
    long long count = (long long)vocab->n + (added ? added->n : 0);
    if (max >= 2 * count + 1024)
        return err_set(l->e, "%s: ids up to %lld for %lld tokens: too sparse", l->path, max, count);
    b->n = (int)max + 1;
    Str *str = calloc((size_t)b->n, sizeof *str);
    b->present = calloc((size_t)b->n, 1);
    b->special = calloc((size_t)b->n, 1);
    if (!str || !b->present || !b->special) {
        free(str);
        return err_set(l->e, "%s: out of memory", l->path);
    }
    for (uint32_t i = 0; i < vocab->n; i++) {
        const Jt *v = &vocab->v.items[i];
        int id = (int)v->v.num;
        if (b->present[id]) {
            free(str);
            return bad(l, v, "two vocab tokens have the same id");
        }
        b->present[id] = 1;
        str[id] = (Str){v->key, v->key_len};
    }
    for (uint32_t i = 0; added && i < added->n; i++) {
        const Jt *a = &added->v.items[i], *c = jt_get(a, "content");
        int id = (int)jt_get(a, "id")->v.num;
        if (!c || c->type != JT_STR || !c->n) {
            free(str);
            return bad(l, a, "an added token needs a content string");
        }
        b->special[id] = (uint8_t)flag(a, "special", 0);
        if (!b->present[id]) str[id] = (Str){c->v.str, c->n};
        b->present[id] = 1;
    }
    size_t total = 0;
    for (int id = 0; id < b->n; id++) total += str[id].n;
    b->off = calloc((size_t)b->n + 1, sizeof *b->off);
    b->str_off = calloc((size_t)b->n + 1, sizeof *b->str_off);
    b->bytes = malloc(total + 1);
    b->str_bytes = malloc(total + 1);
    int rc = 0;
    if (!b->off || !b->str_off || !b->bytes || !b->str_bytes)
        rc = err_set(l->e, "%s: out of memory", l->path);
    for (int id = 0; !rc && id < b->n; id++) {
        memcpy(b->str_bytes + b->str_off[id], str[id].s, str[id].n);
        b->str_off[id + 1] = b->str_off[id] + str[id].n;
        b->off[id + 1] = b->off[id] + token_bytes(b, str[id].s, str[id].n, b->bytes + b->off[id]);
    }
    free(str);
    return rc;
}

/* The id of a token as written in tokenizer.json (vocab form), or -1. */
static int id_of(const Bpe *b, const char *s, size_t n, unsigned char *scratch)
{
    size_t k = token_bytes(b, s, n, scratch);
    return bpe_lookup(b, scratch, k);
}

static int merge_sides(Ld *l, const Jt *m, Str *a, Str *c)
{
    if (m->type == JT_ARR && m->n == 2 && m->v.items[0].type == JT_STR && m->v.items[1].type == JT_STR) {
        *a = (Str){m->v.items[0].v.str, m->v.items[0].n};
        *c = (Str){m->v.items[1].v.str, m->v.items[1].n};
        return 0;
    }
    if (m->type == JT_STR) {
        const char *sp = memchr(m->v.str, ' ', m->n);
        if (sp && !memchr(sp + 1, ' ', m->n - (size_t)(sp - m->v.str) - 1)) {
            *a = (Str){m->v.str, (uint32_t)(sp - m->v.str)};
            *c = (Str){sp + 1, m->n - a->n - 1};
            return 0;
        }
    }
    return bad(l, m, "a merge must be \"a b\" or [\"a\", \"b\"]");
}

/* Merge i: (a, b) -> the token a+b, rank i. */
static int merges(Ld *l, const Jt *list)
{
    Bpe *b = l->b;
    /* linear probing stays short up to about half full */
    uint32_t size = 1024;
    while (size < list->n + list->n / 2) size <<= 1;
    b->pair_tab = calloc(size, sizeof *b->pair_tab);
    b->pair_mask = size - 1;
    unsigned char *buf = malloc(2 * 4096 + 16);
    b->inert = malloc((size_t)b->n);
    int rc = !b->pair_tab || !buf || !b->inert ? err_set(l->e, "%s: out of memory", l->path) : 0;
    if (!rc) memset(b->inert, 1, (size_t)b->n);
    for (uint32_t i = 0; !rc && i < list->n; i++) {
        Str sa = {0}, sb = {0};
        if ((rc = merge_sides(l, &list->v.items[i], &sa, &sb))) break;
        if (sa.n + sb.n > 4096) {
            rc = bad(l, &list->v.items[i], "a merge token is too long");
            break;
        }
        int ia = id_of(b, sa.s, sa.n, buf), ib = id_of(b, sb.s, sb.n, buf);
        size_t ka = token_bytes(b, sa.s, sa.n, buf);
        size_t kb = token_bytes(b, sb.s, sb.n, buf + ka);
        int ic = bpe_lookup(b, buf, ka + kb);
        if (ia < 0 || ib < 0 || ic < 0) {
            char msg[200];
            snprintf(msg, sizeof msg, "merge %u (\"%.*s\" \"%.*s\"): %s is not in the vocab", i,
                     (int)(sa.n < 40 ? sa.n : 40), sa.s, (int)(sb.n < 40 ? sb.n : 40), sb.s,
                     ia < 0 ? "the first token" : ib < 0 ? "the second token" : "what it makes");
            rc = bad(l, &list->v.items[i], msg);
            break;
        }
        bpe_pair_insert(b, ia, ib, ic, (int32_t)i);
        b->inert[ia] = b->inert[ib] = 0;
    }
    free(buf);
    return rc;
}

static int byte_tokens(Ld *l)
{
    Bpe *b = l->b;
    for (unsigned c = 0; c < 256; c++) {
        char name[8];
        unsigned char u = (unsigned char)c, scratch[8];
        snprintf(name, sizeof name, "<0x%02X>", c);
        b->fallback_id[c] = id_of(b, name, 6, scratch);
        b->byte_id[c] = b->byte_level ? bpe_lookup(b, &u, 1) : -1;
        if (b->byte_level && b->byte_id[c] < 0)
            return err_set(l->e, "%s: a ByteLevel vocabulary without a token for byte 0x%02x "
                                 "(character U+%04X)", l->path, c, bpe_byte_char(c));
    }
    return 0;
}

/* "" and null mean none; anything else changes the ids. */
static int no_affix(Ld *l, const Jt *model, const char *key)
{
    const char *s = jt_str(model, key);
    const Jt *v = jt_get(model, key);
    if (v && v->type != JT_NULL && !(s && !*s))
        return err_set(l->e, "%s: model BPE with %s is not supported", l->path, key);
    return 0;
}

static int model(Ld *l, const Jt *root)
{
    Bpe *b = l->b;
    const Jt *m = jt_get(root, "model"), *type = jt_get(m, "type");
    if (!m || m->type != JT_OBJ) return bad(l, root, "no \"model\" object");
    if (!jt_is(type, "BPE") && !(type == NULL && jt_get(m, "merges")))
        return refuse(l, "model", type);
    const Jt *dropout = jt_get(m, "dropout"), *vocab = jt_get(m, "vocab"), *list = jt_get(m, "merges");
    if (dropout && dropout->type != JT_NULL && !(dropout->type == JT_NUM && dropout->v.num == 0))
        return err_set(l->e, "%s: model BPE with dropout is not supported", l->path);
    if (no_affix(l, m, "continuing_subword_prefix") || no_affix(l, m, "end_of_word_suffix")) return -1;
    if (!vocab || vocab->type != JT_OBJ) return bad(l, m, "model BPE without a vocab object");
    if (!list || list->type != JT_ARR) return bad(l, m, "model BPE without a merges list");
    b->ignore_merges = flag(m, "ignore_merges", 0);
    b->byte_fallback = flag(m, "byte_fallback", 0);
    b->fuse_unk = flag(m, "fuse_unk", 0);
    const Jt *added = jt_get(root, "added_tokens");
    if (added && added->type != JT_ARR && added->type != JT_NULL)
        return bad(l, added, "added_tokens must be a list");
    if (place_tokens(l, vocab, added && added->type == JT_ARR ? added : NULL)) return -1;
    if (bpe_build_tokens(b, l->e)) return err_wrap(l->e, "%s", l->path);
    if (byte_tokens(l) || merges(l, list)) return -1;
    const char *unk = jt_str(m, "unk_token");
    unsigned char scratch[4096];
    b->unk = -1;
    if (unk && strlen(unk) < sizeof scratch && (b->unk = id_of(b, unk, strlen(unk), scratch)) < 0)
        return err_set(l->e, "%s: unk_token %s is not in the vocab", l->path, unk);
    return 0;
}

/* ---- added tokens ------------------------------------------------------------ */

static int by_first_then_longest(const void *x, const void *y)
{
    const AddedTok *a = x, *b = y;
    if (a->s[0] != b->s[0]) return a->s[0] < b->s[0] ? -1 : 1;
    return a->len != b->len ? (a->len > b->len ? -1 : 1) : (a->id > b->id) - (a->id < b->id);
}

static int added_tokens(Ld *l, const Jt *root)
{
    Bpe *b = l->b;
    const Jt *list = jt_get(root, "added_tokens");
    uint32_t n = list && list->type == JT_ARR ? list->n : 0;
    b->added = calloc(n ? n : 1, sizeof *b->added);
    if (!b->added) return err_set(l->e, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        const Jt *a = &list->v.items[i];
        const char *content = jt_str(a, "content");
        static const char *const refused[] = {"lstrip", "rstrip", "single_word"};
        for (int k = 0; k < 3; k++)
            if (flag(a, refused[k], 0))
                return err_set(l->e, "%s: added token %s: %s true is not supported", l->path, content,
                               refused[k]);
        if (flag(a, "normalized", 0) && !flag(a, "special", 0) && b->n_norm)
            return err_set(l->e, "%s: added token %s: normalized true (matched in the normalized "
                                 "text) is not supported", l->path, content);
        int id = (int)jt_get(a, "id")->v.num;
        const Jt *c = jt_get(a, "content");
        /* the content as written: added tokens are matched in the raw text */
        b->added[b->n_added++] = (AddedTok){id, (const unsigned char *)b->str_bytes, c->n};
        unsigned char *copy = malloc(c->n);
        if (!copy) return err_set(l->e, "out of memory");
        memcpy(copy, c->v.str, c->n);
        b->added[b->n_added - 1].s = copy;
    }
    qsort(b->added, (size_t)b->n_added, sizeof *b->added, by_first_then_longest);
    int at = 0;
    for (int c = 0; c <= 256; c++) {
        while (at < b->n_added && b->added[at].s[0] < c) at++;
        b->added_first[c] = at;
    }
    return 0;
}

/* ---- post-processor and tokenizer_config.json --------------------------------- */

static int push_ids(Ld *l, int **ids, int *n, const Jt *list)
{
    for (uint32_t i = 0; list && list->type == JT_ARR && i < list->n; i++) {
        const Jt *v = &list->v.items[i];
        int id = (int)v->v.num;
        if (v->type != JT_NUM || v->v.num < 0 || v->v.num >= l->b->n)
            return bad(l, v, "a template's special token id is outside the vocabulary");
        if (append(l, ids, n, &id, sizeof id)) return -1;
    }
    return 0;
}

static int template(Ld *l, const Jt *o)
{
    Bpe *b = l->b;
    const Jt *single = jt_get(o, "single"), *specials = jt_get(o, "special_tokens");
    int seen_a = 0;
    if (!single || single->type != JT_ARR) return bad(l, o, "TemplateProcessing without single");
    for (uint32_t i = 0; i < single->n; i++) {
        const Jt *it = &single->v.items[i], *sp = jt_get(it, "SpecialToken"), *seq = jt_get(it, "Sequence");
        if (seq) {
            if (!jt_is(jt_get(seq, "id"), "A") || seen_a)
                return bad(l, it, "TemplateProcessing single must hold the sequence $A once");
            seen_a = 1;
            continue;
        }
        const char *name = jt_str(sp, "id");
        const Jt *tok = name ? jt_get(specials, name) : NULL;
        if (!tok) return bad(l, it, "TemplateProcessing: a special token not in special_tokens");
        if (push_ids(l, seen_a ? &b->suffix : &b->prefix, seen_a ? &b->n_suffix : &b->n_prefix,
                     jt_get(tok, "ids")))
            return -1;
    }
    return seen_a ? 0 : bad(l, o, "TemplateProcessing single without $A");
}

/* Returns 1 when a template decided the special tokens. */
static int post_processor(Ld *l, const Jt *o, int *templated)
{
    if (!o || o->type == JT_NULL) return 0;
    const Jt *type = jt_get(o, "type");
    if (jt_is(type, "Sequence")) {
        const Jt *list = jt_get(o, "processors");
        for (uint32_t i = 0; list && list->type == JT_ARR && i < list->n; i++)
            if (post_processor(l, &list->v.items[i], templated)) return -1;
        return 0;
    }
    if (jt_is(type, "ByteLevel")) return 0; /* offsets only */
    if (jt_is(type, "TemplateProcessing")) {
        if (*templated) return err_set(l->e, "%s: two TemplateProcessing post-processors", l->path);
        *templated = 1;
        return template(l, o);
    }
    return refuse(l, "post_processor", type);
}

/* A token of tokenizer_config.json: "text" or {"content": "text"}. */
static int config_token(Ld *l, const Jt *cfg, const char *key, const char *cfg_path)
{
    const Jt *v = jt_get(cfg, key);
    if (v && v->type == JT_OBJ) v = jt_get(v, "content");
    if (!v || v->type != JT_STR) return -1;
    for (int i = 0; i < l->b->n_added; i++)
        if (l->b->added[i].len == v->n && !memcmp(l->b->added[i].s, v->v.str, v->n)) return l->b->added[i].id;
    unsigned char scratch[4096];
    int id = v->n < sizeof scratch ? id_of(l->b, v->v.str, v->n, scratch) : -1;
    if (id < 0) err_set(l->e, "%s: %s %s is not a token of the vocabulary", cfg_path, key, v->v.str);
    return id < 0 ? -2 : id;
}

static int config(Ld *l, const char *dir, int templated)
{
    Bpe *b = l->b;
    char path[PATH_BUF];
    void *text = NULL;
    size_t len;
    unsigned char eot[] = "<|endoftext|>";
    b->eot = bpe_lookup(b, eot, sizeof eot - 1);
    if (path_fmt(path, sizeof path, l->e, "%s/%s", dir, HF_CONFIG_FILE)) return -1;
    if (access(path, F_OK) != 0) return 0;
    if (read_file(path, HF_MAX_BYTES, &text, &len, l->e)) return -1;
    JtDoc *d = jt_parse(path, text, len, l->e);
    int rc = d ? 0 : -1;
    const Jt *cfg = d ? jt_root(d) : NULL;
    int bos = d ? config_token(l, cfg, "bos_token", path) : -1;
    int eos = d ? config_token(l, cfg, "eos_token", path) : -1;
    if (!rc && (bos == -2 || eos == -2)) rc = -1;
    if (!rc && eos >= 0) b->eot = eos;
    if (!rc && bos >= 0) b->bos = bos;
    if (!rc && !templated && flag(cfg, "add_bos_token", 0) && bos >= 0)
        rc = append(l, &b->prefix, &b->n_prefix, &bos, sizeof bos);
    if (!rc && !templated && flag(cfg, "add_eos_token", 0) && eos >= 0)
        rc = append(l, &b->suffix, &b->n_suffix, &eos, sizeof eos);
    jt_free(d);
    free(text);
    return rc;
}

/* ---- per-token decoding (bpe_token_bytes) ------------------------------------- */

/* Each token through the decoder's steps that act on one token alone; the
 * steps that need the others (Fuse, Strip after it, Metaspace's first
 * token) are bpe_decode's. */
static int decoded_alone(Ld *l)
{
    Bpe *b = l->b;
    size_t cap = b->str_off[b->n] * 2 + 16, at = 0;
    b->dec_off = calloc((size_t)b->n + 1, sizeof *b->dec_off);
    b->dec_bytes = malloc(cap);
    if (!b->dec_off || !b->dec_bytes) return err_set(l->e, "out of memory");
    for (int id = 0; id < b->n; id++) {
        unsigned char *out = NULL;
        size_t n = 0;
        if (b->present[id] && hf_decode_one(b, id, &out, &n, l->e)) return -1;
        if (at + n > cap) {
            while (at + n > cap) cap *= 2;
            unsigned char *p = realloc(b->dec_bytes, cap);
            if (!p) {
                free(out);
                return err_set(l->e, "out of memory");
            }
            b->dec_bytes = p;
        }
        if (n) memcpy(b->dec_bytes + at, out, n);
        free(out);
        at += n;
        b->dec_off[id + 1] = at;
    }
    return 0;
}

static int load_doc(Ld *l, const char *dir)
{
    const Jt *root = jt_root(l->doc);
    int templated = 0;
    if (root->type != JT_OBJ) return bad(l, root, "not a JSON object");
    const Jt *trunc = jt_get(root, "truncation");
    if (trunc && trunc->type != JT_NULL)
        return err_set(l->e, "%s: truncation is not supported (set it to null)", l->path);
    if (normalizer(l, jt_get(root, "normalizer")) || pre_tokenizer(l, jt_get(root, "pre_tokenizer")) ||
        model(l, root) || added_tokens(l, root) || decoder(l, jt_get(root, "decoder")) ||
        post_processor(l, jt_get(root, "post_processor"), &templated) || config(l, dir, templated) ||
        decoded_alone(l))
        return -1;
    return 0;
}

int hf_load(Bpe *b, const char *dir, Err *e)
{
    char path[PATH_BUF];
    void *text = NULL;
    size_t len;
    if (path_fmt(path, sizeof path, e, "%s/%s", dir, HF_TOKENIZER_FILE) ||
        read_file(path, HF_MAX_BYTES, &text, &len, e))
        return -1;
    b->hf = 1;
    b->eot = -1;
    b->bos = -1;
    Ld l = {b, jt_parse(path, text, len, e), path, e};
    int rc = l.doc ? load_doc(&l, dir) : -1;
    jt_free(l.doc);
    free(text);
    return rc;
}

int hf_is_gpt2(const char *dir)
{
    char path[PATH_BUF];
    void *text = NULL;
    size_t len;
    Err e;
    if (path_fmt(path, sizeof path, &e, "%s/%s", dir, HF_TOKENIZER_FILE) ||
        read_file(path, HF_MAX_BYTES, &text, &len, &e))
        return 0;
    JtDoc *d = jt_parse(path, text, len, &e);
    const Jt *root = d ? jt_root(d) : NULL, *m = jt_get(root, "model");
    const Jt *pre = jt_get(root, "pre_tokenizer"), *norm = jt_get(root, "normalizer");
    int gpt2 = root && jt_is(jt_get(pre, "type"), "ByteLevel") && flag(pre, "use_regex", 1) &&
               !flag(pre, "add_prefix_space", 0) && (!norm || norm->type == JT_NULL) &&
               jt_is(jt_get(m, "type"), "BPE") && !flag(m, "byte_fallback", 0) &&
               !flag(m, "ignore_merges", 0);
    jt_free(d);
    free(text);
    return gpt2;
}

void hf_free(Bpe *b)
{
    for (int i = 0; i < b->n_norm; i++) {
        free(b->norm[i].from);
        free(b->norm[i].to);
    }
    for (int i = 0; i < b->n_pre; i++)
        if (b->pre[i].re) pcre2_code_free(b->pre[i].re);
    for (int i = 0; i < b->n_dec; i++) {
        free(b->dec[i].from);
        free(b->dec[i].to);
    }
    for (int i = 0; i < b->n_added; i++) free((void *)b->added[i].s);
    free(b->norm);
    free(b->pre);
    free(b->dec);
    free(b->added);
    free(b->present);
    free(b->special);
    free(b->inert);
    free(b->str_bytes);
    free(b->str_off);
    free(b->dec_bytes);
    free(b->dec_off);
    free(b->prefix);
    free(b->suffix);
}
