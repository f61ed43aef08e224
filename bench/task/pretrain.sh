#!/bin/bash
# The fortune topic task and its pretrained start (docs/task.md), made
# reproducibly into WORK (default /tmp/mpitrain-task):
#   WORK/task/   bench/task/fortune_task.py's splits (seed 2026)
#   WORK/pre/    the reference GPT (4 x 256, T 256, bytes) pretrained with
#                AdamW for PRE_STEPS steps (seed 1, one thread) on the King
#                James Bible (Debian's bible-kjv) and every fortune outside the
#                task's categories, their documents mixed (mix_corpus.py): it
#                knows some English, never the task
#   WORK/task/train.tok  the task's training examples, the loss on the label
# and prints the pretrained start's task accuracy (validation, test). Reused
# when WORK/pre's command line is the same (whichever binary).
# usage: bash bench/task/pretrain.sh [BINARY]   (default build/mpitrain)
# Environment: WORK, PRE_STEPS=1500, TOPIC_PRE=0 (1: fortune_task.py's
# --topic-pretraining, the start that knows the prompt format)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${1:-$here/../../build/mpitrain}
WORK=${WORK:-/tmp/mpitrain-task}
PRE_STEPS=${PRE_STEPS:-1500}
TOPIC_PRE=${TOPIC_PRE:-0}
topic=()
[ "$TOPIC_PRE" = 1 ] && topic=(--topic-pretraining)
mkdir -p "$WORK"
/usr/bin/python3 "$here/fortune_task.py" "$WORK/task" "${topic[@]}"
bible 'gen1:1-rev22:21' > "$WORK/task/kjv.txt" 2> /dev/null ||
  { echo "pretrain: \`bible\` failed: apt-get install bible-kjv" >&2; exit 1; }
# mixed: training reads front to back, and PRE_STEPS see half the corpus
/usr/bin/python3 "$here/mix_corpus.py" "$WORK/task/pre.txt" "$WORK/task/kjv.txt" "$WORK/task/pretrain_extra.txt" > /dev/null
"$BIN" prepare "$WORK/task/pre.txt" --out "$WORK/task/pre.tok" --val-fraction 0.02 > /dev/null
"$BIN" prepare --format jsonl "$WORK/task/train.jsonl" --out "$WORK/task/train.tok" --val-fraction 0.1
cmd="train --data $WORK/task/pre.tok --steps $PRE_STEPS --seed 1 --threads 1 --lr 1e-3 --min-lr 1e-4 --warmup 50 --eval-every 500 --save-every $PRE_STEPS --keep-ckpts 1 --progress lines --out $WORK/pre"
# kept with WORK's path as a name, so that a moved or copied WORK is reused
key="${cmd//$WORK/WORK} (corpus mixed${topic[*]:+ ${topic[*]}})"
if [ "$(cat "$WORK/pre.cmd" 2> /dev/null)" != "$key" ] || [ ! -d "$WORK/pre/ckpt" ]; then
  echo "pretraining: $BIN $cmd"
  # shellcheck disable=SC2086 # cmd: a flag list
  "$BIN" $cmd --overwrite > "$WORK/pre.log" 2>&1 || { tail -5 "$WORK/pre.log" >&2; exit 1; }
  echo "$key" > "$WORK/pre.cmd"
fi
tail -1 "$WORK/pre.log"
for s in val test; do
  echo "pretrained start, $s: $("$BIN" eval --ckpt "$WORK/pre" --task "$WORK/task/$s.jsonl")"
done
