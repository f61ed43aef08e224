#!/bin/bash
# Task evaluation (docs/task.md): `mpitrain eval --task` scores
# multiple-choice items by each choice's log-likelihood after the context:
#  1. every log-likelihood equals an independent float64 reference's
#     (tests/ref/gpt2_ref.py task: PyTorch on the exported HF model, the
#     harness's split of context and choice, the window's left truncation),
#     and so do accuracy and accuracy_norm;
#  2. train --eval-task reports them at each evaluation and the last step
#     (progress line, metrics.jsonl, plot's sixth panel), the last equal to `eval --task` of the
#     final checkpoint, and a 2-rank data-parallel run reports the same;
#  3. bad items are refused by file, line and field.
# usage: task_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../check.sh"
scratch_dir "$1" "$2"
REF="/usr/bin/python3 $HERE/../ref/gpt2_ref.py"

for i in $(seq 1 60); do echo "Line $i: and the evening and the morning were the day, saith the preacher."; done > text.txt
"$BIN" prepare text.txt --out u.tok --val-fraction 0.2 > /dev/null
cat > task.jsonl <<'EOF'
{"context": "And the evening and the morning were the ", "choices": ["day", "night", "preacher"], "answer": 0}
{"context": "Line 3: and the evening and the", "choices": [" morning", " preacher", " xyz"], "answer": " morning"}

{"context": "saith the ", "choices": ["preacher.", "evening."], "answer": 0}
{"context": "Line 45: and the evening and the morning were the day, saith the preacher.\nLine 46: and the evening and the morning were the day, saith the", "choices": [" preacher", " morning"], "answer": 0}
{"context": "Line 9: and the ", "choices": ["evening", "evenin", "e"], "answer": 0}
{"context": "the day, ", "choices": ["saith", "sayeth the preacher"], "answer": "saith"}
EOF
M="--layers 2 --heads 2 --embd 32 --seq-len 32 --batch 4 --threads 1 --progress lines"
"$BIN" train $M --data u.tok --steps 40 --eval-every 20 --eval-task task.jsonl --out run > run.log 2>&1
check "train --eval-task reports the accuracies at each evaluation" \
  "grep -q 'step 20/40 .*task acc' run.log && [ \$(grep -c '\"task_accuracy\"' run/metrics.jsonl) -eq 2 ]"

# ---- 1. against the float64 reference ----
"$BIN" eval --ckpt run --task task.jsonl --scores scores.jsonl --json --threads 1 > eval.json 2> eval.err
"$BIN" ckpt export run --format hf --out hf > /dev/null 2>&1
if /usr/bin/python3 -c "import torch" 2> /dev/null; then
  $REF task hf task.jsonl > ref.jsonl 2> ref.err
  check "every choice's log-likelihood is the float64 reference's (within 1e-6)" \
    "python3 - scores.jsonl ref.jsonl <<'EOF'
import json, sys
ours = [json.loads(l) for l in open(sys.argv[1])]
ref = [json.loads(l) for l in open(sys.argv[2])]
assert len(ours) == 6 and len(ref) == 7, (len(ours), len(ref))
worst = max(abs(a - b) / abs(b) for o, r in zip(ours, ref) for a, b in zip(o['logliks'], r['logliks']))
print('# largest relative difference %.2g' % worst)
sys.exit(worst > 1e-6)
EOF"
  check "accuracy and accuracy_norm are the reference's" \
    "python3 -c \"import json; a = json.load(open('eval.json')); r = [json.loads(l) for l in open('ref.jsonl')][-1]; exit(not (a['accuracy'] == r['accuracy'] and a['accuracy_norm'] == r['accuracy_norm'] and a['items'] == 6))\""
else
  echo "ok   - skipped: the float64 reference needs python3-torch"
