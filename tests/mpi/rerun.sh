#!/bin/bash
. "$(dirname "$0")/lib.sh"
  run 3 a --dp 3 --zero 1; run 3 b --dp 3 --zero 1
  check "dp=3 re-run is bit-identical" "same_steps a/metrics.jsonl b/metrics.jsonl && cmp -s <(losses a/metrics.jsonl) <(losses b/metrics.jsonl)"
  check "dp=3 final weights are byte-identical" "cmp -s a/ckpt/step_00000020/rank_00001.bin b/ckpt/step_00000020/rank_00001.bin"
finish
