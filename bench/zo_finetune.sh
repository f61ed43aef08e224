#!/bin/bash
# The ZO fine-tuning curve (issue 12): pretrain the reference GPT (the
# default shape: 4 layers, 4 heads, width 256, T 256, bytes) with AdamW on
# the King James Bible, then fine-tune it on Debian's fortunes with 4
# machines, each run for the same budget of training time, with AdamW
# backprop and with shared-randomness ZO (every tensor, --zo-params subsets,
# --zo-samples 1 and 4). Validation is the same for every run (--eval-batches,
# the fortunes val split). By default the 4 machines talk over a simulated
# 100 Mbit/s network (tests/netcluster: network namespaces, root needed).
#
# Prints a table (final and best validation loss, steps, training seconds,
# bytes sent per machine) and draws validation loss against steps, training
# time, tokens and bytes sent with `mpitrain plot`.
#
# Environment:
#   BUDGET=120       seconds of training per run (the sum of step times, so
#                    evaluation and start-up are not charged): `--time-budget`
#                    when `mpitrain train --help` lists it, else each run's step
#                    count comes from a short timed calibration run of its kind
#                    (bench/finetune.sh, shared with bench/time_to_quality.sh)
#   NET=100mbit      the link rate of the simulated hosts; NET=shm: one host,
#                    shared memory (launch/mpitrain-local)
#   RUNS="adamw zo"  which rows of the run table below (default: all of them)
#   RUNS_FILE=FILE   more rows, `name args...` per line (sweeps)
#   WORK=DIR         kept between runs: corpora, the pretrained checkpoint
#                    (reused when its command is unchanged), calibrations, runs
#                    (default /tmp/mpitrain-zo_finetune)
#   PRE_STEPS=250    pretraining steps;  EVAL_POINTS=12 validations per run
#   OUT=FILE.png     the picture (default $WORK/zo_finetune.png)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
NAME=zo_finetune
# shellcheck disable=SC2034 # read by common.sh
work_dir=${WORK:-/tmp/mpitrain-zo_finetune}
# shellcheck disable=SC2034
need_kjv=0
# shellcheck source=bench/common.sh
. "$here/common.sh"
# shellcheck source=bench/cluster.sh
. "$here/cluster.sh"
# shellcheck source=bench/finetune.sh
. "$here/finetune.sh"
NET=${NET:-100mbit}
OUT=${OUT:-$work/zo_finetune.png}
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac
RUNS_FILE=${RUNS_FILE:+$(cd "$(dirname "$RUNS_FILE")" && pwd)/$(basename "$RUNS_FILE")}
if [ "$NET" != shm ]; then nc_available || die "NET=$NET: $nc_why (or NET=shm)"; fi
mkdir -p "$work/ft"

# name | arguments (after the shared ones below). ZO's baseline is the
# issue's best: 1 sample, eps 1e-3, lr 1e-3, constant.
ZO="--optimizer zo --zo-eps 1e-3 --weight-decay 0 --warmup 0"
TABLE="adamw       --optimizer adamw --lr 1e-3 --min-lr 1e-4 --warmup 5
zo          $ZO --zo-samples 1 --lr 1e-3 --min-lr 1e-3
zo-s4       $ZO --zo-samples 4 --lr 1e-3 --min-lr 1e-3
zo-nb       $ZO --zo-samples 1 --lr 1e-3 --min-lr 1e-3 --zo-params norms,biases
zo-last1    $ZO --zo-samples 1 --lr 1e-3 --min-lr 1e-3 --zo-params last:1
zo-last2    $ZO --zo-samples 1 --lr 1e-3 --min-lr 1e-3 --zo-params last:2
zo-emb      $ZO --zo-samples 1 --lr 1e-3 --min-lr 1e-3 --zo-params embeddings"
[ -n "${RUNS_FILE:-}" ] && TABLE="$TABLE
$(grep -v '^\s*\(#\|$\)' "$RUNS_FILE")"
RUNS=${RUNS:-$(echo "$TABLE" | awk '{print $1}')}

ft_prepare
nc_net "$NET"
echo "== fine-tuning on $NET, ${BUDGET}s of training per run ($(ft_budget_mode))"
for name in $RUNS; do
  a=$(args_of "$name") || die "no run named $name in the table (or RUNS_FILE)"
  # shellcheck disable=SC2086
  ft_run "$work/ft/$name" $a || true
done
nc_down
drawn=""
for name in $RUNS; do [ -s "$work/ft/$name/metrics.jsonl" ] && drawn="$drawn $name"; done
[ -n "$drawn" ] || die "no run wrote metrics"

# ---- the table and the picture ------------------------------------------------------
cd "$work/ft"
{
  echo "fine-tuning on fortunes, 4 machines, NET=$NET, budget ${BUDGET}s of training per run"
  echo
  # shellcheck disable=SC2086
  ft_table $drawn
  echo
  for name in $drawn; do echo "$name: $(args_of "$name")"; done
} | tee "$work/zo_finetune.md"
# shellcheck disable=SC2086
"$bin" plot $drawn --loss val --out "$OUT" \
  --title "fine-tuning the KJV-pretrained reference GPT on fortunes: 4 machines, $NET, ${BUDGET} s each"
