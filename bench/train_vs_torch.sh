#!/bin/bash
# Single-rank engine benchmark: mpitrain's reference GPT against the PyTorch
# peer (bench/torch_gpt.py), and against this machine's sgemm peak, all in
# one run so the figures share the same machine state.
#
#   (a) bench_sgemm --threads 2                       -> sgemm peak GFLOP/s
#   (b) mpitrain train, reference GPT (the defaults: 4 layers, 4 heads, 256
#       wide, T=256, B=8, vocab 256, AdamW), --threads 2, 25 steps
#   (c) torch_gpt.py --threads 1 (OpenBLAS keeps its own 2 threads), same
#       model, same KJV text, 20 steps (3 warm-up)
#   (b) and (c) alternate twice (mpitrain, torch, mpitrain, torch); the best
#   run of each peer is reported, to be fair to both under noise.
#
# Builds nothing. Binaries: $MPITRAIN_BIN (default build/mpitrain) and
# bench_sgemm next to it. Data: $MPITRAIN_DATA (default data/kjv.tok in the
# repository), made with `mpitrain prepare` when missing; the torch peer reads
# the plain text (kjv.txt next to the token file, else a `bible` dump).
# Prints figures and targets; never fails on speed, exits non-zero if a run
# fails.
# env: ROUNDS (2), MPI_STEPS (25), TORCH_STEPS (20), KEEP=1 keeps the run dirs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
NAME=train_vs_torch
. "$here/common.sh"
sgemm=$(dirname "$bin")/bench_sgemm
rounds=${ROUNDS:-2}
mpi_steps=${MPI_STEPS:-25}
torch_steps=${TORCH_STEPS:-20}

[ -x "$sgemm" ] || die "$sgemm not found (built with mpitrain from bench/bench_sgemm.c)"
[ -x "$py" ] || die "$py not found (the torch peer needs Debian's python3-torch)"


text=$(dirname "$data")/kjv.txt
if [ ! -s "$text" ]; then
  text=$work/kjv.txt
  bible 'gen1:1-rev22:21' > "$text" 2>/dev/null || die "could not dump the KJV text with bible (package bible-kjv)"
fi

echo "== train_vs_torch ($(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg))"
echo "   data: $data   text for torch: $text"

# (a) sgemm peak
"$sgemm" --threads 2 > "$work/sgemm.txt" || die "bench_sgemm failed"
peak=$(sed -n 's/^sgemm_peak_gflops=//p' "$work/sgemm.txt")
[ -n "$peak" ] || die "bench_sgemm printed no sgemm_peak_gflops"
echo "   sgemm peak (n=2048, 2 threads): $peak GFLOP/s"

# Runs a command and records the peak RSS of the process it started
# (getrusage RUSAGE_CHILDREN: the largest max-RSS among waited-for children).
rss_wrap() {
  local out=$1
  shift
  "$py" -c '
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    f.write("%.0f\n" % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0))
sys.exit(rc)' "$out" "$@"
}

run_mpitrain() {
  local i=$1 out=$work/mpitrain-$1
  "$bin" train --threads 2 --steps "$mpi_steps" --eval-every 0 --save-every 0 --quiet \
    --data "$data" --out "$out" > "$work/mpitrain-$i.log" 2>&1 \
    || { cat "$work/mpitrain-$i.log" >&2; die "mpitrain run $i failed"; }
  [ -s "$out/summary.json" ] || die "mpitrain run $i wrote no summary.json"
  # summary.json (step 1 excluded) and a steady-state figure skipping the
  # first 3 steps, as the torch peer does
  "$py" - "$out" <<'PY' > "$work/mpitrain-$i.txt"
import json, sys
d = sys.argv[1]
s = json.load(open(d + "/summary.json"))
rows = [json.loads(l) for l in open(d + "/metrics.jsonl") if l.strip()]
rows = [r for r in rows if "time_ms" in r]
steady = [r["time_ms"] for r in rows[3:]] or [r["time_ms"] for r in rows]
tok_per_step = s["mean_tokens_per_s"] * s["mean_step_ms"] / 1e3
ms = sum(steady) / len(steady)
print(s["mean_tokens_per_s"], s["mean_gflops"], s["peak_rss_mb"], s["mean_step_ms"],
      tok_per_step / (ms / 1e3), s["final_loss"])
PY
  read -r tps gf rss ms steady loss < "$work/mpitrain-$i.txt"
  printf '   run %d mpitrain: %8.1f tok/s  %7.1f ms/step  %6.1f GFLOP/s  (steady, steps>3: %.1f tok/s)  rss %s MB  loss %.3f\n' \
    "$i" "$tps" "$ms" "$gf" "$steady" "$rss" "$loss"
}

