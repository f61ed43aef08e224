#!/bin/bash
# The llama family at real size against PyTorch (bench/llama_torch.py: the
# same model in float32 torch), all in one run so the figures share the
# machine's state:
#
#   (a) bench_sgemm --threads 2                         -> sgemm peak GFLOP/s
#   (b) SmolLM2-135M's shape (30 layers, 576 wide, 9 heads, 3 kv heads, MLP
#       1536, vocab 49152, tied), T=1024, B=1, AdamW, random init and random
#       token ids: `mpitrain train --model llama --threads 2` and
#       llama_torch.py train at 1 and 2 torch threads, alternating ROUNDS
#       times; best of each: tokens/s (target >= 1.5x torch), mpitrain's
#       model GFLOP/s as a share of the sgemm peak (target >= 0.85), peak RSS
#       of both from /usr/bin/time -v (target <= torch's)
#   (c) Qwen2.5-0.5B's shape (24 layers, 896 wide, 14 heads, 2 kv heads, MLP
#       4864, vocab 151936, tied, q/k/v biases), T=1024, B=1: the ZO step vs
#       two forward passes (bench_zo --shape qwen05b; target <= 1.1), and
#       the peak RSS of a ZO step vs `mpitrain eval` of its checkpoint
#       (target <= 1.15)
#   (d) KV-cache sampling tokens/s at both shapes: bench_decode (random
#       weights, a 64-token prompt, TOKENS steps) and llama_torch.py sample
#       (the same with torch's KV cache) at 1 and 2 threads
#
# A binary that cannot train --model llama (built before the family, to
# compare) has its runs skipped with the reason it gives; the torch figures
# are printed alone.
# Builds nothing. Binaries: $MPITRAIN_BIN (default build/mpitrain), and
# bench_sgemm, bench_zo, bench_decode next to it. Prints; never fails on
# speed; exits non-zero if a run fails.
# env: ROUNDS (2), MPI_STEPS (5), TORCH_STEPS (4), WARMUP (1),
#      TORCH_THREADS ("1 2"), TOKENS (64), ZO_REPS (2), SKIP_QWEN=1 leaves (c) and the
#      0.5B half of (d) out, KEEP=1 keeps the run dirs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
NAME=llama_vs_torch
need_kjv=0
. "$here/common.sh"
bindir=$(dirname "$bin")
rounds=${ROUNDS:-2}
mpi_steps=${MPI_STEPS:-5} torch_steps=${TORCH_STEPS:-4} warmup=${WARMUP:-1}
torch_threads=${TORCH_THREADS:-1 2}
tokens=${TOKENS:-64}
for b in bench_sgemm bench_zo bench_decode; do
  [ -x "$bindir/$b" ] || die "$bindir/$b not found (built with mpitrain from bench/$b.c)"
done
[ -x "$py" ] || die "$py not found (the torch peer needs Debian's python3-torch)"
[ -x /usr/bin/time ] || die "/usr/bin/time not found (package time)"

# the two shapes: mpitrain's flags; llama_torch.py takes the same names
smol=(--layers 30 --embd 576 --heads 9 --kv-heads 3 --mlp-hidden 1536 --vocab 49152 --seq-len 1024)
qwen=(--layers 24 --embd 896 --heads 14 --kv-heads 2 --mlp-hidden 4864 --vocab 151936 --seq-len 1024
      --qkv-bias 1)

echo "== llama_vs_torch ($(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg))"

# 4M random token ids below 49152 (both vocabularies hold them) as raw
# little-endian uint16 (nanoGPT's .bin layout), read by both peers
data=$work/random.bin
"$py" -c '
import random, struct, sys
random.seed(1)
n = 1 << 22
sys.stdout.buffer.write(struct.pack("<%dH" % n, *(random.randrange(49152) for _ in range(n))))' > "$data"
data_args=(--data "$data" --data-format nanogpt)

# Does this mpitrain build the llama family? A 1-step run of a tiny one
# answers; its refusal is the reason every mpitrain run below is skipped.
mpi_llama=1
if ! "$bin" train --model llama --layers 1 --embd 64 --heads 4 --kv-heads 2 --mlp-hidden 96 \
     --vocab 49152 --seq-len 32 --batch 1 --steps 1 --threads 1 --eval-every 0 --save-every 0 \
     --quiet "${data_args[@]}" --out "$work/probe" > "$work/probe.log" 2>&1; then
  mpi_llama=0
  reason=$(grep -v '^$' "$work/probe.log" | tail -1)
  echo "   mpitrain's side SKIPPED: $bin does not train --model llama:"
  echo "     $reason"
fi

