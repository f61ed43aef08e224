#!/bin/bash
# Two ranks, three ways: data parallel vs tensor parallel (vs pipeline) on the
# reference GPT (4 layers, 4 heads, 256 wide, T=256, vocab 256, AdamW, global
# batch 8), --threads 1 per rank, $STEPS steps each:
#   --dp 2                              gradient all-reduce, overlapped with backward
#   --tp 2                              Megatron column/row split, 2+2 all-reduces
#                                       of the (B,T,C) activations per layer
#   --pp 2 --micro-batches 4            two stages, 1F1B (the default schedule)
# plus, for scale, 1 rank with --threads 2 (the same two cores, no comm).
# Figures: summary.json (step 1 excluded by the trainer) for tokens/s, ms/step
# and exposed comm ms; metrics.jsonl (steps 2..) for compute ms and comm_bytes
# (the mean bytes a rank sent in the step).
#
# Builds nothing: $MPITRAIN_BIN (default build/mpitrain), launched through
# launch/mpitrain-local. Data: $MPITRAIN_DATA (default data/kjv.tok in the
# repository), made with `mpitrain prepare` when missing. Prints figures,
# never fails on speed; exits non-zero if a run fails.
# env: STEPS (10), KEEP=1 keeps the run dirs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
NAME=tp_vs_dp
. "$here/common.sh"
steps=${STEPS:-10}

[ -x "$py" ] || die "$py not found"
[ "$steps" -ge 3 ] || die "STEPS must be at least 3 (step 1 is skipped)"



echo "== tp_vs_dp ($(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)); reference GPT, global batch 8, $steps steps"

# run NAME RANKS THREADS [layout flags...]
run() {
  local name=$1 n=$2 th=$3
  shift 3
  local out=$work/$name
  "$local_launch" -n "$n" train --threads "$th" --batch 8 --steps "$steps" \
    --eval-every 0 --save-every 0 --quiet --data "$data" --out "$out" "$@" \
    > "$work/$name.log" 2>&1 || { cat "$work/$name.log" >&2; die "run $name failed"; }
  [ -s "$out/summary.json" ] || die "run $name wrote no summary.json"
  echo "   done: $name (ranks $n, --threads $th${*:+, $*})"
}

run 1rank-2thr 1 2 --dp 1
run dp2 2 1 --dp 2 --tp 1 --pp 1
run tp2 2 1 --dp 1 --tp 2 --pp 1
run pp2-m4 2 1 --dp 1 --tp 1 --pp 2 --micro-batches 4

"$py" - "$work" <<'PY'
import json, sys
work = sys.argv[1]

def load(name):
    d = f"{work}/{name}"
    s = json.load(open(d + "/summary.json"))
    rows = [json.loads(l) for l in open(d + "/metrics.jsonl") if l.strip()]
    rows = [r for r in rows if "time_ms" in r][1:] or rows   # step 1 warms caches
    mean = lambda k: sum(r.get(k, 0.0) for r in rows) / len(rows)
    return s, {k: mean(k) for k in ("compute_ms", "comm_bytes", "idle_ms", "overlapped_comm_ms")}

print()
print(f"{'layout':24}{'tok/s':>9}{'ms/step':>9}{'compute':>9}{'exposed':>9}{'share':>7}{'idle':>7}"
      f"{'MB/step':>9}{'act MB':>8}{'RSS MB':>8}")
print(f"{'':24}{'':>9}{'':>9}{'ms':>9}{'comm ms':>9}{'':>7}{'ms':>7}{'/rank':>9}{'/rank':>8}{'':>8}")
rows = [("1rank-2thr", "1 rank, --threads 2"), ("dp2", "--dp 2"), ("tp2", "--tp 2"),
        ("pp2-m4", "--pp 2 --micro-batches 4")]
res = {}
for name, label in rows:
    s, m = load(name)
    tps, ms, exp = s["mean_tokens_per_s"], s["mean_step_ms"], s["mean_exposed_comm_ms"]
    act = max(s.get("act_bytes_per_rank") or [0]) / 1e6
    res[name] = (tps, ms, exp, m["comm_bytes"])
    print(f"{label:24}{tps:9.0f}{ms:9.1f}{m['compute_ms']:9.1f}{exp:9.1f}{exp / ms:7.1%}"
          f"{m['idle_ms']:7.1f}{m['comm_bytes'] / 1e6:9.2f}{act:8.1f}{s.get('peak_rss_mb', 0):8.0f}")
print()
print("tok/s, ms/step, exposed comm: summary.json (step 1 excluded); compute, idle and MB/step:")
print("metrics.jsonl means over steps 2.. (compute/idle: mean over ranks; MB/step: comm_bytes, the")
print("mean bytes a rank sent per step); share = exposed comm / step; act MB = the largest")
print("act_bytes_per_rank; RSS = peak_rss_mb (max over ranks)")
d, t, p = res["dp2"], res["tp2"], res["pp2-m4"]
print(f"tp_vs_dp: tok_s dp2={d[0]:.0f} tp2={t[0]:.0f} pp2={p[0]:.0f} "
      f"mb_per_step dp2={d[3] / 1e6:.2f} tp2={t[3] / 1e6:.2f} pp2={p[3] / 1e6:.2f} "
      f"tp2_over_dp2={t[0] / d[0]:.2f}")
PY
