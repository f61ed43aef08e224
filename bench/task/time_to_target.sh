#!/bin/bash
# Which method wins at each link, measured and predicted (issue 26,
# docs/task.md): for each link's runs of bench/task_finetune.sh in WORK/ft,
# the training seconds each took to a validation accuracy of TARGET
# (measured: the summed step times up to the first --eval-task row at or
# past it), beside `mpitrain plan --calibration`'s prediction at that link
# from the shared-memory runs (steps to the target on shm, times the
# planner's step at the link: a step teaches the same at any bandwidth).
# usage: bash bench/task/time_to_target.sh [BINARY]   (default build/mpitrain)
# Environment: WORK (default /tmp/mpitrain-task), TARGET=0.30, NETS (default:
# the links WORK/ft holds), CAL_NET=shm (the runs that calibrate),
# GEMM_GFLOPS (default: the planner measures)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${1:-$here/../../build/mpitrain}
WORK=${WORK:-/tmp/mpitrain-task}
TARGET=${TARGET:-0.30}
CAL_NET=${CAL_NET:-shm}
NETS=${NETS:-$(cd "$WORK/ft" && ls)}
[ -d "$WORK/ft/$CAL_NET" ] || { echo "time_to_target: no $WORK/ft/$CAL_NET: run bench/task_finetune.sh with NETS holding $CAL_NET" >&2; exit 1; }
cal=$(for r in "$WORK/ft/$CAL_NET"/*/; do [ -s "$r/metrics.jsonl" ] && grep -q task_accuracy "$r/metrics.jsonl" && printf '%s,' "${r%/}"; done)
cal=${cal%,}
[ -n "$cal" ] || { echo "time_to_target: no run in $WORK/ft/$CAL_NET has --eval-task rows" >&2; exit 1; }
first=${cal%%,*}
link_of() { [ "$1" = shm ] && echo "" || echo "--link $1"; }
for net in $NETS; do
  # shellcheck disable=SC2046 # the link flags
  "$BIN" plan --ranks 4 --cores 2 ${GEMM_GFLOPS:+--gemm-gflops $GEMM_GFLOPS} --threads 1 --config "$first/config.json" \
    $(link_of "$net") --calibration "$cal" --target-accuracy "$TARGET" --json > "$WORK/plan-$net.jsonl" 2> "$WORK/plan-$net.err" ||
    { echo "time_to_target: plan at $net failed: $(cat "$WORK/plan-$net.err")" >&2; exit 1; }
  /usr/bin/python3 - "$WORK" "$net" "$TARGET" "$CAL_NET" <<'PY'
import json, os, sys
work, net, target, cal_net = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
predicted = {}
for line in open(os.path.join(work, "plan-%s.jsonl" % net)):
    r = json.loads(line)
    if "calibration" in r:
        predicted[os.path.basename(r["calibration"])] = r
def measured(run):
    """Training seconds to the first validation at or past the target (None: never), best accuracy."""
    secs, best, reached = 0.0, None, None
    for line in open(os.path.join(run, "metrics.jsonl")):
        r = json.loads(line)
        secs += r.get("time_ms", 0) / 1e3
        a = r.get("task_accuracy")
        if a is None:
            continue
        best = a if best is None else max(best, a)
        if a >= target and reached is None:
            reached = secs
    return reached, best
rows = []
for name in sorted(os.listdir(os.path.join(work, "ft", net))):
    run = os.path.join(work, "ft", net, name)
    if not os.path.exists(os.path.join(run, "metrics.jsonl")):
        continue
    secs, best = measured(run)
    p = predicted.get(name)
    rows.append((name, secs, best, p))
fmt = lambda s: "%.1f s" % s if s is not None else "not reached"
print("\n%s: training seconds to validation accuracy %.2f, measured and predicted "
      "(plan --calibration with the %s runs)\n" % (net, target, cal_net))
print("| run | measured | best validation accuracy | predicted | predicted steps | predicted ms/step |")
print("|---|---|---|---|---|---|")
for name, secs, best, p in sorted(rows, key=lambda r: (r[1] is None, r[1] or 0)):
    pt = p and p["seconds_to_target"]
    print("| %s | %s | %s | %s | %s | %s |" % (
        name, fmt(secs), "%.3f" % best if best is not None else "-", fmt(pt) if p else "no calibration",
        "%.0f%s" % (p["steps_to_target"], "" if p["measured"] else " (line)") if p and p["steps_to_target"] is not None else "-",
        "%.1f" % p["step_ms"] if p else "-"))
won = [r for r in rows if r[1] is not None]
pred = [(r[3]["seconds_to_target"], r[0]) for r in rows if r[3] and r[3]["seconds_to_target"] is not None]
print("\nwinner at %s: measured %s, predicted %s" % (
    net, min(won, key=lambda r: r[1])[0] if won else "none reached %.2f" % target,
    min(pred)[1] if pred else "none"))
PY
done
