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

/* The weight view (models/model.h) of one perturbation: the active
 * tensors' elements come out as theta + step * z (step = +eps or -eps),
 * computed as the block that reads them runs, into the model's view
 * scratch; the others, and params themselves, are untouched. */
typedef struct {
    uint64_t seed;
    ZoId id;
    float step;
    const uint8_t *active; /* per tensor of the model's table; NULL = all */
    const float *tau;      /* --zo-sparse: per tensor, only |theta| < tau is perturbed; NULL = all */
} ZoView;
const float *zo_view_weights(void *ctx, const Model *m, int k, size_t first, size_t n, float *dst);
/* The int8 code of a projected gradient; ZO_SKIP for NaN/inf or outliers
 * beyond `outlier` code units. */
int8_t zo_code(double g, double scale, double outlier);
/* Element i's z (+1/-1), for tests. */
int zo_z(uint64_t seed, ZoId id, uint64_t global_index);
/* The whole update for one step, shared by training and journal replay so
 * both give the same bits: for every active tensor's element (active NULL
 * = all), theta_i -= c * acc_i + lr * wd * theta_i (decay on matrices),
 * with acc_i = sum of q * z over every non-skipped code (codes[m * samples
 * + s], n_machines x samples) and c = lr * scale / codes used. acc_i is
 * built and applied a piece at a time, regenerating each code's z there:
 * no model-sized accumulator. Returns how many codes were used, or -1 when
 * there is no memory for the list of codes. */
int zo_step_update(const Model *m, float *params, const uint8_t *active, uint64_t seed,
                   uint32_t step, const int8_t *codes, int n_machines, int samples, float lr,
                   float scale, float wd);
/* --zo-sparse F: per active tensor k of params, tau[k] such that the
 * fraction F of its live elements have |theta| <= tau[k] (the smallest
 * in magnitude: Sparse MeZO's mask, computed from the weights at the
 * step, so every machine and a replay get the same one); inactive
 * tensors INFINITY. -1 when out of memory. */
int zo_thresholds(const Model *m, const float *params, const uint8_t *active, float frac, float *tau);
/* zo_step_update with --zo-sparse's mask: the codes' step applied only
 * where |theta| <= tau, zo_thresholds of params before the step: `tau`
 * when the caller has them from these weights (the step's forwards used
 * them), else computed here (a replay); frac 0 is zo_step_update. */
int zo_step_update_sparse(const Model *m, float *params, const uint8_t *active, uint64_t seed,
                          uint32_t step, const int8_t *codes, int n_machines, int samples, float lr,
                          float scale, float wd, float frac, const float *tau);
/* 64-bit hash of raw float bits (consistency check). */
uint64_t zo_hash(const float *p, size_t n);

#endif
