/* BPE encoding (loading: bpe_load.c for GPT-2's file pairs, hf_load.c for
 * tokenizer.json; tokenizer.json's pipeline around the merges: hf_pipe.c).
 * GPT-2's pairs: text is cut into pieces by GPT-2's pattern; each piece is
 * one token when its bytes are one, else its bytes are merged as tiktoken
 * merges them: the adjacent pair whose concatenation ranks lowest, leftmost
 * first, until no adjacent pair concatenates to a token. tokenizer.json:
 * the same merge order over the pairs its merges list (only those), from
 * the piece's bytes (ByteLevel) or characters (byte_fallback, unk). */
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "worker/data/bpe.h"
#include "worker/data/bpe_impl.h"

/* The pattern as tiktoken's gpt2 encoding writes it. PCRE2_UCP gives \s,
 * \p{L}, \p{N} their Unicode meaning. */
const char BPE_GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ---- tables ----------------------------------------------------------------- */

static uint32_t table_size(size_t items)
{
    uint32_t n = 1024;
    while (n < 2 * items) n <<= 1;
    return n;
}

static uint64_t head8(const unsigned char *p, size_t len)
{
    uint64_t h = 0;
    memcpy(&h, p, len < 8 ? len : 8);
    return h;
}

static uint32_t bytes_hash(const unsigned char *p, size_t len)
{
    uint64_t h = (head8(p, len) ^ (len * 0x9E3779B97F4A7C15ull)) * 0xD6E8FEB86659FD93ull;
    if (len > 8) h = fnv1a64(h, p + 8, len - 8);
    return (uint32_t)(h >> 32);
}

const TokSlot *bpe_find(const Bpe *b, const unsigned char *p, size_t len)
{
    uint64_t head = head8(p, len);
    for (uint32_t h = bytes_hash(p, len) & b->tok_mask;; h = (h + 1) & b->tok_mask) {
        const TokSlot *s = &b->tok_tab[h];
        if (s->id < 0) return NULL;
        if (s->head == head && s->len == len &&
            (len <= 8 || !memcmp(b->bytes + b->off[s->id] + 8, p + 8, len - 8)))
            return s;
    }
}

int bpe_lookup(const Bpe *b, const unsigned char *p, size_t len)
{
    const TokSlot *s = bpe_find(b, p, len);
    return s ? s->id : -1;
}

static int build_tokens(Bpe *b, Err *e)
{
    uint32_t size = table_size((size_t)b->n);
    free(b->tok_tab);
    b->tok_tab = malloc(size * sizeof *b->tok_tab);
    if (!b->tok_tab) return err_set(e, "out of memory (token table)");
    for (uint32_t i = 0; i < size; i++) b->tok_tab[i] = (TokSlot){0, -1, 0, 0};
    b->tok_mask = size - 1;
    for (int id = 0; id < b->n; id++) {
        const unsigned char *p = b->bytes + b->off[id];
        size_t len = b->off[id + 1] - b->off[id];
        if (b->present && !b->present[id]) continue;
        int old = bpe_lookup(b, p, len);
        if (old >= 0)
            return err_set(e, "tokens %d and %d have the same bytes \"%.*s\"", old, id,
                           (int)(len > 60 ? 60 : len), (const char *)p);
        uint32_t h = bytes_hash(p, len) & b->tok_mask;
        while (b->tok_tab[h].id >= 0) h = (h + 1) & b->tok_mask;
        b->tok_tab[h] = (TokSlot){head8(p, len), id, (uint16_t)len,
                                  b->rank && b->rank[id] != BPE_NO_RANK};
    }
    return 0;
}

void bpe_pair_insert(Bpe *b, int left, int right, int id, int32_t rank)
{
    uint64_t key = ((uint64_t)(uint32_t)left << 32 | (uint32_t)right) + 1;
    uint32_t h = bpe_pair_hash(key) & b->pair_mask;
    while (b->pair_tab[h].key && b->pair_tab[h].key != key) h = (h + 1) & b->pair_mask;
    b->pair_tab[h] = (PairSlot){key, id, rank};
}

/* Every split of every merged token into two ranked tokens: tiktoken merges
 * any adjacent pair that concatenates to a token, not only the pair of its
 * merges line. */
