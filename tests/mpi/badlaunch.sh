#!/bin/bash
. "$(dirname "$0")/lib.sh"
  timeout 60 "$LOCAL" -n 2 train $TINY --dp 3 --out x > x.log 2>&1; rc=$?
  check "world 2 vs --dp 3 fails (rc $rc), no hang" "[ $rc -ne 0 ] && [ $rc -ne 124 ]"
  check "message says what to change" "grep -q 'the job has 2 ranks but --dp 3' x.log"
  check "rank 0 alone prints it" "[ \$(grep -c 'invalid plan' x.log) -eq 1 ]"
  timeout 60 "$LOCAL" -n 3 train $TINY --dp 3 --batch 8 --out y > y.log 2>&1; rc=$?
  check "dp 3 with batch 8 fails (rc $rc)" "[ $rc -ne 0 ] && [ $rc -ne 124 ]"
  check "message names the fix" "grep -q -- '--dp 3 does not divide global batch 8' y.log"
  check "no run directory was made" "[ ! -e y ]"
  # the data exists for rank 0 (working dir a/) but not for rank 1 (b/)
  mkdir -p a b && cp corpus.tok a/
  root=(); [ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
  timeout 60 mpirun "${root[@]}" --oversubscribe --bind-to none --mca mpi_yield_when_idle 1 \
    -np 1 -wdir "$DIR/a" "$BIN" train $TINY --data corpus.tok --out run : \
    -np 1 -wdir "$DIR/b" "$BIN" train $TINY --data corpus.tok --out run > z.log 2>&1; rc=$?
  check "data missing on rank 1 fails (rc $rc), no hang" "[ $rc -ne 0 ] && [ $rc -ne 124 ]"
  check "rank 0 names rank 1 and the file" "grep -q 'rank 1: --data: corpus.tok' z.log"
finish
