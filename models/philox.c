#include "models/philox.h"

#include <math.h>

static inline void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo)
{
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

Philox4 philox4x32_10(Philox4 c, uint64_t key)
{
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo(0xD2511F53u, c.v[0], &hi0, &lo0);
        mulhilo(0xCD9E8D57u, c.v[2], &hi1, &lo1);
        Philox4 n = {{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
        c = n;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return c;
}

void philox4x32_10_lanes(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3, uint64_t key,
                         uint32_t out[4][PHILOX_LANES])
{
    uint32_t x0[PHILOX_LANES], x1[PHILOX_LANES], x2[PHILOX_LANES], x3[PHILOX_LANES];
    for (int i = 0; i < PHILOX_LANES; i++) {
        x0[i] = w0 + (uint32_t)i;
        x1[i] = w1;
        x2[i] = w2;
        x3[i] = w3;
    }
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        for (int i = 0; i < PHILOX_LANES; i++) {
            uint64_t p0 = (uint64_t)0xD2511F53u * x0[i], p1 = (uint64_t)0xCD9E8D57u * x2[i];
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ x1[i] ^ k0, n2 = (uint32_t)(p0 >> 32) ^ x3[i] ^ k1;
            x1[i] = (uint32_t)p1;
            x3[i] = (uint32_t)p0;
            x0[i] = n0;
            x2[i] = n2;
        }
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    for (int i = 0; i < PHILOX_LANES; i++) {
        out[0][i] = x0[i];
        out[1][i] = x1[i];
        out[2][i] = x2[i];
        out[3][i] = x3[i];
    }
}

static Philox4 block_for(uint64_t key, uint32_t purpose, uint64_t block)
{
    Philox4 c = {{(uint32_t)block, (uint32_t)(block >> 32), 0, purpose}};
    return philox4x32_10(c, key);
}

/* 24-bit uniforms in (0,1): never 0, so log() is safe. */
static double u01(uint32_t x) { return ((x >> 8) + 0.5) * (1.0 / 16777216.0); }

float philox_normal(uint64_t key, uint32_t purpose, uint64_t index)
{
    /* Box-Muller: one block of 4 words yields 2 normals */
    Philox4 r = block_for(key, purpose, index / 2);
    double rad = sqrt(-2.0 * log(u01(r.v[0])));
    double ang = 2.0 * M_PI * u01(r.v[1]);
    return (float)(index % 2 ? rad * sin(ang) : rad * cos(ang));
}

double philox_uniform(uint64_t key, uint32_t purpose, uint64_t index)
{
    Philox4 r = block_for(key, purpose, index / 4);
    return (r.v[index % 4] >> 8) * (1.0 / 16777216.0);
}