static int build_pairs(Bpe *b, Err *e)
{
    size_t splits = 0;
    for (int id = 0; id < b->n; id++)
        if (b->rank[id] != BPE_NO_RANK && b->rank[id] != BPE_BYTE_RANK)
            splits += b->off[id + 1] - b->off[id] - 1;
    uint32_t size = table_size(splits);
    free(b->pair_tab);
    b->pair_tab = calloc(size, sizeof *b->pair_tab);
    if (!b->pair_tab) return err_set(e, "out of memory (pair table)");
    b->pair_mask = size - 1;
    for (int id = 0; id < b->n; id++) {
        if (b->rank[id] == BPE_NO_RANK || b->rank[id] == BPE_BYTE_RANK) continue;
        const unsigned char *p = b->bytes + b->off[id];
        size_t len = b->off[id + 1] - b->off[id];
        for (size_t k = 1; k < len; k++) {
            int l = bpe_lookup(b, p, k), r = bpe_lookup(b, p + k, len - k);
            if (l >= 0 && r >= 0 && b->rank[l] != BPE_NO_RANK && b->rank[r] != BPE_NO_RANK)
                bpe_pair_insert(b, l, r, id, b->rank[id]);
        }
    }
    return 0;
}

int bpe_build_tables(Bpe *b, Err *e)
{
    return build_tokens(b, e) || build_pairs(b, e) ? -1 : 0;
}

int bpe_build_tokens(Bpe *b, Err *e) { return build_tokens(b, e); }

pcre2_code *bpe_compile(const char *pattern, size_t len, uint32_t flags, int *jit, const char *what,
                        Err *e)
{
    int code;
    PCRE2_SIZE at;
    /* MATCH_INVALID_UTF: ill-formed bytes match nothing and are skipped
     * over, so they fall between pieces (encoded byte by byte) */
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, len,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | flags, &code,
                                   &at, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        err_set(e, "PCRE2 cannot compile %s at offset %zu: %s", what, (size_t)at, (const char *)msg);
        return NULL;
    }
    /* the interpreter gives the same matches, only slower; MPITRAIN_BPE_NO_JIT
     * forces it (to test it, or where JIT memory is refused) */
    const char *no_jit = getenv("MPITRAIN_BPE_NO_JIT");
    *jit = !(no_jit && *no_jit && strcmp(no_jit, "0")) &&
           pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
    return re;
}

int bpe_compile_pattern(Bpe *b, Err *e)
{
    b->re = bpe_compile(BPE_GPT2_PATTERN, PCRE2_ZERO_TERMINATED, 0, &b->jit, "GPT-2's pattern", e);
    return b->re ? 0 : -1;
}

int bpe_vocab_size(const Bpe *b) { return b->n; }
int bpe_eot(const Bpe *b) { return b->eot; }
int bpe_bos(const Bpe *b) { return b->bos; }
int bpe_is_hf(const Bpe *b) { return b->hf; }
int bpe_uses_jit(const Bpe *b)
{
    if (!b->hf) return b->jit;
    for (int i = 0; i < b->n_pre; i++)
        if (b->pre[i].re && !b->pre[i].jit) return 0;
    return 1;
}

const unsigned char *bpe_token_bytes(const Bpe *b, int id, size_t *len)
{
    if (id < 0 || id >= b->n || (b->present && !b->present[id])) return NULL;
    if (b->dec_bytes) {
        *len = b->dec_off[id + 1] - b->dec_off[id];
        return b->dec_bytes + b->dec_off[id];
    }
    *len = b->off[id + 1] - b->off[id];
    return b->bytes + b->off[id];
}

/* ---- encoding --------------------------------------------------------------- */

/* Pieces already merged in this call: most text repeats its words. */
#define CACHE_SLOTS (1u << 16)
#define CACHE_MAX_PIECE 64
#define CACHE_MIN_TEXT 4096 /* a short text (a prompt) would not repay the table */

/* A piece's bytes are kept in the cache's own buffer: tokenizer.json's
 * pieces live in buffers the pipeline reuses. len 0: empty slot. */
typedef struct {
    uint32_t key, len, start, count; /* key: offset into Enc.keys */
} CacheSlot;

