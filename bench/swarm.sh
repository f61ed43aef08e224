#!/bin/bash
# The swarm (docs/swarm.md): ZO training whose machines are separate mpitrain
# processes talking over libfabric (tcp), on the simulated hosts of
# tests/netcluster (network namespaces, tbf-limited links at $RATE, default
# 100mbit), a small GPT (2 layers, 2 heads, embd 64, seq 64, batch 8 per
# machine, 1 thread, ZO with 2 samples). Measures:
#   1. step time: 4 machines over the swarm (one process per host, keeper
#      with --swarm-wait 4) vs the same ZO run over MPI_Allgather (mpirun 4
#      ranks --dp 4 across the same 4 hosts, --batch 32 = 8 per rank): the
#      median time_ms of metrics.jsonl past the first SKIP steps, and the
#      ratio swarm/MPI (target <= 1.1), best of REPEAT interleaved passes
#      (4 one-thread processes on a box of few cores: single runs vary a lot);
#   2. join latency vs journal length: a keeper trains alone; after it has
#      logged N steps (N in $JOIN_AT) a new machine is started on another
#      host; seconds from that process's start to the keeper's decision that
#      records it ("machine K (...) joined at step S" in the joiner's own
#      --progress log, K from "welcomed into the swarm as machine K"); the
#      joiner then leaves (SIGTERM) and the next N is measured on the same
#      keeper;
#   3. the cost of a death: 4 machines, --swarm-deadline 1 --swarm-misses 2,
#      one member SIGKILLs itself before step 40 (MPITRAIN_TEST_KILL=0,40):
#      the keeper's time_ms of steps 38..45;
#   4. bytes sent per machine per step (comm_bytes of metrics.jsonl), median
#      of the keeper and of a member, at 4 and 8 machines (8 hosts).
# Needs root and network namespaces (tests/netcluster/up.sh). Machines are
# processes on this one box: with fewer cores than machines the step times
# include CPU contention, the same for the swarm and the MPI run.
#
# usage: bash bench/swarm.sh [BINARY]        (default build/mpitrain)
# Environment:
#   RATE=100mbit     link rate of the simulated hosts
#   STEPS=100        steps of the runs of part 1 (part 3 runs 60)
#   SKIP=10          first steps left out of the medians
#   REPEAT=3         interleaved passes of part 1 (the order swapped every
#                    other pass); the best (lowest) median of each is compared
#   JOIN_AT="50 400 1600"   keeper steps at which a joiner starts (2)
#   STEPS8=40        steps of the 8-machine run (4)
#   KEEP=1           keep the run dirs (printed at the end)
RELAYS=2 # RELAY_FANOUT of worker/method/swarm/swarm.c
# shellcheck disable=SC2086 # $M, $Z, $S: flag lists, split on purpose
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
NAME=swarm
[ $# -ge 1 ] && export MPITRAIN_BIN=$1
# shellcheck disable=SC2034 # read by common.sh
need_kjv=0
# shellcheck source=bench/common.sh
. "$here/common.sh"
# shellcheck source=bench/cluster.sh
. "$here/cluster.sh"
RATE=${RATE:-100mbit}
STEPS=${STEPS:-100}
SKIP=${SKIP:-10}
JOIN_AT=${JOIN_AT:-50 400 1600}
STEPS8=${STEPS8:-40}
REPEAT=${REPEAT:-3}
[ "$STEPS" -gt "$SKIP" ] || die "STEPS must be more than SKIP ($SKIP)"
[ -x "$py" ] || die "$py not found"
nc_available || die "$nc_why"
PORT=$((21000 + $$ % 20000))
next_port() { PORT=$((PORT + 1)); }

# ---- the corpus ----
if command -v bible > /dev/null; then
  bible 'gen1:1-gen10:32' > "$work/corpus.txt"
fi
if [ ! -s "$work/corpus.txt" ]; then
  for i in $(seq 1 400); do echo "Line $i: and the evening and the morning were the day, saith the preacher."; done > "$work/corpus.txt"
fi
"$bin" prepare "$work/corpus.txt" --out "$work/corpus.tok" > "$work/prepare.log" 2>&1 ||
  die "prepare failed: $(tail -3 "$work/prepare.log")"
tok=$work/corpus.tok

M="--layers 2 --heads 2 --embd 64 --seq-len 64 --threads 1 --eval-every 0 --save-every 0 --progress lines"
Z="--optimizer zo --zo-samples 2 --zo-scale 0.05"

# machines started in the background: killed (by pid) on exit
pids=()
kill_machines() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2> /dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2> /dev/null || true; done
  pids=()
}
bench_on_exit kill_machines
addr() { echo "$NC_NET.$(($1 + 1)):$PORT"; }
# machine H OUT ARGS...: `mpitrain train` on host H, in the background ($!)
machine() {
  local h=$1 out=$2
  shift 2
  ip netns exec "$NC_PREFIX-h$h" "$bin" train $M --batch 8 --data "$tok" --out "$out" --overwrite "$@" > "$out.log" 2>&1 &
  pids+=($!)
}
steps_of() { local n; n=$(grep -c '"time_ms"' "$1/metrics.jsonl" 2> /dev/null) || true; echo "${n:-0}"; }
# until_steps DIR N SECONDS: waits for machine DIR to log N steps
until_steps() {
  local t=$(($(date +%s) + $3))
  while [ "$(steps_of "$1")" -lt "$2" ]; do
    [ "$(date +%s)" -lt "$t" ] || return 1
    sleep 0.05
  done
}
# swarm_run NAME N STEPS [ENV_OF_MEMBER_1]: N machines, one per host, keeper on h0
swarm_run() {
  local name=$1 n=$2 st=$3 env1=${4:-} i rc=0 p
  next_port
  local keep
  keep=$(addr 0)
  machine 0 "$work/$name.m0" $Z --steps "$st" --swarm-listen "$keep" --swarm-wait "$n" $S
  local mine=("${pids[@]: -1}")
  sleep 0.3
  for i in $(seq 1 $((n - 1))); do
    if [ "$i" = 1 ] && [ -n "$env1" ]; then
      env "$env1" ip netns exec "$NC_PREFIX-h$i" "$bin" train $M --batch 8 --data "$tok" --out "$work/$name.m$i" \
        --overwrite --swarm-join "$keep" $S > "$work/$name.m$i.log" 2>&1 &
      pids+=($!)
    else
      machine "$i" "$work/$name.m$i" --swarm-join "$keep" $S
    fi
    mine+=($!)
  done
  for p in "${mine[@]}"; do wait "$p" 2> /dev/null || rc=$?; done
  pids=()
  return 0
}
# median FILE KEY [FIRST LAST]: median of KEY over the step rows (FIRST..LAST)
median() {
  "$py" - "$@" <<'PY'
import json, sys, statistics
f, key = sys.argv[1], sys.argv[2]
lo = int(sys.argv[3]) if len(sys.argv) > 3 else 0
hi = int(sys.argv[4]) if len(sys.argv) > 4 else 1 << 60
v = []
for l in open(f):
    try: r = json.loads(l)
    except ValueError: continue
    if r.get("step") is None or r.get(key) is None or not lo <= r["step"] <= hi: continue
    v.append(float(r[key]))
print(f"{statistics.median(v):.1f}" if v else "nan")
PY
}
step_ms() {
  "$py" - "$1" "$2" "$3" <<'PY'
import json, sys
f, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = {}
for l in open(f):
    try: r = json.loads(l)
    except ValueError: continue
    if r.get("step") is not None and r.get("time_ms") is not None: rows[r["step"]] = r["time_ms"]
for s in range(lo, hi + 1):
    print(f"| {s} | {rows[s]:.1f} |" if s in rows else f"| {s} | (no row) |")
PY
}

