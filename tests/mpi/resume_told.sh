#!/bin/bash
# The resume command a stopped run prints works when run exactly as printed:
# at 1 rank (no launcher), under a bare `mpirun -np 2`, under mpitrain-local
# and under the supervisor; for a ZO run whose --zo-scale 0 asked for the
# warm-up's scale (the checkpoint holds the scale chosen); and for a run
# directory whose name needs shell quoting. Each resumed run ends where the
# uninterrupted one does, bit for bit.
. "$(dirname "$0")/lib.sh"
. "$HERE/supervise.bash"
ZO="--optimizer zo --zo-samples 2 --zo-scale 0"
S="$TINY $ZO --steps 40 --save-every 0"
# held OUT CMD...: runs CMD (rank 0 waits before step $HELD_AT until a stop
# signal is caught) in the background as $job, with its log in OUT.log;
# SIGUSR1 once it waits, then waits for it (exit code in $rc)
held() {
  local out=$1
  shift
  MPITRAIN_TEST_WAIT_STOP=0,$HELD_AT "$@" > "$out.log" 2>&1 &
  job=$!
  wait_held "$out" && kill -USR1 "$job"
  wait_job
}
# OUT stopped with exit 3, the printed command (matching the pattern
# $2) resumed it to step 40, and its weights equal REF's
stopped_resumed() {
  local out=$1 pattern=$2 ref=$3 what=$4 told resumed=1 same=1
  told=$(told_command "$out.log")
  check "$what: stopped with exit 3 (got $rc)" "[ $rc -eq 3 ]"
  [[ "$told" == $pattern ]]
  check "$what: the printed command is $pattern (got: $told)" "[ $? -eq 0 ]"
  resume_as_told "$out" && [ -f "$out/ckpt/step_00000040/manifest.pb" ] && resumed=0
  check "$what: the printed command, run as printed, resumes to step 40" "[ $resumed -eq 0 ]"
  "$BIN" ckpt export "$out" --format safetensors --out "$out.st" > /dev/null && cmp -s "$ref" "$out.st" && same=0
  check "$what: final weights equal the uninterrupted run's, bit for bit" "[ $same -eq 0 ]"
}
root=()
[ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)

  # 1 rank, no launcher; the run directory's name holds a space and a quote
  "$BIN" train $S --out one > one.log 2>&1 && "$BIN" ckpt export one --format safetensors --out one.st > /dev/null
  check "1 rank: the uninterrupted ZO run" "[ $? -eq 0 ]"
  held "zo o'ne" "$BIN" train $S --out "zo o'ne"
  stopped_resumed "zo o'ne" "$BIN train --resume 'zo o'*'ne' --config 'zo o'*'ne/config.json'" one.st \
    "1 rank, --out \"zo o'ne\""

  # 2 ranks under a bare mpirun
  timeout 240 mpirun "${root[@]}" -q -np 2 "$BIN" train $S --out two > two.log 2>&1 &&
    "$BIN" ckpt export two --format safetensors --out two.st > /dev/null
  check "mpirun -np 2: the uninterrupted ZO run" "[ $? -eq 0 ]"
  held mp mpirun "${root[@]}" -q -np 2 "$BIN" train $S --out mp
  stopped_resumed mp "mpirun -np 2 *$BIN train --resume mp --config mp/config.json" two.st "mpirun -np 2"

  # 2 ranks under mpitrain-local
  held lo "$LOCAL" -n 2 train $S --out lo
  stopped_resumed lo "*/launch/mpitrain-local -n 2 train --resume lo --config lo/config.json" two.st \
    "mpitrain-local -n 2"

  # the supervisor: its own command, which resumes --out by itself
  held su "$SUP" -n 2 train $S --out su
  stopped_resumed su "*/launch/mpitrain-launch -n 2 train * --out su" two.st "mpitrain-launch -n 2"
finish
