#!/bin/bash
# Pipeline bubble: measured idle share of the pipeline stages against the
# textbook bubble (p-1)/(M+p-1), for pure pipeline parallelism (dp=tp=1).
#
#   model: a small GPT (4 layers, 4 heads, 128 wide, T=64, vocab 256, global
#          batch 16) so that each run takes seconds
#   p in {2, 4} stages, M in {4, 8, 16} micro-batches, --pp-schedule gpipe and
#   1f1b, --threads 1 per rank, $STEPS steps each, with --trace
#
# bench/trace_bubble.py reads each trace. Per stage (rank) and step (steps are
# separated by the "optimizer" spans):
#   idle own  = 1 - sum(forward/backward span durations)
#                   / (the stage's first compute start .. last compute end)
#   idle step = the same busy time over the whole pipeline's compute window of
#               that step (first start .. last end over all stages)
# averaged over steps 2.. and over stages; plus the mean p2p wait (the
# "wait send"/"wait recv" spans) per stage and step.
# The textbook (p-1)/(M+p-1) is the idle share inside the whole pipeline's
# window, i.e. it predicts "idle step". Measured against its own window, stage
# s ideally idles (p-1-s)/(M+p-1-s) (the last stage not at all), so "idle own"
# is expected below the textbook figure; that ideal is printed as "own th".
#
# p=4 runs 4 ranks on this 2-core machine (oversubscribed): two ranks share a
# core, so a stage that should compute can be descheduled, which inflates idle.
#
# Builds nothing: $MPITRAIN_BIN (default build/mpitrain), launched through
# launch/mpitrain-local. Data: $MPITRAIN_DATA (default data/kjv.tok in the
# repository), made with `mpitrain prepare` when missing. Prints figures,
# never fails on timing; exits non-zero if a run fails.
# env: STEPS (6), KEEP=1 keeps the run dirs and traces.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
NAME=pipeline_bubble
. "$here/common.sh"
steps=${STEPS:-6}
model=(--layers 4 --heads 4 --embd 128 --seq-len 64 --batch 16)

[ -x "$py" ] || die "$py not found"
[ "$steps" -ge 3 ] || die "STEPS must be at least 3 (step 1 is skipped)"



echo "== pipeline_bubble ($(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)); ${model[*]}, $steps steps, 1 thread/rank"

runs=()
for p in 2 4; do
  for m in 4 8 16; do
    for sched in gpipe 1f1b; do
      name=pp$p-m$m-$sched
      out=$work/$name
      "$local_launch" -n "$p" train --dp 1 --tp 1 --pp "$p" --micro-batches "$m" \
        --pp-schedule "$sched" "${model[@]}" --threads 1 --steps "$steps" \
        --eval-every 0 --save-every 0 --quiet --data "$data" --out "$out" \
        --trace "$work/$name.trace.json" > "$work/$name.log" 2>&1 \
        || { cat "$work/$name.log" >&2; die "run $name failed"; }
      [ -s "$out/summary.json" ] || die "run $name wrote no summary.json"
      [ -s "$work/$name.trace.json" ] || die "run $name wrote no trace"
      "$py" "$here/trace_bubble.py" "$work/$name.trace.json" --pp "$p" --micro-batches "$m" --json \
        > "$work/$name.bubble.json" || die "trace_bubble.py failed on $name"
      runs+=("$name:$p:$m:$sched")
      echo "   done: $name"
    done
  done
done

"$py" - "$work" "${runs[@]}" <<'PY'
import json, sys
work, runs = sys.argv[1], sys.argv[2:]
print()
print(f"{'p':>2}{'M':>4} {'schedule':9}{'ms/step':>9}{'idle own':>10}{'own th':>8}{'idle step':>11}"
      f"{'theory':>8}{'own-th':>8}{'step-th':>9}{'stage0':>8}{'p2p wait':>10}{'slots':>7}")
print(f"{'':>2}{'':>4} {'':9}{'':>9}{'':>10}{'':>8}{'':>11}{'':>8}{'':>8}{'':>9}{'':>8}{'ms/step':>10}{'':>7}")
sums = {}
for r in runs:
    name, p, m, sched = r.split(":")
    p, m = int(p), int(m)
    b = json.load(open(f"{work}/{name}.bubble.json"))
    s = json.load(open(f"{work}/{name}/summary.json"))
    th = b["theory"]
    d_own, d_step = b["idle_own"] - th, b["idle_step"] - th
    sums.setdefault(p, []).append(abs(d_step))
    print(f"{p:>2}{m:>4} {sched:9}{s['mean_step_ms']:9.1f}{b['idle_own']:10.1%}{b['own_theory']:8.1%}"
          f"{b['idle_step']:11.1%}{th:8.1%}{d_own * 100:+7.1f}p{d_step * 100:+8.1f}p"
          f"{b['idle_stage0']:8.1%}{b['p2p_wait_ms']:10.2f}{max(s.get('act_slots_per_rank') or [0]):7d}")
print()
print("idle own  = 1 - busy / (the stage's own first..last compute span), mean over stages and")
print("            steps 2..; own th = its ideal, mean over s of (p-1-s)/(M+p-1-s)")
print("idle step = 1 - busy / (whole pipeline's first..last compute span in the step): the")
print("            figure the textbook theory (p-1)/(M+p-1) describes")
print("own-th, step-th = measured minus theory, in percentage points; stage0 = idle own of")
print("            stage 0 (its own window is the pipeline's, so theory applies to it directly)")
print("p2p wait  = 'wait send' + 'wait recv' span time per stage and step (mean over stages)")
print("ms/step   = summary.json mean_step_ms (step 1 excluded); slots = the largest")
print("            act_slots_per_rank (micro-batch activations held at once: M for gpipe,")
print("            at most p for 1f1b)")
print("NOTE: p=4 runs 4 ranks on 2 cores (oversubscribed); ranks share cores, which inflates")
print("      idle (and p2p wait) beyond the schedule's own bubble.")
for p, v in sorted(sums.items()):
    print(f"pipeline_bubble: p={p} mean |idle step - theory| = {sum(v) / len(v) * 100:.1f} points")
PY