# (a) sgemm peak
"$bindir/bench_sgemm" --threads 2 > "$work/sgemm.txt" || die "bench_sgemm failed"
peak=$(sed -n 's/^sgemm_peak_gflops=//p' "$work/sgemm.txt")
[ -n "$peak" ] || die "bench_sgemm printed no sgemm_peak_gflops"
echo "   sgemm peak (n=2048, 2 threads): $peak GFLOP/s"

# (b) SmolLM2-135M, AdamW
echo "== (b) SmolLM2-135M shape, T=1024, B=1, AdamW"
run_mpitrain() {
  local i=$1 out=$work/mpitrain-$1 rss
  rss=$(timed "$work/mpitrain-$i" "$bin" train --model llama "${smol[@]}" --batch 1 --threads 2 \
        --steps "$mpi_steps" --eval-every 0 --save-every 0 --quiet "${data_args[@]}" --out "$out")
  [ -s "$out/summary.json" ] || die "mpitrain run $i wrote no summary.json"
  # steady state: the steps after the warm-up, as the torch peer times them
  "$py" - "$out" "$warmup" "$rss" <<'PY' > "$work/mpitrain-$i.txt"
import json, sys
d, w, rss = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = json.load(open(d + "/summary.json"))
rows = [json.loads(l) for l in open(d + "/metrics.jsonl") if l.strip()]
rows = [r for r in rows if "time_ms" in r][w:] or rows
ms = sum(r["time_ms"] for r in rows) / len(rows)
gf = sum(r["gflops"] for r in rows) / len(rows)
print(1024 / (ms / 1e3), ms, gf, rss, s["final_loss"])
PY
  read -r tps ms gf rss loss < "$work/mpitrain-$i.txt"
  printf '   run %d mpitrain: %8.1f tok/s  %8.1f ms/step  %6.1f GFLOP/s  peak RSS %s MB  loss %.3f\n' \
    "$i" "$tps" "$ms" "$gf" "$rss" "$loss"
}
run_torch() {
  local i=$1 th=$2 tag=$1-t$2 rss line tps ms
  rss=$(timed "$work/torch-$tag" "$py" "$here/llama_torch.py" train "${smol[@]}" --batch 1 \
        --threads "$th" --steps "$torch_steps" --warmup "$warmup" --tokens-u16 "$data")
  line=$(grep '^torch: ' "$work/torch-$tag.log") || die "torch run $tag printed no summary line"
  tps=$(sed -n 's/.*tokens_per_s=\([0-9.]*\).*/\1/p' <<< "$line")
  ms=$(sed -n 's/.*ms_per_step=\([0-9.]*\).*/\1/p' <<< "$line")
  echo "$tps $ms $rss $th" > "$work/torch-$tag.txt"
  printf '   run %d torch (%d threads): %8.1f tok/s  %8.1f ms/step  peak RSS %s MB\n' "$i" "$th" "$tps" "$ms" "$rss"
}
for i in $(seq 1 "$rounds"); do
  [ "$mpi_llama" = 1 ] && run_mpitrain "$i"
  for th in $torch_threads; do run_torch "$i" "$th"; done
done
# torch's GFLOP/s on mpitrain's count (models/cost.h: 6 x parameters + 12 L
# T C per token, the embedding counted once as the tied head): mpitrain's
# FLOPs per token when it ran, the same formula when it did not
"$py" - "$work" "$rounds" "$peak" "$mpi_llama" <<'PY'
import glob, sys
work, rounds, peak, have_mpi = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "1"
L, C, F, V, T, kv = 30, 576, 1536, 49152, 1024, 192
params = L * (C * C * 2 + 2 * C * kv + 3 * C * F + 2 * C) + C + V * C
flop_tok = 6 * params + 12 * L * T * C
t = [list(map(float, open(f).read().split())) for f in sorted(glob.glob(f"{work}/torch-*.txt"))]
t_tps, t_ms, t_rss, t_th = max(t, key=lambda r: r[0])
t_gf = t_tps * flop_tok / 1e9
print()
print(f"== (b) best of {rounds} rounds (torch best at {t_th:.0f} torch threads)")
if have_mpi:
    m = [list(map(float, open(f"{work}/mpitrain-{i}.txt").read().split())) for i in range(1, rounds + 1)]
    m_tps, m_ms, m_gf, m_rss, _ = max(m, key=lambda r: r[0])
    flop_tok = m_gf * 1e9 / m_tps
    t_gf = t_tps * flop_tok / 1e9
    print(f"{'':28}{'mpitrain':>12}{'torch':>12}")
    print(f"{'tokens/s':28}{m_tps:12.1f}{t_tps:12.1f}")
    print(f"{'ms/step':28}{m_ms:12.1f}{t_ms:12.1f}")
    print(f"{'GFLOP/s':28}{m_gf:12.1f}{t_gf:12.1f}")
    print(f"{'fraction of sgemm peak':28}{m_gf / peak:12.2f}{t_gf / peak:12.2f}")
    print(f"{'peak RSS (MB)':28}{m_rss:12.0f}{t_rss:12.0f}")
    print(f"ratio mpitrain/torch tokens/s = {m_tps / t_tps:.2f} (target >= 1.5); "
          f"share of sgemm {m_gf / peak:.2f} (target >= 0.85); "
          f"RSS ratio {m_rss / t_rss:.2f} (target <= 1)")
    print(f"llama_vs_torch: shape=smollm2-135m mpitrain_tokens_per_s={m_tps:.1f} "
          f"torch_tokens_per_s={t_tps:.1f} ratio={m_tps / t_tps:.2f} mpitrain_gflops={m_gf:.1f} "
          f"sgemm_peak_gflops={peak:.1f} peak_fraction={m_gf / peak:.2f} "
          f"mpitrain_rss_mb={m_rss:.0f} torch_rss_mb={t_rss:.0f} torch_threads={t_th:.0f}")
