#!/bin/bash
. "$(dirname "$0")/lib.sh"
  for n in 2 4; do
    timeout 60 mpirun $( [ "$(id -u)" -eq 0 ] && echo --allow-run-as-root ) --oversubscribe --bind-to none \
      --mca mpi_yield_when_idle 1 -np $n "$(dirname "$BIN")/tests/mpi_tpgrad" > tpgrad$n.log 2>&1; rc=$?
    check "tp=$n: every shard's gradient equals its slice of the single-rank gradient ($(tail -1 tpgrad$n.log))" "[ $rc -eq 0 ]"
  done
finish
