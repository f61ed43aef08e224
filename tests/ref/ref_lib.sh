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
within() { awk -v r="$1" -v t="$2" 'BEGIN{exit !(r <= t)}'; }
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
# one_sequence_loss LABEL HF_DIR CKPT SEQ: the first loss of one SEQ-token
# sequence of tok.bin, mpitrain's from CKPT (1 step) against the float64
# reference's of HF_DIR (on the other core meanwhile), within 1e-5
# relative; prints both and mpitrain's peak RSS.
one_sequence_loss() {
  local label=$1 seq=$4 want got r
  $REF loss "$2" --tokens tok.bin --batch 1 --seq "$seq" > want1.txt 2> ref.err &
  /usr/bin/time -f "%M" -o rss.txt "$BIN" train --init-from "$3" --data tok.bin --batch 1 --seq-len "$seq" \
    --steps 1 --threads 1 --quiet --eval-every 0 --save-every 0 --out one > one.log 2> last.err
  wait
  want=$(cat want1.txt)
  got=$(first_loss one)
  r=$(rel "${got:-0}" "${want:-1}")
  echo "     $label loss at seq $seq: mpitrain $got, reference $want, rel $r; peak RSS $(( $(cat rss.txt) / 1024 )) MB"
  check "$label loss of one $seq-token sequence equals the float64 PyTorch reference (rel $r <= 1e-5)" "within $r 1e-5"
}
