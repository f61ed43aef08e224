#!/bin/bash
# A corrupt newest checkpoint: the supervisor verifies before resuming and
# falls back to the newest one that verifies; --resume of a corrupt
# checkpoint is a runtime failure (exit 1), not a usage error (exit 2).
. "$(dirname "$0")/lib.sh"
. "$HERE/supervise.bash"
  reference; check "the uninterrupted reference run" "[ $? -eq 0 ]"

  # $1 out, $2 file of step_00000012 to corrupt. Rank 1 hangs in step 14
  # (first attempt only), so the run waits there with checkpoints 4, 8 and
  # 12 written; the test corrupts 12 and kills a rank: the restart must
  # not resume from 12.
  corrupt_case() {
    local o=$1 f=$2 sup job victim
    MPITRAIN_TEST_HANG=1,14 "$SUP" --max-restarts 2 --timeout 600 -n 4 train $R --dp 4 --out "$o" > "$o.log" 2>&1 &
    sup=$!
    wait_beat "$o" 13 "$sup"
    check "$f: the run reaches step 13 and waits in 14" "[ $? -eq 0 ] && grep -qx step_00000012 $o/ckpt/latest"
    # one byte flipped in the middle: the checksums must catch it
    printf '\x5a' | dd of="$o/ckpt/step_00000012/$f" bs=1 seek=$(($(stat -c %s "$o/ckpt/step_00000012/$f") / 2)) conv=notrunc 2> /dev/null
    check "$f: step 12 no longer verifies" "! $BIN ckpt info --verify $o/ckpt/step_00000012 > /dev/null 2>&1 && $BIN ckpt info --help > /dev/null 2>&1"
    job=$(job_of "$o.log")
    victim=$(session_procs "$job" | awk -v j="$job" '$2 == j {print $1; exit}')
    check "$f: kill -9 of rank process $victim of job $job" "[ -n '$victim' ] && kill -KILL $victim"
    wait "$sup"
    check "$f: the supervisor finishes the run" "[ $? -eq 0 ]"
    check "$f: it says why it skips step 12" "grep -q 'ckpt step_00000012 is corrupt (.*$f.*), resuming from step_00000008' $o.log"
    check "$f: and restarts from step 8" "grep -q 'restart 1/2 from $o/ckpt/step_00000008' $o.log"
    "$BIN" ckpt export "$o" --format safetensors --out "$o.st" > /dev/null
    check "$f: final weights equal the uninterrupted run's, bit for bit" "cmp -s ref.st $o.st"
    check "$f: no process of either attempt is left" "jobs_gone $o.log"
  }
  corrupt_case m manifest.pb
  corrupt_case r rank_00002.bin

  # --resume of a checkpoint whose manifest is corrupt: a runtime failure
  mkdir -p bad && cp -r ref/ckpt bad/ && cp ref/metrics.jsonl bad/
  for s in 8 12 16; do
    printf '\x5a' | dd of="bad/ckpt/step_000000$(printf %02d $s)/manifest.pb" bs=1 seek=40 conv=notrunc 2> /dev/null
  done
  timeout 240 "$LOCAL" -n 2 train --resume bad --steps 20 --threads 1 --quiet > br.log 2>&1
  check "--resume of a corrupt checkpoint exits 1 (got $?), saying what is wrong" "[ $? -eq 1 ] && grep -q 'checksum mismatch' br.log"
  # the supervisor: every checkpoint there is corrupt (8, 12, 16; the run
  # kept only its last three), so there is nothing safe to resume
  timeout 240 "$SUP" -n 2 train $R --steps 20 --out bad > bs.log 2>&1
  check "the supervisor refuses to resume when no checkpoint verifies (exit 1)" \
    "[ $? -eq 1 ] && grep -q 'no checkpoint in bad/ckpt verifies' bs.log && ! grep -q 'attempt 0' bs.log"
finish
