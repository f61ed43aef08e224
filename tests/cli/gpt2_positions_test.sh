#!/bin/bash
# A GPT keeps every position of its position table (wpe) whatever context it
# trains at: `train --init-from` a 64-position GPT-2 at --seq-len 32 trains
# on the first 32 rows and keeps, checkpoints, reshards, samples with and
# exports all 64, under every layout; from scratch, --positions N sets the
# table's rows (default: --seq-len).
# usage: gpt2_positions_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
. "$(cd "$(dirname "$0")/.." && pwd)/check.sh"
. "$(cd "$(dirname "$0")/.." && pwd)/ref/gpt2_lib.sh"

$REF make-tokens tok.bin --n 20000 && $REF make-hf hf --tokenizer || { echo "FAIL - reference models"; exit 1; }
# a fine-tune at a shorter context keeps every position of the source: it
# trains on the first 32 rows of wpe and exports all 64 (weight decay 0, so
# the rows no context reads stay the source's bits)
FT="--batch 2 --steps 2 --data tok.bin --threads 1 --quiet --eval-every 0 --seq-len 32 --weight-decay 0"
"$BIN" train --init-from hf $FT --out ft32 > /dev/null 2> last.err &&
  "$BIN" ckpt export ft32 --format hf --out ft32.hf > /dev/null 2>> last.err
check "train --init-from (64 positions) --seq-len 32, export: n_positions 64" \
  "[ $? -eq 0 ] && grep -q '\"n_positions\":64' ft32.hf/config.json && grep -q 'seq-len 32, vocab 50257, positions 64' <(\"$BIN\" ckpt info ft32)"
check "rows 32..63 of wpe are the source's, rows 0..31 trained" \
  "$REF rows hf/model.safetensors ft32.hf/model.safetensors --lo 32 --hi 64 > /dev/null && ! $REF rows hf/model.safetensors ft32.hf/model.safetensors --hi 32 > /dev/null"
"$BIN" train --resume ft32 --data tok.bin --steps 3 --threads 1 --quiet --eval-every 0 > /dev/null 2> last.err &&
  "$BIN" ckpt reshard ft32 --tp 2 --out ft32_tp2 > /dev/null 2>> last.err &&
  "$BIN" ckpt export ft32_tp2 --format hf --out ft32r.hf > /dev/null 2>> last.err
check "--resume and reshard keep the 64 positions" \
  "[ $? -eq 0 ] && $REF rows hf/model.safetensors ft32r.hf/model.safetensors --lo 32 --hi 64 > /dev/null"
for lay in "--tp 2" "--dp 2 --zero 1" "--pp 2" "--dp 2 --optimizer zo"; do
  o=ft32_$(echo "$lay" | tr -d ' -')
  timeout 240 "$LOCAL" -n 2 train --init-from hf $FT $lay --out $o > /dev/null 2> last.err &&
    "$BIN" ckpt export $o --format hf --out $o.hf > /dev/null 2>> last.err
  check "$lay at --seq-len 32: 64 positions out, rows 32..63 untouched" \
    "[ $? -eq 0 ] && $REF rows hf/model.safetensors $o.hf/model.safetensors --lo 32 --hi 64 > /dev/null"
done
"$BIN" ckpt import ft32.hf --out ft32_imp > /dev/null 2> last.err
"$BIN" sample --ckpt ft32 --tokens 60 --temperature 0 --ignore-eot --threads 1 > ft32.txt 2> last.err &&
  "$BIN" sample --ckpt ft32_imp --tokens 60 --temperature 0 --ignore-eot --threads 1 > ft32_imp.txt 2>> last.err
check "sample uses all 64 positions of a model trained at 32 (same text as its export imported)" \
  "[ $? -eq 0 ] && [ -s ft32.txt ] && cmp -s ft32.txt ft32_imp.txt"
"$BIN" train --init-from hf $FT --seq-len 128 --out ft128 > /dev/null 2> last.err
check "--seq-len 128 beyond the source's 64 positions is refused by name" \
  "[ $? -eq 2 ] && grep -q -- '--seq-len 128 conflicts with the --init-from source.s n_positions 64' last.err"
$REF make-tokens small.bin --n 4000 --vocab 256 > /dev/null 2>&1
TINY="--layers 1 --heads 1 --embd 16 --seq-len 16 --vocab 256 --batch 2 --steps 1 --data small.bin --threads 1 --quiet --eval-every 0"
"$BIN" train $TINY --out scratch16 > /dev/null 2> last.err && "$BIN" ckpt export scratch16 --format hf --out scratch16.hf > /dev/null
check "from scratch: positions = --seq-len" "grep -q '\"n_positions\":16' scratch16.hf/config.json"
"$BIN" train $TINY --positions 32 --out scratch32 > /dev/null 2> last.err && "$BIN" ckpt export scratch32 --format hf --out scratch32.hf > /dev/null
check "from scratch with --positions 32: n_positions 32" "grep -q '\"n_positions\":32' scratch32.hf/config.json"
"$BIN" train $TINY --positions 8 --out scratch8 > /dev/null 2> last.err
check "--positions below --seq-len is refused" "[ $? -eq 2 ] && grep -q -- '--positions 8: must be between --seq-len 16' last.err"

finish