else:
    print(f"torch: {t_tps:.1f} tokens/s, {t_ms:.1f} ms/step, {t_gf:.1f} GFLOP/s = "
          f"{t_gf / peak:.2f} of sgemm, peak RSS {t_rss:.0f} MB (mpitrain skipped)")
    print(f"llama_vs_torch: shape=smollm2-135m mpitrain=skipped torch_tokens_per_s={t_tps:.1f} "
          f"sgemm_peak_gflops={peak:.1f} torch_rss_mb={t_rss:.0f} torch_threads={t_th:.0f}")
PY

# (c) Qwen2.5-0.5B: ZO step vs two forwards, ZO peak RSS vs eval's
if [ "${SKIP_QWEN:-0}" != 1 ]; then
  echo
  echo "== (c) Qwen2.5-0.5B shape, T=1024, B=1: ZO"
  if [ "$mpi_llama" = 1 ]; then
    "$bindir/bench_zo" --shape qwen05b --threads 2 --reps "${ZO_REPS:-2}" | tee "$work/zo.txt" \
      || die "bench_zo --shape qwen05b failed"
    zo_rss=$(timed "$work/zo-run" "$bin" train --model llama "${qwen[@]}" --batch 1 --threads 2 \
             --optimizer zo --zo-scale 1e-3 --steps 1 --save-every 1 --eval-every 0 --quiet \
             "${data_args[@]}" --out "$work/zo-run")
    ev_rss=$(timed "$work/eval" "$bin" eval --ckpt "$work/zo-run" "${data_args[@]}" --batch 1 \
             --batches 1 --threads 2)
    awk -v z="$zo_rss" -v e="$ev_rss" 'BEGIN {
      printf "   peak RSS: ZO step %d MB, eval %d MB: ratio %.2f (target <= 1.15)\n", z, e, z / e }'
    echo "llama_vs_torch: shape=qwen2.5-0.5b $(grep '^zo_ratio=' "$work/zo.txt") zo_rss_mb=$zo_rss eval_rss_mb=$ev_rss"
    rm -rf "$work/zo-run/ckpt"
  else
    echo "   SKIPPED (mpitrain has no llama family yet)"
  fi
fi

# (d) KV-cache sampling
echo
echo "== (d) KV-cache sampling: $tokens tokens after a 64-token prompt, random weights"
sample_shape() {
  local label=$1
  shift
  for th in 1 2; do
    if [ "$mpi_llama" = 1 ]; then
      # the KV-cache decoder may come after the family's training
      if "$bindir/bench_decode" --model llama "$@" --prompt 64 --tokens "$tokens" --full 0 \
           --threads "$th" > "$work/decode-$label-$th.txt" 2>&1; then
        printf '   %-14s %d thread(s) mpitrain: %s\n' "$label" "$th" \
          "$(grep '^kv_cache' "$work/decode-$label-$th.txt")"
      else
        printf '   %-14s %d thread(s) mpitrain: SKIPPED (%s)\n' "$label" "$th" \
          "$(tail -1 "$work/decode-$label-$th.txt")"
      fi
    fi
    "$py" "$here/llama_torch.py" sample "$@" --prompt 64 --tokens "$tokens" --threads "$th" \
      > "$work/tsample-$label-$th.txt" 2>&1 || { cat "$work/tsample-$label-$th.txt" >&2; die "torch sample $label failed"; }
    printf '   %-14s %d thread(s) torch:    %s\n' "$label" "$th" "$(grep '^torch:' "$work/tsample-$label-$th.txt")"
  done
}
sample_shape smollm2-135m "${smol[@]}"
[ "${SKIP_QWEN:-0}" != 1 ] && sample_shape qwen2.5-0.5b "${qwen[@]}"
[ "$mpi_llama" = 1 ] || echo "   (mpitrain's sampling SKIPPED: no llama family yet)"
exit 0
