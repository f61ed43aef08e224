#!/bin/bash
# Checkpoint write/read throughput vs dd to the same disk, and the time to
# recover from a killed rank (detection + restart + reload) for the
# reference GPT under the supervisor. Prints; asserts nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${MPITRAIN_BIN:-$here/../build/mpitrain}
DATA=${MPITRAIN_DATA:-$here/../data/kjv.tok}
work=$(mktemp -d "${TMPDIR:-/tmp}/mpitrain-ckptio.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$(dirname "$BIN")/bench_ckpt" "$work/ck" --layers "${LAYERS:-12}" --embd "${EMBD:-512}" | tee "$work/ck.txt"
mb=$(sed -n 's/.*ckpt_mb=\([0-9.]*\).*/\1/p' "$work/ck.txt")
count=$(awk -v m="$mb" 'BEGIN{printf "%d", m}')
w=$( { dd if=/dev/zero of="$work/dd.bin" bs=1M count="$count" conv=fsync 2>&1 >/dev/null; } | tail -1)
r=$( { dd if="$work/dd.bin" of=/dev/null bs=1M 2>&1 >/dev/null; } | tail -1)
echo "dd write (conv=fsync): $w"
echo "dd read  (page cache): $r"
echo
[ -f "$DATA" ] || "$BIN" prepare --out "$DATA" > /dev/null
export MPITRAIN_BIN=$BIN
MPITRAIN_TEST_KILL=1,8 "$here/../launch/mpitrain-launch" --max-restarts 1 --timeout 120 -n 2 train \
  --data "$DATA" --dp 2 --threads 1 --steps 10 --save-every 5 --eval-every 0 --quiet --out "$work/run" 2> "$work/sup.log" || true
grep -E 'test hook|job failed|recovered' "$work/sup.log"
