#include "base/crc32c.h"

#include <string.h>
#include "base/le.h"

#if defined(__SSE4_2__) && defined(__x86_64__)
#define CRC32C_HW 1
#include <nmmintrin.h>
#endif

#define CRC32C_POLY 0x82F63B78u /* Castagnoli, bit-reflected */

/* table[0][b]: the CRC of byte b; table[k][b]: of byte b followed by k zero
 * bytes. Slicing-by-8 folds 8 input bytes with 8 lookups per step. */
static uint32_t table[8][256];

/* Filled before main, while the process is single-threaded, so readers on
 * any thread (OpenMP, checkpoint writers) never race the initialisation. */
__attribute__((constructor)) static void crc32c_init_table(void)
{
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1u)));
        table[0][b] = c;
    }
    for (int k = 1; k < 8; k++)
        for (int b = 0; b < 256; b++)
            table[k][b] = (table[k - 1][b] >> 8) ^ table[0][table[k - 1][b] & 0xff];
}

uint32_t crc32c_sw(uint32_t crc, const void *data, size_t n)
{
    const unsigned char *p = data;
    uint32_t c = ~crc;
    for (; n >= 8; p += 8, n -= 8) {
        /* le_get32: the CRC consumes bytes in stream order on any host */
        uint32_t lo = c ^ le_get32(p), hi = le_get32(p + 4);
        c = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^
            table[4][lo >> 24] ^ table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
            table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
    }
    while (n--) c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
    return ~c;
}

#ifdef CRC32C_HW
/* The SSE4.2 crc32 instruction: 8 bytes per instruction. x86 is
 * little-endian, so a memcpy'd u64 holds the bytes in stream order. */
uint32_t crc32c(uint32_t crc, const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t c = ~crc;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
    }
    uint32_t c32 = (uint32_t)c;
    while (n--) c32 = _mm_crc32_u8(c32, *p++);
    return ~c32;
}
#else
uint32_t crc32c(uint32_t crc, const void *data, size_t n) { return crc32c_sw(crc, data, n); }
#endif
