#ifndef MPITRAIN_CRC32C_H
#define MPITRAIN_CRC32C_H
#include <stddef.h>
#include <stdint.h>
/* CRC-32C (Castagnoli), as in iSCSI/ext4: crc32c(0, "123456789", 9) == 0xE3069283.
 * Chain calls by passing the previous result. */
uint32_t crc32c(uint32_t crc, const void *data, size_t n);
#endif