echo "== $NAME ($(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)): $RATE links, binary $bin"
nc_ranks=4
nc_net "$RATE"

# seconds since the date +%s.%N stamp $1
since() { echo "$(date +%s.%N) $1" | awk '{printf "%.2f", $1 - $2}'; }

# ---- 1. step time: swarm vs MPI_Allgather, REPEAT interleaved passes ----
S="--swarm-deadline 10 --swarm-misses 3"
sw_all="" mpi_all=""
run_swarm4() {
  local t0
  t0=$(date +%s)
  swarm_run "sw4.p$1" 4 "$STEPS"
  sw_all="$sw_all $(median "$work/sw4.p$1.m0/metrics.jsonl" time_ms $((SKIP + 1)))"
  echo "   1. pass $1, swarm, 4 machines: $(steps_of "$work/sw4.p$1.m0") steps in $(($(date +%s) - t0)) s"
}
run_mpi4() {
  local t0
  t0=$(date +%s)
  nc_launch train $M $Z --data "$tok" --dp 4 --batch 32 --steps "$STEPS" --out "$work/mpi4.p$1" --overwrite \
    > "$work/mpi4.p$1.log" 2>&1 || die "the MPI run failed (log $work/mpi4.p$1.log): $(tail -3 "$work/mpi4.p$1.log")"
  mpi_all="$mpi_all $(median "$work/mpi4.p$1/metrics.jsonl" time_ms $((SKIP + 1)))"
  echo "   1. pass $1, MPI, 4 ranks: $(steps_of "$work/mpi4.p$1") steps in $(($(date +%s) - t0)) s"
}
for rep in $(seq 1 "$REPEAT"); do
  if [ $((rep % 2)) = 1 ]; then run_swarm4 "$rep"; run_mpi4 "$rep"; else run_mpi4 "$rep"; run_swarm4 "$rep"; fi
