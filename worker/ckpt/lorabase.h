#ifndef MPITRAIN_LORABASE_H
#define MPITRAIN_LORABASE_H
/* A LoRA run's frozen base, as its checkpoints keep it: by reference (the
 * --init-from source's absolute path and a hash of its content, refused
 * when it changed or went missing), as records of its own (--lora-save-base),
 * or not at all (no --init-from: the seed's random base, made again). */
#include <stdint.h>
#include "base/err.h"
#include "models/model.h"
#include "worker/ckpt/ckpt.h"
#include "worker/ckpt/wsource.h"

/* The content hash of a weight source, cheap next to loading it (its
 * bytes are read once through CRC-32C, nothing is converted): FNV-1a 64
 * over each weights file's name (without its folders), byte size and
 * CRC-32C, in the source's order of files (a HF directory's safetensors
 * files, an llm.c file); for an mpitrain checkpoint over each param/
 * record's name, element range and stored CRC-32C (the manifest alone). */
int lorabase_hash(const WeightSource *s, uint64_t *hash, Err *e);

/* The reference a run's checkpoints record for the source at `given`
 * (--init-from as typed, opened as s): its absolute path and hash. */
int lorabase_ref(const char *given, const WeightSource *s, CkptBaseRef *ref, Err *e);

/* Fills the frozen base of m (a LoRA model, any shard) for the checkpoint
 * in dir (manifest mf, meta): from its base/ records when it has them,
 * else from meta->base.path, whose hash is compared first when check is
 * set (a change or a missing source is refused, naming the path and both
 * hashes), else from the seed (model_init_weights: the adapters too, so
 * load them after). A model without a base is left as it is. */
int lorabase_load(const char *dir, const Mpitrain__Manifest *mf, const CkptMeta *meta, Model *m,
                  int check, Err *e);

#endif
