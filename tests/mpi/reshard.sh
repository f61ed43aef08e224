#!/bin/bash
. "$(dirname "$0")/lib.sh"
  # save under (2,2,1), continue under other layouts: the losses of the next
  # steps match the unresharded continuation; the weights are the same bits
  R="--layers 2 --heads 2 --embd 32 --seq-len 32 --batch 8 --data corpus.tok --threads 1 --quiet --eval-every 0 --save-every 5 --keep-ckpts 0"
  timeout 240 "$LOCAL" -n 4 train $R --steps 10 --dp 2 --tp 2 --zero 1 --out src > src.log 2>&1
  check "(2,2,1) zero=1 run saves step 5" "[ -f src/ckpt/step_00000005/manifest.pb ]"
  for lay in "1 1 4 0" "4 1 1 1" "1 2 2 0" "4 1 1 0" "1 1 4 1"; do
    set -- $lay
    o="to$1$2$3z$4"
    timeout 240 "$LOCAL" -n $(($1 * $2 * $3)) train --resume src/ckpt/step_00000005 --steps 10 --dp $1 --tp $2 --pp $3 \
      --zero $4 --threads 1 --quiet --out $o > $o.log 2>&1
    rel=$(max_rel <(grep '"loss"' src/metrics.jsonl | tail -5) $o/metrics.jsonl)
    check "resume under ($1,$2,$3) zero=$4 matches the continuation (max rel $rel <= 1e-4)" \
      "[ \$(losses $o/metrics.jsonl | wc -l) -eq 5 ] && awk 'BEGIN{exit !($rel <= 1e-4)}'"
  done
  "$BIN" ckpt reshard src/ckpt/step_00000005 --dp 1 --tp 1 --pp 4 --out off > off.log 2>&1
  check "offline reshard to (1,1,4)" "grep -q 'resharded to dp 1 x tp 1 x pp 4' off.log"
  "$BIN" ckpt export src/ckpt/step_00000005 --format safetensors --out a.st > /dev/null
  "$BIN" ckpt export off --format safetensors --out b.st > /dev/null
  check "resharded weights are byte-equal after gathering" "[ -s a.st ] && cmp -s a.st b.st"
finish
