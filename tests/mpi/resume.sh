#!/bin/bash
. "$(dirname "$0")/lib.sh"
  run 2 full --dp 2 --zero 1 --save-every 10; check "dp=2 zero=1 run saves" "[ -f full/ckpt/step_00000010/manifest.pb ]"
  check "each rank wrote its shard" "[ -f full/ckpt/step_00000010/rank_00000.bin ] && [ -f full/ckpt/step_00000010/rank_00001.bin ]"
  timeout 240 "$LOCAL" -n 2 train --resume full/ckpt/step_00000010 --out cont --steps 20 --dp 2 --zero 1 --threads 1 --quiet > cont.log 2>&1
  check "resume under the same layout runs" "[ $? -eq 0 ]"
  check "resumed steps 11..20 are bit-identical" "cmp -s <(losses full/metrics.jsonl | tail -10) <(losses cont/metrics.jsonl)"
finish
