#!/bin/bash
. "$(dirname "$0")/lib.sh"
  Z="--optimizer zo --zo-samples 2 --eval-every 0 --steps 30"
  run 2 flat --dp 2 $Z; run 4 piped --dp 2 --pp 2 $Z --micro-batches 2
  "$BIN" ckpt export flat --format safetensors --out flat.st > /dev/null && "$BIN" ckpt export piped --format safetensors --out piped.st > /dev/null
  check "dp=2 with pp=2 gives bit-identical weights to dp=2 after 30 steps" "[ -s flat.st ] && cmp -s flat.st piped.st"
finish
