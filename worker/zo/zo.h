#ifndef MPITRAIN_ZO_H
#define MPITRAIN_ZO_H
/* Shared-randomness zeroth-order training (MeZO with one byte per sample).
 *
 * Perturbation k = (step t, machine m, sample s) is a Rademacher vector z:
 * element i of the canonical flattened model (its GLOBAL index, so a TP or
 * PP shard generates exactly its slice) takes bit (i mod 128) of
 * Philox4x32-10(key = run seed ^ ZO_KEY_SALT, counter = (i / 128, s, m, t)).
 * Each machine estimates g = (L(theta + eps z) - L(theta - eps z)) / 2 eps on
 * its batch, sends the int8 code q = clamp(round(g / scale), -127, 127)
 * (-128 = skipped), and every rank applies theta_i -= c * acc_i with the
 * exact integer acc_i = sum_k q_k z_k,i and c = lr * scale / K: the same
 * bits on every rank, whatever the layout or machine order. */
#include <stddef.h>
#include <stdint.h>
#include "models/model.h"

#define ZO_KEY_SALT 0x9E3779B97F4A7C15ull
#define ZO_SKIP (-128)

typedef struct {
    uint32_t step, machine, sample;
} ZoId;

/* dst = src + sign * eps * z for every local element (dst may not alias src). */
void zo_perturb(const Model *m, uint64_t seed, ZoId id, float eps, int sign, const float *src,
                float *dst);
/* acc += q * z for every local element. */
void zo_accumulate(const Model *m, uint64_t seed, ZoId id, int q, int32_t *acc);
/* theta_i = theta_i - c * acc_i - lr * wd * theta_i (decay on matrices). */
void zo_apply(const Model *m, float *params, const int32_t *acc, float c, float lr, float wd);
/* The int8 code of a projected gradient; ZO_SKIP for NaN/inf or outliers
 * beyond `outlier` code units. */
int8_t zo_code(double g, double scale, double outlier);
/* Element i's z (+1/-1), for tests. */
int zo_z(uint64_t seed, ZoId id, uint64_t global_index);
/* The whole update for one step: accumulate every non-skipped code
 * (codes[m * samples + s], n_machines x samples) and apply it. Shared by
 * training and journal replay, so both give the same bits. acc is scratch
 * of n_params int32. Returns how many codes were used. */
int zo_step_update(const Model *m, float *params, int32_t *acc, uint64_t seed, uint32_t step,
                   const int8_t *codes, int n_machines, int samples, float lr, float scale,
                   float wd);
/* 64-bit hash of raw float bits (consistency check). */
uint64_t zo_hash(const float *p, size_t n);

#endif
