#include "base/half.h"

#include <math.h>
#include <string.h>

static uint32_t bits_of(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static float float_of(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

uint16_t f32_to_bf16(float x)
{
    uint32_t u = bits_of(x);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu)) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

float bf16_to_f32(uint16_t b) { return float_of((uint32_t)b << 16); }

uint16_t f32_to_f16(float x)
{
    uint32_t u = bits_of(x), sign = (u >> 16) & 0x8000u;
    u &= 0x7fffffffu;
    if (u > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);  /* NaN */
    if (u >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds past 65504 */
    if (u < 0x38800000u)                                     /* below 2^-14: subnormal */
        /* the scaling is exact; nearbyintf rounds half to even */
        return (uint16_t)(sign | (uint32_t)nearbyintf(float_of(u) * 16777216.0f));
    u -= 0x38000000u; /* the exponent bias 127 -> 15 */
    u += 0xfffu + ((u >> 13) & 1u);
    return (uint16_t)(sign | (u >> 13));
}

float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, ex = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (ex == 0x1f) return float_of(sign | 0x7f800000u | (man << 13));
    float v = ex ? ldexpf((float)(man | 0x400), (int)ex - 25) : ldexpf((float)man, -24);
    return sign ? -v : v;
}
