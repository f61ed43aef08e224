#!/bin/bash
. "$(dirname "$0")/lib.sh"
  Z="--optimizer zo --zo-samples 2 --eval-every 0 --save-every 10 --keep-ckpts 0 --dp 2"
  run 2 j $Z --steps 10
  cp -r j cut && size=$(stat -c %s cut/zo/journal.bin) && truncate -s $((size - 3)) cut/zo/journal.bin
  "$BIN" ckpt replay j/ckpt/step_00000010 cut/zo/journal.bin --out x > cut.log 2>&1; rc=$?
  check "torn journal tail: dropped with a warning (rc $rc)" "[ $rc -eq 0 ] && grep -q 'warning: journal cut/zo/journal.bin: dropped a torn last record' cut.log && grep -q 'replayed to step 10' cut.log"
  cp -r j flip && printf '\x55' | dd of=flip/zo/journal.bin bs=1 seek=100 conv=notrunc 2> /dev/null
  "$BIN" ckpt replay j/ckpt/step_00000010 flip/zo/journal.bin --out y > flip.log 2>&1; rc=$?
  check "corrupted journal: checksum error naming the record (rc $rc)" "[ $rc -eq 1 ] && grep -q 'record 2 (byte' flip.log && grep -q checksum flip.log"
  MPITRAIN_TEST_FLIP_BIT=1,7 timeout 120 "$LOCAL" -n 2 train $TINY $Z --steps 20 --zo-check-every 5 --out desync > desync.log 2>&1; rc=$?
  check "a flipped weight bit on one rank stops the run (rc $rc)" "[ $rc -eq 1 ]"
  check "the message names the step and the shard" "grep -q 'step 10: weights of shard (tp 0, pp 0) differ between machines' desync.log"
finish
