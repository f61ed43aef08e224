#ifndef MPITRAIN_PHILOX_H
#define MPITRAIN_PHILOX_H
#include <stdint.h>

/* Philox4x32-10 (Salmon et al., SC'11): a counter-based RNG. The output is a
 * pure function of (key, counter), so any rank can generate any slice of a
 * random stream without generating what comes before it. */
typedef struct { uint32_t v[4]; } Philox4;

Philox4 philox4x32_10(Philox4 counter, uint64_t key);

/* PHILOX_LANES consecutive blocks at once: counters (w0 + i, w1, w2, w3) for
 * i < PHILOX_LANES, out[j][i] = word j of block i, the same words
 * philox4x32_10 gives one by one. Written lane-wise so the compiler turns
 * the rounds into vector multiplies (w0 + i must not wrap). */
enum { PHILOX_LANES = 8 };
void philox4x32_10_lanes(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3, uint64_t key,
                         uint32_t out[4][PHILOX_LANES]);

/* Stream purposes: the 4th counter word, so streams never overlap. */
enum { RNG_INIT = 1, RNG_ZO = 2, RNG_SAMPLE = 3, RNG_LORA_INIT = 4, RNG_LORA_DROPOUT = 5 };

/* A standard normal for element `index` of stream `purpose` under `key`:
 * the same number whoever asks, in any order. */
float philox_normal(uint64_t key, uint32_t purpose, uint64_t index);
/* A uniform in [0,1) for element `index`. */
double philox_uniform(uint64_t key, uint32_t purpose, uint64_t index);

#endif
