#!/bin/bash
# --time-budget on 2 ranks: the run ends by itself with a checkpoint of its
# last step, the lr's cosine runs over the budget, a resume continues the
# budget, a spent one is refused, and a stop signal still stops the run.
# Every check holds at any machine speed: a last step starts with at least
# half the budget used (loop.c's step_estimate), so its lr is at most the
# cosine's middle; the used time only grows, so the lr never rises.
. "$(dirname "$0")/lib.sh"
  T="${TINY% --steps 20} --warmup 0 --lr 1e-3 --min-lr 1e-4"
  b() { local out=$1; shift; timeout 240 "$LOCAL" -n 2 train $T --out "$out" "$@" > "$out.log" 2>&1; }
  field() { sed -n "s/.*\"$2\":\"\\{0,1\\}\([^,\"]*\).*/\1/p" "$1"; }
  lrs() { sed -n 's/.*"lr":\([^,]*\),.*/\1/p' "$1"; }

  b a --time-budget 3s --save-every 0; rc=$?
  check "a 3 s budget with no --steps ends by itself (rc $rc)" "[ $rc -eq 0 ]"
  last=$(field a/summary.json last_step)
  check "summary.json: ended_by time-budget, time_budget_s 3" \
    "[ \"\$(field a/summary.json ended_by)\" = time-budget ] && [ \"\$(field a/summary.json time_budget_s)\" = 3.000 ]"
  check "no step limit: config.json's steps is the largest ($last steps run, at least 2)" \
    "grep -q '\"steps\":1000000000000' a/config.json && [ ${last:-0} -ge 2 ]"
  step=$(printf 'step_%08d' "${last:-0}")
  check "the last step ($step) has the checkpoint, and latest names it" \
    "[ -f a/ckpt/$step/manifest.pb ] && [ \"\$(cat a/ckpt/latest)\" = $step ]"
  check "one metrics row per step" "[ \$(losses a/metrics.jsonl | wc -l) -eq ${last:-0} ]"
  check "the first step's lr is the peak, 1e-3" "[ \"\$(lrs a/metrics.jsonl | head -1)\" = 0.001 ]"
  check "the lr never rises" "lrs a/metrics.jsonl | awk 'NR > 1 && \$1 > p * (1 + 1e-6) {exit 1} {p = \$1}'"
  check "the last lr ($(lrs a/metrics.jsonl | tail -1)) is at most the cosine's middle, 5.5e-4" \
    "awk -v l=$(lrs a/metrics.jsonl | tail -1) 'BEGIN{exit !(l <= 5.5e-4 * (1 + 1e-6))}'"
  used=$(field a/summary.json budget_used_s)
  check "budget_used_s ($used) is at least half the budget" "awk -v u=$used 'BEGIN{exit !(u >= 1.5)}'"

  # --steps and a budget: whichever comes first; here the steps
  b s --time-budget 1h --steps 4 --save-every 0; rc=$?
  check "--steps 4 under a 1 h budget ends by the steps (rc $rc)" \
    "[ $rc -eq 0 ] && [ \"\$(field s/summary.json ended_by)\" = steps ] && [ \"\$(field s/summary.json last_step)\" = 4 ]"
  u1=$(field s/summary.json budget_used_s)
  timeout 240 "$LOCAL" -n 2 train $T --resume s --time-budget 1h --steps 7 > s2.log 2>&1; rc=$?
  u2=$(field s/summary.json budget_used_s)
  check "the resume runs steps 5..7 (rc $rc)" "[ $rc -eq 0 ] && [ \"\$(losses s/metrics.jsonl | cut -d' ' -f1 | tr '\n' ' ')\" = '1 2 3 4 5 6 7 ' ]"
  check "the resume continues the budget: used $u1 s, then $u2 s" "awk -v a=$u1 -v b=$u2 'BEGIN{exit !(b > a)}'"

  # a budget its checkpoint has used up: refused, naming the flag
  timeout 240 "$LOCAL" -n 2 train $T --resume a --time-budget 1s > spent.log 2>&1; rc=$?
  check "resuming a 3 s run's end with --time-budget 1s is refused (rc $rc)" \
    "[ $rc -ne 0 ] && grep -q -- '--time-budget 1s: the checkpoint at step $last has used' spent.log"

  # SIGTERM to the ranks still stops a budget run with a checkpoint
  MPITRAIN_TEST_WAIT_STOP=0,$HELD_AT "$LOCAL" -n 2 train $T --time-budget 1h --save-every 0 \
    --out t > t.log 2>&1 &
  job=$!
  wait_held t; check "a 1 h budget run reaches step $((HELD_AT - 1)) and waits" "[ $? -eq 0 ]"
  kill -TERM $(ranks_of_job)
  wait_job
  check "SIGTERM: exit code 3, step $HELD_AT saved (rc $rc)" \
    "[ $rc -eq 3 ] && [ -f t/ckpt/$(printf 'step_%08d' $HELD_AT)/manifest.pb ]"
  check "SIGTERM: summary.json says ended_by signal" "[ \"\$(field t/summary.json ended_by)\" = signal ]"

  # bad durations: a usage error naming the flag, before any training
  for d in 10x 1h30 -5 1e3 "" 15mins; do
    "$BIN" train $T --out bad --time-budget "$d" > bad.log 2>&1; rc=$?
    check "--time-budget '$d' is refused (rc $rc)" \
      "[ $rc -eq 2 ] && grep -q -- \"--time-budget: '$d' is not a duration\" bad.log && [ ! -e bad ]"
  done
finish
