#ifndef MPITRAIN_BPE_IMPL_H
#define MPITRAIN_BPE_IMPL_H
/* The inside of a Bpe, shared by bpe_load.c (GPT-2's file pairs -> tables),
 * hf_load.c (tokenizer.json -> tables), bpe.c (pieces -> ids) and hf_pipe.c
 * (tokenizer.json's added tokens, normalizers, pre-tokenizers, decoders).
 * Not part of the API. It says `struct Bpe` rather than
 * include bpe.h for its typedef: bpe.c includes this file, and no two
 * modules include each other. */
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#define HF_TOKENIZER_FILE "tokenizer.json"
#define HF_CONFIG_FILE "tokenizer_config.json"

/* Token ranks: tiktoken merges the adjacent pair whose concatenation has the
 * lowest rank; a merged token's rank is 256 + its line among the merges.
 * Single bytes rank below every merge; a token no merge makes (like
 * <|endoftext|>) is never produced by merging and never looked up. */
#define BPE_NO_RANK INT32_MAX
#define BPE_BYTE_RANK 0

/* A slot of the bytes -> id table. The first 8 bytes of the token are kept
 * in the slot, so most lookups (GPT-2's tokens are mostly short) touch one
 * cache line, not the slot, the offsets and the bytes. */
typedef struct {
    uint64_t head;  /* bytes 0..7, zero-padded */
    int32_t id;     /* -1: empty */
    uint16_t len;
    uint16_t ranked; /* the id has a rank: merging can make it */
} TokSlot;

/* A slot of the pair table: (left, right) -> the token they make. */
typedef struct {
    uint64_t key;   /* (left << 32 | right) + 1; 0 empty */
    int32_t id, rank;
} PairSlot;

/* tokenizer.json's components that mpitrain runs (every other one is
 * refused when the file is loaded). */
typedef enum { NORM_NFC, NORM_PREPEND, NORM_REPLACE } NormKind;
typedef struct {
    NormKind kind;
    char *from, *to;           /* Prepend: to; Replace: from -> to */
    size_t from_len, to_len;
} NormStep;

typedef enum { PRE_SPLIT, PRE_BYTELEVEL, PRE_METASPACE } PreKind;
enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER };
typedef struct {
    PreKind kind;
    pcre2_code *re;            /* Split; ByteLevel with use_regex: GPT-2's pattern */
    int jit;
    int prefix_space;          /* ByteLevel add_prefix_space */
    char rep[8];               /* Metaspace replacement (UTF-8) */
    size_t rep_len;
    int scheme, split;         /* Metaspace prepend_scheme (PREPEND_*), split */
} PreStep;

typedef enum { DEC_BYTELEVEL, DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE } DecKind;
typedef struct {
    DecKind kind;
    char *from, *to;           /* Replace; Strip: from = content; Metaspace: from = replacement */
    size_t from_len, to_len;
    int start, stop;           /* Strip */
    int scheme;                /* Metaspace */
} DecStep;

typedef struct {
    int id;
    const unsigned char *s;    /* content: into Bpe.bytes */
    size_t len;
} AddedTok;

struct Bpe {
    int n;                     /* tokens (ids 0..n-1; tokenizer.json may leave holes) */
    int eot;                   /* end of text: <|endoftext|>, tokenizer.json's eos_token; or -1 */
    int bos;                   /* tokenizer_config.json's bos_token; or -1 */
    unsigned char *bytes;      /* token i is bytes[off[i] .. off[i+1]) */
    size_t *off;
    int32_t *rank;             /* per token: BPE_BYTE_RANK, 256 + merge line, BPE_NO_RANK */
    int byte_id[256];          /* the token of each single byte */
    TokSlot *tok_tab;          /* open addressing */
    uint32_t tok_mask;
    PairSlot *pair_tab;
    uint32_t pair_mask;
    pcre2_code *re;            /* GPT-2's pairs: the pattern; tokenizer.json: NULL */
    int jit;                   /* pcre2_jit_compile succeeded */