struct Enc {
    const Bpe *b;
    int **ids;
    size_t *n, *cap;
    int32_t *rank;        /* scratch: rank of the pair (i, i+1) */
    size_t rank_cap;
    int32_t *link;        /* scratch of merge_long: next and prev per symbol */
    size_t link_cap;
    uint64_t *heap;       /* scratch of merge_long */
    size_t heap_cap;
    CacheSlot *cache;     /* NULL until the first merged piece */
    int use_cache;        /* the text is long enough */
    int *cached;          /* the ids of cached pieces, back to back */
    size_t n_cached, cap_cached, n_slots;
    unsigned char *keys;  /* the bytes of cached pieces */
    size_t n_keys, cap_keys;
    pcre2_match_data *md;
    pcre2_match_context *mc;
    Err *e;
};

Err *enc_err(Enc *c) { return c->e; }

static int grow(void **p, size_t *cap, size_t need, size_t size, Err *e)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * size);
    if (!q) return err_set(e, "out of memory (%zu tokens)", c);
    *p = q;
    *cap = c;
    return 0;
}

static int32_t pair_rank(const Bpe *b, int left, int right)
{
    const PairSlot *s = bpe_pair(b, left, right);
    return s ? s->rank : BPE_NO_RANK;
}

size_t utf8_char_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t k = c < 0x80 ? 1 : c >= 0xC2 && c < 0xE0 ? 2 : c >= 0xE0 && c < 0xF0 ? 3
             : c >= 0xF0 && c < 0xF5 ? 4 : 0;
    if (!k || k > n) return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (k == 3 && ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0))) return 0;
    if (k == 4 && ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90))) return 0;
    return k;
}

/* The symbols merging starts from, into out (room for len): a piece's bytes
 * (byte-level vocabularies), else its characters, each its token, or its
 * bytes' <0xXX> tokens (byte_fallback), or unk_token (consecutive ones
 * fused into one with fuse_unk), or nothing when there is neither, as in
 * tokenizers' BPE. Returns the count. */
static size_t first_symbols(const Bpe *b, const unsigned char *p, size_t len, int *out)
{
    size_t m = 0;
    if (!b->hf || b->byte_level) {
        for (size_t i = 0; i < len; i++) out[m++] = b->byte_id[p[i]];
        return m;
    }
    int after_unk = 0;
    for (size_t i = 0, k; i < len; i += k) {
        k = utf8_char_len(p + i, len - i);
        if (!k) k = 1; /* an ill-formed byte stands alone */
        int id = bpe_lookup(b, p + i, k), fb = b->byte_fallback;
        for (size_t j = 0; id < 0 && fb && j < k; j++) fb = b->fallback_id[p[i + j]] >= 0;
        if (id >= 0 || fb) {
            if (id >= 0) out[m++] = id;
            else
                for (size_t j = 0; j < k; j++) out[m++] = b->fallback_id[p[i + j]];
            after_unk = 0;
        } else if (b->unk >= 0) {
            if (!(b->fuse_unk && after_unk)) out[m++] = b->unk;
            after_unk = 1;
        }
    }
    return m;
}

/* Merges the m symbols of out in place; returns the ids left. A scan per
 * merge, as tiktoken: quadratic, and the fastest way for short pieces. */
static size_t merge_piece(const Bpe *b, int *out, size_t m, int32_t *rk)
{
    for (size_t i = 0; i + 1 < m; i++) rk[i] = pair_rank(b, out[i], out[i + 1]);
    while (m > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < m; i++)
            if (rk[i] < rk[best]) best = i;
        if (rk[best] == BPE_NO_RANK) break;
        out[best] = bpe_pair(b, out[best], out[best + 1])->id;
        memmove(out + best + 1, out + best + 2, (m - best - 2) * sizeof *out);
        memmove(rk + best + 1, rk + best + 2, (m - best - 2) * sizeof *rk);
        m--;
        if (best > 0) rk[best - 1] = pair_rank(b, out[best - 1], out[best]);
        if (best + 1 < m) rk[best] = pair_rank(b, out[best], out[best + 1]);
    }
    return m;
}

/* ---- long pieces: the same merges in O(n log n) ------------------------------
 * A run of a thousand spaces or a base64 blob is one piece (a SentencePiece
 * vocabulary without pre-tokenizer: a whole text); merging it by scanning
 * for the best pair after each merge would take hours. Here the parts are a
 * linked list (indexed by their first symbol) and the pairs a binary
 * min-heap of rank << 32 | position: the lowest rank, leftmost first,
 * exactly merge_piece's order. An entry whose pair has changed since it was
 * pushed is dropped when it comes up. */
