#!/bin/bash
# The llama family under every parallelism: the single rank learns, and
# each layout's 20 losses equal the single rank's. kv heads 2: tp 2 splits them, tp 4 replicates them on
# every rank; ZeRO-1 and -2; pipeline stages with the tied head's copy of
# wte and, in the second model, an untied head (and the qk-norm, biases,
# heads x head_dim != width).
. "$(dirname "$0")/lib.sh"
LL="--model llama --layers 2 --heads 4 --kv-heads 2 --embd 32 --mlp-hidden 48 --seq-len 32 --batch 16 --data corpus.tok --threads 1 --quiet --eval-every 0 --steps 20"
QW="--head-dim 6 --qk-norm 1 --qkv-bias 1 --attn-out-bias 1 --mlp-bias 1 --untied-head 1"
for model in llama qwen; do
  opts=$LL
  [ $model = qwen ] && opts="$LL $QW"
  timeout 240 "$LOCAL" -n 1 train $opts --out "$model" > "$model.log" 2>&1
  check "$model: single-rank baseline runs" "[ $? -eq 0 ]"
  first=$(losses "$model/metrics.jsonl" | head -1 | cut -d' ' -f2)
  last=$(losses "$model/metrics.jsonl" | tail -1 | cut -d' ' -f2)
  check "$model: it learns (loss $first at step 1, $last at step 20)" \
    "awk 'BEGIN{exit !($last < $first - 0.5)}'"
  for lay in "2 1 1 --zero 1" "1 2 1" "1 4 1" "1 1 2 --pp-schedule 1f1b --micro-batches 2" \
             "2 2 1 --zero 2 --micro-batches 2" "2 1 2 --zero 1"; do
    run_layout "$model" "$opts" $lay
    same_as_base "$model" "$o" "$what"
  done
done
finish
