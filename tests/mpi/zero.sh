#!/bin/bash
. "$(dirname "$0")/lib.sh"
  for z in 0 1 2; do run 4 "z$z" --dp 4 --zero $z; check "dp=4 zero=$z runs" "[ $? -eq 0 ]"; done
  for z in 1 2; do
    rel=$(max_rel z0/metrics.jsonl "z$z/metrics.jsonl")
    check "zero=$z losses match zero=0 (max rel diff $rel <= 1e-4)" "same_steps z0/metrics.jsonl z$z/metrics.jsonl && awk 'BEGIN{exit !($rel <= 1e-4)}'"
  done
  run 1 one --zero 0
  one=$(sed -n 's/.*"opt_state_bytes_per_rank":\[\([0-9]*\).*/\1/p' one/summary.json)
  four=$(sed -n 's/.*"opt_state_bytes_per_rank":\[\([0-9,]*\)\].*/\1/p' z1/summary.json)
  check "zero=1 at dp=4: optimizer bytes per rank ($four) ~ 1/4 of dp=1 ($one)" \
    "echo $four | tr , '\n' | awk -v one=$one '{r=\$1*4/one; if (r<0.99||r>1.01) bad=1} END{exit bad}'"
finish
