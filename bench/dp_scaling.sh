#!/bin/bash
# Data-parallel scaling of the reference GPT (4 layers, 4 heads, 256 wide,
# T=256, vocab 256, AdamW) at the same global batch 8 on this machine:
#   dp=1: 1 rank,  --threads 1
#   dp=2: 2 ranks, --threads 1 each, with
#         --overlap 1 / --overlap 0 (bucket all-reduces during backward or after)
#         --bucket-mb 4 (default) / --bucket-mb 1 (smaller buckets start earlier)
# Figures (from <out>/summary.json, step 1 excluded by the trainer):
#   scaling efficiency = tokens/s(dp=2) / (2 * tokens/s(dp=1))
#   exposed comm share = mean_exposed_comm_ms / mean_step_ms
# plus, from metrics.jsonl, the mean overlapped comm and idle ms per step (the
# overlapped figure is the comm layer's per-request sum; see the table legend).
#
# Builds nothing: $MPITRAIN_BIN (default build/mpitrain), launched through
# launch/mpitrain-local. Data: $MPITRAIN_DATA (default data/kjv.tok in the
# repository), made with `mpitrain prepare` when missing. Prints figures,
# never fails on speed; exits non-zero if a run fails.
# env: STEPS (15), KEEP=1 keeps the run dirs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
NAME=dp_scaling
. "$here/common.sh"
steps=${STEPS:-15}




echo "== dp_scaling ($(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)); global batch 8, $steps steps, 1 thread/rank"

# run NAME RANKS [extra train flags...]
run() {
  local name=$1 n=$2
  shift 2
  local out=$work/$name
  "$local_launch" -n "$n" train --dp "$n" --threads 1 --batch 8 --steps "$steps" \
    --eval-every 0 --save-every 0 --quiet --data "$data" --out "$out" "$@" \
    > "$work/$name.log" 2>&1 || { cat "$work/$name.log" >&2; die "run $name failed"; }
  [ -s "$out/summary.json" ] || die "run $name wrote no summary.json"
  echo "   done: $name (ranks $n${*:+, $*})"
}

run dp1 1
run dp2-ov1-b4 2 --overlap 1 --bucket-mb 4
run dp2-ov0-b4 2 --overlap 0 --bucket-mb 4
run dp2-ov1-b1 2 --overlap 1 --bucket-mb 1
run dp2-ov0-b1 2 --overlap 0 --bucket-mb 1

"$py" - "$work" <<'PY'
import json, sys
work = sys.argv[1]

def load(name):
    d = f"{work}/{name}"
    s = json.load(open(d + "/summary.json"))
    rows = [json.loads(l) for l in open(d + "/metrics.jsonl") if l.strip()]
    rows = [r for r in rows if "time_ms" in r][1:] or rows   # step 1 warms caches
    mean = lambda k: sum(r.get(k, 0.0) for r in rows) / len(rows)
    return s, mean("overlapped_comm_ms"), mean("idle_ms"), mean("comm_bytes")

base, _, _, _ = load("dp1")
t1 = base["mean_tokens_per_s"]
print()
print(f"{'run':14}{'ranks':>6}{'overlap':>8}{'bucket':>8}{'ms/step':>9}{'tok/s':>9}"
      f"{'eff':>7}{'exposed':>9}{'share':>7}{'overlap':>9}{'idle':>7}{'MB/step':>9}")
print(f"{'':14}{'':>6}{'':>8}{'MB':>8}{'':>9}{'':>9}{'':>7}{'ms':>9}{'':>7}{'ms':>9}{'ms':>7}{'':>9}")
rows = [("dp1", 1, "-", "-"), ("dp2-ov1-b4", 2, "1", "4"), ("dp2-ov0-b4", 2, "0", "4"),
        ("dp2-ov1-b1", 2, "1", "1"), ("dp2-ov0-b1", 2, "0", "1")]
res = {}
for name, n, ov, b in rows:
    s, ovl, idle, cb = load(name)
    tps, ms, exp = s["mean_tokens_per_s"], s["mean_step_ms"], s["mean_exposed_comm_ms"]
    eff = tps / (n * t1)
    share = exp / ms if ms else 0.0
    res[name] = (eff, share)
    print(f"{name:14}{n:>6}{ov:>8}{b:>8}{ms:9.1f}{tps:9.1f}{eff:7.2f}{exp:9.1f}{share:7.1%}"
          f"{ovl:9.1f}{idle:7.1f}{cb / 1e6:9.2f}")
print()
print("eff = tokens/s / (ranks * tokens/s at dp=1); share = exposed comm / step time;")
print("overlap = the comm layer's overlapped_comm_ms: per bucket, in-flight time outside that")
print("  bucket's own wait, summed over buckets (concurrent buckets count more than once, and a")
print("  wait on one bucket counts as overlap for the others, so it is nonzero at --overlap 0);")
print("MB/step = comm_bytes per step (per rank)")
e, sh = res["dp2-ov1-b4"]
print(f"dp_scaling: efficiency_dp2={e:.2f} exposed_share_overlap1={sh:.3f} "
      f"exposed_share_overlap0={res['dp2-ov0-b4'][1]:.3f} "
      f"exposed_share_overlap1_bucket1={res['dp2-ov1-b1'][1]:.3f} "
      f"exposed_share_overlap0_bucket1={res['dp2-ov0-b1'][1]:.3f}")
PY
