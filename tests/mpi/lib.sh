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
