#!/bin/bash
# Elastic DiLoCo (docs/elastic.md): DiLoCo rounds among machines that are
# separate mpitrain processes over libfabric (tcp), on the simulated hosts of
# tests/netcluster (network namespaces, tbf-limited links), one machine per
# host, the reference GPT (4 x 256, T 256, bytes) on the KJV, AdamW inner
# steps, one thread per machine. Measures:
#   1. compute utilisation with no churn: for each machine, 1 - (the time
#      its rounds took, READY to outer step: round_s of rounds.jsonl) / (its
#      wall time over the same steps: time_ms of metrics.jsonl), from round 2
#      on (round 1 holds the joins); the mean over the machines, at N
#      machines x RATES x OVERLAPS, int8 on the wire; and the largest bytes one machine
#      sent in a round (the keeper's and a member's), 4 vs 8 machines;
#   2. join latency and bytes vs model size: a machine joins a running run
#      of 4 at 100 Mbit/s; its own log's "welcomed ... X MB of outer state
#      in Y s" (HELLO to the whole state), for two widths;
#   3. the cost of churn: 4 machines at 100 Mbit/s for ROUNDS rounds, with
#      no churn, and with a member killed (-9) every 5 rounds and a new one
#      joining every 5 (offset); the keeper's validation loss at the end vs
#      no churn (target: within 0.03);
#   4. int8 vs fp32 at equal steps: the same 4-machine run (one host, tcp over
#      loopback), the keeper's final validation loss (target: within 0.02);
#   5. streaming fragments: 4 machines at 10 Mbit/s, --diloco-fragments F
#      for F in FRAGS (H a multiple of each): the largest bytes a machine
#      sends in one round and the longest exchange (the peak bandwidth a
#      round asks of a link: 1/F of F = 1's), and the utilisation.
# SHAPE=smol runs parts 1, 2 and 5 on SmolLM2-135M's shape (30 x 576, 9
# heads, 3 kv heads, MLP 1536, vocab 49152) at T 128 with LoRA adapters
# (rank 8, every linear) instead: what is exchanged is the adapters, and an
# inner step is ~100x the reference's work.
# Machines are processes on this one box: with fewer cores than machines,
# inner steps include CPU contention, which also stretches them against a
# round's exchange (utilisation reads higher than on a core per machine).
#
# usage: bash bench/elastic.sh [BINARY]        (default build/mpitrain)
# Environment:
#   PARTS="1 2 3 4 5"   which parts to run
#   SHAPE=ref           ref (the reference GPT) or smol (above)
#   FRAGS="1 5"         fragments of part 5
#   OVERLAPS="0 1"      --diloco-overlap of part 1 (part 5 runs the last)
#   NS="4 8"            machines of part 1
#   RATES="100mbit 10mbit"  links of part 1
#   H=50                inner steps per round (parts 1, 3, 4)
#   ROUNDS=4            rounds of part 1; part 3 runs ROUNDS3=20 rounds of H3=10
#   BATCH=8             sequences per machine per step
#   KEEP=1              keep the run dirs (printed at the end)
# shellcheck disable=SC2086 # $M, $D: flag lists, split on purpose
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
NAME=elastic
[ $# -ge 1 ] && export MPITRAIN_BIN=$1
# shellcheck source=bench/common.sh
. "$here/common.sh"
# shellcheck source=bench/cluster.sh
. "$here/cluster.sh"
PARTS=${PARTS:-1 2 3 4 5}
SHAPE=${SHAPE:-ref}
NS=${NS:-4 8}
RATES=${RATES:-100mbit 10mbit}
ROUNDS3=${ROUNDS3:-20}
H3=${H3:-10}
FRAGS=${FRAGS:-1 5}
OVERLAPS=${OVERLAPS:-0 1}
case $SHAPE in
  ref)
    SHAPE_FLAGS="" SHAPE_NAME="reference GPT (4 x 256, T 256)"
    JOIN_SHAPES=("--embd 256" "--embd 512") JOIN_NAMES=("4 x 256" "4 x 512")
    H=${H:-50} ROUNDS=${ROUNDS:-4} BATCH=${BATCH:-8} ;;
  smol)
    SHAPE_FLAGS="--model llama --layers 30 --embd 576 --heads 9 --kv-heads 3 --mlp-hidden 1536 --vocab 49152
      --seq-len 128 --lora-rank 8 --lora-targets all-linear"
    SHAPE_NAME="SmolLM2-135M's shape, T 128, LoRA r 8 on every linear"
    JOIN_SHAPES=("") JOIN_NAMES=("SmolLM2-135M, LoRA r 8")
    H=${H:-10} ROUNDS=${ROUNDS:-3} BATCH=${BATCH:-1} ;;
  *) die "SHAPE=$SHAPE: ref or smol" ;;
