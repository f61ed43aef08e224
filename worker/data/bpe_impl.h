#ifndef MPITRAIN_BPE_IMPL_H
#define MPITRAIN_BPE_IMPL_H
/* The inside of a Bpe, shared by bpe_load.c (files -> tables) and bpe.c
 * (text -> ids). Not part of the API. */
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"
#include "worker/data/bpe.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* Token ranks: tiktoken merges the adjacent pair whose concatenation has the
 * lowest rank; a merged token's rank is 256 + its line among the merges.
 * Single bytes rank below every merge; a token no merge makes (like
 * <|endoftext|>) is never produced by merging and never looked up. */
#define BPE_NO_RANK INT32_MAX
#define BPE_BYTE_RANK 0

struct Bpe {
    int n;                     /* tokens */
    int eot;                   /* <|endoftext|>, or -1 */
    unsigned char *bytes;      /* token i is bytes[off[i] .. off[i+1]) */
    size_t *off;
    int32_t *rank;             /* per token: BPE_BYTE_RANK, 256 + merge line, BPE_NO_RANK */
    int byte_id[256];          /* the token of each single byte */
    int32_t *tok_tab;          /* bytes -> id, open addressing, -1 empty */
    uint32_t tok_mask;
    uint64_t *pair_key;        /* (left << 32 | right) + 1, 0 empty */
    int32_t *pair_id;          /* the merged token */
    uint32_t pair_mask;
    pcre2_code *re;
    int jit;                   /* pcre2_jit_compile succeeded */
};

/* Token id of bytes p[0..len), or -1. */
int bpe_lookup(const Bpe *b, const unsigned char *p, size_t len);
/* Fills the hash tables from b->bytes/off/rank (n set). */
int bpe_build_tables(Bpe *b, Err *e);
/* Compiles GPT-2's pre-tokenization pattern into b->re. */
int bpe_compile_pattern(Bpe *b, Err *e);

static inline uint32_t bpe_pair_hash(uint64_t key)
{
    return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32);
}

/* The merged token of (left, right), or -1. */
static inline int bpe_pair(const Bpe *b, int left, int right)
{
    uint64_t key = ((uint64_t)(uint32_t)left << 32 | (uint32_t)right) + 1;
    for (uint32_t h = bpe_pair_hash(key) & b->pair_mask;; h = (h + 1) & b->pair_mask) {
        if (b->pair_key[h] == key) return b->pair_id[h];
        if (!b->pair_key[h]) return -1;
    }
}

#endif