done
best() { echo "$@" | tr ' ' '\n' | grep . | sort -g | head -1; }
sw_ms=$(best $sw_all)
mpi_ms=$(best $mpi_all)

# ---- 3. the cost of a death ----
S="--swarm-deadline 1 --swarm-misses 2"
t0=$(date +%s)
swarm_run death 4 60 MPITRAIN_TEST_KILL=0,40
echo "   3. death run: $(steps_of "$work/death.m0") steps in $(($(date +%s) - t0)) s"

# ---- 2. join latency vs journal length ----
S="--swarm-deadline 10 --swarm-misses 3"
next_port
keep=$(addr 0)
machine 0 "$work/alone.m0" $Z --steps 1000000 --swarm-listen "$keep" --swarm-wait 1 $S
kp=$!
joins=""
j=0
for n in $JOIN_AT; do
  j=$((j + 1))
  until_steps "$work/alone.m0" "$n" 600 || die "the keeper did not reach step $n: $(tail -3 "$work/alone.m0.log")"
  at=$(steps_of "$work/alone.m0")
  out=$work/join$n
  s0=$(date +%s.%N)
  machine 1 "$out" --swarm-join "$keep" $S
  jp=$!
  secs="never" wsecs="never" wstep="-" jstep="-"
  for _ in $(seq 1 6000); do
    k=$(sed -n 's/.*welcomed into the swarm as machine \([0-9]*\).*/\1/p' "$out.log" | head -1)
    if [ -n "$k" ] && [ "$wsecs" = never ]; then
      wsecs=$(since "$s0")
      wstep=$(sed -n 's/.*welcomed into the swarm as machine [0-9]* at step \([0-9]*\).*/\1/p' "$out.log" | head -1)
    fi
    if [ -n "$k" ] && grep -q "machine $k (.*) joined at step" "$out.log"; then
      jstep=$(sed -n "s/.*machine $k (.*) joined at step \([0-9]*\).*/\1/p" "$out.log" | head -1)
      secs=$(since "$s0")
      break
    fi
    kill -0 "$jp" 2> /dev/null || break
    sleep 0.02
  done
  [ "$secs" = never ] && echo "   2. the joiner at $n never joined; its log:" && tail -5 "$out.log" | sed 's/^/      /'
  echo "   2. joiner at keeper step $at: $secs s"
  kill -TERM "$jp" 2> /dev/null || true
  wait "$jp" 2> /dev/null || true
  # the first step it computed itself (a loss), after applying the decisions it was sent
  fstep=$("$py" -c 'import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("loss") is not None: print(r["step"]); break' "$out/metrics.jsonl" 2> /dev/null || true)
  joins="$joins$n $at $wsecs $wstep ${fstep:--} $secs $jstep
