#ifndef MPITRAIN_LE_H
#define MPITRAIN_LE_H
/* Little-endian fields of the on-disk formats (token file, ZO journal,
 * checkpoint manifest frame, safetensors length). Written with shifts, not
 * memcpy of a host integer, so a file means the same on any host; compilers
 * turn these into one plain load/store on little-endian machines. */
#include <stdint.h>
#include <string.h>

static inline void le_put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static inline void le_put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static inline void le_put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint16_t le_get16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t le_get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t le_get64(const unsigned char *p)
{
    return (uint64_t)le_get32(p) | (uint64_t)le_get32(p + 4) << 32;
}

/* A float travels as its IEEE-754 bit pattern (NaN payloads included): the
 * memcpy only reinterprets the float as a u32 in registers; the byte order
 * on disk is le_put32's. */
static inline void le_put_f32(unsigned char *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    le_put32(p, u);
}

static inline float le_get_f32(const unsigned char *p)
{
    uint32_t u = le_get32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#endif