esac
[ -x "$py" ] || die "$py not found"
nc_available || die "$nc_why"
PORT=$((22000 + $$ % 20000))
next_port() { PORT=$((PORT + 1)); }
addr() { echo "$NC_NET.$(($1 + 1)):$PORT"; }

M="--threads 1 --batch $BATCH --data $data --eval-every 0 --save-every 0 --progress lines --overwrite $SHAPE_FLAGS"
pids=()
kill_machines() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2> /dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2> /dev/null || true; done
  pids=()
}
bench_on_exit kill_machines
# machine H OUT ARGS...: `mpitrain train` on host H (h = -1: this host), in the background
machine() {
  local h=$1 out=$2
  shift 2
  if [ "$h" -lt 0 ]; then
    "$bin" train $M --out "$out" "$@" > "$out.log" 2>&1 &
  else
    ip netns exec "$NC_PREFIX-h$h" "$bin" train $M --out "$out" "$@" > "$out.log" 2>&1 &
  fi
  pids+=($!)
}
until_said() { for _ in $(seq 12000); do grep -qE "$2" "$1" 2> /dev/null && return 0; sleep 0.05; done; return 1; }
rounds_of() { local n; n=$({ wc -l < "$1/elastic/rounds.jsonl"; } 2> /dev/null) || true; echo "${n:-0}"; }
# run_n NAME N STEPS KEEPER_FLAGS...: N machines, one per host (NET shm: all
# on this host, tcp over loopback)
run_n() {
  local name=$1 n=$2 st=$3 i p keep mine=()
  shift 3
  next_port
  if [ "$nc_cur" = shm ]; then keep=127.0.0.1:$PORT; else keep=$(addr 0); fi
  machine "$([ "$nc_cur" = shm ] && echo -1 || echo 0)" "$work/$name.m0" --steps "$st" --swarm-listen "$keep" \
    --swarm-wait "$n" "$@"
  mine+=($!)
  for i in $(seq 1 $((n - 1))); do
    machine "$([ "$nc_cur" = shm ] && echo -1 || echo "$i")" "$work/$name.m$i" --swarm-join "$keep"
    mine+=($!)
    until_said "$work/$name.m$i.log" "welcomed into the run|mpitrain train:" || true
  done
  for p in "${mine[@]}"; do wait "$p" || die "$name: a machine failed: $(tail -2 "$work/$name".m*.log | tail -4)"; done
  pids=()
}
# util DIR [PERIOD]: 1 - sum(round_s) / sum(time_ms) over rounds 2.. and
# their steps (PERIOD steps a round, default H)
util() {
  "$py" - "$1" "${2:-$H}" <<'PY'
import json, sys
d, h = sys.argv[1], int(sys.argv[2])
rounds = [json.loads(l) for l in open(d + "/elastic/rounds.jsonl")]
ms = {}
for l in open(d + "/metrics.jsonl"):
    try: r = json.loads(l)
    except ValueError: continue
    if r.get("step") is not None and r.get("time_ms") is not None: ms[r["step"]] = r["time_ms"]
wait = sum(r["round_s"] for r in rounds if r["round"] >= 2)
wall = sum(v for s, v in ms.items() if s > h) / 1e3
print(f"{1 - wait / wall:.3f} {wall:.1f} {wait:.1f}")
PY
}
# maxbytes DIR: the largest bytes_sent of a round (rounds 2..)
maxbytes() { "$py" -c 'import json, sys
print(max(json.loads(l)["bytes_sent"] for l in open(sys.argv[1] + "/elastic/rounds.jsonl") if json.loads(l)["round"] >= 2))' "$1"; }
final_val() { sed -n 's/.*"val_loss":\([0-9.]*\).*/\1/p' "$1/metrics.jsonl" | tail -1; }

echo "== $NAME ($(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)): binary $bin"
out_md=$work/elastic.md
: > "$out_md"
say() { echo "$@" | tee -a "$out_md"; }

# ---- 1. utilisation and bytes, no churn ----
if [[ " $PARTS " == *" 1 "* ]]; then
  say
  say "1. compute utilisation, $SHAPE_NAME, int8 on the wire, H = $H, $ROUNDS rounds, batch $BATCH per machine"
  say
  say "| machines | link | overlap | utilisation (mean) | each machine | largest bytes in a round: keeper / a member |"
  say "|---|---|---|---|---|---|"
  for n in $NS; do
    nc_down
    nc_ranks=$n
    for rate in $RATES; do
      nc_net "$rate"
      for ov in $OVERLAPS; do
        t0=$(date +%s)
        u="u$n.$rate.o$ov"
        run_n "$u" "$n" $((H * ROUNDS)) --optimizer adamw --lr 3e-4 --diloco "$H" --diloco-wire int8 \
          --diloco-overlap "$ov" --swarm-deadline 30
        each="" sum=0
        for i in $(seq 0 $((n - 1))); do
          v=$(util "$work/$u.m$i" | cut -d' ' -f1)
          each="$each $v"
          sum=$(awk -v a="$sum" -v b="$v" 'BEGIN{print a + b}')
        done
        mean=$(awk -v a="$sum" -v n="$n" 'BEGIN{printf "%.3f", a / n}')
        say "| $n | $rate | $ov | $mean | $each | $(maxbytes "$work/$u.m0") / $(maxbytes "$work/$u.m1") |"
        echo "   ($n machines at $rate, overlap $ov: $(($(date +%s) - t0)) s)" >&2
      done
    done
  done
  nc_down
fi

# ---- 2. join latency and bytes vs model size ----
if [[ " $PARTS " == *" 2 "* ]]; then
  nc_ranks=5
  nc_net 100mbit
  say
  say "2. a 5th machine joins a running run of 4 at 100 Mbit/s: HELLO to the whole outer state"
  say
  say "| model | outer state | seconds | MB/s |"
  say "|---|---|---|---|"
  for j in "${!JOIN_SHAPES[@]}"; do
    w=$j
    next_port
    keep=$(addr 0)
    machine 0 "$work/j$w.m0" ${JOIN_SHAPES[$j]} --steps 1000000 --optimizer adamw --diloco 20 --swarm-listen "$keep" \
      --swarm-wait 4
    kp=$!
    for i in 1 2 3; do machine "$i" "$work/j$w.m$i" --swarm-join "$keep"; done
    for _ in $(seq 12000); do [ "$(rounds_of "$work/j$w.m0")" -ge 2 ] && break; sleep 0.05; done
    machine 4 "$work/j$w.m4" --swarm-join "$keep"
    until_said "$work/j$w.m4.log" "welcomed into the run" || die "the joiner never joined: $(tail -3 "$work/j$w.m4.log")"
    line=$(grep -h "welcomed into the run" "$work/j$w.m4.log" | head -1)
    mb=$(echo "$line" | sed -n 's/.*: \([0-9.]*\) MB of outer state in \([0-9.]*\) s.*/\1/p')
    s=$(echo "$line" | sed -n 's/.*: \([0-9.]*\) MB of outer state in \([0-9.]*\) s.*/\2/p')
    say "| ${JOIN_NAMES[$j]} | $mb MB | $s | $(awk -v a="$mb" -v b="$s" 'BEGIN{printf "%.1f", a / b}') |"
    kill_machines
  done
  nc_down
fi

# ---- 3. the cost of churn ----
if [[ " $PARTS " == *" 3 "* ]]; then
  nc_ranks=6
  nc_net 100mbit
  st=$((H3 * ROUNDS3))
  V="--eval-every $st --eval-batches 16"
  run_n calm 4 "$st" --optimizer adamw --lr 3e-4 --diloco "$H3" --diloco-wire int8 --swarm-deadline 5 \
    --swarm-misses 2 $V
  calm=$(final_val "$work/calm.m0")
  # churn: members on hosts 1..5; every 5 rounds one is killed, 2.5 rounds later one joins
  next_port
  keep=$(addr 0)
  machine 0 "$work/churn.m0" --steps "$st" --optimizer adamw --lr 3e-4 --diloco "$H3" --diloco-wire int8 \
    --swarm-deadline 5 --swarm-misses 2 --swarm-listen "$keep" --swarm-wait 4 $V
  kp=$!
  alive=()
  for i in 1 2 3; do machine "$i" "$work/churn.m$i" --swarm-join "$keep"; alive+=("$!:$i"); done
  next_host=4 kills=0 joins=0
  for r in $(seq 5 5 $((ROUNDS3 - 1))); do
    for _ in $(seq 12000); do [ "$(rounds_of "$work/churn.m0")" -ge "$r" ] && break; kill -0 $kp 2> /dev/null || break; sleep 0.05; done
    victim=${alive[0]}
    alive=("${alive[@]:1}")
    kill -KILL "${victim%%:*}" 2> /dev/null || true
    kills=$((kills + 1))
    for _ in $(seq 12000); do [ "$(rounds_of "$work/churn.m0")" -ge $((r + 2)) ] && break; kill -0 $kp 2> /dev/null || break; sleep 0.05; done
    h=$next_host
    next_host=$(((next_host % 5) + 1))
    machine "$h" "$work/churn.m$h.$r" --swarm-join "$keep"
    alive+=("$!:$h")
    joins=$((joins + 1))
  done
  wait "$kp" || die "the churn keeper failed: $(tail -3 "$work/churn.m0.log")"
  kill_machines
  churn=$(final_val "$work/churn.m0")
  say
  say "3. the cost of churn: 4 machines at 100 Mbit/s, $ROUNDS3 rounds of $H3, int8; a member killed (-9) every 5 rounds, one joining 2 rounds later ($kills kills, $joins joins)"
  say
  say "| run | keeper's validation loss | rounds void | contributors per round |"
  say "|---|---|---|---|"
  per_round() { "$py" -c 'import json, sys
print(" ".join(str(len(json.loads(l)["contributors"])) for l in open(sys.argv[1] + "/elastic/rounds.jsonl")))' "$1"; }
  voids() { grep -c '"committed":false' "$1/elastic/rounds.jsonl" || true; }
  say "| no churn | $calm | $(voids "$work/calm.m0") | $(per_round "$work/calm.m0") |"
  say "| churn | $churn | $(voids "$work/churn.m0") | $(per_round "$work/churn.m0") |"
  say "| difference | $(awk -v a="$churn" -v b="$calm" 'BEGIN{d = a - b; printf "%+.4f (target within 0.03: %s)", d, (d <= 0.03 && d >= -0.03 ? "PASS" : "MISS")}') | | |"
  nc_down
fi

# ---- 4. int8 vs fp32 at equal steps ----
if [[ " $PARTS " == *" 4 "* ]]; then
  nc_cur=shm
  st=$((H3 * ROUNDS3))
  V="--eval-every $st --eval-batches 16"
  for w in fp32 int8 int4; do
    run_n "w$w" 4 "$st" --optimizer adamw --lr 3e-4 --diloco "$H3" --diloco-wire "$w" $V
  done
  f=$(final_val "$work/wfp32.m0")
  say
  say "4. the wire format at equal steps: 4 machines on one host, $ROUNDS3 rounds of $H3; the keeper's validation loss"
  say
  say "| wire | validation loss | vs fp32 |"
  say "|---|---|---|"
  for w in fp32 int8 int4; do
    v=$(final_val "$work/w$w.m0")
    say "| $w | $v | $(awk -v a="$v" -v b="$f" 'BEGIN{d = a - b; printf "%+.4f", d}') |"
  done
  say "(target for int8: within 0.02 of fp32)"
fi
# ---- 5. streaming fragments ----
if [[ " $PARTS " == *" 5 "* ]]; then
  nc_ranks=4
  nc_net 10mbit
  say
  say "5. streaming fragments: 4 machines at 10 Mbit/s, $SHAPE_NAME, int8, overlap ${OVERLAPS##* }, H = $H, $ROUNDS x H steps"
  say
  say "| fragments | rounds | largest bytes a member sends in a round | longest exchange (s) | utilisation (mean) |"
  say "|---|---|---|---|---|"
  for f in $FRAGS; do
    [ $((H % f)) = 0 ] || die "H=$H is not a multiple of $f"
    run_n "frag$f" 4 $((H * ROUNDS)) --optimizer adamw --lr 3e-4 --diloco "$H" --diloco-wire int8 \
      --diloco-fragments "$f" --diloco-overlap "${OVERLAPS##* }" --swarm-deadline 30
    sum=0
    for i in 0 1 2 3; do sum=$(awk -v a="$sum" -v b="$(util "$work/frag$f.m$i" $((H / f)) | cut -d' ' -f1)" 'BEGIN{print a + b}'); done
    longest=$("$py" -c 'import json, sys
print(max(json.loads(l)["exchange_s"] for l in open(sys.argv[1] + "/elastic/rounds.jsonl") if json.loads(l)["round"] >= 2))' "$work/frag$f.m1")
    say "| $f | $(rounds_of "$work/frag$f.m1") | $(maxbytes "$work/frag$f.m1") | $longest | $(awk -v a="$sum" 'BEGIN{printf "%.3f", a / 4}') |"
  done
  nc_down
fi
echo
echo "tables: $out_md"
[ "${KEEP:-0}" = 1 ] && echo "run dirs: $work"
exit 0
