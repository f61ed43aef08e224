#!/bin/bash
# `ckpt import` writes the weights only: no zeroed AdamW moments (3x the
# size for nothing); a training run creates its optimizer state, and every
# command that reads a checkpoint accepts one without it.
# usage: gpt2_import_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
. "$(cd "$(dirname "$0")/.." && pwd)/check.sh"
. "$(cd "$(dirname "$0")/.." && pwd)/ref/gpt2_lib.sh"

$REF make-tokens tok.bin --n 20000 && $REF make-hf hf --tokenizer || { echo "FAIL - reference models"; exit 1; }
Q="--threads 1 --quiet --eval-every 0"

# ---- import: weights only ----------------------------------------------------
"$BIN" ckpt import hf --out imp > /dev/null 2> last.err
"$BIN" ckpt info imp > info.txt 2>> last.err
params=$(sed -n 's/^parameters *//p' info.txt)
check "import writes no optimizer moments (no opt_m/opt_v records)" \
  "[ -n \"$params\" ] && ! grep -q 'opt_[mv]/' info.txt"
check "its data is the weights alone: 4 bytes x $params parameters" \
  "[ \$(stat -c %s imp/step_00000000/rank_00000.bin) -eq \$((4 * ${params:-0})) ]"
"$BIN" ckpt info --verify imp > /dev/null 2> last.err; check "ckpt info --verify accepts it" "[ $? -eq 0 ]"
"$BIN" eval --ckpt imp --data tok.bin --batches 1 --batch 2 --threads 1 > eval.txt 2> last.err
check "eval accepts it" "[ $? -eq 0 ] && grep -q loss eval.txt"
"$BIN" sample --ckpt imp --tokens 5 --temperature 0 --threads 1 > /dev/null 2> last.err
check "sample accepts it" "[ $? -eq 0 ]"
"$BIN" ckpt reshard imp --dp 2 --zero 1 --out imp_dp2 > /dev/null 2> last.err &&
  "$BIN" ckpt info --verify imp_dp2 > info2.txt 2>> last.err
check "reshard keeps it weights-only, and --verify accepts that" "[ $? -eq 0 ] && ! grep -q 'opt_[mv]/' info2.txt"
"$BIN" train --resume imp --data tok.bin --steps 2 $Q --out res > /dev/null 2> last.err
check "--resume of it creates the AdamW state and trains" \
  "[ $? -eq 0 ] && [ \$(losses res/metrics.jsonl | wc -l) -eq 2 ] && \"$BIN\" ckpt info res | grep -q 'opt_m/wte'"
timeout 240 "$LOCAL" -n 2 train --resume imp --data tok.bin --steps 1 --dp 2 --zero 1 $Q --out res_z > /dev/null 2> last.err
check "--resume of it under dp 2, zero 1" "[ $? -eq 0 ] && [ \$(losses res_z/metrics.jsonl | wc -l) -eq 1 ]"
"$BIN" train --init-from imp_dp2 --batch 2 --steps 1 --data tok.bin $Q --out init > /dev/null 2> last.err
check "--init-from the resharded import trains" "[ $? -eq 0 ]"

finish
