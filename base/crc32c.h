#ifndef MPITRAIN_CRC32C_H
#define MPITRAIN_CRC32C_H
#include <stddef.h>
#include <stdint.h>
/* CRC-32C (Castagnoli), as in iSCSI/ext4: crc32c(0, "123456789", 9) == 0xE3069283.
 * Chain calls by passing the previous result: crc32c(crc32c(0, a, n), b, m)
 * is the CRC of a || b. Uses the SSE4.2 crc32 instruction when the build
 * targets it (x86-64-v2 and up), else crc32c_sw. */
uint32_t crc32c(uint32_t crc, const void *data, size_t n);
/* The portable, table-driven (slicing-by-8) software CRC-32C: same values
 * as crc32c on every host; public so tests can hold the two paths equal. */
uint32_t crc32c_sw(uint32_t crc, const void *data, size_t n);
#endif
