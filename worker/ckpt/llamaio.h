#ifndef MPITRAIN_LLAMAIO_H
#define MPITRAIN_LLAMAIO_H
/* The llama family's Hugging Face directories (docs/llama.md):
 * LlamaForCausalLM (and SmolLM, TinyLlama), Qwen2ForCausalLM,
 * Qwen3ForCausalLM and MistralForCausalLM. config.json is read through one
 * table of known keys: the ones that give the shape and options
 * (ModelConfig's llama fields), the ones that must hold a value mpitrain
 * computes (hidden_act silu, attention_dropout 0, rope_scaling default or
 * llama3, no active sliding window shorter than the context), each refused
 * by name otherwise; a key the class does not read changes nothing and is
 * accepted. Tensors: model.embed_tokens.weight -> wte,
 * model.layers.L.self_attn.q_proj.weight -> h.L.attn.q.w, ... (BRIEF's
 * table, in llamaio.c), F32, F16 or BF16, one file or shards. */
#include "worker/ckpt/wsource.h"

/* Whether model_type is one of the family's (llama, qwen2, qwen3, mistral). */
int llama_model_type(const char *model_type);

/* Opens s->dir's config.json (already read into text at cfg_path, its
 * model_type one of the family's) and the weights: s->path names a .safetensors, or is "" for the directory's
 * model.safetensors or sharded index. Fills s->model, s->dtype, s->arch,
 * s->slots and s->slot_entry. */
int llama_source_open(WeightSource *s, const char *cfg_path, const char *text,
                      const char *model_type, Err *e);

/* The slot of mpitrain tensor name, or -1. */
int llama_slot_of(const WeightSource *s, const char *name);
/* The slot's whole tensor as f32 into out. */
int llama_read_slot(const WeightSource *s, int slot, float *out, Err *e);

/* What an export writes besides the weights. */
typedef struct {
    const char *dtype;          /* "F32", "F16", "BF16" */
    const char *arch;           /* the class to write ("" = the one the config implies) */
    const char *tokenizer_dir;  /* tokenizer files to copy, or NULL */
    uint64_t max_shard_bytes;   /* shards above this size (HF's max_shard_size) */
} LlamaExport;

/* A HF directory of a whole llama-family model: config.json (last, so a
 * directory without it is an unfinished export), generation_config.json,
 * model.safetensors or its shards and index, the tokenizer files. On
 * failure config.json is removed, so what is left does not look complete. */
int llama_export_hf(const Model *m, const LlamaExport *x, const char *out_dir, Err *e);

/* The class a configuration is exported as when none is recorded: Qwen3
 * with q/k norms, Qwen2 with q/k/v biases and no output bias, else Llama. */
const char *llama_default_arch(const ModelConfig *c);

#endif
