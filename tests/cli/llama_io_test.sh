#!/bin/bash
# The llama family's Hugging Face directories in and out (docs/llama.md):
# `ckpt import` of tiny random LlamaForCausalLM, Qwen2ForCausalLM,
# Qwen3ForCausalLM and MistralForCausalLM directories (F32, F16, BF16; one
# file or shards with their index), `ckpt export --format hf` back (f32
# byte for byte tensor by tensor, config keys equal; bf16 and f16 rounded
# to nearest even; shards above --max-shard-size), and the refusals by name
# of what mpitrain would not compute exactly or cannot read. The I/O only:
# the loss against the reference is llama_ref's test. The directories come
# from tests/ref/llama_io_gen.py (the file formats in the standard library).
# usage: llama_io_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
HERE="$(cd "$(dirname "$0")/.." && pwd)"
. "$HERE/check.sh"
scratch_dir "$1" "$2"
G="/usr/bin/python3 $HERE/ref/llama_io_gen.py"

# refused NAME DIR PATTERN: import of DIR fails, naming what (grep -E PATTERN)
refused() {
  "$BIN" ckpt import "$2" --out "imp_$2" > /dev/null 2> last.err
  local rc=$?
  check "$1: refused by name" "[ $rc -ne 0 ] && grep -Eq \"$3\" last.err && [ ! -e imp_$2/latest ]"
}

# ---- refusals: config.json --------------------------------------------------------
$G make yarn --set 'rope_scaling={"rope_type":"yarn","factor":4.0,"original_max_position_embeddings":32}'
refused "rope_scaling yarn" yarn "rope_scaling type yarn"
$G make dyn --arch qwen2 --set 'rope_scaling={"type":"dynamic","factor":2.0}'
refused "rope_scaling (old 'type' spelling) dynamic" dyn "rope_scaling type dynamic"
$G make win --arch mistral --set sliding_window=32
refused "Mistral sliding_window 32 shorter than the context 64" win "sliding_window 32 is shorter than the context"
$G make winq --arch qwen2 --set use_sliding_window=true --set max_window_layers=1 --set sliding_window=16
refused "Qwen2 use_sliding_window with a window of 16 from layer 1" winq "sliding_window 16 .*use_sliding_window"
$G make gelu --set 'hidden_act="gelu"'
refused "hidden_act gelu" gelu "hidden_act gelu"
$G make drop --set attention_dropout=0.1
refused "attention_dropout 0.1" drop "attention_dropout 0.1"
$G make quant --set 'quantization_config={"bits":4}'
refused "quantization_config" quant "quantization_config"
$G make cls --arch qwen2 --set 'architectures=["LlamaForCausalLM"]'
refused "a class that is not the model_type's" cls "architectures LlamaForCausalLM"
$G make noshape --set intermediate_size=DELETE
refused "no intermediate_size" noshape "no intermediate_size"
$G make kv --heads 4 --kv-heads 3
refused "num_key_value_heads 3 of 4 heads" kv "num_key_value_heads 3 does not divide"

# ---- refusals: the tensors -----------------------------------------------------------
$G make miss --drop model.layers.1.mlp.up_proj.weight
refused "a missing tensor" miss "missing tensor 'model.layers.1.mlp.up_proj.weight'"
$G make shape --reshape model.layers.0.self_attn.k_proj.weight
refused "a tensor of the wrong shape" shape "'model.layers.0.self_attn.k_proj.weight' has shape 17 x 32; config.json needs 16 x 32"
$G make dtype --dtype-of model.norm.weight=F8_E4M3
refused "an unknown dtype" dtype "model.safetensors: tensor 'model.norm.weight': unknown dtype 'F8_E4M3'"
$G make ints --dtype-of model.norm.weight=I64
refused "a dtype that is not a float" ints "'model.norm.weight' has dtype I64"
$G make extra --arch llama --untied --set tie_word_embeddings=true
refused "a head of its own where config.json ties it" extra "lm_head.weight differs from model.embed_tokens.weight"
$G make noq --arch qwen3 --drop model.layers.0.self_attn.q_norm.weight
refused "Qwen3 without its q_norm" noq "missing tensor 'model.layers.0.self_attn.q_norm.weight'"
$G make gone --shards 3 && rm gone/model-00002-of-00003.safetensors
refused "a shard the index names but which is missing" gone "gone/model-00002-of-00003.safetensors: the index .* no such file"
$G make moved --shards 2 && sed -i 's/"model.norm.weight": "model-00002-of-00002/"model.norm.weight": "model-00001-of-00002/' moved/model.safetensors.index.json
refused "a tensor the index puts in a shard that does not hold it" moved "model-00001-of-00002.safetensors: the index .* puts tensor 'model.norm.weight' in this shard, which does not hold it"
$G make unnamed --shards 2 && sed -i '/"model.embed_tokens.weight"/d' unnamed/model.safetensors.index.json
refused "a shard's tensor the index does not name" unnamed "holds tensor 'model.embed_tokens.weight', which the index .* does not name"