#define LONG_PIECE 128

typedef struct {
    uint64_t *a;
    size_t n;
} Heap;

static void heap_push(Heap *h, uint64_t v)
{
    size_t i = h->n++;
    for (; i && h->a[(i - 1) / 2] > v; i = (i - 1) / 2) h->a[i] = h->a[(i - 1) / 2];
    h->a[i] = v;
}

static uint64_t heap_pop(Heap *h)
{
    uint64_t top = h->a[0], last = h->a[--h->n];
    size_t i = 0;
    for (size_t k; (k = 2 * i + 1) < h->n; i = k) {
        if (k + 1 < h->n && h->a[k + 1] < h->a[k]) k++;
        if (h->a[k] >= last) break;
        h->a[i] = h->a[k];
    }
    if (h->n) h->a[i] = last;
    return top;
}

/* Pushes the pair that starts at part i, if it makes a token. */
static void push_pair(const Bpe *b, Heap *h, const int *out, const int32_t *next, int32_t i)
{
    if (i < 0 || next[i] < 0) return;
    int32_t r = pair_rank(b, out[i], out[next[i]]);
    if (r != BPE_NO_RANK) heap_push(h, (uint64_t)(uint32_t)r << 32 | (uint32_t)i);
}

/* merge_piece for m > LONG_PIECE; scratch: link (2*m), heap (3*m). */
static size_t merge_long(const Bpe *b, int *out, size_t m, int32_t *link, uint64_t *heap)
{
    int32_t *next = link, *prev = link + m;
    Heap h = {heap, 0};
    for (size_t i = 0; i < m; i++) {
        next[i] = i + 1 < m ? (int32_t)(i + 1) : -1;
        prev[i] = (int32_t)i - 1;
    }
    for (size_t i = 0; i + 1 < m; i++) push_pair(b, &h, out, next, (int32_t)i);
    while (h.n) {
        uint64_t top = heap_pop(&h);
        int32_t i = (int32_t)(uint32_t)top, r = (int32_t)(top >> 32), j = next[i];
        if (prev[i] == -2 || j < 0 || pair_rank(b, out[i], out[j]) != r) continue; /* stale */
        out[i] = bpe_pair(b, out[i], out[j])->id;
        next[i] = next[j];
        if (next[j] >= 0) prev[next[j]] = i;
        prev[j] = -2; /* j is gone */
        push_pair(b, &h, out, next, prev[i]);
        push_pair(b, &h, out, next, i);
    }
    size_t k = 0;
    if (m)
        for (int32_t i = 0; i >= 0; i = next[i]) out[k++] = out[i];
    return k;
}

static CacheSlot *cache_find(Enc *c, const unsigned char *p, size_t len)
{
    for (uint32_t h = bytes_hash(p, len) & (CACHE_SLOTS - 1);; h = (h + 1) & (CACHE_SLOTS - 1)) {
        CacheSlot *s = &c->cache[h];
        if (!s->len || (s->len == len && !memcmp(c->keys + s->key, p, len))) return s;
    }
}

/* Remembers a merged piece, while the cache is at most half full. */
static int cache_put(Enc *c, CacheSlot *s, const unsigned char *p, size_t len, const int *ids,
                     size_t n)
{
    if (c->n_slots >= CACHE_SLOTS / 2) return 0;
    if (grow((void **)&c->cached, &c->cap_cached, c->n_cached + n, sizeof *c->cached, c->e) ||
        grow((void **)&c->keys, &c->cap_keys, c->n_keys + len, 1, c->e))
        return -1;
    memcpy(c->cached + c->n_cached, ids, n * sizeof *ids);
    memcpy(c->keys + c->n_keys, p, len);
    *s = (CacheSlot){(uint32_t)c->n_keys, (uint32_t)len, (uint32_t)c->n_cached, (uint32_t)n};
    c->n_keys += len;
    c->n_cached += n;
    c->n_slots++;
    return 0;
}

