#ifndef MPITRAIN_PLAN_H
#define MPITRAIN_PLAN_H
/* The coordinator's plan: rank 0 resolves the run's configuration (defaults,
 * checkpoint to resume, mesh shape), validates it against the world it was
 * launched into, and serializes it as a protobuf with a 64-bit hash; every
 * rank decodes it and re-checks the hash, so all ranks train exactly the
 * same plan. The planner (planner.h) searches layouts with this module's
 * validation; sending the plan to every rank is distribute.h's. */
#include <stddef.h>
#include <stdint.h>
#include "worker/config/config.h"

#define PLAN_VERSION 1
#define PLAN_MAX_BYTES (16u << 20)

/* Fills dp/tp/pp defaults and checks everything that can be checked before
 * training: the message says what to change. avail_bytes_per_rank = 0 skips
 * the memory check. */
int plan_resolve(TrainConfig *cfg, int world_size, size_t avail_bytes_per_rank, Err *e);
/* Estimated bytes one rank needs for this config (weights, gradients,
 * optimizer state, activations). */
size_t plan_memory_per_rank(const TrainConfig *cfg);

/* A failure to read the --resume checkpoint or the --init-from source
 * (missing, unreadable, corrupt): a runtime failure (exit 1) the caller may retry from another
 * checkpoint, not a plan the flags could fix (-1, exit 2). */
#define PLAN_ERR_RESUME (-2)
/* --resume of a checkpoint already at --steps: the run is complete and
 * there is nothing to train (e says so); a success, not a failure. */
#define PLAN_COMPLETE (-3)

/* --resume: resolves the checkpoint and takes the model, optimizer, batch,
 * seed and data from it (the flags keep --steps, layout and run options).
 * 0, -1 (the flags do not fit the checkpoint), PLAN_ERR_RESUME or
 * PLAN_COMPLETE. */
int plan_apply_resume(TrainConfig *cfg, Err *e);

/* --init-from (without --resume): the model's shape from the source (an
 * mpitrain checkpoint, a Hugging Face GPT-2 directory or an llm.c file);
 * model flags set to something else are refused by name, except a
 * --seq-len within a GPT-2 source's positions. 0, -1 or PLAN_ERR_RESUME
 * (the source cannot be read). */
int plan_apply_init_from(TrainConfig *cfg, Err *e);

uint64_t plan_hash(const void *buf, size_t len);
/* Serializes a resolved config; *buf is malloc'd. */
int plan_encode(const TrainConfig *cfg, int world_size, uint8_t **buf, size_t *len, Err *e);
/* Verifies the hash, decodes and re-validates a plan. */
int plan_decode(const uint8_t *buf, size_t len, uint64_t hash, int world_size, TrainConfig *cfg,
                Err *e);

#endif
