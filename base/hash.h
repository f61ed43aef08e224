#ifndef MPITRAIN_HASH_H
#define MPITRAIN_HASH_H
/* FNV-1a, 64-bit: a fast, non-cryptographic fingerprint, used to tell
 * whether two ranks hold the same bytes (the plan message, ZO weights).
 * Start with FNV1A64_INIT and chain calls by passing the previous result:
 * fnv1a64(fnv1a64(FNV1A64_INIT, a, n), b, m) is the hash of a || b. */
#include <stddef.h>
#include <stdint.h>

#define FNV1A64_INIT 0xcbf29ce484222325ull /* the FNV-1a 64-bit offset basis */

uint64_t fnv1a64(uint64_t h, const void *p, size_t n);

/* splitmix64's finalizer: a bijection of 64-bit words whose every output
 * bit depends on every input bit. Derives keys from a seed and a counter. */
uint64_t mix64(uint64_t x);

/* A keyed bijection of [0, n) (i < n): a 4-round Feistel network over the
 * smallest even number of bits that covers n, walking again any value that
 * lands past n (the domain is under 4n: fewer than 4 walks expected). O(1)
 * memory: a data loader's shuffled window order without a table. */
uint64_t permute_index(uint64_t i, uint64_t n, uint64_t key);

#endif
