#ifndef MPITRAIN_HALF_H
#define MPITRAIN_HALF_H
/* The 2-byte float formats of model files and of the bf16 wire: IEEE half
 * (F16) and bfloat16 (BF16, the upper 16 bits of an f32). Narrowing rounds
 * to nearest, ties to even (past F16's largest finite value: infinity); a
 * NaN stays a (quiet) NaN. Widening is exact. */
#include <stdint.h>

uint16_t f32_to_bf16(float x);
float bf16_to_f32(uint16_t b);
uint16_t f32_to_f16(float x);
float f16_to_f32(uint16_t h);

#endif
