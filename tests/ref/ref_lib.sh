#!/bin/bash
# Sourced by the reference libraries (gpt2_lib.sh, llama_lib.sh) after
# check.sh, with the test's arguments: the local launcher, a fresh scratch
# dir, and the loss arithmetic. usage of a test: TEST.sh MPITRAIN_BINARY SCRATCH_DIR
BIN=$1
DIR=$2
LOCAL="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/launch/mpitrain-local"
export MPITRAIN_BIN=$BIN
rm -rf "$DIR" && mkdir -p "$DIR" && cd "$DIR" || exit 1
# torch found, not imported: the import takes seconds (each reference command
# that computes imports it anyway, and fails the test if it is broken)
/usr/bin/python3 -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)" 2>/dev/null ||
  { echo "ok   - skipped: no python3-torch"; echo "1 passed, 0 failed"; exit 0; }
# |a - b| / |b|, and whether a figure is within a bound
rel() { awk -v a="$1" -v b="$2" 'BEGIN{d=a-b; if(d<0)d=-d; printf "%.3g", d/(b<0?-b:b)}'; }
# (an empty figure, from a reference or run that gave no loss, is not within)
within() { awk -v r="$1" -v t="$2" 'BEGIN{exit !(r != "" && r <= t)}'; }
# the first step's loss of a run: computed on the initial weights
first_loss() { losses "$1/metrics.jsonl" | head -1 | cut -d' ' -f2; }
# skip_if_sanitized WHY: a full-size test under an ASan/UBSan build of $BIN
# (several times slower) would not fit its timeout: it passes as skipped,
# saying WHY (which small tests cover the same code), and exits.
skip_if_sanitized() {
  if is_sanitized; then
    echo "ok   - skipped: sanitizer build ($1)"
    echo "1 passed, 0 failed"
    exit 0
  fi
}
# one_sequence_loss LABEL HF_DIR CKPT SEQ [BxT]: the first loss of one
# SEQ-token sequence of tok.bin, mpitrain's from CKPT (1 step) against the
# float64 reference's of HF_DIR (on the other core meanwhile), within 1e-5
# relative; prints both and mpitrain's peak RSS. With BxT the reference
# also writes the loss of the first B sequences of T tokens to want2.txt
# (for the test's own steps: one load of the big model, not two).
one_sequence_loss() {
  local label=$1 seq=$4 want got r
  rm -f want1.txt want2.txt
  $REF loss "$2" --tokens tok.bin --batch 1 --seq "$seq" ${5:+--also "$5"} > wants.txt 2> ref.err &
  /usr/bin/time -f "%M" -o rss.txt "$BIN" train --init-from "$3" --data tok.bin --batch 1 --seq-len "$seq" \
    --steps 1 --threads 1 --quiet --eval-every 0 --save-every 0 --out one > one.log 2> last.err
  wait
  sed -n 1p wants.txt > want1.txt
  [ -z "${5:-}" ] || sed -n 2p wants.txt > want2.txt
  want=$(cat want1.txt)
  got=$(first_loss one)
  r=$(rel "${got:-0}" "${want:-1}")
  echo "     $label loss at seq $seq: mpitrain $got, reference $want, rel $r; peak RSS $(( $(cat rss.txt) / 1024 )) MB"
  check "$label loss of one $seq-token sequence equals the float64 PyTorch reference (rel $r <= 1e-5)" "within $r 1e-5"
}
# Reference commands in one process (the references' `batch` command):
# python's start and the torch import cost seconds per command on a loaded
# machine. refq OUT ARGS...: queues `$REF ARGS`, its stdout to OUT, stderr
# to OUT.err, exit status to OUT.rc; ref_run: runs the queue in order and
# empties it; ref_ok OUT: that command exited 0 (not when it never ran).
REFQ=$PWD/ref_queue.txt
refq() {
  local out=$1
  shift
  rm -f "$out" "$out.err" "$out.rc"
  { printf '%s' "$out"; printf '\t%s' "$@"; printf '\n'; } >> "$REFQ"
}
ref_run() {
  [ -s "$REFQ" ] || return 0
  $REF batch "$REFQ"
  rm -f "$REFQ"
}
ref_ok() { [ "$(cat "$1.rc" 2> /dev/null)" = 0 ]; }
