#ifndef MPITRAIN_HFIO_H
#define MPITRAIN_HFIO_H
/* Weights in other programs' layouts, the sources of `train --init-from`
 * and `ckpt import`, all through one interface (WeightSource):
 *   a Hugging Face directory, config.json's model_type picking the family:
 *     gpt2 (docs/gpt2.md): model.safetensors (Conv1D weights stored (in,
 *       out), names with or without the "transformer." prefix, lm_head tied
 *       to wte);
 *     llama, qwen2, qwen3, mistral (docs/llama.md, worker/ckpt/llamaio.c):
 *       model.safetensors or the shards of model.safetensors.index.json;
 *   an llm.c GPT-2 model file (gpt2_124M.bin: 256 int32 header, magic
 *     20240326, version 3 = f32 or 5 = bf16, vocab rows padded to Vp);
 *   mpitrain's own checkpoints. */
#include <stdint.h>
#include "base/err.h"
#include "base/fileio.h"
#include "models/model.h"
#include "worker/ckpt/ckpt.h"
#include "worker/ckpt/safetensors.h"
#include "worker/ckpt/wsource.h"

#define LLMC_MODEL_MAGIC 20240326
#define LLMC_MODEL_HEADER_BYTES 1024 /* 256 int32 */

/* Recognizes path (a checkpoint, a HF directory or its .safetensors, an
 * llm.c .bin), reads its shape and checks everything short of reading the
 * weights: config keys mpitrain would not compute exactly, every tensor
 * present with the right shape and none unknown, the file sizes. For HF
 * also that a stored lm_head of a tied head equals wte. Errors name the
 * file, the tensor or key, and the fix. */
int wsource_open(const char *path, WeightSource *s, Err *e);
void wsource_close(WeightSource *s);
const char *wsource_kind_name(WeightSrcKind k);

/* Fills m (any shard of a model of the source's shape, with the source's
 * positions whatever its seq_len) with the source's weights. */
int wsource_load(const WeightSource *s, Model *m, Err *e);

/* The tokenizer files that come with the source: a checkpoint's
 * <step>/tokenizer, or a HF directory's own; out = "" when there are none. */
void wsource_tokenizer(const WeightSource *s, char *out, size_t n);

/* `ckpt import`: the source as a step-0 mpitrain checkpoint under root
 * (meta supplies optimizer settings, seed, batch; its model is replaced),
 * weights only (--resume or --init-from creates the optimizer state), and
 * the HF directory's tokenizer files in <step>/tokenizer/. */
int wsource_import(const WeightSource *s, const char *root, const CkptMeta *meta, char *written,
                   size_t n, Err *e);

/* Exports of a whole GPT: a HF directory (config.json,
 * generation_config.json, model.safetensors in dtype "F32", "F16" or
 * "BF16", and when tokenizer_dir holds tokenizer files (it may be NULL)
 * vocab.json, merges.txt and tokenizer_config.json), or an llm.c version-3
 * file (vocab padded to a multiple of 128 with zero rows). Both written
 * atomically per file. */
int gpt2_export_hf(const Model *m, const char *tokenizer_dir, const char *dtype,
                   const char *out_dir, Err *e);
int gpt2_export_llmc(const Model *m, const char *path, Err *e);

#endif
