#!/bin/bash
# Time to quality over slow links (issue 13): the KJV-pretrained reference
# GPT (bench/finetune.sh, as bench/zo_finetune.sh pretrains it) fine-tuned on
# Debian's fortunes by 4 machines (dp=4, 1 thread each) on the simulated
# hosts of tests/netcluster at each link of NETS, every method for the same
# budget of training time:
#   adamw     data-parallel AdamW, lr 1e-3 (cosine to 1e-4)
#   zo-best   ZO, the issue-12 recipe: --zo-params embeddings,norms,biases, lr 3e-3
#   zo        ZO of every tensor, lr 1e-3
#   diloco10  DiLoCo H=10, inner AdamW lr 1e-3, outer lr 0.7, momentum 0.9
#   diloco10ov  DiLoCo H=10, each all-reduce behind the next round
#   diloco10bf16  DiLoCo H=10, bf16 pseudo-gradients with error feedback
#   diloco50  DiLoCo H=50, the same
# and with LoRA (issue 24: rank 8 on attention and MLP, --lora-targets
# c_attn,c_proj,c_fc, the base frozen; alpha 8, PEFT's default):
#   adamw-lora     data-parallel AdamW of the adapters, lr 2e-3 (cosine to 2e-4)
#   diloco10-lora  DiLoCo H=10 of the adapters, inner AdamW lr 2e-3, outer as above
#   zo-lora        ZO of the adapters, 1 sample, lr 3e-3 (the ZO recipe's,
#                  docs/zo-finetune.conf), constant
# The LoRA learning rates are a FIRST GUESS, not swept (the usual AdamW-LoRA
# range is 1e-3..3e-3; ZO's recipe lr for ZO-LoRA, which barely moved the
# loss in a 20-step smoke run: ZO of ~0.1M adapter values may take a larger
# lr, try 1e-2 and 3e-2): sweep them (LORA_LR, ZO_LORA_LR) on an idle machine
# before reading much into a LoRA row.
# LORA=1 sets the issue-24 comparison's defaults: the six runs
# RUNS="adamw adamw-lora diloco10 diloco10-lora zo zo-lora" (full = every
# weight trains) at NETS="shm 100mbit 10mbit", WORK=/tmp/mpitrain-time_to_quality-lora,
# and prints the issue's target: the best LoRA run at 10 Mbit/s reaches
# full AdamW at shm's validation loss of the same budget within 0.05
# (PASS/MISS; printed whenever those runs are there).
# The budget is `--time-budget` when `mpitrain train --help` lists it, else a
# step count from a short timed calibration run of each kind on each link
# (bench/finetune.sh). Validation is the same for every run (the fortunes
# val split, --eval-batches 4, EVAL_POINTS times per run).
#
# Prints (and writes $WORK/time_to_quality.md, figures in
# $WORK/time_to_quality.json) per link the validation loss each method has
# reached at 1/4, 1/2, 3/4 and all of the budget of training time (the last
# evaluation at or before it; training time = the sum of step times, the
# "training time" axis of `mpitrain plot`), its steps, ms/step and bytes sent
# per machine; the winner per link; and, from a fit of each method's step
# time to c + bytes/bandwidth over the links and its validation curve
# against steps, an estimate of the bandwidths where each method wins.
# Draws $WORK/time_to_quality.png (every run) and time_to_quality-NET.png
# (one link) with `mpitrain plot --loss val`.
#
# Environment:
#   LORA=0                1: the issue-24 defaults above (each knob below still wins)
#   BUDGET=120            seconds of training per run
#   LORA_LR=2e-3          AdamW-LoRA's and DiLoCo-LoRA's inner lr (cosine to a tenth)
#   ZO_LORA_LR=3e-3       ZO-LoRA's lr (constant)
#   NETS="100mbit 10mbit" links (tc rates; shm = one host, shared memory)
#   RUNS="adamw zo-best zo diloco10 diloco50"   (any rows of the table above)
#   PRE_STEPS=250         pretraining steps (cached in WORK while unchanged)
#   EVAL_POINTS=12        validations per run
#   WORK=/tmp/mpitrain-time_to_quality   corpora, pretrained model, runs (kept)
#   REUSE=1               keep the runs that finished in an earlier sitting (their
#                         summary.json is there): resume a measurement, or redo the tables
#   SWEEP=FILE            bench/slow_links.sh's slow_links.json, whose step times join
#                         the fit (default /tmp/mpitrain-slow_links/slow_links.json
#                         when it is there and measured the reference GPT; LORA=1:
#                         /tmp/mpitrain-slow_links-lora/slow_links.json; SWEEP= : none)
#   USE_TIME_BUDGET=0     ignore --time-budget even when train has it
#   TIME_BUDGET_ARG       the --time-budget value (default "${BUDGET}s")
#   CAL_STEPS, CAL_SECONDS, MIN_STEPS, FORTUNES: see bench/finetune.sh
#   MPITRAIN_BIN          as for bench/common.sh
# Needs root and network namespaces for any link but shm: without them those
# links are skipped with a message.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
NAME=time_to_quality
LORA=${LORA:-0}
# shellcheck disable=SC2034 # read by common.sh
if [ "$LORA" = 1 ]; then
  work_dir=${WORK:-/tmp/mpitrain-time_to_quality-lora}
  NETS=${NETS:-shm 100mbit 10mbit}
  RUNS=${RUNS:-adamw adamw-lora diloco10 diloco10-lora zo zo-lora}
