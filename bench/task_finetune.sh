#!/bin/bash
# Fine-tuning for a task (issue 26, docs/task.md): the fortune topic task
# (bench/task/fortune_task.py: 6 topics, chance 1/6), from the pretrained
# start of bench/task/pretrain.sh (the reference GPT on the KJV and the other
# fortunes), by 4 machines for BUDGET s of training each, on each link of
# NETS (shm, or simulated hosts at tc rates: tests/netcluster, root):
# AdamW, DiLoCo and ZO (every weight, --zo-params, LoRA adapters). The loss
# is on the label word alone (prepare --format jsonl); the validation items'
# accuracy is reported during training (--eval-task), the test items' at
# the end (mpitrain eval --task on the final checkpoint).
#
# Prints a markdown table per link: test accuracy and accuracy_norm (with
# their standard error), the best validation accuracy during the run, steps,
# training seconds, bytes sent per machine; and draws the validation accuracy
# against training time (gnuplot) into $WORK/task_finetune.png. Then, per
# link, the seconds each run took to a validation accuracy of TARGET beside
# the planner's prediction from the shared-memory runs
# (bench/task/time_to_target.sh, `mpitrain plan --calibration`), and the
# winner by each.
#
# Environment:
#   BUDGET=120          seconds of training per run (--time-budget)
#   NETS="shm"          links: shm, 100mbit, 10mbit, 1mbit
#   RUNS="adamw zo"     rows of the table below (default: all)
#   WORK=DIR            kept: the task, the pretrained start, the runs
#                       (default /tmp/mpitrain-task, as bench/task/pretrain.sh)
#   EVAL_POINTS=8       validations per run
#   TARGET=0.30         the validation accuracy the methods race to
#   TOPIC_PRE=0         1: the start that knows the prompt format (other
#                       topics written as the task is; bench/task/pretrain.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
NAME=task_finetune
WORK=${WORK:-/tmp/mpitrain-task}
# shellcheck disable=SC2034 # read by common.sh
work_dir=$WORK
# shellcheck disable=SC2034
need_kjv=0
# shellcheck source=bench/common.sh
. "$here/common.sh"
# shellcheck source=bench/cluster.sh
. "$here/cluster.sh"
EVAL_POINTS=${EVAL_POINTS:-8}
# shellcheck source=bench/finetune.sh
. "$here/finetune.sh"
NETS=${NETS:-shm}
WORK=$(cd "$work" && pwd)
WORK=$WORK bash "$here/task/pretrain.sh" "$bin" | sed 's/^/   /'
# every run: the pretrained start, the task's examples, its validation items
ft_shared="--init-from $WORK/pre --data $WORK/task/train.tok --batch 8 --dp 4 --threads 1 --eval-batches 1 --eval-task $WORK/task/val.jsonl --save-every 0 --quiet --overwrite"

ZO="--optimizer zo --zo-eps 1e-3 --weight-decay 0 --warmup 0"
TABLE="adamw       --optimizer adamw --lr 3e-4 --min-lr 3e-5 --warmup 5 --weight-decay 0
diloco      --optimizer adamw --lr 3e-4 --min-lr 3e-5 --warmup 5 --weight-decay 0 --diloco 10 --diloco-wire int8 --outer-lr 0.7
zo          $ZO --zo-samples 1 --lr 1e-3 --min-lr 1e-3
zo-s4       $ZO --zo-samples 4 --lr 1e-3 --min-lr 1e-3
zo-1s4      $ZO --zo-samples 4 --zo-one-sided --lr 1e-3 --min-lr 1e-3
zo-sparse   $ZO --zo-samples 4 --zo-one-sided --lr 1e-3 --min-lr 1e-3 --zo-sparse 0.2
zo-sparse5  $ZO --zo-samples 4 --zo-one-sided --lr 1e-3 --min-lr 1e-3 --zo-sparse 0.5
zo-last1    $ZO --zo-samples 1 --lr 1e-3 --min-lr 1e-3 --zo-params last:1
zo-lora     $ZO --zo-samples 1 --lr 1e-3 --min-lr 1e-3 --lora-rank 8 --lora-targets all-linear
adamw-lora  --optimizer adamw --lr 1e-3 --min-lr 1e-4 --warmup 5 --weight-decay 0 --lora-rank 8 --lora-targets all-linear
adamw-doc   --optimizer adamw --lr 3e-4 --min-lr 3e-5 --warmup 5 --weight-decay 0 --doc-attention"
RUNS=${RUNS:-$(echo "$TABLE" | awk '{print $1}')}
check_names $RUNS
usable_nets "$NETS"
[ -n "$nets" ] || die "no usable link in NETS=$NETS"