/* Merges the *m symbols of out in place; *m becomes the ids left. */
static int merge_symbols(Enc *c, int *out, size_t *m)
{
    if (*m > LONG_PIECE) {
        if (grow((void **)&c->link, &c->link_cap, 2 * *m, sizeof *c->link, c->e) ||
            grow((void **)&c->heap, &c->heap_cap, 3 * *m, sizeof *c->heap, c->e))
            return -1;
        *m = merge_long(c->b, out, *m, c->link, c->heap);
    } else {
        if (grow((void **)&c->rank, &c->rank_cap, *m, sizeof *c->rank, c->e)) return -1;
        *m = merge_piece(c->b, out, *m, c->rank);
    }
    return 0;
}

/* merge_symbols for a long run of symbols (a SentencePiece vocabulary's
 * whole text is one piece): a symbol no merge takes (tokenizer.json's
 * <0x0A> of a newline) is a wall no merge crosses, and the merges on either
 * side of it do not depend on each other, so each stretch between walls
 * merges on its own: the same ids, in a fraction of the time. */
static int merge_chunks(Enc *c, int *out, size_t *m)
{
    size_t w = 0, start = 0;
    for (size_t i = 0; i <= *m; i++) {
        if (i < *m && !c->b->inert[out[i]]) continue;
        size_t k = i - start;
        if (merge_symbols(c, out + start, &k)) return -1;
        memmove(out + w, out + start, k * sizeof *out);
        w += k;
        if (i < *m) out[w++] = out[i];
        start = i + 1;
    }
    *m = w;
    return 0;
}

/* A piece of two or more bytes that is not one token. */
static int encode_merged(Enc *c, const unsigned char *p, size_t len)
{
    int *out = *c->ids + *c->n;
    CacheSlot *s = NULL;
    if (c->use_cache && len <= CACHE_MAX_PIECE) {
        if (!c->cache && !(c->cache = calloc(CACHE_SLOTS, sizeof *c->cache)))
            return err_set(c->e, "out of memory (piece cache)");
        s = cache_find(c, p, len);
        if (s->len) {
            memcpy(out, c->cached + s->start, s->count * sizeof *out);
            *c->n += s->count;
            return 0;
        }
    }
    if (len > INT32_MAX) return err_set(c->e, "a piece of %zu bytes: too long", len);
    size_t m = first_symbols(c->b, p, len, out);
    if (m > LONG_PIECE && c->b->inert ? merge_chunks(c, out, &m) : merge_symbols(c, out, &m))
        return -1;
    *c->n += m;
    return s ? cache_put(c, s, p, len, out, m) : 0;
}

int enc_id(Enc *c, int id)
{
    if (grow((void **)c->ids, c->cap, *c->n + 1, sizeof **c->ids, c->e)) return -1;
    (*c->ids)[(*c->n)++] = id;
    return 0;
}

/* A piece that is itself a token is that token: tiktoken's rule for a
 * token merges can make, tokenizers' ignore_merges for any. */
int enc_piece(Enc *c, const unsigned char *p, size_t len)
{
    const Bpe *b = c->b;
    if (!len) return 0;
    if (grow((void **)c->ids, c->cap, *c->n + len, sizeof **c->ids, c->e)) return -1;
    if (len == 1 && (!b->hf || b->byte_level)) {
        (*c->ids)[(*c->n)++] = b->byte_id[p[0]];
        return 0;
    }
    const TokSlot *s = b->hf && !b->ignore_merges ? NULL : bpe_find(b, p, len);
    if (s && (b->hf || s->ranked)) {
        (*c->ids)[(*c->n)++] = s->id;
        return 0;
    }
    return encode_merged(c, p, len);
}

/* Bytes no piece covers are ill-formed UTF-8: one token per byte. */
static int encode_gap(Enc *c, const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (enc_piece(c, p + i, 1)) return -1;
    return 0;
}

/* The pattern sees a window of the text from the current position on, not
 * all the rest: PCRE2's interpreter, with MATCH_INVALID_UTF, scans its
 * subject for the valid stretch it is in on every call, which made long
 * texts quadratic. The pattern looks behind nothing (hf_load.c refuses a
 * look-behind) and ahead at most a few bytes past a piece (a contraction's
 * letters, (?!\S)), so a piece that ends WINDOW_MARGIN bytes before the
 * window's end is the piece of the whole text; else the window doubles and
 * the match is tried again. */
#define WINDOW_BYTES 512u
#define WINDOW_MARGIN 16

