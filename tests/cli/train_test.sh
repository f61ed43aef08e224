#!/bin/bash
# Process-level training checks: same seed twice is bit-identical; resuming
# from a checkpoint continues bit-identically; the GPT and the MLP train.
# usage: train_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
. "$(cd "$(dirname "$0")/.." && pwd)/check.sh"
BIN=$1
DIR=$2
rm -rf "$DIR" && mkdir -p "$DIR" && cd "$DIR" || exit 1

# a small corpus: a few chapters of text from the test's own lines
for i in $(seq 1 60); do
  echo "And it came to pass, line $i, that the quick brown fox jumped over the lazy dog."
done > corpus.txt
"$BIN" prepare corpus.txt --out corpus.tok --val-fraction 0.1 > /dev/null || { echo "FAIL - prepare"; exit 1; }

TINY="--layers 2 --heads 2 --embd 32 --seq-len 32 --batch 4 --data corpus.tok --threads 1 --progress lines --quiet --eval-every 0"
"$BIN" train $TINY --steps 8 --save-every 4 --out a > a.log 2>&1; check "run a exits 0" "[ $? -eq 0 ]"
"$BIN" train $TINY --steps 8 --save-every 4 --out b > b.log 2>&1; check "run b exits 0" "[ $? -eq 0 ]"
check "8 metric rows" "[ \$(losses a/metrics.jsonl | wc -l) -eq 8 ]"
check "same seed -> identical losses to the last bit" "cmp -s <(losses a/metrics.jsonl) <(losses b/metrics.jsonl)"
"$BIN" train $TINY --steps 8 --seed 7 --out s > s.log 2>&1
check "another seed -> other losses" "! cmp -s <(losses a/metrics.jsonl) <(losses s/metrics.jsonl)"

"$BIN" train --steps 8 --resume a/ckpt/step_00000004 --out c --threads 1 --quiet --eval-every 0 > c.log 2>&1
check "resume exits 0" "[ $? -eq 0 ]"
check "resume continues at step 5" "[ \"\$(losses c/metrics.jsonl | head -1 | cut -d' ' -f1)\" = 5 ]"
check "resumed steps 5..8 are bit-identical" "cmp -s <(losses a/metrics.jsonl | tail -4) <(losses c/metrics.jsonl)"
check "resumed final weights are byte-identical" "cmp -s a/ckpt/step_00000008/rank_00000.bin c/ckpt/step_00000008/rank_00000.bin"

# resume of a run directory picks its latest checkpoint and appends
cp -r a d && rm -rf d/ckpt/step_00000008 && echo step_00000004 > d/ckpt/latest
"$BIN" train --steps 8 --resume d --threads 1 --quiet > d.log 2>&1
check "resume of a run dir exits 0" "[ $? -eq 0 ]"
check "resume of a run dir writes step 8 again" "[ -f d/ckpt/step_00000008/manifest.pb ] && grep -qx step_00000008 d/ckpt/latest"
check "resume of a run dir rewrites metrics to one trajectory" "cmp -s <(losses a/metrics.jsonl) <(losses d/metrics.jsonl)"

"$BIN" train $TINY --steps 60 --lr 3e-3 --out learn > learn.log 2>&1
first=$(losses learn/metrics.jsonl | head -1 | cut -d' ' -f2)
last=$(losses learn/metrics.jsonl | tail -1 | cut -d' ' -f2)
check "gpt loss falls clearly ($first -> $last)" "awk -v a=$first -v b=$last 'BEGIN{exit !(b < a - 2.0)}'"

"$BIN" train --model mlp --layers 2 --embd 64 --seq-len 4 --batch 16 --data corpus.tok --threads 1 \
  --steps 80 --lr 3e-3 --quiet --eval-every 0 --out mlp > mlp.log 2>&1
first=$(losses mlp/metrics.jsonl | head -1 | cut -d' ' -f2)
last=$(losses mlp/metrics.jsonl | tail -1 | cut -d' ' -f2)
check "mlp loss falls ($first -> $last)" "awk -v a=$first -v b=$last 'BEGIN{exit !(b < a - 1.5)}'"

finish
