#include "worker/method/zo/identity.h"

#include <string.h>

static int same_bits(float a, float b) { return !memcmp(&a, &b, sizeof a); }

unsigned zo_identity_diff(const ZoIdentity *a, const ZoIdentity *b, unsigned fields)
{
    unsigned d = 0;
    if (a->seed != b->seed) d |= ZO_ID_SEED;
    if (a->global_params != b->global_params) d |= ZO_ID_MODEL;
    if (a->samples != b->samples) d |= ZO_ID_SAMPLES;
    if (a->params_id != b->params_id) d |= ZO_ID_SELECTION;
    if (!same_bits(a->eps, b->eps)) d |= ZO_ID_EPS;
    if (!same_bits(a->weight_decay, b->weight_decay)) d |= ZO_ID_DECAY;
    if (!same_bits(a->scale, b->scale)) d |= ZO_ID_SCALE;
    if (a->base_id && b->base_id && a->base_id != b->base_id) d |= ZO_ID_BASE;
    if (!same_bits(a->sparse, b->sparse)) d |= ZO_ID_SPARSE;
    return d & fields;
}

unsigned zo_identity_first(unsigned diff) { return diff & (0u - diff); }
