#!/bin/bash
. "$(dirname "$0")/lib.sh"
  Z="--optimizer zo --zo-samples 2 --eval-every 0 --save-every 10 --keep-ckpts 0"
  run 4 four --dp 4 $Z --steps 20; check "4-machine run" "[ $? -eq 0 ]"
  # resume its step-10 checkpoint with 2 machines: steps 11..20 come from the journal
  timeout 240 "$LOCAL" -n 2 train --resume four/ckpt/step_00000010 --dp 2 --steps 30 --threads 1 \
    --save-every 10 --keep-ckpts 0 > two.log 2>&1
  check "2 machines resume a 4-machine run" "[ $? -eq 0 ]"
  check "caught up 10 steps by replay" "grep -q 'caught up 10 step' two.log"
  check "new roster epoch recorded" "grep -q 'roster epoch 1: 2 machine' two.log"
  check "continued to step 30" "grep -qx step_00000030 four/ckpt/latest"
  "$BIN" ckpt replay four/ckpt/step_00000010 four/zo/journal.bin --out rp > rp.log 2>&1
  "$BIN" ckpt export rp --format safetensors --out rp.st > /dev/null; "$BIN" ckpt export four --format safetensors --out live.st > /dev/null
  check "replay across the roster change == the live weights" "grep -q 'replayed to step 30' rp.log && cmp -s rp.st live.st"
finish