else
  work_dir=${WORK:-/tmp/mpitrain-time_to_quality}
fi
# shellcheck disable=SC2034
need_kjv=0
# shellcheck source=bench/common.sh
. "$here/common.sh"
# shellcheck source=bench/cluster.sh
. "$here/cluster.sh"
# shellcheck source=bench/finetune.sh
. "$here/finetune.sh"
NETS=${NETS:-100mbit 10mbit}
RUNS=${RUNS:-adamw zo-best zo diloco10 diloco50}
[ -x "$py" ] || die "$py not found"

ZO="--optimizer zo --zo-eps 1e-3 --weight-decay 0 --warmup 0 --zo-samples 1"
ADAMW="--optimizer adamw --lr 1e-3 --min-lr 1e-4 --warmup 5"
DL="$ADAMW --outer-lr 0.7 --outer-momentum 0.9"
LORA_LR=${LORA_LR:-2e-3}
ZO_LORA_LR=${ZO_LORA_LR:-3e-3}
LORA_ARGS="--lora-rank 8 --lora-targets c_attn,c_proj,c_fc"
ADAMW_LORA="--optimizer adamw --lr $LORA_LR --min-lr $(awk -v l="$LORA_LR" 'BEGIN {print l / 10}') --warmup 5 $LORA_ARGS"
TABLE="adamw    $ADAMW
zo-best  $ZO --zo-params embeddings,norms,biases --lr 3e-3 --min-lr 3e-3
zo       $ZO --lr 1e-3 --min-lr 1e-3
diloco10 $DL --diloco 10
diloco10ov $DL --diloco 10 --diloco-overlap 1
diloco10bf16 $DL --diloco 10 --diloco-wire bf16
diloco50 $DL --diloco 50
adamw-lora $ADAMW_LORA
diloco10-lora $ADAMW_LORA --outer-lr 0.7 --outer-momentum 0.9 --diloco 10
zo-lora  $ZO --lr $ZO_LORA_LR --min-lr $ZO_LORA_LR $LORA_ARGS"
# shellcheck disable=SC2086
check_names $RUNS

usable_nets "$NETS"
if [ -z "$nets" ]; then
  echo "$NAME: SKIP - no link of NETS=\"$NETS\" can be simulated here (NETS=shm runs on one host)"
  exit 0
fi

echo "== $NAME ($(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)): 4 machines, budget ${BUDGET}s each" \
  "($(ft_budget_mode)); links:$nets; runs: $RUNS"
