#!/bin/bash
# Single-rank engine benchmark: mpitrain's GPT against the PyTorch peer
# (bench/torch_gpt.py), and against this machine's sgemm peak, all in one
# run so the figures share the same machine state.
#
# SHAPE picks the model:
#   ref   (default) the reference GPT: 4 layers, 4 heads, width 256, T=256,
#         B=8, vocab 256, on the KJV bytes
#   gpt2  GPT-2 124M: 12 layers, 12 heads, width 768, T=1024, B=1 (the
#         smallest batch: one 1024-token sequence), vocab 50257, on random
#         GPT-2 token ids (a nanoGPT-style uint16 file both peers read)
#
#   (a) bench_sgemm --threads 2                       -> sgemm peak GFLOP/s
#   (b) mpitrain train --threads 2, AdamW, MPI_STEPS steps
#   (c) torch_gpt.py with 1 and with 2 torch threads (which is faster
#       depends on the CPU: OpenBLAS keeps its own 2 threads either way),
#       same model, same optimizer, same tokens, TORCH_STEPS steps
#   (b) and (c) alternate ROUNDS times; the best run of each peer (over
#   rounds and torch thread settings) is reported, to be fair under noise.
#
# Builds nothing. Binaries: $MPITRAIN_BIN (default build/mpitrain) and
# bench_sgemm next to it. Data (ref): $MPITRAIN_DATA (default data/kjv.tok
# in the repository), made with `mpitrain prepare` when missing; the torch
# peer reads the plain text (kjv.txt next to the token file, else a `bible`
# dump). Prints figures and targets; never fails on speed, exits non-zero if
# a run fails.
# env: SHAPE (ref), ROUNDS (2), MPI_STEPS (25; gpt2 6), TORCH_STEPS (20;
# gpt2 6), TORCH_THREADS ("1 2"), KEEP=1 keeps the run dirs.
#
# CPU_TIME=1 measures instead what a machine other jobs share can still
# tell: the CPU seconds of one step of each peer on ONE thread (mpitrain
# --threads 1; torch with 1 torch thread and OPENBLAS_NUM_THREADS=1), from
# two runs of each that differ by CPU_STEPS steps (8; gpt2 2), so start-up,
# imports and the final checkpoint cancel; best of ROUNDS, alternating. It
# says how the engines compare, not how two threads scale.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
NAME=train_vs_torch
. "$here/common.sh"
sgemm=$(dirname "$bin")/bench_sgemm
rounds=${ROUNDS:-2}
shape=${SHAPE:-ref}
torch_threads=${TORCH_THREADS:-1 2}
case $shape in
  ref)
    model=(--layers 4 --heads 4 --embd 256 --seq-len 256 --batch 8 --vocab 256)
    torch_model=(--layers 4 --heads 4 --embd 256 --seq-len 256 --batch 8 --vocab 256)
    mpi_steps=${MPI_STEPS:-25} torch_steps=${TORCH_STEPS:-20} warmup=3
    describe="reference GPT 4x256, T=256, B=8, vocab 256" peak_target=0.75 ;;
  gpt2)
    model=(--layers 12 --heads 12 --embd 768 --seq-len 1024 --batch 1 --vocab 50257)
    torch_model=(--layers 12 --heads 12 --embd 768 --seq-len 1024 --batch 1 --vocab 50257)
    mpi_steps=${MPI_STEPS:-6} torch_steps=${TORCH_STEPS:-6} warmup=2
    describe="GPT-2 124M: 12x768, T=1024, B=1, vocab 50257" peak_target=0.90 ;;
  *) die "SHAPE=$shape: use ref or gpt2" ;;
esac

[ -x "$sgemm" ] || die "$sgemm not found (built with mpitrain from bench/bench_sgemm.c)"
[ -x "$py" ] || die "$py not found (the torch peer needs Debian's python3-torch)"


if [ "$shape" = gpt2 ]; then
  # 4M random GPT-2 ids as raw little-endian uint16 (nanoGPT's .bin layout)
  data=$work/gpt2-random.bin
  "$py" -c '
import random, struct, sys
random.seed(1)
n = 1 << 22
sys.stdout.buffer.write(struct.pack("<%dH" % n, *(random.randrange(50257) for _ in range(n))))' > "$data"
  data_args=(--data "$data" --data-format nanogpt)
  torch_data=(--tokens-u16 "$data")
