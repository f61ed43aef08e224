#ifndef MPITRAIN_PHILOX_H
#define MPITRAIN_PHILOX_H
#include <stdint.h>

/* Philox4x32-10 (Salmon et al., SC'11): a counter-based RNG. The output is a
 * pure function of (key, counter), so any rank can generate any slice of a
 * random stream without generating what comes before it. */
typedef struct { uint32_t v[4]; } Philox4;

Philox4 philox4x32_10(Philox4 counter, uint64_t key);

/* Stream purposes: the 4th counter word, so streams never overlap. */
enum { RNG_INIT = 1, RNG_ZO = 2, RNG_SAMPLE = 3 };

/* A standard normal for element `index` of stream `purpose` under `key`:
 * the same number whoever asks, in any order. */
float philox_normal(uint64_t key, uint32_t purpose, uint64_t index);
/* A uniform in [0,1) for element `index`. */
double philox_uniform(uint64_t key, uint32_t purpose, uint64_t index);

#endif
