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
  # replayed RUN: RUN's weights and those of its journal replayed from step
  # 20 onto that checkpoint, exported (RUN.st, RUNreplay.st)
  replayed() {
    "$BIN" ckpt export "$1" --format safetensors --out "$1.st" > /dev/null
    "$BIN" ckpt replay "$1/ckpt/step_00000020" "$1/zo/journal.bin" --out "$1replay" > "$1replay.log" 2>&1
    "$BIN" ckpt export "$1replay" --format safetensors --out "$1replay.st" > /dev/null
  }
  # one-sided differences (K+1 forwards): other codes, the same wire and replay
  run 4 o --dp 4 $Z --zo-one-sided --steps 40
  replayed o
  check "--zo-one-sided: the journal's size as above, replay == live bit for bit" \
    "[ \$(stat -c %s o/zo/journal.bin) -eq \$((64 + 24 + 40 * 40)) ] && [ -s o.st ] && cmp -s o.st oreplay.st"
  check "... and other codes than central differences'" "! cmp -s <(head -c 500 o/zo/journal.bin) <(head -c 500 a/zo/journal.bin)"
  # --zo-sparse: the mask from the weights at each step, the same on every
  # machine (the hash checks) and in the replay (the journal's version 3
  # header holds the fraction)
  run 4 s --dp 4 $Z --zo-sparse 0.3 --steps 40; check "--zo-sparse 0.3: 4 machines x 40 steps with hash checks" "[ $? -eq 0 ]"
  replayed s
  check "--zo-sparse: replay == live bit for bit, and other weights than the dense run's" \
    "[ -s s.st ] && cmp -s s.st sreplay.st && ! cmp -s s.st o.st"
  check "--zo-sparse: the journal says so (version 3)" "[ \$(od -An -tu4 -j8 -N4 s/zo/journal.bin) -eq 3 ]"
  run 1 sx --zo-sparse 0.3 --optimizer adamw --steps 1; rc=$?
  check "--zo-sparse without --optimizer zo is refused, saying why" "[ $rc -ne 0 ] && grep -q 'it goes with --optimizer zo' sx.log"
finish
