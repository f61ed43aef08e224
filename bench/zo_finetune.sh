#!/bin/bash
# The ZO fine-tuning curve (issue 12): pretrain the reference GPT (the
# default shape: 4 layers, 4 heads, width 256, T 256, bytes) with AdamW on
# the King James Bible, then fine-tune it on Debian's fortunes with 4
# machines, each run for the same budget of training time, with AdamW
# backprop and with shared-randomness ZO (every tensor, --zo-params subsets,
# --zo-samples 1 and 4). Validation is the same for every run (--eval-batches,
# the fortunes val split). By default the 4 machines talk over a simulated
# 100 Mbit/s network (tests/netcluster: network namespaces, root needed).
#
# Prints a table (final and best validation loss, steps, training seconds,
# bytes sent per machine) and draws validation loss against steps, training
# time, tokens and bytes sent with `mpitrain plot`.
#
# Environment:
#   BUDGET=120       seconds of training per run (the sum of step times, so
#                    evaluation and start-up are not charged): each run's step
#                    count comes from a short timed calibration run of its kind
#   NET=100mbit      the link rate of the simulated hosts; NET=shm: one host,
#                    shared memory (launch/mpitrain-local)
#   RUNS="adamw zo"  which rows of the run table below (default: all of them)
#   RUNS_FILE=FILE   more rows, `name args...` per line (sweeps)
#   WORK=DIR         kept between runs: corpora, the pretrained checkpoint
#                    (reused when its command is unchanged), calibrations, runs
#   PRE_STEPS=250    pretraining steps;  EVAL_POINTS=12 validations per run
#   OUT=FILE.png     the picture (default $WORK/zo_finetune.png)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
BIN=${MPITRAIN_BIN:-$repo/build/mpitrain}
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
WORK=${WORK:-/tmp/mpitrain-zo_finetune}
BUDGET=${BUDGET:-120}
NET=${NET:-100mbit}
PRE_STEPS=${PRE_STEPS:-250}
EVAL_POINTS=${EVAL_POINTS:-12}
FORTUNES=${FORTUNES:-/usr/share/games/fortunes/fortunes}
OUT=${OUT:-$WORK/zo_finetune.png}
die() { echo "zo_finetune: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "$BIN not found; build first (launch/setup.sh) or set MPITRAIN_BIN"
command -v bible > /dev/null || die "the bible command is missing: apt-get install bible-kjv"
[ -s "$FORTUNES" ] || die "$FORTUNES is missing: apt-get install fortunes"
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac
RUNS_FILE=${RUNS_FILE:+$(cd "$(dirname "$RUNS_FILE")" && pwd)/$(basename "$RUNS_FILE")}
mkdir -p "$WORK/ft" "$WORK/cal"
cd "$WORK"

# name | arguments (after the shared ones below). ZO's baseline is the
# issue's best: 1 sample, eps 1e-3, lr 1e-3, constant.
ZO="--optimizer zo --zo-eps 1e-3 --weight-decay 0 --warmup 0"
TABLE="adamw       --optimizer adamw --lr 1e-3 --min-lr 1e-4 --warmup 5
zo          $ZO --zo-samples 1 --lr 1e-3 --min-lr 1e-3
zo-s4       $ZO --zo-samples 4 --lr 1e-3 --min-lr 1e-3
zo-nb       $ZO --zo-samples 1 --lr 1e-3 --min-lr 1e-3 --zo-params norms,biases
zo-last1    $ZO --zo-samples 1 --lr 1e-3 --min-lr 1e-3 --zo-params last:1
zo-last2    $ZO --zo-samples 1 --lr 1e-3 --min-lr 1e-3 --zo-params last:2
zo-emb      $ZO --zo-samples 1 --lr 1e-3 --min-lr 1e-3 --zo-params embeddings"
[ -n "${RUNS_FILE:-}" ] && TABLE="$TABLE
$(grep -v '^\s*\(#\|$\)' "$RUNS_FILE")"
RUNS=${RUNS:-$(echo "$TABLE" | awk '{print $1}')}
args_of() { echo "$TABLE" | awk -v n="$1" '$1 == n {$1 = ""; print; f = 1} END {exit !f}'; }

# ---- corpora -----------------------------------------------------------------
[ -s kjv.tok ] || { bible 'gen1:1-rev22:21' > kjv.txt && "$BIN" prepare kjv.txt --out kjv.tok > /dev/null; }
[ -s fort.tok ] || { cp "$FORTUNES" fort.txt && "$BIN" prepare fort.txt --out fort.tok --val-fraction 0.1 > /dev/null; }

# ---- pretraining (backprop, one rank, cached) ----------------------------------
PRE="train --data kjv.tok --steps $PRE_STEPS --lr 2e-3 --min-lr 2e-4 --warmup 20 --batch 8 --eval-every 50 --eval-batches 4 --save-every 0 --threads 2"
if [ ! -s pre/summary.json ] || [ "$(cat pre.cmd 2> /dev/null)" != "$PRE" ]; then
  echo "== pretraining the reference GPT on the KJV ($PRE_STEPS AdamW steps)"
  rm -rf pre
  # shellcheck disable=SC2086
  "$BIN" $PRE --quiet --out pre > pre.log 2>&1 || die "pretraining failed: $(tail -3 pre.log)"
  echo "$PRE" > pre.cmd
fi
echo "pretrained: $(sed -n 's/.*"final_val_loss":\([0-9.]*\).*/\1/p' pre/summary.json) KJV val loss"

# ---- the 4 machines ---------------------------------------------------------------
nc_up=0
cleanup() { if [ $nc_up = 1 ]; then NC_PREFIX=mpz "$repo/tests/netcluster/down.sh"; fi; }
trap cleanup EXIT
launch() {
  if [ "$NET" = shm ]; then
    "$repo/launch/mpitrain-local" -n 4 "$@"
    return
  fi
  NC_PREFIX=mpz "$repo/tests/netcluster/mpirun.sh" "$WORK/hosts" 4 "$BIN" "$@"
}
if [ "$NET" != shm ]; then
  [ "$(id -u)" = 0 ] || die "NET=$NET needs root for network namespaces (or NET=shm)"
  if ! ip netns list | grep -q '^mpz-h0'; then
    NC_PREFIX=mpz "$repo/tests/netcluster/up.sh" 4 "$NET" > /dev/null || die "netcluster up failed"
    nc_up=1
  fi
  for i in 0 1 2 3; do echo "mpz-h$i slots=1"; done > hosts
fi
SHARED="--init-from $WORK/pre --data $WORK/fort.tok --batch 8 --dp 4 --threads 1 --eval-batches 4 --save-every 0 --quiet --overwrite"

# Step time of a run's kind (optimizer and samples; the ZO subsets train at
# the speed of two forward passes like ZO of every tensor), from a short
# run, cached per kind and network.
step_ms() {
  local a="$1" opt samples key
  opt=$(echo "$a" | sed -n 's/.*--optimizer \([a-z]*\).*/\1/p')
  samples=$(echo "$a" | sed -n 's/.*--zo-samples \([0-9]*\).*/\1/p')
  key=cal/$opt-s${samples:-1}-$NET
  if [ ! -s "$key.ms" ]; then
    # shellcheck disable=SC2086
    launch train $SHARED $a --steps 8 --eval-every 0 --out "$WORK/$key" > "$key.log" 2>&1 ||
      die "calibration of $opt failed: $(tail -3 "$key.log")"
    sed -n 's/.*"mean_step_ms":\([0-9.]*\).*/\1/p' "$WORK/$key/summary.json" > "$key.ms"
  fi
  cat "$key.ms"
}

for name in $RUNS; do
  a=$(args_of "$name") || die "no run named $name in the table (or RUNS_FILE)"
  ms=$(step_ms "$a")
  steps=$(awk -v b="$BUDGET" -v ms="$ms" 'BEGIN {s = int(b * 1000 / ms); print s < 10 ? 10 : s}')
  every=$(( steps / EVAL_POINTS > 0 ? steps / EVAL_POINTS : 1 ))
  echo "== $name: $steps steps (${ms} ms each), $a"
  # shellcheck disable=SC2086
  launch train $SHARED $a --steps "$steps" --eval-every "$every" --out "$WORK/ft/$name" \
    > "ft/$name.log" 2>&1 || echo "zo_finetune: $name failed (its rows so far are kept): $(tail -2 "ft/$name.log")" >&2
done
drawn=""
for name in $RUNS; do [ -s "ft/$name/metrics.jsonl" ] && drawn="$drawn $name"; done

# ---- the table and the picture ------------------------------------------------------
row() {
  awk -v name="$1" '
    /"val_loss"/ { match($0, /"val_loss":[-0-9.e+]*/); v = substr($0, RSTART + 11, RLENGTH - 11) + 0
                   last = v; if (best == "" || v < best) best = v }
    /"time_ms"/  { match($0, /"time_ms":[0-9.]*/); s += substr($0, RSTART + 10, RLENGTH - 10) / 1000
                   match($0, /"comm_bytes":[0-9.]*/); b += substr($0, RSTART + 13, RLENGTH - 13)
                   match($0, /"step":[0-9]*/); n = substr($0, RSTART + 7, RLENGTH - 7) }
    END { printf "| %-10s | %7.3f | %7.3f | %5d | %6.1f | %12.0f |\n", name, last, best, n, s, b }
  ' "ft/$1/metrics.jsonl"
}
{
  echo "fine-tuning on fortunes, 4 machines, NET=$NET, budget ${BUDGET}s of training per run"
  echo
  echo "| run        | val end | val best| steps | train s | bytes/machine |"
  echo "|---|---|---|---|---|---|"
  for name in $drawn; do row "$name"; done
  echo
  for name in $drawn; do echo "$name: $(args_of "$name")"; done
} | tee zo_finetune.md
# shellcheck disable=SC2086
(cd ft && "$BIN" plot $drawn --loss val --out "$OUT" \
  --title "fine-tuning the KJV-pretrained reference GPT on fortunes: 4 machines, $NET, ${BUDGET} s each")
