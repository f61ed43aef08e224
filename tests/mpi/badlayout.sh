#!/bin/bash
. "$(dirname "$0")/lib.sh"
  timeout 60 "$LOCAL" -n 2 train $TINY --tp 2 --heads 3 --embd 33 --out x > x.log 2>&1; rc=$?
  check "tp 2 with 3 heads is refused before training (rc $rc)" "[ $rc -eq 2 ] && grep -q -- '--tp 2 does not divide --heads 3' x.log && [ ! -e x ]"
  timeout 60 "$LOCAL" -n 5 train $TINY --pp 5 --batch 5 --out y > y.log 2>&1; rc=$?
  check "pp 5 for a 4-block model is refused (rc $rc)" "[ $rc -eq 2 ] && grep -q -- '--pp 5 is more stages' y.log"
  timeout 60 "$LOCAL" -n 2 train $TINY --pp 2 --zero 2 --out z > z.log 2>&1; rc=$?
  check "zero 2 with pp 2 is refused with the fix (rc $rc)" "[ $rc -eq 2 ] && grep -q -- 'use --zero 1' z.log"
finish
