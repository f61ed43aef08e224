#!/bin/bash
# A ZO run under --time-budget: the lr depends on time, so replay must not
# recompute it; each journal STEP record carries the lr the step used, and
# base + journal replays to the live weights bit for bit.
. "$(dirname "$0")/lib.sh"
  T="${TINY% --steps 20} --warmup 0 --lr 1e-3 --min-lr 1e-4"
  Z="--optimizer zo --dp 2 --zo-check-every 5 --save-every 0 --keep-ckpts 0"
  lrs() { sed -n 's/.*"lr":\([^,]*\),.*/\1/p' "$1"; }
  # the base: step 1, no budget; then the budget run continues it (its
  # journal too) from step 2 until the budget ends it
  timeout 240 "$LOCAL" -n 2 train $T $Z --steps 1 --out z > z1.log 2>&1
  check "the base run (1 step) runs" "[ $? -eq 0 ] && [ -f z/ckpt/step_00000001/manifest.pb ]"
  timeout 240 "$LOCAL" -n 2 train $T $Z --resume z --time-budget 2s > z2.log 2>&1; rc=$?
  last=$(sed -n 's/.*"last_step":\([0-9]*\).*/\1/p' z/summary.json)
  check "the 2 s budget continues it and ends by itself at step $last (rc $rc)" \
    "[ $rc -eq 0 ] && grep -q '\"ended_by\":\"time-budget\"' z/summary.json && [ ${last:-0} -ge 3 ]"
  check "its lr moves with time: from the peak to at most the cosine's middle" \
    "[ \"\$(lrs z/metrics.jsonl | sed -n 2p)\" = 0.001 ] && awk -v l=$(lrs z/metrics.jsonl | tail -1) 'BEGIN{exit !(l <= 5.5e-4 * (1 + 1e-6))}'"
  "$BIN" ckpt replay z/ckpt/step_00000001 z/zo/journal.bin --out replay > replay.log 2>&1
  check "replay from step 1 reaches step $last" "grep -q 'replayed to step $last' replay.log"
  "$BIN" ckpt export z --format safetensors --out z.st > /dev/null
  "$BIN" ckpt export replay --format safetensors --out replay.st > /dev/null
  check "replayed weights == live weights, bit for bit" "[ -s z.st ] && cmp -s z.st replay.st"
finish
