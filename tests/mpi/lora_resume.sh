#!/bin/bash
# Issue 24: a LoRA run's checkpoints under dp 2 x tp 2 (--lora-save-base:
# each dp rank writes its share of its tp slice of the frozen base):
# resumed under the same layout it continues bit-identically; resumed on
# one rank (the base and the adapters resharded on load) it gives the same
# losses to float tolerance.
. "$(dirname "$0")/lib.sh"
  run 1 b0 --steps 2; check "the plain base runs" "[ $? -eq 0 ]"
  LORA="--init-from b0 --lora-rank 4 --lora-targets all-linear --lora-save-base"
  run 4 full $LORA --dp 2 --tp 2 --save-every 10; check "dp 2 x tp 2 LoRA run saves" "[ -f full/ckpt/step_00000010/manifest.pb ]"
  check "the base is in the checkpoint" "grep -q 'base/' <(\"$BIN\" ckpt info full/ckpt/step_00000010)"
  timeout 240 "$LOCAL" -n 4 train --resume full/ckpt/step_00000010 --out cont --steps 20 --dp 2 --tp 2 --threads 1 --quiet > cont.log 2>&1
  check "resume under the same layout runs" "[ $? -eq 0 ]"
  check "resumed steps 11..20 are bit-identical" "cmp -s <(losses full/metrics.jsonl | tail -10) <(losses cont/metrics.jsonl)"
  timeout 240 "$LOCAL" -n 1 train --resume full/ckpt/step_00000010 --out one --steps 20 --threads 1 --quiet > one.log 2>&1
  check "resume on one rank runs" "[ $? -eq 0 ]"
  rel=$(paste <(losses full/metrics.jsonl | tail -10) <(losses one/metrics.jsonl) |
        awk '$1 != $3 {m = 1; exit} {d=$2-$4; if(d<0)d=-d; r=d/($2<0?-$2:$2); if(r>m)m=r} END{printf "%.3g", m+0}')
  check "... with the same losses, steps 11..20 (max rel $rel <= 1e-4)" \
    "[ \$(losses one/metrics.jsonl | wc -l) -eq 10 ] && awk 'BEGIN{exit !($rel <= 1e-4)}'"
finish
