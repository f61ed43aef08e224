#!/bin/bash
# Sourced by every tests/mpi/<case>.sh: one multi-rank case per file, each
# its own ctest entry (mpi_<case>) and its own mpiruns. A case's name is its
# file name; CMake makes one test of every file here but this one.
# usage of a case: tests/mpi/CASE.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
CASE=$(basename "$0" .sh)
BIN=$1
DIR=$2
HERE=$(cd "$(dirname "$0")" && pwd)
export MPITRAIN_BIN=$BIN
LOCAL="$HERE/../../launch/mpitrain-local"
rm -rf "$DIR" && mkdir -p "$DIR" && cd "$DIR" || exit 1
. "$HERE/../check.sh"

for i in $(seq 1 80); do echo "Line $i: and the evening and the morning were the day, saith the preacher."; done > corpus.txt
"$BIN" prepare corpus.txt --out corpus.tok --val-fraction 0.1 > /dev/null || { echo "FAIL - prepare"; exit 1; }
TINY="--layers 2 --heads 2 --embd 32 --seq-len 32 --batch 12 --data corpus.tok --threads 1 --quiet --eval-every 0 --steps 20"
run() { local n=$1 out=$2; shift 2; timeout 240 "$LOCAL" -n "$n" train $TINY --out "$out" "$@" > "$out.log" 2>&1; }
# run_layout PREFIX "OPTS" D T P [FLAGS...]: trains OPTS under dp D x tp T
# x pp P (and FLAGS) into $o, a directory named from PREFIX and the layout,
# and checks that it ran; $what names the run for the checks that follow
run_layout() {
  local prefix=$1 opts=$2 d=$3 t=$4 p=$5 rc
  shift 5
  o="$prefix$d$t$p$(echo "$*" | tr -d ' -')"
  timeout 240 "$LOCAL" -n $((d * t * p)) train $opts --dp "$d" --tp "$t" --pp "$p" "$@" --out "$o" \
    > "$o.log" 2>&1
  rc=$?
  what="$prefix ($d,$t,$p)${*:+ $*}"
  check "$what runs" "[ $rc -eq 0 ]"
}
# same_as_base BASE OUT WHAT: run OUT's losses are BASE's, step for step
same_as_base() { # BASE OUT WHAT
  rel=$(max_rel "$1/metrics.jsonl" "$2/metrics.jsonl")
  check "$3 matches the single rank (max rel $rel <= 1e-4)" \
    "same_steps $1/metrics.jsonl $2/metrics.jsonl && awk 'BEGIN{exit !($rel <= 1e-4)}'"
}


