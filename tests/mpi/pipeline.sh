#!/bin/bash
. "$(dirname "$0")/lib.sh"
  # every pp x M x schedule finishes (no deadlock); activation slots as promised
  L="--layers 2 --heads 2 --embd 16 --seq-len 16 --batch 24 --data corpus.tok --threads 1 --quiet --eval-every 1 --eval-batches 1 --steps 2"
  for p in 2 3 4; do
    for M in 1 2 3 8; do
      for sched in gpipe 1f1b; do
        o="p${p}_m${M}_$sched"
        timeout 60 "$LOCAL" -n $p train $L --pp $p --micro-batches $M --pp-schedule $sched --out $o > $o.log 2>&1; rc=$?
        check "pp=$p M=$M $sched completes (rc $rc)" "[ $rc -eq 0 ]"
        slots=$(sed -n 's/.*"act_slots_per_rank":\[\([0-9,]*\)\].*/\1/p' $o/summary.json)
        want=$(awk -v p=$p -v M=$M -v s=$sched 'BEGIN{for(i=0;i<p;i++){v=(s=="gpipe")?M:((p-i<M)?p-i:M); printf "%s%d", (i?",":""), v}}')
        check "pp=$p M=$M $sched keeps activations for [$slots] micro-batches (expected [$want], <= pp under 1f1b)" "[ '$slots' = '$want' ]"
      done
    done
  done
finish
