#ifndef MPITRAIN_BPE_IMPL_H
#define MPITRAIN_BPE_IMPL_H
/* The inside of a Bpe, shared by bpe_load.c (files -> tables) and bpe.c
 * (text -> ids). Not part of the API. It says `struct Bpe` rather than
 * include bpe.h for its typedef: bpe.c includes this file, and no two
 * modules include each other. */
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

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

struct Bpe {
    int n;                     /* tokens */
    int eot;                   /* <|endoftext|>, or -1 */
    unsigned char *bytes;      /* token i is bytes[off[i] .. off[i+1]) */
    size_t *off;
    int32_t *rank;             /* per token: BPE_BYTE_RANK, 256 + merge line, BPE_NO_RANK */
    int byte_id[256];          /* the token of each single byte */
    TokSlot *tok_tab;          /* open addressing */
    uint32_t tok_mask;
    PairSlot *pair_tab;
    uint32_t pair_mask;
    pcre2_code *re;
    int jit;                   /* pcre2_jit_compile succeeded */
};

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