# ---- in and out ------------------------------------------------------------------------
$G make plain > /dev/null
"$BIN" ckpt import plain --out imp_plain > /dev/null 2> last.err
check "import of a Llama directory" "[ -e imp_plain/latest ]"

# roundtrip NAME make-flags...: import, export at the default dtype, the
# same tensors byte for byte and the same config keys
roundtrip() {
  local n=$1
  shift
  $G make "src_$n" "$@" > /dev/null || { bad "$n: make"; return; }
  "$BIN" ckpt import "src_$n" --out "imp_$n" > "imp_$n.out" 2> last.err &&
    "$BIN" ckpt export "imp_$n" --format hf --out "exp_$n" > /dev/null 2>> last.err
  check "$n ($*): import and export exit 0" "[ $? -eq 0 ]"
  check "$n: every tensor back byte for byte" "$G compare src_$n exp_$n > /dev/null 2> last.err"
  check "$n: config.json's keys back as they were" "$G config-equal src_$n exp_$n > /dev/null 2> last.err"
}
roundtrip llama --arch llama
roundtrip llama_untied_biased --arch llama --untied --bias --mlp-bias
roundtrip llama3_rope --arch llama --set 'rope_scaling={"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":32}' --set rope_theta=500000.0
roundtrip qwen2 --arch qwen2 --untied --set rms_norm_eps=1e-06 --set rope_theta=1000000.0
roundtrip qwen3 --arch qwen3 --head-dim 16
roundtrip qwen3_untied_bias --arch qwen3 --untied --bias
roundtrip mistral --arch mistral --untied
roundtrip mistral_window --arch mistral --set sliding_window=4096
roundtrip bf16 --arch qwen2 --dtype BF16
roundtrip f16 --arch llama --dtype F16 --untied
roundtrip sharded_in --arch llama --untied --shards 3
check "Qwen2 is written back as Qwen2ForCausalLM" "grep -q Qwen2ForCausalLM exp_qwen2/config.json"
check "Mistral is written back as MistralForCausalLM (a Llama to the math)" "grep -q MistralForCausalLM exp_mistral/config.json"
check "the import says the class and dtype" "grep -q 'Hugging Face Qwen2ForCausalLM, BF16' imp_bf16.out"
check "export writes generation_config.json" "[ -s exp_llama/generation_config.json ]"
roundtrip tokenizer --arch llama --vocab 300 --tokenizer
check "tokenizer.json and tokenizer_config.json go into the checkpoint" \
  "cmp -s src_tokenizer/tokenizer.json imp_tokenizer/step_00000000/tokenizer/tokenizer.json && cmp -s src_tokenizer/tokenizer_config.json imp_tokenizer/step_00000000/tokenizer/tokenizer_config.json"
check "and out with the export, bos_token_id and eos_token_id the tokenizer's <s> and </s> (262, 263)" \
  "cmp -s src_tokenizer/tokenizer.json exp_tokenizer/tokenizer.json && cmp -s src_tokenizer/tokenizer_config.json exp_tokenizer/tokenizer_config.json && grep -q '\"bos_token_id\":262,\"eos_token_id\":263' exp_tokenizer/config.json"
run ckpt info imp_qwen3
check "ckpt info shows the family's shape and the source class" \
  "grep -q 'kv-heads 2, head-dim 16, mlp 48, qk-norm' last.out && grep -q 'source *Qwen3ForCausalLM, F32' last.out"