acc_of() { # acc_of RUN SPLIT: eval --task's JSON of the run's final checkpoint
  "$bin" eval --ckpt "$1" --task "$WORK/task/$2.jsonl" --json --threads 2 2> /dev/null
}
row() { # row NAME RUN_DIR: a markdown row
  local test best
  test=$(acc_of "$2" test) || test=""
  best=$(sed -n 's/.*"task_accuracy":\([0-9.eE+-]*\).*/\1/p' "$2/metrics.jsonl" | sort -g | tail -1)
  python3 - "$1" "$2/metrics.jsonl" "$test" "$best" <<'PY'
import json, sys
name, metrics, test, best = sys.argv[1:5]
steps = secs = bytes_ = 0
for line in open(metrics):
    r = json.loads(line)
    if "time_ms" in r:
        steps = r["step"]; secs += r["time_ms"] / 1e3; bytes_ += r.get("comm_bytes", 0)
t = json.loads(test) if test else None
fmt = lambda a, s: "%.3f +- %.3f" % (a, s)
print("| %s | %s | %s | %s | %d | %.1f | %.0f |" % (
    name, fmt(t["accuracy"], t["stderr"]) if t else "failed", fmt(t["accuracy_norm"], t["stderr_norm"]) if t else "",
    best or "", steps, secs, bytes_))
PY
}

start=$(acc_of "$WORK/pre" test)
for net in $nets; do
  nc_net "$net"
  echo "== $net: ${BUDGET}s of training per run ($(ft_budget_mode))"
  mkdir -p "$WORK/ft/$net"
  for name in $RUNS; do
    # shellcheck disable=SC2086
    ft_run "$WORK/ft/$net/$name" $(args_of "$name") || true
  done
  {
    echo
    echo "fortune topic task, 4 machines, $net, ${BUDGET}s of training per run; pretrained start: test accuracy $(python3 -c "import json; a = json.loads('''$start'''); print('%.3f +- %.3f' % (a['accuracy'], a['stderr']))")"
    echo
    echo "| run | test accuracy | test accuracy_norm | best validation accuracy | steps | train s | bytes/machine |"
    echo "|---|---|---|---|---|---|---|"
    for name in $RUNS; do [ -s "$WORK/ft/$net/$name/metrics.jsonl" ] && row "$name" "$WORK/ft/$net/$name"; done
  } | tee -a "$WORK/task_finetune.md"
done
nc_down
# validation accuracy against training time, a line per run and link
if command -v gnuplot > /dev/null; then
  plots=""
  for net in $nets; do
    for name in $RUNS; do
      m=$WORK/ft/$net/$name/metrics.jsonl
      [ -s "$m" ] || continue
      awk '/"time_ms"/ { match($0, /"time_ms":[0-9.]*/); s += substr($0, RSTART + 10, RLENGTH - 10) / 1000 }
           /"task_accuracy"/ { match($0, /"task_accuracy":[0-9.eE+-]*/); print s, substr($0, RSTART + 16, RLENGTH - 16) }' "$m" > "$m.acc"
      plots="$plots${plots:+, }'$m.acc' using 1:2 with linespoints title '$name, $net'"
    done
  done
  gnuplot -e "set terminal pngcairo size 1200,800; set output '$WORK/task_finetune.png'; set key outside; set xlabel 'training seconds'; set ylabel 'validation accuracy (6 topics, chance 0.167)'; set grid; plot $plots" &&
    echo "picture: $WORK/task_finetune.png"
fi
if [ -d "$WORK/ft/shm" ]; then
  WORK=$WORK NETS="$nets" bash "$here/task/time_to_target.sh" "$bin" | tee -a "$WORK/task_finetune.md"
fi
echo "tables: $WORK/task_finetune.md"
