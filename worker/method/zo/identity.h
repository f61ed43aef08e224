#ifndef MPITRAIN_ZO_IDENTITY_H
#define MPITRAIN_ZO_IDENTITY_H
/* What makes a ZO run one run: the settings every step's update depends on
 * and the weights it started from. Its copies on disk and on the wire (the
 * journal header, worker/method/zo/journal.h; the swarm's HELLO,
 * worker/method/swarm/msg.h) are encoded and decoded field by field; in
 * memory it is this one struct, and zo_identity_diff is the one comparison
 * (each caller words the difference for its reader). */
#include <stdint.h>

typedef struct {
    uint64_t seed;          /* --seed: the key of every perturbation */
    uint64_t global_params; /* the whole model's parameter count */
    uint64_t params_id;     /* the --zo-params selection (zo_params_id; 0 = every tensor) */
    uint64_t base_id;       /* hash of the starting weights; 0 = not known (a journal
                             * does not hold it) */
    uint32_t samples;       /* --zo-samples */
    float eps, scale, weight_decay;
    float sparse;           /* --zo-sparse: the magnitude mask's fraction; 0 = every weight */
} ZoIdentity;

/* The fields as bits, in the order a difference is named: the lowest bit
 * set in zo_identity_diff's answer is the first field that differs. */
enum {
    ZO_ID_SEED = 1u << 0,
    ZO_ID_MODEL = 1u << 1,     /* global_params */
    ZO_ID_SAMPLES = 1u << 2,
    ZO_ID_SELECTION = 1u << 3, /* params_id */
    ZO_ID_EPS = 1u << 4,
    ZO_ID_DECAY = 1u << 5,     /* weight_decay */
    ZO_ID_SCALE = 1u << 6,
    ZO_ID_BASE = 1u << 7,      /* base_id, compared only when both know it */
    ZO_ID_SPARSE = 1u << 8,
    ZO_ID_ALL = (1u << 9) - 1
};

/* The fields among `fields` in which a and b differ (0: none). Floats are
 * compared by their bits, so a NaN equals itself. */
unsigned zo_identity_diff(const ZoIdentity *a, const ZoIdentity *b, unsigned fields);
/* The first of them (0 for none). */
unsigned zo_identity_first(unsigned diff);

#endif
