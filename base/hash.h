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

#endif