"
done
kill -TERM "$kp" 2> /dev/null || true
wait "$kp" 2> /dev/null || true
pids=()

# ---- 4. bytes at 8 machines ----
nc_down
nc_ranks=8
nc_net "$RATE"
S="--swarm-deadline 10 --swarm-misses 3"
t0=$(date +%s)
swarm_run sw8 8 "$STEPS8"
echo "   4. swarm, 8 machines: $(steps_of "$work/sw8.m0") steps in $(($(date +%s) - t0)) s"
nc_down

# ---- the table ----
echo
echo "Swarm on simulated hosts at $RATE ($(nproc) cores for all machines)"
echo
echo "1. step time, 4 machines, median time_ms of steps $((SKIP + 1))..$STEPS, best of $REPEAT interleaved pass(es)"
echo
echo "| run | ms/step (best) | every pass |"
echo "|---|---|---|"
echo "| swarm (keeper) | $sw_ms |$(echo $sw_all | sed 's/ / \/ /g') |"
echo "| MPI_Allgather (--dp 4, 8 sequences per rank) | $mpi_ms |$(echo $mpi_all | sed 's/ / \/ /g') |"
echo "| ratio swarm/MPI | $(awk -v a="$sw_ms" -v b="$mpi_ms" 'BEGIN{printf "%.3f (target <= 1.1: %s)", a / b, (a / b <= 1.1 ? "PASS" : "MISS")}') | |"
echo
echo "2. join latency: seconds from the joiner's process start to its WELCOME (the journal received; logged"
echo "   when it appears) and to the decision that records it (joined); in between it applies the journal"
echo "   steps without computing, then computes steps whose codes count from the joined step on"
echo
echo "| keeper steps (asked) | keeper steps at start | s to WELCOME | welcomed at step | first computed step | s to joined | joined at step |"
echo "|---|---|---|---|---|---|---|"
echo -n "$joins" | while read -r n at wsecs wstep fstep secs jstep; do echo "| $n | $at | $wsecs | $wstep | $fstep | $secs | $jstep |"; done
echo
echo "3. a member killed (-9) before step 40, --swarm-deadline 1 --swarm-misses 2: keeper's time_ms"
echo
echo "| step | ms |"
echo "|---|---|"
step_ms "$work/death.m0/metrics.jsonl" 38 45
grep -h "dropped\|missed" "$work/death.m0.log" | sed 's/^/    keeper: /' | head -3 || true
echo
echo "4. bytes sent per machine per step (median comm_bytes of steps $((SKIP + 1))..)"
echo
echo "   (the keeper sends the DECIDE to $RELAYS machines, the relay tree the rest: a member that relays sends"
echo "   its codes and up to $RELAYS DECIDEs, a leaf its codes only)"
echo
echo "| machines | keeper | busiest member | least busy member |"
echo "|---|---|---|---|"
for n in 4 8; do
  run=sw8; [ $n = 4 ] && run=sw4.p1
  per=$(for i in $(seq 1 $((n - 1))); do median "$work/$run.m$i/metrics.jsonl" comm_bytes $((SKIP + 1)); done | sort -g)
  echo "| $n | $(median "$work/$run.m0/metrics.jsonl" comm_bytes $((SKIP + 1))) | $(echo "$per" | tail -1) | $(echo "$per" | head -1) |"
done
echo "| 4, MPI rank 0 | $(median "$work/mpi4.p1/metrics.jsonl" comm_bytes $((SKIP + 1))) | | |"
