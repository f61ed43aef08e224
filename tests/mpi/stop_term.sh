#!/bin/bash
# SIGTERM and SIGINT straight to the ranks (as srun and SLURM's scancel
# deliver them), and SIGTERM to mpirun, which Open MPI 4.1 does not forward:
# it sends the ranks SIGCONT, then SIGTERM odls_base_sigkill_timeout (1 s)
# later, then SIGKILL as long again after that, and exits 1 itself.
. "$(dirname "$0")/lib.sh"
  reference_run; check "uninterrupted 2-rank reference runs" "[ -f ref.st ]"

  start_held t
  wait_held t; check "TERM case: the run reaches step $((HELD_AT - 1)) and waits" "[ $? -eq 0 ]"
  pids=$(ranks_of_job); n=$(echo $pids | wc -w)
  check "TERM case: mpirun's two ranks found ($n)" "[ $n -eq 2 ]"
  kill -TERM $pids
  wait_job
  check_stopped_and_resumed t SIGTERM "TERM to both ranks"

  # only rank 0 is told: the per-step agreement stops rank 1 at the same step
  start_held i
  wait_held i; check "INT case: the run reaches step $((HELD_AT - 1)) and waits" "[ $? -eq 0 ]"
  r0=$(rank_pid 0); check "INT case: rank 0 found" "[ -n '$r0' ]"
  kill -INT $r0
  wait_job
  check_stopped_and_resumed i SIGINT "INT to rank 0 only"

  # TERM to mpirun: whether the ranks save in the second they are given
  # depends on the machine, so this checks only that nothing is left
  # broken: no rank survives, and a checkpoint, if any, is whole
  start_held m
  wait_held m; check "TERM-to-mpirun case: the run reaches step $((HELD_AT - 1)) and waits" "[ $? -eq 0 ]"
  pids=$(ranks_of_job)
  kill -TERM "$job"
  wait_job
  check "TERM to mpirun: mpirun exits non-zero (got $rc)" "[ $rc -ne 0 ]"
  check "TERM to mpirun: no rank is left running" "gone $pids"
  if [ -f m/ckpt/latest ]; then
    "$BIN" ckpt export m --format safetensors --out m.st > /dev/null
    check "TERM to mpirun: the checkpoint it saved ($(cat m/ckpt/latest)) is whole" "[ \$? -eq 0 ] && [ -s m.st ]"
    echo "     TERM to mpirun: the ranks saved $(cat m/ckpt/latest) before mpirun's SIGKILL (mpirun rc $rc)"
  else
    echo "     TERM to mpirun: the ranks were killed before they saved (mpirun rc $rc)"
  fi
finish
