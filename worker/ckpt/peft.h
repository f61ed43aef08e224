#ifndef MPITRAIN_PEFT_H
#define MPITRAIN_PEFT_H
/* LoRA adapters in Hugging Face PEFT's format (docs/lora.md): a directory
 * of adapter_config.json (a LoraConfig) and adapter_model.safetensors,
 * whose tensors are named base_model.model.<HF module>.lora_A.weight (r x
 * in) and .lora_B.weight (out x r), the shapes mpitrain keeps, e.g.
 * base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight (llama),
 * base_model.model.transformer.h.3.attn.c_attn.lora_B.weight (GPT-2). */
#include "base/err.h"
#include "models/model.h"
#include "worker/config/config.h"

#define PEFT_CONFIG_NAME "adapter_config.json"
#define PEFT_WEIGHTS_NAME "adapter_model.safetensors"

/* Writes the adapters of m (a whole LoRA model, adapters not merged) into
 * out_dir as dtype ("F32", "F16", "BF16"); base_path names the base in
 * base_model_name_or_path ("" = null). Each file atomically. */
int peft_export(const Model *m, const char *base_path, const char *dtype, const char *out_dir,
                Err *e);

/* --lora-from: the LoRA settings of cfg (whose model is the base's shape
 * already) from cfg->lora_from's adapter_config.json. A flag given with
 * another value is an error naming both; what mpitrain does not compute
 * (DoRA, rsLoRA, rank or alpha patterns, layers_to_transform,
 * modules_to_save, a bias, a regex target_modules, another peft_type,
 * dropout unless --lora-dropout is given) is refused by name. */
int peft_apply_config(TrainConfig *cfg, Err *e);

/* Fills the adapters of m (any shard of a LoRA model of the directory's
 * settings) from dir's adapter_model.safetensors (F32, F16 or BF16): every
 * adapter of the whole model must be there with its shape, and nothing
 * else; a missing or extra tensor is named. */
int peft_load_adapters(const char *dir, Model *m, Err *e);

#endif