run_torch() {
  local i=$1
  rss_wrap "$work/torch-$i.rss" "$py" "$here/torch_gpt.py" --threads 1 --steps "$torch_steps" \
    --data "$text" > "$work/torch-$i.log" 2>&1 \
    || { cat "$work/torch-$i.log" >&2; die "torch run $i failed"; }
  local line
  line=$(grep '^torch: ' "$work/torch-$i.log") || die "torch run $i printed no summary line"
  local tps ms
  tps=$(sed -n 's/.*tokens_per_s=\([0-9.]*\).*/\1/p' <<< "$line")
  ms=$(sed -n 's/.*ms_per_step=\([0-9.]*\).*/\1/p' <<< "$line")
  echo "$tps $ms $(cat "$work/torch-$i.rss")" > "$work/torch-$i.txt"
  printf '   run %d torch:    %8.1f tok/s  %7.1f ms/step  rss %s MB\n' "$i" "$tps" "$ms" "$(cat "$work/torch-$i.rss")"
}

for i in $(seq 1 "$rounds"); do
  run_mpitrain "$i"
  run_torch "$i"
done

# best of each peer (highest tokens/s) and the table
"$py" - "$work" "$rounds" "$peak" <<'PY'
import sys
work, rounds, peak = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
m = [list(map(float, open(f"{work}/mpitrain-{i}.txt").read().split())) for i in range(1, rounds + 1)]
t = [list(map(float, open(f"{work}/torch-{i}.txt").read().split())) for i in range(1, rounds + 1)]
mb = max(m, key=lambda r: r[0])
tb = max(t, key=lambda r: r[0])
m_tps, m_gf, m_rss, m_ms, m_steady = mb[:5]
t_tps, t_ms, t_rss = tb
flop_per_tok = m_gf * 1e9 / m_tps          # same model, same FLOPs per token
ratio = m_tps / t_tps
steady_ratio = max(r[4] for r in m) / t_tps
frac = m_gf / peak
print()
print(f"== best of {rounds} runs each (reference GPT 4x256, T=256, B=8; mpitrain --threads 2, torch --threads 1)")
print(f"{'':28}{'mpitrain':>12}{'torch':>12}")
print(f"{'tokens/s':28}{m_tps:12.1f}{t_tps:12.1f}")
print(f"{'ms/step':28}{m_ms:12.1f}{t_ms:12.1f}")
print(f"{'GFLOP/s (model FLOPs)':28}{m_gf:12.1f}{t_tps * flop_per_tok / 1e9:12.1f}")
print(f"{'fraction of sgemm peak':28}{frac:12.2f}{t_tps * flop_per_tok / 1e9 / peak:12.2f}")
print(f"{'peak RSS per rank (MB)':28}{m_rss:12.0f}{t_rss:12.0f}")
print(f"ratio mpitrain/torch tokens/s = {ratio:.2f}  (target >= 1.25; "
      f"steady-state steps>3: {steady_ratio:.2f})")
print(f"mpitrain GFLOP/s / sgemm peak {peak:.1f} = {frac:.2f}  (target >= 0.75)")
print(f"train_vs_torch: mpitrain_tokens_per_s={m_tps:.1f} torch_tokens_per_s={t_tps:.1f} "
      f"ratio={ratio:.2f} mpitrain_gflops={m_gf:.1f} sgemm_peak_gflops={peak:.1f} "
      f"peak_fraction={frac:.2f} mpitrain_rss_mb={m_rss:.0f} torch_rss_mb={t_rss:.0f}")
PY
