#include "base/quant.h"

#include <math.h>
#include <string.h>
#include "base/le.h"

static int qmax(int bits) { return bits == 8 ? 127 : 7; }

static size_t block_bytes(int bits, size_t len) { return 4 + (len * (size_t)bits + 7) / 8; }

size_t quant_bytes(int bits, size_t n)
{
    size_t full = n / QUANT_BLOCK, rest = n % QUANT_BLOCK;
    return full * block_bytes(bits, QUANT_BLOCK) + (rest ? block_bytes(bits, rest) : 0);
}

/* The block's scale: its largest magnitude over Q; NaN when any value is not
 * finite (so every value decodes as NaN). */
static float block_scale(const float *x, size_t len, int q)
{
    float amax = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isfinite(x[i])) return NAN;
        float a = fabsf(x[i]);
        if (a > amax) amax = a;
    }
    return amax / (float)q;
}

/* x / s rounded to the nearest code in [-q, q] (0 for a zero or NaN scale:
 * the decoded value is then 0 * s, which is 0 or NaN as the scale says) */
static int code_of(float x, float s, int q)
{
    if (!(s > 0)) return 0;
    long c = lrintf(x / s);
    return c > q ? q : c < -q ? -q : (int)c;
}

static void encode_block(int bits, const float *x, size_t len, unsigned char *out, float *sent)
{
    int q = qmax(bits);
    float s = block_scale(x, len, q);
    le_put_f32(out, s); /* little-endian whatever the host (base/le.h) */
    unsigned char *codes = out + 4;
    if (bits == 4) memset(codes, 0, (len + 1) / 2);
    for (size_t i = 0; i < len; i++) {
        int c = code_of(x[i], s, q);
        if (bits == 8)
            codes[i] = (unsigned char)(signed char)c;
        else
            codes[i / 2] |= (unsigned char)((c & 0xF) << (i % 2 ? 4 : 0));
        sent[i] = (float)c * s;
    }
}

/* a nibble's two's-complement value */
static int nibble(unsigned char b, size_t i)
{
    int v = (b >> (i % 2 ? 4 : 0)) & 0xF;
    return v >= 8 ? v - 16 : v;
}

static void decode_block(int bits, const unsigned char *in, size_t len, float *out)
{
    float s = le_get_f32(in);
    const unsigned char *codes = in + 4;
    for (size_t i = 0; i < len; i++) {
        int c = bits == 8 ? (signed char)codes[i] : nibble(codes[i / 2], i);
        out[i] = (float)c * s;
    }
}

void quant_encode(int bits, const float *x, size_t n, unsigned char *out, float *sent)
{
    for (size_t at = 0; at < n; at += QUANT_BLOCK) {
        size_t len = n - at < QUANT_BLOCK ? n - at : QUANT_BLOCK;
        encode_block(bits, x + at, len, out, sent + at);
        out += block_bytes(bits, len);
    }
}

void quant_decode(int bits, const unsigned char *in, size_t n, float *out)
{
    for (size_t at = 0; at < n; at += QUANT_BLOCK) {
        size_t len = n - at < QUANT_BLOCK ? n - at : QUANT_BLOCK;
        decode_block(bits, in, len, out + at);
        in += block_bytes(bits, len);
    }
}