# ---- dtypes --------------------------------------------------------------------------
run ckpt export imp_llama --format hf --dtype bf16 --out exp_llama_bf16
check "f32 -> --dtype bf16: every value rounded to nearest even" "[ $rc -eq 0 ] && $G compare src_llama exp_llama_bf16 --as BF16 > /dev/null 2> last.err"
check "and config.json says torch_dtype bfloat16" "grep -q '\"torch_dtype\": *\"bfloat16\"' exp_llama_bf16/config.json"
run ckpt export imp_llama --format hf --dtype f16 --out exp_llama_f16
check "f32 -> --dtype f16" "[ $rc -eq 0 ] && $G compare src_llama exp_llama_f16 --as F16 > /dev/null 2> last.err"
run ckpt export imp_bf16 --format hf --dtype f32 --out exp_bf16_f32
check "bf16 -> --dtype f32: widened exactly" "[ $rc -eq 0 ] && $G compare src_bf16 exp_bf16_f32 --as F32 > /dev/null 2> last.err"

# ---- shards out ------------------------------------------------------------------------
run ckpt export imp_sharded_in --format hf --max-shard-size 20KB --out exp_shards
n=$($G shards exp_shards 2> /dev/null)
check "--max-shard-size 20KB: $n shards with model.safetensors.index.json" \
  "[ $rc -eq 0 ] && [ \"${n:-0}\" -gt 1 ] && [ -s exp_shards/model.safetensors.index.json ] && [ ! -e exp_shards/model.safetensors ]"
check "every shard at most 20KB, unless one tensor alone is larger" \
  "for f in exp_shards/model-*.safetensors; do [ \$(stat -c %s \$f) -le 20800 ] || exit 1; done"
check "the shards hold the source's tensors" "$G compare src_sharded_in exp_shards > /dev/null 2> last.err"
"$BIN" ckpt import exp_shards --out imp_shards > /dev/null 2> last.err
check "the sharded export imports to the same weights" \
  "[ $? -eq 0 ] && cmp -s imp_shards/step_00000000/rank_00000.bin imp_sharded_in/step_00000000/rank_00000.bin"
run ckpt export imp_sharded_in --format hf --out exp_shards
check "a later export in one file replaces the shards and their index" \
  "[ $rc -eq 0 ] && [ -s exp_shards/model.safetensors ] && [ ! -e exp_shards/model.safetensors.index.json ] && ! ls exp_shards/model-0* 2> /dev/null"
run ckpt export imp_llama --format hf --max-shard-size 5XB --out bad_size
check "--max-shard-size 5XB refused" "[ $rc -eq 2 ] && grep -q 'max-shard-size 5XB' last.err"

# ---- a full disk: a clear error, no directory that looks complete ---------------------
( trap '' XFSZ; ulimit -f 8; "$BIN" ckpt export imp_llama --format hf --out full > /dev/null 2> last.err )
check "an export past the file-size limit fails naming the file" "[ $? -ne 0 ] && grep -q 'full/model.safetensors' last.err"
check "and leaves no config.json" "[ ! -e full/config.json ]"

# ---- --init-from ----------------------------------------------------------------------
"$BIN" train --init-from src_qwen2 --kv-heads 4 --steps 1 --out conflict > /dev/null 2> last.err
check "--init-from: a flag that differs from the source is refused with its HF key" \
  "[ $? -ne 0 ] && grep -q 'kv-heads 4 conflicts with the --init-from source.s num_key_value_heads 2' last.err"
# a fine-tune keeps the class and dtype the weights came as: its export
# writes them back (tokens from the reference script, which needs torch)
if /usr/bin/python3 "$HERE/ref/llama_ref.py" make-tokens tok.bin --n 4000 --vocab 100 > /dev/null 2>&1; then
  run train --init-from src_bf16 --seq-len 32 --batch 2 --steps 1 --data tok.bin --threads 1 --quiet \
    --eval-every 0 --out ft
  check "train --init-from a Qwen2 BF16 dir at a shorter --seq-len runs its step" "[ $rc -eq 0 ] && [ \$(losses ft/metrics.jsonl | wc -l) -eq 1 ]"
  run ckpt export ft --format hf --out exp_ft
  check "its export is Qwen2ForCausalLM in bfloat16 with all 64 positions" \
    "[ $rc -eq 0 ] && grep -q Qwen2ForCausalLM exp_ft/config.json && grep -q '\"torch_dtype\":\"bfloat16\"' exp_ft/config.json && grep -q '\"max_position_embeddings\":64' exp_ft/config.json"
  check "and holds the source's tensors (names, shapes, BF16; trained values)" \
    "$G compare src_bf16 exp_ft --names-only --as BF16 > /dev/null 2> last.err"
else
  ok "skipped: the fine-tune (no python3-torch for the tokens)"
fi

finish