    /* tokenizer.json only (hf = 1) */
    int hf;
    int byte_level;            /* a ByteLevel pre-tokenizer: tokens are raw bytes, else UTF-8 */
    int ignore_merges;         /* a piece that is a token is that token */
    int byte_fallback, fuse_unk, unk; /* unk: id of unk_token, or -1 */
    int fallback_id[256];      /* <0xXX> tokens (byte_fallback), -1 when absent */
    uint8_t *present;          /* per id: 1 if the id has a token (ids may have holes) */
    uint8_t *special;          /* per id: an added token with special: true */
    uint8_t *inert;            /* per id: 1 if no merge takes it, on either side */
    unsigned char *str_bytes;  /* per id: the token as tokenizer.json writes it (the decoders' input) */
    size_t *str_off;
    unsigned char *dec_bytes;  /* per id: the token decoded on its own (bpe_token_bytes) */
    size_t *dec_off;
    NormStep *norm; int n_norm;
    PreStep *pre; int n_pre;
    DecStep *dec; int n_dec;
    AddedTok *added; int n_added;  /* longest first */
    int added_first[257];      /* added tokens of first byte c: added[added_first[c] .. added_first[c+1]) */
    int *prefix, n_prefix;     /* ids put before a text (post-processor's template, add_bos_token) */
    int *suffix, n_suffix;
};

/* Encoding state of one bpe_encode call (bpe.c; the pipeline in hf_pipe.c). */
typedef struct Enc Enc;
/* Appends the ids of one piece (pre-tokenized text) to the output. */
int enc_piece(Enc *c, const unsigned char *p, size_t len);
/* Appends one id. */
int enc_id(Enc *c, int id);
Err *enc_err(Enc *c);
/* The next match of re in s[at..n) (the window search of bpe.c) into
 * [*start, *end); *start = *end = n when there is none. */
int enc_match(Enc *c, const pcre2_code *re, int jit, const unsigned char *s, size_t n, size_t at,
              size_t *start, size_t *end);
/* tokenizer.json's pipeline over a text (hf_pipe.c). */
int hf_encode_text(Enc *c, const struct Bpe *b, const unsigned char *s, size_t n);
int hf_decode(const struct Bpe *b, const int *ids, size_t n, unsigned char **out, size_t *len,
              Err *e);
/* One token through the decoder's steps that act on a token alone. */
int hf_decode_one(const struct Bpe *b, int id, unsigned char **out, size_t *len, Err *e);
/* Loads dir/tokenizer.json (+ tokenizer_config.json) into b (hf_load.c). */
int hf_load(struct Bpe *b, const char *dir, Err *e);
void hf_free(struct Bpe *b);
/* Whether dir/tokenizer.json is GPT-2's pipeline (ByteLevel with GPT-2's
 * pattern, no normalizer, BPE without byte_fallback or ignore_merges). */
int hf_is_gpt2(const char *dir);
/* Compiles a pattern with PCRE2_UTF | UCP (and flags), JIT when allowed. */
pcre2_code *bpe_compile(const char *pattern, size_t len, uint32_t flags, int *jit, const char *what,
                        Err *e);
/* GPT-2's pre-tokenization pattern (tiktoken's gpt2, HF's ByteLevel use_regex). */
extern const char BPE_GPT2_PATTERN[];
/* Builds the bytes -> id table only (tokenizer.json: merges are its own list). */
int bpe_build_tokens(struct Bpe *b, Err *e);
/* (left, right) -> id with rank; a later duplicate replaces an earlier one,
 * as tokenizers' HashMap does. */
void bpe_pair_insert(struct Bpe *b, int left, int right, int id, int32_t rank);
/* GPT-2's byte alphabet (bpe_load.c): the byte a character stands for, or
 * -1; the character of a byte. */
int bpe_char_byte(unsigned cp);
unsigned bpe_byte_char(unsigned byte);
/* One UTF-8 character at s[0..n): its length, or 0 when ill-formed. */
size_t utf8_char_len(const unsigned char *s, size_t n);

/* Token id of bytes p[0..len), or -1. */
int bpe_lookup(const struct Bpe *b, const unsigned char *p, size_t len);
/* The table slot of bytes p[0..len), or NULL. */
const TokSlot *bpe_find(const struct Bpe *b, const unsigned char *p, size_t len);
/* Fills the hash tables from b->bytes/off/rank (n set). */
int bpe_build_tables(struct Bpe *b, Err *e);
/* Compiles GPT-2's pre-tokenization pattern into b->re. */
int bpe_compile_pattern(struct Bpe *b, Err *e);

static inline uint32_t bpe_pair_hash(uint64_t key)
{
    return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32);
}

/* The slot of (left, right), or NULL when they make no token. */
static inline const PairSlot *bpe_pair(const struct Bpe *b, int left, int right)
{
    uint64_t key = ((uint64_t)(uint32_t)left << 32 | (uint32_t)right) + 1;
    for (uint32_t h = bpe_pair_hash(key) & b->pair_mask;; h = (h + 1) & b->pair_mask) {
        const PairSlot *s = &b->pair_tab[h];
        if (s->key == key) return s;
        if (!s->key) return NULL;
    }
}

#endif
