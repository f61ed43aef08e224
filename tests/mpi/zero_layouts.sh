#!/bin/bash
. "$(dirname "$0")/lib.sh"
  L="--layers 2 --heads 4 --embd 32 --seq-len 32 --batch 16 --data corpus.tok --threads 1 --quiet --eval-every 0 --steps 20"
  timeout 240 "$LOCAL" -n 1 train $L --out base > base.log 2>&1
  for lay in "4 1 1" "2 2 1" "1 1 4"; do
    set -- $lay
    o="z$1$2$3"
    timeout 240 "$LOCAL" -n 4 train $L --dp $1 --tp $2 --pp $3 --zero 1 --micro-batches 2 --out $o > $o.log 2>&1
    check "($1,$2,$3) zero=1 runs" "[ $? -eq 0 ]"
    rel=$(max_rel base/metrics.jsonl "$o/metrics.jsonl")
    check "($1,$2,$3) zero=1 matches single rank (max rel $rel <= 1e-4)" "same_steps base/metrics.jsonl $o/metrics.jsonl && awk 'BEGIN{exit !($rel <= 1e-4)}'"
  done
finish
