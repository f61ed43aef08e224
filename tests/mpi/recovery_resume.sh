#!/bin/bash
# The supervisor's restart resumes what the job asked for: a ZO run given
# --zo-scale 0 (pick by warm-up; the checkpoint holds the scale picked)
# recovers from a rank's death bit for bit, and a job that loses a rank
# after its final checkpoint is published is complete (exit 0), not refused.
. "$(dirname "$0")/lib.sh"
. "$HERE/supervise.bash"
Z="$TINY --optimizer zo --zo-samples 2 --zo-scale 0 --steps 12 --save-every 4"
A="${TINY/--steps 20/--steps 12} --save-every 4"
export_st() { "$BIN" ckpt export "$1" --format safetensors --out "$1.st" > /dev/null; }

  timeout 240 "$LOCAL" -n 2 train $Z --out zref > zref.log 2>&1 && export_st zref
  check "the uninterrupted ZO run" "[ $? -eq 0 ]"
  MPITRAIN_TEST_KILL=1,7 timeout 240 "$SUP" --max-restarts 2 --timeout 60 -n 2 train $Z --out zk > zk.log 2>&1
  check "ZO, --zo-scale 0: kill -9 of rank 1 at step 7, the supervisor restarts and finishes" \
    "[ $? -eq 0 ] && grep -q 'restart 1/2' zk.log && ! grep -q conflicts zk.log"
  export_st zk
  check "and the final weights equal the uninterrupted run's, bit for bit" "cmp -s zref.st zk.st"

  timeout 240 "$LOCAL" -n 2 train $A --out aref > aref.log 2>&1 && export_st aref
  check "the uninterrupted run" "[ $? -eq 0 ]"
  MPITRAIN_TEST_DIE_AFTER_SAVE=1,12 timeout 240 "$SUP" --max-restarts 2 --timeout 60 -n 2 train $A --out fin > fin.log 2>&1
  rc=$?
  check "rank 1 killed after the final checkpoint: the supervisor restarts once" \
    "grep -q 'test hook MPITRAIN_TEST_DIE_AFTER_SAVE fires' fin.log && grep -q 'restart 1/2' fin.log"
  check "and that restart finds the run complete: exit 0 (got $rc)" \
    "[ $rc -eq 0 ] && grep -q 'the run is complete: checkpoint fin/ckpt/step_00000012 is at step 12' fin.log"
  check "with no second restart and nothing trained again" "! grep -q 'restart 2/2' fin.log && [ \$(losses fin/metrics.jsonl | wc -l) -eq 12 ]"
  export_st fin
  check "its weights are the uninterrupted run's" "cmp -s aref.st fin.st"
  timeout 240 "$SUP" --max-restarts 2 --timeout 60 -n 2 train $A --out fin > again.log 2>&1
  check "the same supervised job started again on the finished run: exit 0" \
    "[ $? -eq 0 ] && grep -q 'the run is complete' again.log && ! grep -q 'was refused' again.log"
finish