ft_prepare
for net in $nets; do
  mkdir -p "$work/ft/$net"
  for r in $RUNS; do
    if [ "${REUSE:-0}" = 1 ] && [ -s "$work/ft/$net/$r/summary.json" ]; then
      echo "   $r on $net: kept from an earlier sitting (REUSE=1)"
      continue
    fi
    nc_net "$net"
    # shellcheck disable=SC2046
    ft_run "$work/ft/$net/$r" $(args_of "$r") || true
  done
done
nc_down

drawn=()
for net in $nets; do for r in $RUNS; do [ -s "$work/ft/$net/$r/metrics.jsonl" ] && drawn+=("$net/$r"); done; done
[ ${#drawn[@]} -gt 0 ] || die "no run wrote metrics"

if [ "$LORA" = 1 ]; then SWEEP=${SWEEP-/tmp/mpitrain-slow_links-lora/slow_links.json}; fi
SWEEP=${SWEEP-/tmp/mpitrain-slow_links/slow_links.json}
[ -z "$SWEEP" ] || [ -s "$SWEEP" ] || SWEEP=""
"$py" - "$work" "$BUDGET" "$(ft_budget_mode)" "$nets" "$SWEEP" "${drawn[@]}" <<'PY' | tee "$work/time_to_quality.md"
import json, math, sys
work, budget, mode, nets, sweep_path = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4].split(), sys.argv[5]
runs = sys.argv[6:]
# bench/slow_links.sh's step times (same model, batch and machines) join the
# fit of step time against bandwidth, when it measured the reference GPT
sweep, sweep_of = {}, {"adamw": "dp", "zo": "zo1", "zo-best": "zo1", "diloco10": "dl10", "diloco10ov": "dl10ov", "diloco10bf16": "dl10bf16", "diloco50": "dl50",
                       "adamw-lora": "dp-lora", "zo-lora": "zo1-lora", "diloco10-lora": "dl10-lora"}
if sweep_path:
    sw = json.load(open(sweep_path))
    if sw.get("model"):
        print(f"(the sweep {sweep_path} measured another model ({sw['model']}): not used)")
    else:
        sweep = sw["methods"]

def bps(net):
    if net == "shm":
        return math.inf
    for suf, m in (("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1)):
        if net.endswith(suf):
            return float(net[: -len(suf)]) * m
    raise ValueError(net)

res = {}
for run in runs:
    net, name = run.split("/")
    rows = [json.loads(l) for l in open(f"{work}/ft/{run}/metrics.jsonl") if l.strip()]
    t, vals, steps, ms, nbytes = 0.0, [], 0, [], 0.0
    for r in rows:
        if r.get("time_ms") is not None:
            t += r["time_ms"] / 1000
            if r["step"] >= 2:
                ms.append(r["time_ms"])
            nbytes += r.get("comm_bytes") or 0
            steps = r["step"]
        if r.get("val_loss") is not None:
            vals.append((t, r["step"], r["val_loss"]))
    try:
        wall = json.load(open(f"{work}/ft/{run}/summary.json")).get("wall_s")
    except (OSError, ValueError):
        wall = None
    res.setdefault(net, {})[name] = {
        "train_s": t, "steps": steps, "ms_per_step": sum(ms) / len(ms) if ms else None,
        "bytes_per_machine": nbytes, "wall_s": wall, "val": vals}

fracs = (0.25, 0.5, 0.75, 1.0)
def val_at(v, T):
    got = [x for x in v["val"] if x[0] <= T * 1.02]
    return got[-1][2] if got else None

out = {"budget_s": budget, "mode": mode, "links": {}}
print(f"Fine-tuning the KJV-pretrained reference GPT on fortunes, 4 machines, {budget:g} s of training "
      f"per run ({mode}); validation loss at the last evaluation at or before each share of the budget "
      "(training time = sum of step times)")
winners = {}
for net in nets:
    if net not in res:
        continue
    print()
    print(f"### {net}")
    print()
    print("| method | " + " | ".join(f"val @ {f * budget:g} s" for f in fracs) +
          " | steps | ms/step | train s | wall s | bytes/machine |")
    print("|---|" + "---|" * (len(fracs) + 5))
    best = None
    for name, v in res[net].items():
        at = [val_at(v, f * budget) for f in fracs]
        v["val_at"] = dict(zip((str(f) for f in fracs), at))
        cells = " | ".join("" if a is None else f"{a:.3f}" for a in at)
        msps = "" if v["ms_per_step"] is None else f"{v['ms_per_step']:,.1f}"
        wall = "" if v["wall_s"] is None else f"{v['wall_s']:.0f}"
        print(f"| {name} | {cells} | {v['steps']} | {msps} | {v['train_s']:.1f} | {wall} | "
              f"{v['bytes_per_machine']:,.0f} |")
        if at[-1] is not None and (best is None or at[-1] < best[1]):
            best = (name, at[-1])
    if best:
        winners[net] = best[0]
        print()
        print(f"lowest validation loss at {budget:g} s on {net}: **{best[0]}** ({best[1]:.3f})")
    out["links"][net] = res[net]
out["winners"] = winners

# issue 24: the best LoRA run at 10 Mbit/s against full AdamW at shm, each
# by its last validation (--time-budget ends a run with one, after the step
# that used up the budget)
def val_end(v):
    return (v["val"][-1][2], v["val"][-1][0]) if v and v["val"] else (None, None)
full, full_t = val_end(res.get("shm", {}).get("adamw"))
lora = [val_end(v) + (name,) for name, v in res.get("10mbit", {}).items()
        if name.endswith("-lora") and val_end(v)[0] is not None]
if any(name.endswith("-lora") for net in res for name in res[net]):
    print()
    print("Target (issue 24): the best LoRA run at 10mbit within 0.05 of full AdamW at shm's "
          f"validation loss after {budget:g} s:")
    if full is None or not lora:
        print("- (needs adamw at shm and a -lora run at 10mbit in NETS and RUNS, each with a validation)")
    else:
        val, t, name = min(lora)
        ok = val <= full + 0.05
        print(f"- {'PASS' if ok else 'MISS'}: {name} at 10mbit {val:.3f} vs adamw at shm {full:.3f} "
              f"({val - full:+.3f}; the runs' last validations, after {t:.1f} s and {full_t:.1f} s of training)")
        out["target_issue24"] = {"pass": ok, "lora_run": name, "lora_val": val, "adamw_shm_val": full}
        # the fine-tuning set is small: a run that takes many steps in the
        # budget passes its best validation and climbs (full AdamW at shm
        # does), so the lowest validation within the budget is shown too
        low = lambda v: min(x[2] for x in v["val"])
        full_low = low(res["shm"]["adamw"])
        lows = sorted((low(v), name) for name, v in res["10mbit"].items() if name.endswith("-lora") and v["val"])
        lval, lname = lows[0]
        ok_low = lval <= full_low + 0.05
        print(f"- {'PASS' if ok_low else 'MISS'} by the lowest validation within the budget (early stopping): "
              f"{lname} at 10mbit {lval:.3f} vs adamw at shm {full_low:.3f} ({lval - full_low:+.3f})")
        out["target_issue24"].update({"pass_lowest": ok_low, "lora_run_lowest": lname, "lora_lowest": lval,
                                      "adamw_shm_lowest": full_low})

# Where each method wins, estimated: its step time t(b) = c + k/b fitted over
# the links (least squares in 1/b), the steps it takes in the budget at b,
# and the validation loss of its longest run at that step (held at the last
# value past its end: marked as extrapolated).
methods = sorted({m for net in res for m in res[net]})
fit = {}
for m in methods:
    pts = [(0.0 if bps(n) == math.inf else 1 / bps(n), res[n][m]["ms_per_step"])
           for n in res if m in res[n] and res[n][m]["ms_per_step"]]
    pts += [(0.0 if bps(n) == math.inf else 1 / bps(n), f["ms_per_step"])
            for n, f in sweep.get(sweep_of.get(m, ""), {}).items()]
    if len(pts) < 2:
        continue
    xm, ym = sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - xm) ** 2 for p in pts)
    k = max(0.0, sum((p[0] - xm) * (p[1] - ym) for p in pts) / sxx) if sxx else 0.0
    # at most 4x the time its bytes take at the link rate (ms = 8000 bytes / b):
    # timing noise of a method that sends a few bytes (ZO) is no bandwidth cost
    nbytes = max(res[n][m]["bytes_per_machine"] / max(res[n][m]["steps"], 1) for n in res if m in res[n])
    k = min(k, 4 * 8000 * nbytes)
    c = max(1e-3, ym - k * xm)
    longest = max((res[n][m] for n in res if m in res[n]), key=lambda v: v["steps"])
    curve = [(s, l) for _, s, l in longest["val"]]
    fit[m] = {"c_ms": c, "k_ms_bit_per_s": k, "bytes_per_step": nbytes,
              "curve_steps": longest["steps"], "curve": curve}

def val_steps(m, n):
    curve = fit[m]["curve"]
    got = [l for s, l in curve if s <= n]
    return (got[-1] if got else curve[0][1]), n > fit[m]["curve_steps"] * 1.02

print()
if len(fit) >= 2:
    grid = [10 ** (5 + i / 20) for i in range(0, 101)]   # 100 kbit/s .. 10 Gbit/s
    spans, cur = [], None
    for b in grid:
        scores = {}
        for m in fit:
            n = budget * 1000 / (fit[m]["c_ms"] + fit[m]["k_ms_bit_per_s"] / b)
            scores[m] = val_steps(m, int(n))
        w = min(scores, key=lambda m: scores[m][0])
        if all(fit[m]["c_ms"] + fit[m]["k_ms_bit_per_s"] / b > budget * 1000 for m in fit):
            w, scores[w] = "none (no method takes a step in the budget)", (None, False)
        if cur is None or cur[0] != w:
            cur = [w, b, b, scores[w][1]]
            spans.append(cur)
        cur[2] = b
        cur[3] = cur[3] or scores[w][1]
    def fmt(b):
        return f"{b / 1e9:g} Gbit/s" if b >= 1e9 else f"{b / 1e6:.3g} Mbit/s" if b >= 1e6 else f"{b / 1e3:.3g} kbit/s"
    print("Where each method wins (estimate: step time fitted as c + k/bandwidth over the links measured, "
          "k at most 4x its bytes' transfer time; validation loss read off the method's longest run "
          "at the steps the budget allows; "
          "* = beyond that run's steps, held at its last value):")
    print()
    for w, lo, hi, extra in spans:
        print(f"- {fmt(lo)} to {fmt(hi)}: **{w}**{' *' if extra else ''}")
    meas = ", ".join(f"{n}: {winners[n]}" for n in nets if n in winners)
    print()
    if sweep:
        print(f"The fit also uses the step times of the sweep {sweep_path} (another sitting).")
    print(f"Measured winners: {meas}. Only the measured links are data; between and beyond them the "
          "boundaries come from the fit (the lr schedule of a run of another length is not modelled).")
    out["win_spans"] = [{"method": w, "from_bps": lo, "to_bps": hi, "extrapolated": bool(e)}
                        for w, lo, hi, e in spans]
else:
    print("Where each method wins: needs at least two links (NETS) to fit step time against bandwidth.")
out["fit"] = fit
json.dump(out, open(f"{work}/time_to_quality.json", "w"), indent=1)
PY

cd "$work/ft"
title="fine-tuning the KJV-pretrained reference GPT on fortunes: 4 machines, ${BUDGET} s each ($(ft_budget_mode))"
"$bin" plot "${drawn[@]}" --loss val --out "$work/time_to_quality.png" --title "$title" ||
  die "mpitrain plot failed"
for net in $nets; do
  one=()
  for d in "${drawn[@]}"; do [ "${d%%/*}" = "$net" ] && one+=("$d"); done
  [ ${#one[@]} -gt 0 ] && "$bin" plot "${one[@]}" --loss val --out "$work/time_to_quality-$net.png" --title "$title, $net"
done
echo "tables: $work/time_to_quality.md, figures: $work/time_to_quality.json"
