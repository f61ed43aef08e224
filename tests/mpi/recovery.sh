#!/bin/bash
. "$(dirname "$0")/lib.sh"
  SUP="$HERE/../../launch/mpitrain-launch"
  R="--layers 2 --heads 2 --embd 32 --seq-len 32 --batch 8 --data corpus.tok --threads 1 --quiet --eval-every 0 --save-every 4 --steps 16"
  timeout 240 "$LOCAL" -n 4 train $R --dp 4 --out ref > ref.log 2>&1
  "$BIN" ckpt export ref --format safetensors --out ref.st > /dev/null
  victim=$((RANDOM % 4)) step=$((5 + RANDOM % 10))
  MPITRAIN_TEST_KILL=$victim,$step timeout 240 "$SUP" --max-restarts 2 --timeout 60 -n 4 train $R --dp 4 --out k > k.log 2>&1
  check "kill -9 of rank $victim at step $step: the supervisor restarts and finishes" "[ $? -eq 0 ] && grep -q 'restart 1/2' k.log"
  "$BIN" ckpt export k --format safetensors --out k.st > /dev/null
  check "final weights equal the uninterrupted run's, bit for bit" "cmp -s ref.st k.st"
  MPITRAIN_TEST_DIE_IN_SAVE=0,12 timeout 240 "$SUP" --max-restarts 2 --timeout 60 -n 4 train $R --dp 4 --out s > s.log 2>&1
  check "killed while writing checkpoint 12: restarted from the intact step 8" "[ $? -eq 0 ] && grep -q 'from s/ckpt/step_00000008' s.log"
  "$BIN" ckpt export s --format safetensors --out s.st > /dev/null
  check "and the final weights are still bit-identical" "cmp -s ref.st s.st"
  MPITRAIN_TEST_HANG=2,6 timeout 240 "$SUP" --max-restarts 2 --timeout 4 -n 4 train $R --dp 4 --out h > h.log 2>&1
  check "a rank sleeping inside step 6 is detected within the timeout and restarted" "[ $? -eq 0 ] && grep -q 'a rank is stuck' h.log && grep -q 'restart 1/2' h.log"
  "$BIN" ckpt export h --format safetensors --out h.st > /dev/null
  check "the hung run's final weights are bit-identical too" "cmp -s ref.st h.st"
  check "no rank of a killed job is left running" "! pgrep -f 'out h ' > /dev/null"
  echo 2 > avail
  MPITRAIN_TEST_KILL=3,7 timeout 240 "$SUP" --elastic --ranks-file avail --max-restarts 2 --timeout 60 -n 4 train $R --out el > el.log 2>&1
  check "--elastic restarts with the 2 ranks still available" "[ $? -eq 0 ] && grep -q 'with 2 rank(s)' el.log && grep -q '\"ranks\":2' el/summary.json"
  rel=$(max_rel ref/metrics.jsonl el/metrics.jsonl)
  check "and continues the same trajectory (max rel $rel <= 1e-4)" "awk 'BEGIN{exit !($rel <= 1e-4)}'"
  grep -h 'recovered' k.log s.log h.log | sed 's/^/     /'
finish
