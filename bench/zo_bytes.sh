#!/bin/bash
# Bytes on the wire per step per machine: shared-randomness ZO (one int8
# code per machine and sample) vs the data-parallel gradient all-reduce, for
# the reference GPT on 4 machines. Expected: ZO ~ samples (the all-gather
# moves (p-1) x samples per rank), DP ~ 4 bytes x params x 2(p-1)/p.
# Also the ZO step vs two forward passes (bench_zo). Prints; asserts nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${MPITRAIN_BIN:-$here/../build/mpitrain}
DATA=${MPITRAIN_DATA:-$here/../data/kjv.tok}
[ -f "$DATA" ] || "$BIN" prepare --out "$DATA" > /dev/null
work=$(mktemp -d)
trap '[ "${KEEP:-0}" = 1 ] || rm -rf "$work"' EXIT
export MPITRAIN_BIN=$BIN
run() { "$here/../launch/mpitrain-local" -n 4 train --data "$DATA" --dp 4 --threads 1 --steps 3 \
          --eval-every 0 --save-every 0 --quiet --out "$work/$1" "${@:2}"; }
run dp --optimizer adamw
run zo --optimizer zo --zo-samples 1 --zo-scale 1e-3
run zo4 --optimizer zo --zo-samples 4 --zo-scale 1e-3
params=$(sed -n 's/.*"params":\([0-9]*\).*/\1/p' "$work/dp/summary.json")
bytes() { sed -n 's/.*"step":3,.*"comm_bytes":\([0-9]*\),.*/\1/p' "$work/$1/metrics.jsonl"; }
printf '%-28s %16s %16s\n' "4 machines, reference GPT" "bytes/step/rank" "model"
printf '%-28s %16s %16.0f\n' "DP gradient all-reduce" "$(bytes dp)" "$(awk -v p=$params 'BEGIN{print 4*p*2*3/4}')"
printf '%-28s %16s %16s\n' "ZO, 1 sample per machine" "$(bytes zo)" "1 code (+3 relayed)"
printf '%-28s %16s %16s\n' "ZO, 4 samples per machine" "$(bytes zo4)" "4 codes (+12 relayed)"
echo "(measured bytes include the per-step loss all-reduce and the report gather to rank 0)"
echo
"$(dirname "$BIN")/bench_zo" --threads 2 --codes 4
