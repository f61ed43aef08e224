#ifndef MPITRAIN_WSOURCE_H
#define MPITRAIN_WSOURCE_H
/* A source of weights as opened (hfio.h opens, loads and imports it; the
 * family readers, llamaio.h, fill their part): apart, so the readers and
 * hfio.c need not include each other. */
#include "base/fileio.h"
#include "models/model.h"
#include "worker/ckpt/safetensors.h"

typedef enum { WSRC_CKPT = 0, WSRC_HF = 1, WSRC_LLMC = 2, WSRC_HF_LLAMA = 3 } WeightSrcKind;

/* One tensor of a llama-family source: mpitrain's name, HF's, the shape. */
typedef struct {
    char mp[MODEL_MAX_NAME], hf[96];
    int ndim, rows, cols; /* cols 1 for a vector */
} LlamaSlot;

typedef struct {
    WeightSrcKind kind;
    char path[PATH_LEN]; /* ckpt: the step directory; hf: the .safetensors (sharded: the directory);
                            llmc: the .bin */
    char dir[PATH_LEN];  /* hf: the directory of config.json (and tokenizer files) */
    ModelConfig model;   /* the shape the source holds; seq_len = positions = its positions
                            (a checkpoint: its own seq_len and positions) */
    StIndex ix;          /* hf: the header (the shards' headers) */
    int *slot_entry;     /* hf: index entry of each tensor (canonical slot order) */
    LlamaSlot *slots;    /* hf llama: the tensors config.json asks for */
    int n_slots;
    int llmc_version, llmc_vp;
    char dtype[8];       /* the weights' dtype: F32, F16 or BF16 (hf: wte's; ckpt: as recorded,
                            "" = F32) */
    char arch[48];       /* hf: the class (architectures[0], e.g. Qwen2ForCausalLM); ckpt: as
                            recorded; "" = none known */
} WeightSource;

#endif