else
  text=$(dirname "$data")/kjv.txt
  if [ ! -s "$text" ]; then
    text=$work/kjv.txt
    bible 'gen1:1-rev22:21' > "$text" 2>/dev/null || die "could not dump the KJV text with bible (package bible-kjv)"
  fi
  data_args=(--data "$data")
  torch_data=(--data "$text")
fi

echo "== train_vs_torch, $describe ($(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg))"
echo "   mpitrain data: ${data_args[*]}   torch data: ${torch_data[*]}"

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
    "${model[@]}" "${data_args[@]}" --out "$out" > "$work/mpitrain-$i.log" 2>&1 \
    || { cat "$work/mpitrain-$i.log" >&2; die "mpitrain run $i failed"; }
  [ -s "$out/summary.json" ] || die "mpitrain run $i wrote no summary.json"
  # summary.json (step 1 excluded) and a steady-state figure skipping the
  # warm-up steps, as the torch peer does
  "$py" - "$out" "$warmup" <<'PY' > "$work/mpitrain-$i.txt"
import json, sys
d = sys.argv[1]
s = json.load(open(d + "/summary.json"))
rows = [json.loads(l) for l in open(d + "/metrics.jsonl") if l.strip()]
rows = [r for r in rows if "time_ms" in r]
w = int(sys.argv[2])
steady = [r["time_ms"] for r in rows[w:]] or [r["time_ms"] for r in rows]
tok_per_step = s["mean_tokens_per_s"] * s["mean_step_ms"] / 1e3
ms = sum(steady) / len(steady)
print(s["mean_tokens_per_s"], s["mean_gflops"], s["peak_rss_mb"], s["mean_step_ms"],
      tok_per_step / (ms / 1e3), s["final_loss"])
PY
  read -r tps gf rss ms steady loss < "$work/mpitrain-$i.txt"
  printf '   run %d mpitrain: %8.1f tok/s  %7.1f ms/step  %6.1f GFLOP/s  (steady, after warm-up: %.1f tok/s)  rss %s MB  loss %.3f\n' \
    "$i" "$tps" "$ms" "$gf" "$steady" "$rss" "$loss"
}

run_torch() {
  local i=$1 th=$2 tag=$1-t$2
  rss_wrap "$work/torch-$tag.rss" "$py" "$here/torch_gpt.py" --threads "$th" --steps "$torch_steps" \
    --warmup "$warmup" "${torch_model[@]}" "${torch_data[@]}" > "$work/torch-$tag.log" 2>&1 \
    || { cat "$work/torch-$tag.log" >&2; die "torch run $tag failed"; }
  local line
  line=$(grep '^torch: ' "$work/torch-$tag.log") || die "torch run $tag printed no summary line"
  local tps ms
  tps=$(sed -n 's/.*tokens_per_s=\([0-9.]*\).*/\1/p' <<< "$line")
  ms=$(sed -n 's/.*ms_per_step=\([0-9.]*\).*/\1/p' <<< "$line")
  echo "$tps $ms $(cat "$work/torch-$tag.rss") $th" > "$work/torch-$tag.txt"
  printf '   run %d torch (%d threads): %8.1f tok/s  %7.1f ms/step  rss %s MB\n' "$i" "$th" "$tps" "$ms" "$(cat "$work/torch-$tag.rss")"
}

# user + system CPU seconds of "$@"
cpu_s() {
  /usr/bin/time -f "%U %S" -o "$work/cpu.txt" "$@" > "$work/cpu.log" 2>&1 \
    || { tail -5 "$work/cpu.log" >&2; die "failed: $*"; }
  awk '{ print $1 + $2 }' "$work/cpu.txt"
}

