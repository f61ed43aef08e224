#ifndef MPITRAIN_GPT2IO_H
#define MPITRAIN_GPT2IO_H
/* GPT-2 weights in other programs' layouts (docs/gpt2.md):
 *   a Hugging Face GPT-2 directory: config.json + model.safetensors
 *     (Conv1D weights stored (in, out), names with or without the
 *     "transformer." prefix, lm_head tied to wte);
 *   an llm.c model file (gpt2_124M.bin: 256 int32 header, magic 20240326,
 *     version 3 = f32 or 5 = bf16, vocab rows padded to Vp);
 * and mpitrain's own checkpoints, so `train --init-from` and `ckpt import`
 * take any of the three through one interface. */
#include <stdint.h>
#include "base/err.h"
#include "base/fileio.h"
#include "models/model.h"
#include "worker/ckpt/ckpt.h"
#include "worker/ckpt/safetensors.h"

typedef enum { GPT2_SRC_CKPT = 0, GPT2_SRC_HF = 1, GPT2_SRC_LLMC = 2 } Gpt2SrcKind;

#define LLMC_MODEL_MAGIC 20240326
#define LLMC_MODEL_HEADER_BYTES 1024 /* 256 int32 */

typedef struct {
    Gpt2SrcKind kind;
    char path[PATH_LEN]; /* ckpt: the step directory; hf: the .safetensors; llmc: the .bin */
    char dir[PATH_LEN];  /* hf: the directory of config.json (and tokenizer files) */
    ModelConfig model;   /* the shape the source holds; seq_len = positions = its positions
                            (a checkpoint: its own seq_len and positions) */
    StIndex ix;          /* hf: the header */
    int *slot_entry;     /* hf: index entry of each GPT-2 tensor (canonical slot order) */
    int llmc_version, llmc_vp;
    char dtype[8];       /* the weights' dtype: F32, F16 or BF16 (hf: wte's; ckpt: as recorded,
                            "" = F32) */
} Gpt2Source;

/* Recognizes path (a checkpoint, a HF directory or its .safetensors, an
 * llm.c .bin), reads its shape and checks everything short of reading the
 * weights: config keys mpitrain's GPT cannot compute exactly, every tensor
 * present with the right shape and none unknown, the file sizes. For HF
 * also that a stored lm_head equals wte. Errors name the file, the
 * tensor or key, and the fix. */
int gpt2_source_open(const char *path, Gpt2Source *s, Err *e);
void gpt2_source_close(Gpt2Source *s);
const char *gpt2_source_kind_name(Gpt2SrcKind k);

/* Fills m (any shard of a GPT of the source's shape, with the source's
 * positions whatever its seq_len) with the source's weights. */
int gpt2_source_load(const Gpt2Source *s, Model *m, Err *e);

/* The tokenizer files that come with the source: a checkpoint's
 * <step>/tokenizer, or a HF directory's own; out = "" when there are none. */
void gpt2_source_tokenizer(const Gpt2Source *s, char *out, size_t n);

/* `ckpt import`: the source as a step-0 mpitrain checkpoint under root
 * (meta supplies optimizer settings, seed, batch; its model is replaced),
 * weights only (--resume or --init-from creates the optimizer state), and
 * the HF directory's tokenizer files in <step>/tokenizer/. */
int gpt2_import(const Gpt2Source *s, const char *root, const CkptMeta *meta, char *written,
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
