#!/bin/bash
# What `ckpt export --format hf` hands out: a directory transformers loads
# as it is: vocab.json + merges.txt, tokenizer_config.json, generation_config.json,
# the weights in the dtype the model came in (or --dtype f32|f16|bf16,
# narrowed with round to nearest even). Checked with tests/ref/gpt2_ref.py
# against HF's documented formats (transformers itself is not installed).
# usage: gpt2_hfdir_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
. "$(cd "$(dirname "$0")/.." && pwd)/check.sh"
. "$(cd "$(dirname "$0")/.." && pwd)/ref/gpt2_lib.sh"

$REF make-tokens tok.bin --n 20000 && $REF make-hf hf --tokenizer && $REF make-hf hf16 --dtype F16 --tokenizer &&
  $REF make-hf hfb --dtype BF16 --tokenizer || { echo "FAIL - reference models"; exit 1; }
Q="--threads 1 --quiet --eval-every 0"
"$BIN" ckpt import hf --out imp > /dev/null 2> last.err || { echo "FAIL - import"; exit 1; }

# ---- export: the dtype the model came in, or --dtype ------------------------------
for dt in F16 BF16; do
  src=$([ $dt = F16 ] && echo hf16 || echo hfb)
  "$BIN" ckpt import $src --out imp_$dt > /dev/null 2> last.err &&
    "$BIN" ckpt export imp_$dt --format hf --out exp_$dt > /dev/null 2>> last.err
  check "an $dt import exports as $dt by default: byte-identical weights" \
    "[ $? -eq 0 ] && $REF compare $src/model.safetensors exp_$dt/model.safetensors > /dev/null"
  check "and at the source's size, not twice it" \
    "[ \$(stat -c %s exp_$dt/model.safetensors) -lt \$((\$(stat -c %s $src/model.safetensors) + 1024)) ]"
  check "exp_$dt is what transformers reads ($dt, tokenizer, configs)" \
    "$REF check-hf exp_$dt --dtype $dt --source $src/model.safetensors --tokenizer --merges $src/merges.txt > /dev/null"
done
"$BIN" train --init-from imp_F16 --batch 2 --steps 1 --data tok.bin $Q --out ft16 > /dev/null 2> last.err &&
  "$BIN" ckpt export ft16 --format hf --out exp_ft16 > /dev/null 2>> last.err
check "a run --init-from an F16 import still exports F16" "[ $? -eq 0 ] && $REF check-hf exp_ft16 --dtype F16 > /dev/null"
for dt in bf16 f16 f32; do
  DT=$(echo $dt | tr a-z A-Z)
  "$BIN" ckpt export imp --format hf --dtype $dt --out exp32_$dt > /dev/null 2> last.err
  check "--dtype $dt of f32 weights: each value as torch rounds it to $DT" \
    "[ $? -eq 0 ] && $REF check-hf exp32_$dt --dtype $DT --source hf/model.safetensors --tokenizer > /dev/null"
done
"$BIN" ckpt export imp_F16 --format hf --dtype f32 --out exp16_f32 > /dev/null 2> last.err
check "--dtype f32 of an F16 import: exact widening" \
  "[ $? -eq 0 ] && $REF check-hf exp16_f32 --dtype F32 --source hf16/model.safetensors > /dev/null"
"$BIN" train --layers 1 --heads 1 --embd 16 --seq-len 16 --vocab 50257 --batch 2 --steps 1 --data tok.bin $Q \
  --out scratch > /dev/null 2> last.err && "$BIN" ckpt export scratch --format hf --out exp_scratch > /dev/null 2>> last.err
check "a model trained from scratch exports F32, with generation_config.json (eos 50256)" \
  "[ $? -eq 0 ] && $REF check-hf exp_scratch --dtype F32 > /dev/null && [ ! -e exp_scratch/tokenizer_config.json ]"
"$BIN" ckpt export imp --format llmc --dtype f16 --out x.bin > /dev/null 2> last.err
check "--dtype with --format llmc is refused" "[ $? -eq 2 ] && grep -q -- '--dtype applies to --format hf only' last.err"

# ---- the tokenizer under HF's names -------------------------------------------------
# OpenAI's file pair, with a merges file that has no "#version" line and no
# final newline: GPT2Tokenizer drops merges.txt's first and last lines
rm -rf oai && mkdir oai && cp hf/config.json hf/model.safetensors oai/ && cp hf/vocab.json oai/encoder.json &&
  printf 'Ġ t' > oai/vocab.bpe
"$BIN" ckpt import oai --out imp_oai > /dev/null 2> last.err &&
  "$BIN" ckpt export imp_oai --format hf --out exp_oai > /dev/null 2>> last.err
check "encoder.json + vocab.bpe go out as vocab.json + merges.txt" \
  "[ $? -eq 0 ] && cmp -s oai/encoder.json exp_oai/vocab.json && [ ! -e exp_oai/encoder.json ] && [ ! -e exp_oai/vocab.bpe ]"
check "merges.txt gets the '#version' line and final newline GPT2Tokenizer needs (all merges read)" \
  "$REF check-hf exp_oai --dtype F32 --tokenizer --merges oai/vocab.bpe > /dev/null && [ \"\$(sed -n 2p exp_oai/merges.txt)\" = 'Ġ t' ]"
check "tokenizer_config.json: GPT2Tokenizer, <|endoftext|>, model_max_length = n_positions 64" \
  "grep -q '\"model_max_length\":64' exp_oai/tokenizer_config.json && grep -q '\"tokenizer_class\":\"GPT2Tokenizer\"' exp_oai/tokenizer_config.json"

finish