fi
last_acc() { sed -n 's/.*"task_accuracy":\([0-9.eE+-]*\),"task_accuracy_norm":\([0-9.eE+-]*\).*/\1 \2/p' "$1" | tail -1; }
eval_acc() { python3 -c "import json; a = json.load(open('$1')); print(repr(a['accuracy']), repr(a['accuracy_norm']))"; }
check "the run's last task accuracy is eval --task's of its final checkpoint ($(last_acc run/metrics.jsonl))" \
  "[ \"\$(last_acc run/metrics.jsonl | awk '{ printf \"%.6f %.6f\", \$1, \$2 }')\" = \"\$(eval_acc eval.json | awk '{ printf \"%.6f %.6f\", \$1, \$2 }')\" ]"
check "the standard error is sqrt(p (1 - p) / (n - 1))" \
  "python3 -c \"import json, math; a = json.load(open('eval.json')); p = a['accuracy']; exit(abs(a['stderr'] - math.sqrt(p * (1 - p) / 5)) > 1e-12)\""
"$BIN" eval --ckpt run --task task.jsonl > line.txt 2>&1
check "the line says the accuracies and the items" "grep -qE '^accuracy [0-9.]+ \\+- [0-9.]+, accuracy_norm [0-9.]+ \\+- [0-9.]+ over 6 items' line.txt"

MPITRAIN_TEST_PLOT_SCRIPT=plot.gp "$BIN" plot run --out run.png > plot.log 2>&1
check "plot draws the task accuracy against training time (a sixth panel)" \
  "[ -s run.png ] && grep -q 'task accuracy (--eval-task)' plot.gp && grep -q 'using 3:7' plot.gp"

# ---- 2. data parallel: each rank scores a share ----
if command -v mpirun > /dev/null; then
  mpirun --allow-run-as-root --oversubscribe -np 2 "$BIN" train $M --data u.tok --steps 40 --eval-every 20 \
    --eval-task task.jsonl --dp 2 --out run2 > run2.log 2>&1
  check "2 data-parallel ranks report what one rank does" \
    "[ -n \"\$(last_acc run2/metrics.jsonl)\" ] && [ \"\$(last_acc run2/metrics.jsonl)\" = \"\$(last_acc run/metrics.jsonl)\" ]"
fi

# ---- 3. refused ----
refused() { # refused NAME LINE EXPECTED_TEXT
  printf '%s\n' "$2" > bad.jsonl
  "$BIN" eval --ckpt run --task bad.jsonl > bad.log 2>&1
  local rc=$?
  check "refused: $1 (exit $rc)" "[ $rc -eq 1 ] && grep -qF -- '$3' bad.log"
}
refused "no answer" '{"context": "a", "choices": ["b", "c"]}' 'bad.jsonl:1: "answer" must be'
refused "an answer out of range" '{"context": "a", "choices": ["b", "c"], "answer": 2}' '"answer" must be'
refused "an answer that is no choice" '{"context": "a", "choices": ["b", "c"], "answer": "d"}' '"answer" must be'
refused "one choice" '{"context": "a", "choices": ["b"], "answer": 0}' '"choices" must be an array of 2 to 64'
refused "an empty choice" '{"context": "a", "choices": ["b", ""], "answer": 0}' 'non-empty string'
refused "broken JSON" '{"context": "a", "choices": ["b", "c"], "answer": 0' 'bad.jsonl:1: not JSON'
refused "a choice longer than the window" "{\"context\": \"a\", \"choices\": [\"b\", \"$(printf 'x%.0s' $(seq 40))\"], \"answer\": 0}" 'item 1: choice 2 is 40 tokens, more than the model'
"$BIN" train $M --data u.tok --steps 2 --eval-every 0 --eval-task task.jsonl --out run3 > run3.log 2>&1
check "--eval-every 0: the task is scored at the last step alone" "[ \$(grep -c '\"task_accuracy\"' run3/metrics.jsonl) -eq 1 ] && grep -q '\"step\":2,.*task_accuracy' run3/metrics.jsonl"
finish