int enc_match(Enc *c, const pcre2_code *re, int jit, const unsigned char *s, size_t n, size_t at,
              size_t *start, size_t *end)
{
    pcre2_match_data *md = c->md;
    for (size_t win = WINDOW_BYTES;; win *= 2) {
        size_t len = n - at > win ? win : n - at;
        int rc = jit ? pcre2_jit_match(re, s + at, len, 0, 0, md, c->mc)
                     : pcre2_match(re, s + at, len, 0, 0, md, c->mc);
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        int whole = at + len == n;
        if (rc == PCRE2_ERROR_NOMATCH && whole) {
            *start = *end = n;
            return 0;
        }
        if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return err_set(c->e, "splitting the text at byte %zu: PCRE2: %s", at, (const char *)msg);
        }
        if (rc > 0 && (whole || ov[1] + WINDOW_MARGIN <= len)) {
            *start = at + ov[0];
            *end = at + ov[1];
            return 0;
        }
    }
}

static int split_and_encode(Enc *c, const unsigned char *s, size_t n)
{
    size_t at = 0, start = 0, end = 0;
    while (at < n) {
        if (enc_match(c, c->b->re, c->b->jit, s, n, at, &start, &end) ||
            encode_gap(c, s + at, start - at))
            return -1;
        if (end == start && start < n) end = start + 1; /* no branch of GPT-2's pattern is empty */
        if (start < n && enc_piece(c, s + start, end - start)) return -1;
        at = end;
    }
    return 0;
}

int bpe_encode(const Bpe *b, const char *text, size_t n, int **ids, size_t *n_ids, size_t *cap,
               Err *e)
{
    Enc c = {.b = b, .ids = ids, .n = n_ids, .cap = cap, .e = e, .use_cache = n >= CACHE_MIN_TEXT};
    /* one pair of offsets serves every pattern: no capture groups are read */
    c.md = pcre2_match_data_create(1, NULL);
    c.mc = pcre2_match_context_create(NULL);
    /* a long run of one class (say a megabyte of spaces) needs a deep JIT stack */
    pcre2_jit_stack *js = pcre2_jit_stack_create(32 << 10, 8 << 20, NULL);
    int rc;
    if (!c.md || !c.mc || !js) {
        rc = err_set(e, "out of memory (PCRE2 match data)");
    } else {
        pcre2_jit_stack_assign(c.mc, NULL, js);
        rc = b->hf ? hf_encode_text(&c, b, (const unsigned char *)text, n)
                   : split_and_encode(&c, (const unsigned char *)text, n);
    }
    if (js) pcre2_jit_stack_free(js);
    pcre2_match_context_free(c.mc);
    pcre2_match_data_free(c.md);
    free(c.rank);
    free(c.link);
    free(c.heap);
    free(c.cache);
    free(c.cached);
    free(c.keys);
    return rc;
}

int bpe_encode_doc(const Bpe *b, const char *text, size_t n, int **ids, size_t *n_ids, size_t *cap,
                   Err *e)
{
    for (int i = 0; i < b->n_prefix; i++)
        if (grow((void **)ids, cap, *n_ids + 1, sizeof **ids, e)) return -1;
        else (*ids)[(*n_ids)++] = b->prefix[i];
    if (bpe_encode(b, text, n, ids, n_ids, cap, e)) return -1;
    for (int i = 0; i < b->n_suffix; i++)
        if (grow((void **)ids, cap, *n_ids + 1, sizeof **ids, e)) return -1;
        else (*ids)[(*n_ids)++] = b->suffix[i];
    return 0;
}

int bpe_decode(const Bpe *b, const int *ids, size_t n, unsigned char **out, size_t *len, Err *e)
{
    if (b->hf) return hf_decode(b, ids, n, out, len, e);
    size_t total = 0, k;
    for (size_t i = 0; i < n; i++) {
        if (!bpe_token_bytes(b, ids[i], &k))
            return err_set(e, "token id %d is outside the vocabulary (0..%d)", ids[i], b->n - 1);
        total += k;
    }
    unsigned char *o = malloc(total ? total : 1);
    if (!o) return err_set(e, "out of memory (%zu bytes)", total);
    *len = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = bpe_token_bytes(b, ids[i], &k);
        memcpy(o + *len, p, k);
        *len += k;
    }
    *out = o;
    return 0;
}
