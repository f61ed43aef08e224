#!/bin/bash
# Four simulated hosts joined by 100 Mbit/s links (tests/netcluster: network
# namespaces with their own host names, tbf-limited veth links, mpirun over
# TCP through an rsh agent): shared-randomness ZO keeps its replicas
# bit-identical across hosts (the hash check every 5 steps, and the weights
# byte for byte against the same run on shared memory), and data-parallel
# AdamW over TCP gives the shared-memory losses to within 1e-4. Needs root
# and `ip netns` (veth, bridge, tbf); without them it reports a skip (exit
# 77), not a pass.
# usage: multihost_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
. "$(cd "$(dirname "$0")/.." && pwd)/check.sh"
NC=$(cd "$(dirname "$0")/../netcluster" && pwd)
LOCAL=$(cd "$(dirname "$0")/../../launch" && pwd)/mpitrain-local
scratch_dir "$1" "$2"
export NC_PREFIX=mh$$ NC_NET=10.215.$(( $$ % 200 ))
if [ "$(id -u)" -ne 0 ] || ! ip netns add "$NC_PREFIX-probe" 2> /dev/null; then
  echo "SKIP - simulated hosts need root and network namespaces"
  exit 77
fi
ip netns del "$NC_PREFIX-probe"
trap '"$NC/down.sh"' EXIT
# a kernel without veth, bridges or tbf cannot host the cluster: a skip, with why
"$NC/up.sh" 4 100mbit > up.log 2>&1 || { echo "SKIP - the simulated hosts could not be built:"; sed 's/^/       /' up.log | tail -5; exit 77; }
for i in 0 1 2 3; do echo "$NC_PREFIX-h$i slots=1"; done > hosts
names=$(timeout 60 "$NC/mpirun.sh" hosts 4 hostname 2> /dev/null | sort -u | tr '\n' ' ')
check "mpirun places one rank on each of 4 hosts ($names)" "[ \$(echo $names | wc -w) -eq 4 ]"

for i in $(seq 1 80); do echo "Line $i: and the evening and the morning were the day, saith the preacher."; done > corpus.txt
"$BIN" prepare corpus.txt --out corpus.tok --val-fraction 0.1 > /dev/null || { echo "FAIL - prepare"; exit 1; }
M="--layers 2 --heads 2 --embd 32 --seq-len 32 --batch 8 --data $PWD/corpus.tok --threads 1 --quiet --eval-every 0 --dp 4"
hosts() { timeout 300 "$NC/mpirun.sh" hosts 4 "$BIN" train $M --out "$PWD/$1" "${@:2}" > "$1.log" 2>&1; }
local4() { timeout 300 "$LOCAL" -n 4 train $M --out "$1" "${@:2}" > "$1.log" 2>&1; }

Z="--optimizer zo --zo-samples 2 --zo-check-every 5 --steps 20"
hosts zo_net $Z; check "ZO on 4 hosts over 100 Mbit/s TCP, hash check every 5 steps" "[ $? -eq 0 ]"
local4 zo_shm $Z; check "the same ZO run on shared memory" "[ $? -eq 0 ]"
"$BIN" ckpt export zo_net --format safetensors --out net.st > /dev/null
"$BIN" ckpt export zo_shm --format safetensors --out shm.st > /dev/null
check "ZO weights across hosts == on shared memory, byte for byte" "[ -s net.st ] && cmp -s net.st shm.st"
check "ZO sent a few bytes per step, not a gradient" "[ \$(sed -n 's/.*\"step\":20,.*\"comm_bytes\":\([0-9]*\),.*/\1/p' zo_net/metrics.jsonl) -lt 10000 ]"

startup() { sed -n 's/.*"startup_bytes_per_rank":\[\([0-9]*\),.*/\1/p' "$1/summary.json"; }
check "ZO probes no link: rank 0 sent $(startup zo_net) B before its first step" "[ \$(startup zo_net) -lt 10000 ]"

D="--optimizer adamw --steps 10"
hosts dp_net $D; check "DP AdamW on 4 hosts over TCP" "[ $? -eq 0 ]"
local4 dp_shm $D; check "the same DP run on shared memory" "[ $? -eq 0 ]"
rel=$(max_rel dp_shm/metrics.jsonl dp_net/metrics.jsonl)
check "DP over TCP gives the shared-memory losses (max rel diff $rel <= 1e-4)" "same_steps dp_shm/metrics.jsonl dp_net/metrics.jsonl && awk 'BEGIN{exit !($rel <= 1e-4)}'"
# 16 KB, then 256 KB ping-pongs (past tbf's 64 KB burst): the link shows at
# most ~15 MB/s, so the 1 MB probe of a fast link never starts
check "the link probe is sized to 100 Mbit/s: $(startup dp_net) B, not the 10 MB a fast link gets" \
  "[ \$(startup dp_net) -lt 1000000 ]"
finish
