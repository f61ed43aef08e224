#!/bin/bash
# Process-level checks of `mpitrain plan` (one process, no mpirun): a stated
# link in bits or bytes, printed in bits/s; the modes table (DP, ZO, DiLoCo)
# marking the configured mode, ranked by DP-equivalent tokens/s (not tokens/s
# alone) with the first marked recommended; ZO's layout a data-parallel one
# (one byte per code, no activations across ranks); the oversubscription
# sentence; --link garbage refused with a usage error naming the flag; and
# --calibration: short runs of a task ranked by predicted time to a target
# accuracy (steps measured or from the runs' line, times the step at this
# link), with its flags' and files' mistakes named.
# usage: plan_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../check.sh"
scratch_dir "$1" "$2"
has() { grep -qF -- "$1" last.out; }
M="--model gpt --layers 2 --embd 32 --heads 2 --seq-len 32 --vocab 128 --batch 8 --ranks 4 --gemm-gflops 20"

run plan $M --link 10mbit,150us
expect "plan at a stated 10 Mbit/s link" 0
check "the link is printed in bits/s and said to be stated" "has 'link: 150 us, 10.0 Mbit/s (stated)'"
check "the modes table has DP, ZO K=1, ZO K=4 and DiLoCo H=500" \
  "has ' DP ' && has 'ZO K=1' && has 'ZO K=4' && has 'DiLoCo H=500'"
check "the DP row is this config's mode" "grep -q '^.< DP ' last.out"
check "the modes are ranked by DP-equivalent tokens/s" "has 'ranked by DP-equivalent tokens/s' && has 'DP-equiv tok/s'"
check "the first mode row is marked recommended" \
  "grep -A1 '^   mode ' last.out | sed -n 2p | grep -q '^\*'"

run plan $M --link 100MB/s --optimizer zo --zo-samples 2
expect "plan a ZO run at 100 MB/s" 0
check "100 MB/s is 800 Mbit/s" "has 'link: 100 us, 800.0 Mbit/s (stated)'"
check "a ZO K=2 row is added and marked" "grep -q '^.< ZO K=2 ' last.out"

run plan $M --link 1gbit --diloco 50 --diloco-overlap 1
expect "plan a DiLoCo run" 0
check "the DiLoCo H=50 row is marked" "grep -q '^.< DiLoCo H=50 ' last.out"

# the reference GPT on 4 ranks sharing 2 cores: dp 2 x pp 2 was chosen for
# zo (1,048,577 bytes a step, activations between the stages)
run plan --ranks 4 --cores 2 --gemm-gflops 50 --optimizer zo
expect "plan the reference GPT's ZO run on 4 ranks" 0
check "ZO keeps a data-parallel layout" "has 'chosen: --dp 4 --tp 1 --pp 1'"
check "its ZO K=1 row sends one code to each of 3 peers" \
  "grep -qE '^.< ZO K=1 +4 x  1 x  1 .* 3 ' last.out"
check "a ZO step is worth a 60th of a backprop step: DP is recommended over ZO" \
  "grep -q '^\*  DP ' last.out"

run plan $M --cores 2 --threads 2 --link 1gbit
expect "plan 4 ranks x 2 threads on 2 cores" 0
check "the plan says the cores are oversubscribed 4x" \
  "has 'machine: 4 ranks x 2 threads on 2 cores of one machine: oversubscribed 4x'"

# --calibration: three runs of a task, as train writes them (config.json,
# metrics.jsonl with --eval-task's rows)
calrun() { # calrun DIR FLAGS_JSON "STEP:ACC ..."
  mkdir -p "$1"
  echo "{\"model\":\"gpt\",\"layers\":2,\"embd\":32,\"heads\":2,\"seq-len\":32,\"vocab\":128,\"batch\":8,$2}" > "$1/config.json"
  : > "$1/metrics.jsonl"
  for p in $3; do
    echo "{\"step\":${p%%:*},\"loss\":1.0,\"task_accuracy\":${p#*:},\"time_ms\":5}" >> "$1/metrics.jsonl"
    echo "{\"step\":$((${p%%:*} + 1)),\"loss\":1.0,\"time_ms\":5}" >> "$1/metrics.jsonl"
  done
}
calrun cal/adamw '"optimizer":"adamw"' "10:0.2 20:0.3 30:0.4"
calrun cal/zo '"optimizer":"zo","zo-samples":1' "100:0.29 200:0.30 300:0.31"
calrun cal/flat '"optimizer":"zo","zo-samples":4' "100:0.3 200:0.29"
CAL="--calibration cal/adamw,cal/zo,cal/flat/"
run plan $M --link 10mbit $CAL --target-accuracy 0.35
expect "plan with --calibration" 0
check "the calibrated modes are ranked by predicted time to the target" "has 'modes by predicted time to task accuracy 0.35'"
check "AdamW reached 0.35 at its step 30: measured, and first" "grep -qE '^\*  adamw +DP .* 30 measured ' last.out"
check "ZO's line (0.28 + 0.0001 a step) reaches 0.35 at step 700" "grep -qE '^   zo +ZO K=1 .* 700 by the line ' last.out"
check "a run that lost accuracy never reaches it" "grep -qE '^   flat +ZO K=4 .*never \(no gain\) +-$' last.out"
run plan $M --link 10mbit $CAL --target-accuracy 0.35 --json
expect "the same as JSON" 0
check "the JSON rows: time = steps x the predicted step, null when never" "python3 - last.out <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if 'calibration' in l]
assert [r['mode'] for r in rows] == ['DP', 'ZO K=1', 'ZO K=4'], rows
assert rows[0]['fastest'] and rows[0]['measured'] and rows[0]['steps_to_target'] == 30
assert abs(rows[1]['seconds_to_target'] - 700 * rows[1]['step_ms'] / 1e3) < 1e-2, rows[1]
assert rows[2]['steps_to_target'] is None and rows[2]['seconds_to_target'] is None
PY"
run plan $M --link 10mbit $CAL --target-accuracy 0.3
check "a run at exactly the target has reached it (AdamW's 0.3 at step 20; the flag is a float)" \
  "grep -qE '^.  adamw +DP .* 20 measured ' last.out"
run plan $M $CAL
expect "--calibration without a target is a usage error" 2 "--calibration needs a target"
run plan $M --target-accuracy 0.3
expect "a target without --calibration is a usage error" 2 "give --calibration RUN"
run plan $M --calibration cal/adamw --target-loss 2.0
expect "--target-loss on runs without val_loss rows names the file" 2 "cal/adamw/metrics.jsonl: 0 row(s) with val_loss"
run plan $M --calibration cal/none --target-accuracy 0.3
expect "a missing run directory is named" 2 "no cal/none/config.json"

for bad in 10 10mb fast 1gbit,abc -3mbit; do
  run plan $M --link "$bad"
  expect "--link $bad is a usage error naming the flag" 2 "--link '$bad'"
done
finish
