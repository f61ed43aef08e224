#!/bin/bash
# Four simulated hosts joined by 100 Mbit/s links (tests/netcluster: network
# namespaces with their own host names, tbf-limited veth links, mpirun over
# TCP through an rsh agent): shared-randomness ZO keeps its replicas
# bit-identical across hosts (the hash check every 5 steps, and the weights
# byte for byte against the same run on shared memory), and data-parallel
# AdamW over TCP gives the shared-memory losses to within 1e-4. Needs root
# DiLoCo (blocking and delayed) gives the shared-memory weights, bit for bit,
# with nothing but its outer all-reduces on the wire. Needs root
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
# the binary under test on shared memory too: without MPITRAIN_BIN the
# launcher runs <repo>/build/mpitrain (another build, or none)
local4() { MPITRAIN_BIN=$BIN timeout 300 "$LOCAL" -n 4 train $M --out "$1" "${@:2}" > "$1.log" 2>&1; }

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

# DiLoCo: the inner steps send nothing across hosts, one all-reduce of the
# weights every H steps (blocking, and behind the next round), the same bits
# as on shared memory
L="--optimizer adamw --diloco 5 --steps 10"
for ov in 0 1; do
  hosts "dl_net$ov" $L --diloco-overlap $ov; check "DiLoCo H=5 (overlap $ov) on 4 hosts over TCP" "[ $? -eq 0 ]"
  local4 "dl_shm$ov" $L --diloco-overlap $ov; check "the same DiLoCo run on shared memory" "[ $? -eq 0 ]"
  "$BIN" ckpt export "dl_net$ov" --format safetensors --out dn.st > /dev/null
  "$BIN" ckpt export "dl_shm$ov" --format safetensors --out ds.st > /dev/null
  check "DiLoCo (overlap $ov) weights across hosts == on shared memory, byte for byte" "[ -s dn.st ] && cmp -s dn.st ds.st"
done
step_bytes() { sed -n "s/.*\"step\":$2,.*\"comm_bytes\":\([0-9]*\),.*/\1/p" "$1/metrics.jsonl"; }
check "DiLoCo's inner steps send no weights ($(step_bytes dl_net0 3) B at step 3, $(step_bytes dl_net0 5) B at the outer step 5)" \
  "[ \$(step_bytes dl_net0 3) -lt 10000 ] && [ \$(step_bytes dl_net0 5) -gt 100000 ]"
finish
