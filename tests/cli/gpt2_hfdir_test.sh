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

# mpitrain's imports and exports first (exit codes and stderr kept), then
# the reference's checks of them in one process (refq: the torch import
# once, not seven times), then the checks in their order
# ---- export: the dtype the model came in, or --dtype ------------------------------
for dt in F16 BF16; do
  src=$([ $dt = F16 ] && echo hf16 || echo hfb)
  "$BIN" ckpt import $src --out imp_$dt > /dev/null 2> err_$dt &&
    "$BIN" ckpt export imp_$dt --format hf --out exp_$dt > /dev/null 2>> err_$dt
  echo $? > rc_$dt
  refq cmp_$dt compare $src/model.safetensors exp_$dt/model.safetensors
  refq chk_$dt check-hf exp_$dt --dtype $dt --source $src/model.safetensors --tokenizer --merges $src/merges.txt
done
"$BIN" train --init-from imp_F16 --batch 2 --steps 1 --data tok.bin $Q --out ft16 > /dev/null 2> err_ft16 &&
  "$BIN" ckpt export ft16 --format hf --out exp_ft16 > /dev/null 2>> err_ft16
echo $? > rc_ft16
refq chk_ft16 check-hf exp_ft16 --dtype F16
for dt in bf16 f16 f32; do
  DT=$(echo $dt | tr a-z A-Z)
  "$BIN" ckpt export imp --format hf --dtype $dt --out exp32_$dt > /dev/null 2> err32_$dt
  echo $? > rc32_$dt
  refq chk32_$dt check-hf exp32_$dt --dtype $DT --source hf/model.safetensors --tokenizer
done
"$BIN" ckpt export imp_F16 --format hf --dtype f32 --out exp16_f32 > /dev/null 2> err16_f32
echo $? > rc16_f32
refq chk16_f32 check-hf exp16_f32 --dtype F32 --source hf16/model.safetensors
"$BIN" train --layers 1 --heads 1 --embd 16 --seq-len 16 --vocab 50257 --batch 2 --steps 1 --data tok.bin $Q \
  --out scratch > /dev/null 2> err_scratch && "$BIN" ckpt export scratch --format hf --out exp_scratch > /dev/null 2>> err_scratch
echo $? > rc_scratch
refq chk_scratch check-hf exp_scratch --dtype F32
# ---- the tokenizer under HF's names -------------------------------------------------
# OpenAI's file pair, with a merges file that has no "#version" line and no
# final newline: GPT2Tokenizer drops merges.txt's first and last lines
rm -rf oai && mkdir oai && cp hf/config.json hf/model.safetensors oai/ && cp hf/vocab.json oai/encoder.json &&
  printf 'Ġ t' > oai/vocab.bpe
"$BIN" ckpt import oai --out imp_oai > /dev/null 2> err_oai &&
  "$BIN" ckpt export imp_oai --format hf --out exp_oai > /dev/null 2>> err_oai
echo $? > rc_oai
refq chk_oai check-hf exp_oai --dtype F32 --tokenizer --merges oai/vocab.bpe
ref_run

# ---- the checks ---------------------------------------------------------------------
for dt in F16 BF16; do
  src=$([ $dt = F16 ] && echo hf16 || echo hfb)
  cat err_$dt cmp_$dt.err > last.err
  check "an $dt import exports as $dt by default: byte-identical weights" \
    "[ \$(cat rc_$dt) -eq 0 ] && ref_ok cmp_$dt"
  check "and at the source's size, not twice it" \
    "[ \$(stat -c %s exp_$dt/model.safetensors) -lt \$((\$(stat -c %s $src/model.safetensors) + 1024)) ]"
  cp chk_$dt.err last.err
  check "exp_$dt is what transformers reads ($dt, tokenizer, configs)" "ref_ok chk_$dt"
done
cat err_ft16 chk_ft16.err > last.err
check "a run --init-from an F16 import still exports F16" "[ \$(cat rc_ft16) -eq 0 ] && ref_ok chk_ft16"
for dt in bf16 f16 f32; do
  DT=$(echo $dt | tr a-z A-Z)
  cat err32_$dt chk32_$dt.err > last.err
  check "--dtype $dt of f32 weights: each value as torch rounds it to $DT" \
    "[ \$(cat rc32_$dt) -eq 0 ] && ref_ok chk32_$dt"
done
cat err16_f32 chk16_f32.err > last.err
check "--dtype f32 of an F16 import: exact widening" "[ \$(cat rc16_f32) -eq 0 ] && ref_ok chk16_f32"
cat err_scratch chk_scratch.err > last.err
check "a model trained from scratch exports F32, with generation_config.json (eos 50256)" \
  "[ \$(cat rc_scratch) -eq 0 ] && ref_ok chk_scratch && [ ! -e exp_scratch/tokenizer_config.json ]"
"$BIN" ckpt export imp --format llmc --dtype f16 --out x.bin > /dev/null 2> last.err
check "--dtype with --format llmc is refused" "[ $? -eq 2 ] && grep -q -- '--dtype applies to --format hf only' last.err"

cp err_oai last.err
check "encoder.json + vocab.bpe go out as vocab.json + merges.txt" \
  "[ \$(cat rc_oai) -eq 0 ] && cmp -s oai/encoder.json exp_oai/vocab.json && [ ! -e exp_oai/encoder.json ] && [ ! -e exp_oai/vocab.bpe ]"
cp chk_oai.err last.err
check "merges.txt gets the '#version' line and final newline GPT2Tokenizer needs (all merges read)" \
  "ref_ok chk_oai && [ \"\$(sed -n 2p exp_oai/merges.txt)\" = 'Ġ t' ]"
check "tokenizer_config.json: GPT2Tokenizer, <|endoftext|>, model_max_length = n_positions 64" \
  "grep -q '\"model_max_length\":64' exp_oai/tokenizer_config.json && grep -q '\"tokenizer_class\":\"GPT2Tokenizer\"' exp_oai/tokenizer_config.json"

finish