# dp<N>: N data-parallel ranks give the single rank's losses
case_dp() {
  n=${CASE#dp}
  run 1 base; check "single-rank baseline runs" "[ $? -eq 0 ]"
  run "$n" "dp$n" --dp "$n"; check "dp=$n runs" "[ $? -eq 0 ]"
  check "dp=$n has all 20 steps" "same_steps base/metrics.jsonl dp$n/metrics.jsonl"
  rel=$(max_rel base/metrics.jsonl "dp$n/metrics.jsonl")
  check "dp=$n losses match single rank (max rel diff $rel <= 1e-4)" "awk 'BEGIN{exit !($rel <= 1e-4)}'"
}

# layout_*: the case name carries its parameters
case_layout() {
  # any dp x tp x pp, either schedule, 1 or 4 micro-batches: the single-rank losses
  IFS=_ read -r _ d t p <<< "$CASE"
  L="--layers 2 --heads 4 --embd 32 --seq-len 32 --batch 32 --data corpus.tok --threads 1 --quiet --eval-every 0 --steps 20"
  timeout 240 "$LOCAL" -n 1 train $L --out base > base.log 2>&1; check "single-rank baseline runs" "[ $? -eq 0 ]"
  for sched in gpipe 1f1b; do
    for M in 1 4; do
      o="l${d}${t}${p}_${sched}_$M"
      timeout 240 "$LOCAL" -n $((d * t * p)) train $L --dp "$d" --tp "$t" --pp "$p" --pp-schedule $sched \
        --micro-batches $M --out "$o" > "$o.log" 2>&1
      check "($d,$t,$p) $sched M=$M runs" "[ $? -eq 0 ]"
      rel=$(max_rel base/metrics.jsonl "$o/metrics.jsonl")
      check "($d,$t,$p) $sched M=$M matches single rank (max rel $rel <= 1e-4)" \
        "same_steps base/metrics.jsonl $o/metrics.jsonl && awk 'BEGIN{exit !($rel <= 1e-4)}'"
    done
  done
}

# Stop-on-signal cases: a 2-rank run of 40 steps in the background whose
# rank 0 waits before step 20 until it has caught a stop signal, so the
# signal lands at a known step however fast (or slow) the machine is.
# start_held OUT: sets $job (mpirun's pid: mpitrain-local execs it).
HELD_AT=20
start_held() {
  MPITRAIN_TEST_WAIT_STOP=0,$HELD_AT "$LOCAL" -n 2 train $TINY --steps 40 --save-every 0 \
    --out "$1" > "$1.log" 2>&1 &
  job=$!
}
# until OUT's heartbeat shows step 19 (the run waits there); 1 if the job
# ended first or the deadline (generous: it only stops a broken test) passed
wait_held() {
  local deadline=$((SECONDS + 180))
  until [ "$(cat "$1/heartbeat" 2>/dev/null)" = $((HELD_AT - 1)) ]; do
    kill -0 "$job" 2>/dev/null && [ $SECONDS -lt $deadline ] || return 1
    sleep 0.05
  done
}
# the ranks mpirun started for $job (its children running mpitrain)
ranks_of_job() { ps -o pid=,comm= --ppid "$job" | awk '$2 == "mpitrain" {printf "%s ", $1}'; }
# the pid of world rank N of $job (Open MPI puts the rank in its environment)
rank_pid() {
  local p
  for p in $(ranks_of_job); do
    tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1" && echo "$p"
  done
}
# none of these pids runs any more (a zombie not yet reaped counts as gone)
gone() { ! ps -o stat= -p "$(echo $* | tr ' ' ,)" 2>/dev/null | grep -qv '^Z'; }
# waits for $job; sets $rc. A watchdog TERMs a job that outlives the
# deadline, so a broken stop fails the test instead of hanging it.
wait_job() {
  ( for _ in $(seq 1 1800); do kill -0 "$job" 2>/dev/null || exit 0; sleep 0.1; done
    kill -TERM "$job" ) > /dev/null 2>&1 &
  wait "$job"
  rc=$?
}
# the resume command rank 0 printed in log $1, run exactly as printed (a
# shell command line: the launcher, the program, quoted arguments)
told_command() { sed -n 's/.*; resume with: //p' "$1"; }
resume_as_told() {
  local cmd
  cmd=$(told_command "$1.log")
  [ -n "$cmd" ] || return 1
  timeout 240 bash -c "$cmd" > "$1.resume.log" 2>&1
}
# the uninterrupted run the stopped ones must equal, exported
reference_run() {
  run 2 ref --steps 40 --save-every 0 && "$BIN" ckpt export ref --format safetensors --out ref.st > /dev/null
}
# OUT stopped by SIG at step 20 with exit code 3, saved that step, resumed
# as told to step 40 with weights and losses equal to the reference's
check_stopped_and_resumed() {
  local out=$1 sig=$2 what=$3 step
  step=$(printf 'step_%08d' $HELD_AT)
  check "$what: exit code 3 (got $rc)" "[ $rc -eq 3 ]"
  check "$what: rank 0 says 'stopped at step $HELD_AT by $sig'" "grep -q 'stopped at step $HELD_AT by $sig' $out.log"
  check "$what: checkpoint $step saved and latest" "[ -f $out/ckpt/$step/manifest.pb ] && [ \"\$(cat $out/ckpt/latest)\" = $step ]"
  resume_as_told "$out"; check "$what: the printed resume command runs to step 40" "[ $? -eq 0 ] && [ -f $out/ckpt/step_00000040/manifest.pb ]"
  "$BIN" ckpt export "$out" --format safetensors --out "$out.st" > /dev/null
  check "$what: final weights equal the uninterrupted run's, bit for bit" "cmp -s ref.st $out.st"
  check "$what: and so do the 40 losses" "cmp -s <(losses ref/metrics.jsonl) <(losses $out/metrics.jsonl)"
}
