#ifndef MPITRAIN_QUANT_H
#define MPITRAIN_QUANT_H
/* Block-wise absmax integer codes for values on a slow wire (DiLoCo's
 * pseudo-gradients, --diloco-wire int8|int4; INTELLECT-1 and Streaming
 * DiLoCo send int8 and 4-bit values this way). Each block of up to
 * QUANT_BLOCK values is one f32 scale s = max|x| / Q (little-endian) followed
 * by the codes q = round(x / s) in [-Q, Q]: Q = 127 as one signed byte each
 * (int8), Q = 7 as a signed nibble each, two to a byte, the lower nibble
 * first (int4). A value comes back as q * s, within s / 2 of what was sent
 * (plus the f32 rounding of x / s and q * s). A block of zeros has s = 0.
 * A block holding a NaN or an infinity is sent as NaNs: the sum it joins is
 * then visibly broken, as an f32 wire would leave it. */
#include <stddef.h>

enum { QUANT_BLOCK = 64 };

/* Bytes of n values at `bits` (8 or 4) per code, scales included. */
size_t quant_bytes(int bits, size_t n);
/* Encodes x[0..n) into out[0..quant_bytes(bits, n)); sent[i] (may be x) gets
 * the value the receiver will decode. */
void quant_encode(int bits, const float *x, size_t n, unsigned char *out, float *sent);
/* Decodes n values from in (as quant_encode wrote them) into out. */
void quant_decode(int bits, const unsigned char *in, size_t n, float *out);

#endif
