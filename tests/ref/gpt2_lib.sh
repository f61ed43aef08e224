#!/bin/bash
# Sourced by the GPT-2 import/export tests (tests/cli/gpt2_*_test.sh) after
# check.sh: the reference script, the local launcher, a fresh scratch dir,
# and the loss arithmetic. usage of a test: TEST.sh MPITRAIN_BINARY SCRATCH_DIR
BIN=$1
DIR=$2
REF="/usr/bin/python3 $(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/gpt2_ref.py"
LOCAL="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/launch/mpitrain-local"
export MPITRAIN_BIN=$BIN
rm -rf "$DIR" && mkdir -p "$DIR" && cd "$DIR" || exit 1
/usr/bin/python3 -c "import torch" 2>/dev/null || { echo "ok   - skipped: no python3-torch"; echo "1 passed, 0 failed"; exit 0; }
# |a - b| / |b|, and whether a figure is within a bound
rel() { awk -v a="$1" -v b="$2" 'BEGIN{d=a-b; if(d<0)d=-d; printf "%.3g", d/(b<0?-b:b)}'; }
within() { awk -v r="$1" -v t="$2" 'BEGIN{exit !(r <= t)}'; }
# the first step's loss of a run: computed on the initial weights
first_loss() { losses "$1/metrics.jsonl" | head -1 | cut -d' ' -f2; }