if [ "${CPU_TIME:-0}" = 1 ]; then
  k=${CPU_STEPS:-$([ "$shape" = gpt2 ] && echo 2 || echo 8)}
  [ -x /usr/bin/time ] || die "/usr/bin/time not found (package time)"
  best_m=1e9 best_t=1e9
  for i in $(seq 1 "$rounds"); do
    mpi() {
      cpu_s "$bin" train --threads 1 --steps "$1" --eval-every 0 --save-every 0 --quiet \
        "${model[@]}" "${data_args[@]}" --out "$work/cpu-mpitrain-$1-$i"
    }
    tor() {
      OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 cpu_s "$py" "$here/torch_gpt.py" --threads 1 \
        --steps "$1" --warmup 1 "${torch_model[@]}" "${torch_data[@]}"
    }
    m1=$(mpi 2) m2=$(mpi $((2 + k))) t1=$(tor 2) t2=$(tor $((2 + k)))
    read -r m t < <(awk -v a="$m1" -v b="$m2" -v c="$t1" -v d="$t2" -v k="$k" \
      'BEGIN { printf "%.4f %.4f\n", (b - a) / k, (d - c) / k }')
    printf '   round %d: CPU s/step on 1 thread: mpitrain %.3f  torch %.3f  (ratio %.2f)\n' \
      "$i" "$m" "$t" "$(awk -v m="$m" -v t="$t" 'BEGIN { print t / m }')"
    best_m=$(awk -v a="$best_m" -v b="$m" 'BEGIN { print (b < a ? b : a) }')
    best_t=$(awk -v a="$best_t" -v b="$t" 'BEGIN { print (b < a ? b : a) }')
  done
  awk -v m="$best_m" -v t="$best_t" -v d="$describe" 'BEGIN {
    printf "train_vs_torch: cpu_time=1 shape=%s mpitrain_cpu_s_per_step=%.3f torch_cpu_s_per_step=%.3f ratio=%.2f\n",
      d, m, t, t / m }'
  exit 0
fi

for i in $(seq 1 "$rounds"); do
  run_mpitrain "$i"
  for th in $torch_threads; do run_torch "$i" "$th"; done
done

# best of each peer (highest tokens/s) and the table
"$py" - "$work" "$rounds" "$peak" "$describe" "$peak_target" <<'PY'
import glob, sys
work, rounds, peak, describe = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
peak_target = float(sys.argv[5])
m = [list(map(float, open(f"{work}/mpitrain-{i}.txt").read().split())) for i in range(1, rounds + 1)]
t = [list(map(float, open(f).read().split())) for f in sorted(glob.glob(f"{work}/torch-*.txt"))]
mb = max(m, key=lambda r: r[0])
tb = max(t, key=lambda r: r[0])
m_tps, m_gf, m_rss, m_ms, m_steady = mb[:5]
t_tps, t_ms, t_rss, t_th = tb
flop_per_tok = m_gf * 1e9 / m_tps          # same model, same FLOPs per token
ratio = m_tps / t_tps
steady_ratio = max(r[4] for r in m) / t_tps
frac = m_gf / peak
print()
print(f"== best of {rounds} runs each ({describe}; mpitrain --threads 2, torch best at "
      f"{t_th:.0f} torch threads)")
print(f"{'':28}{'mpitrain':>12}{'torch':>12}")
print(f"{'tokens/s':28}{m_tps:12.1f}{t_tps:12.1f}")
print(f"{'ms/step':28}{m_ms:12.1f}{t_ms:12.1f}")
print(f"{'GFLOP/s (model FLOPs)':28}{m_gf:12.1f}{t_tps * flop_per_tok / 1e9:12.1f}")
print(f"{'fraction of sgemm peak':28}{frac:12.2f}{t_tps * flop_per_tok / 1e9 / peak:12.2f}")
print(f"{'peak RSS per rank (MB)':28}{m_rss:12.0f}{t_rss:12.0f}")
print(f"ratio mpitrain/torch tokens/s = {ratio:.2f}  (target >= 1.25; "
      f"steady state after warm-up: {steady_ratio:.2f})")
print(f"mpitrain GFLOP/s / sgemm peak {peak:.1f} = {frac:.2f}  (target >= {peak_target:.2f})")
print(f"train_vs_torch: shape={describe.split(':')[0].split(' ')[0]} mpitrain_tokens_per_s={m_tps:.1f} torch_tokens_per_s={t_tps:.1f} "
      f"ratio={ratio:.2f} mpitrain_gflops={m_gf:.1f} sgemm_peak_gflops={peak:.1f} "
      f"peak_fraction={frac:.2f} mpitrain_rss_mb={m_rss:.0f} torch_rss_mb={t_rss:.0f} "
      f"torch_threads={t_th:.0f}")
PY
