#!/bin/bash
# ckpt import, reshard and replay write a checkpoint root (--out): an
# existing one is refused unless --overwrite, and --overwrite replaces only
# a root that holds nothing but checkpoints, never through a link, never the
# source being read; a write that fails puts the old root back.
# usage: ckpt_overwrite_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
. "$(cd "$(dirname "$0")/.." && pwd)/check.sh"
scratch_dir "$1" "$2"
for i in $(seq 1 60); do
  echo "And it came to pass, line $i, that the quick brown fox jumped over the lazy dog."
done > corpus.txt
"$BIN" prepare corpus.txt --out corpus.tok --val-fraction 0.1 > /dev/null || { echo "FAIL - prepare"; exit 1; }
TINY="--layers 2 --heads 2 --embd 32 --seq-len 32 --batch 4 --data corpus.tok --threads 1 --quiet --eval-every 0"
"$BIN" train $TINY --steps 4 --out r1 > /dev/null 2>&1 &&
  "$BIN" train $TINY --steps 4 --seed 7 --out r2 > /dev/null 2>&1 &&
  "$BIN" train $TINY --optimizer zo --steps 6 --save-every 3 --out zr > /dev/null 2>&1 &&
  "$BIN" ckpt export r2 --format hf --out hf > /dev/null
check "two runs, a ZO run and an HF export to work with" "[ $? -eq 0 ]"
"$BIN" ckpt export r1 --format safetensors --out r1.st > /dev/null
# r1's checkpoint root is as it was: latest, its one step, its weights
r1_intact() {
  [ "$(cat r1/ckpt/latest)" = step_00000004 ] && [ "$(ls r1/ckpt)" = "latest
step_00000004" ] && "$BIN" ckpt export r1 --format safetensors --out now.st > /dev/null && cmp -s r1.st now.st
}

for how in "reshard r2" "import hf" "replay zr/ckpt/step_00000003 zr/zo/journal.bin"; do
  run ckpt $how --out r1/ckpt
  check "ckpt ${how%% *} --out <an existing root> is refused (exit 2, got $rc)" \
    "[ $rc -eq 2 ] && grep -q -- '--out r1/ckpt already exists.*pass --overwrite' last.err"
  check "and r1's checkpoints are untouched" "r1_intact"
done

mkdir empty
run ckpt reshard r2 --out empty
check "an empty --out is written without --overwrite" "[ $rc -eq 0 ] && [ \"\$(cat empty/latest)\" = step_00000004 ]"

ln -s r1/ckpt lnk
run ckpt reshard r2 --out lnk --overwrite
check "--overwrite through a link is refused" "[ $rc -eq 2 ] && grep -q 'lnk: it is a symbolic link' last.err && r1_intact"
run ckpt import hf --out r1 --overwrite
check "--overwrite of a run directory (not a checkpoint root) is refused" \
  "[ $rc -eq 2 ] && grep -q 'which is not a checkpoint root' last.err && r1_intact && [ -f r1/metrics.jsonl ]"
run ckpt reshard r1 --out r1/ckpt --overwrite
check "--overwrite of the root being read is refused" "[ $rc -eq 2 ] && grep -q 'overlaps r1' last.err && r1_intact"
run ckpt reshard r2 --tp 3 --out r1/ckpt --overwrite
check "a reshard that fails puts the old root back" "[ $rc -ne 0 ] && r1_intact && [ -z \"\$(ls -d r1/ckpt.* 2> /dev/null)\" ]"

run ckpt import hf --out r1/ckpt --overwrite
check "ckpt import --overwrite replaces the root" "[ $rc -eq 0 ] && [ \"\$(ls r1/ckpt | tr '\n' ' ')\" = 'latest step_00000000 ' ]"
check "and leaves nothing of the old one beside it" "[ -z \"\$(ls -d r1/ckpt.* 2> /dev/null)\" ]"
run ckpt reshard r2 --out r1/ckpt --overwrite
"$BIN" ckpt export r2 --format safetensors --out r2.st > /dev/null
"$BIN" ckpt export r1 --format safetensors --out now.st > /dev/null
check "ckpt reshard --overwrite replaces it with the source's weights" "[ $rc -eq 0 ] && cmp -s r2.st now.st"
run ckpt replay zr/ckpt/step_00000003 zr/zo/journal.bin --out r1/ckpt --overwrite
check "ckpt replay --overwrite too" "[ $rc -eq 0 ] && [ \"\$(cat r1/ckpt/latest)\" = step_00000006 ]"
finish
