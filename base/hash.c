#include "base/hash.h"

#define FNV1A64_PRIME 0x100000001b3ull

uint64_t fnv1a64(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= FNV1A64_PRIME;
    }
    return h;
}

uint64_t mix64(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t permute_index(uint64_t i, uint64_t n, uint64_t key)
{
    if (n < 2) return 0;
    int bits = 64 - __builtin_clzll(n - 1);
    bits += bits % 2;
    const int half = bits / 2;
    const uint64_t mask = (1ull << half) - 1; /* half <= 32 */
    do {
        uint64_t l = i >> half, r = i & mask;
        for (uint64_t round = 0; round < 4; round++) {
            uint64_t f = mix64(key ^ (r << 2 | round)) & mask;
            uint64_t t = l ^ f;
            l = r;
            r = t;
        }
        i = l << half | r;
    } while (i >= n);
    return i;
}
