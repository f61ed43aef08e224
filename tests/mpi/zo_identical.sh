#!/bin/bash
. "$(dirname "$0")/lib.sh"
  # 4 machines x 50 steps: the hash check compares every shard's weight bits across
  # machines every 5 steps; replaying base + journal gives the live weights bit for bit
  Z="--optimizer zo --zo-samples 2 --zo-check-every 5 --eval-every 0 --save-every 20 --keep-ckpts 0"
  run 4 a --dp 4 $Z --steps 50; check "4 machines x 50 steps with hash checks every 5 steps" "[ $? -eq 0 ]"
  check "journal written" "[ -s a/zo/journal.bin ]"
  # header 64 + roster record 24 + 50 steps x (8 head + 20 + 4 machines x 2 samples codes + 4 crc)
  check "the journal holds one byte per (machine, sample) per step" "[ \$(stat -c %s a/zo/journal.bin) -eq \$((64 + 24 + 50 * 40)) ]"
  run 4 b --dp 4 $Z --steps 50
  "$BIN" ckpt export a --format safetensors --out a.st > /dev/null && "$BIN" ckpt export b --format safetensors --out b.st > /dev/null
  check "a re-run gives byte-identical weights" "cmp -s a.st b.st"
  "$BIN" ckpt replay a/ckpt/step_00000020 a/zo/journal.bin --out replay > replay.log 2>&1
  check "replay from step 20 reaches step 50" "grep -q 'replayed to step 50' replay.log"
  "$BIN" ckpt export replay --format safetensors --out replay.st > /dev/null
  check "replayed weights == live weights, bit for bit" "cmp -s a.st replay.st"
finish
