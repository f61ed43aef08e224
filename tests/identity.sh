#!/bin/bash
# Byte-identity of two mpitrain builds (for a change that must not change
# behaviour, e.g. a reorganisation of the house): the same runs of every
# training method on the reference GPT with both binaries, then a comparison
# of what must be equal bit for bit: the losses of every step (metrics.jsonl's
# loss and val_loss; timings differ), every checkpoint file of weights and
# optimizer state, the ZO journal, `eval` and `sample` output and a
# `ckpt replay`. Prints one line per run and exits non-zero on a difference.
# usage: tests/identity.sh OLD_BINARY NEW_BINARY [SCRATCH_DIR] (STEPS=12)
set -u
OLD=$(readlink -f "$1") NEW=$(readlink -f "$2")
DIR=$(mkdir -p "${3:-/tmp/mpitrain-identity}" && cd "${3:-/tmp/mpitrain-identity}" && pwd)
STEPS=${STEPS:-12}
cd "$DIR" || exit 2
rm -rf old new
mkdir -p old new data
[ -s data/kjv.tok ] || "$OLD" prepare --out data/kjv.tok > /dev/null 2>&1
[ -s data/kjv.tok ] || { echo "cannot make data/kjv.tok"; exit 2; }
D="--data $DIR/data/kjv.tok --steps $STEPS --save-every $((STEPS / 2)) --eval-every $((STEPS / 2)) --eval-batches 1 --quiet --threads 1"
MPI="mpirun --oversubscribe --allow-run-as-root -np 2"
# the ZO runs fine-tune the first run's weights (the old binary's: the same
# bits when that run is identical), as users do, and replay starts there
BASE="--init-from $DIR/old/adamw_dp2"
RUNS="adamw_dp2 adamw_tp2 adamw_pp2 adamw_zero2 sgd_dp2 zo_dp2 zo_params diloco diloco_overlap swarm"
args() {
  case $1 in
    adamw_dp2) echo "$MPI BIN train $D" ;;
    adamw_tp2) echo "$MPI BIN train $D --tp 2" ;;
    adamw_pp2) echo "$MPI BIN train $D --pp 2 --micro-batches 2" ;;
    adamw_zero2) echo "$MPI BIN train $D --zero 2" ;;
    sgd_dp2) echo "$MPI BIN train $D --optimizer sgd --lr 0.05" ;;
    zo_dp2) echo "$MPI BIN train $D $BASE --optimizer zo --zo-samples 2" ;;
    zo_params) echo "$MPI BIN train $D $BASE --optimizer zo --zo-params norms,biases --lr 3e-3" ;;
    diloco) echo "$MPI BIN train $D --diloco 4" ;;
    diloco_overlap) echo "$MPI BIN train $D --diloco 4 --diloco-overlap 1 --diloco-wire bf16" ;;
  esac
}
# two swarm machines on this host; the keeper waits for both, so every step
# has both machines' codes whatever the machine's speed
swarm() {
  local bin=$1 out=$2 port=$((23000 + RANDOM % 20000))
  "$bin" train $D $BASE --optimizer zo --swarm-provider tcp --swarm-listen 127.0.0.1:$port --swarm-wait 2 \
    --swarm-deadline 600 --out "$out/m0" > "$out/m0.log" 2>&1 & local k=$!
  sleep 1
  "$bin" train --data "$DIR/data/kjv.tok" --quiet --threads 1 --swarm-join 127.0.0.1:$port \
    --swarm-deadline 600 --out "$out/m1" > "$out/m1.log" 2>&1
  local rc=$?
  wait $k && return $rc
}
losses() { sed -E 's/.*("step":[0-9]+).*("loss":[^,}]*).*/\1 \2/; t; d' "$1/metrics.jsonl"
           grep -o '"val_loss":[^,}]*' "$1/metrics.jsonl"; }
bad=0
for r in $RUNS; do
  for side in old new; do
    bin=$OLD; [ $side = new ] && bin=$NEW
    if [ $r = swarm ]; then mkdir -p "$side/$r" && swarm "$bin" "$side/$r"
    else $(args $r | sed "s#BIN#$bin#") --out "$side/$r" > "$side/$r.log" 2>&1; fi ||
      { echo "$r: the $side binary failed (see $DIR/$side/$r*.log)"; bad=1; continue 2; }
  done
  diff=""
  for m in "" /m0 /m1; do
    [ -d "old/$r$m/ckpt" ] || continue
    cmp -s <(losses "old/$r$m") <(losses "new/$r$m") || diff="$diff losses$m"
    for f in $(cd "old/$r$m" && find ckpt zo -type f ! -name manifest.pb 2> /dev/null | sort); do
      cmp -s "old/$r$m/$f" "new/$r$m/$f" || diff="$diff $f"
    done
  done
  if [ -z "$diff" ]; then
    echo "$r: identical ($(losses old/$r$( [ $r = swarm ] && echo /m0) | grep -c loss) losses, $(cd old/$r && find . -path '*ckpt*' -type f ! -name manifest.pb | wc -l) checkpoint files$([ -f old/$r/zo/journal.bin ] && echo ", journal") )"
  else echo "$r: DIFFERS:$diff"; bad=1; fi
done
# the readers: eval, sample and replay of what the runs wrote
for side in old new; do
  bin=$OLD; [ $side = new ] && bin=$NEW
  "$bin" eval --ckpt old/adamw_dp2 --data "$DIR/data/kjv.tok" --batches 2 > "$side/eval.txt" 2>&1
  "$bin" sample --ckpt old/adamw_tp2 --prompt "And God said" --tokens 64 --seed 7 > "$side/sample.txt" 2>&1
  rm -rf "$side/replay" && "$bin" ckpt replay old/adamw_dp2 old/zo_dp2/zo/journal.bin --out "$side/replay" > /dev/null 2>&1
done
for what in eval.txt sample.txt; do
  cmp -s old/$what new/$what && echo "$what: identical" || { echo "$what: DIFFERS"; bad=1; }
done
if [ -d old/replay ]; then
  d=$(for f in $(cd old/replay && find . -type f ! -name manifest.pb | sort); do cmp -s old/replay/$f new/replay/$f || echo "$f"; done)
  [ -z "$d" ] && echo "ckpt replay: identical" || { echo "ckpt replay: DIFFERS: $d"; bad=1; }
fi
exit $bad
