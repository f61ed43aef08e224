#!/bin/bash
# SIGUSR1 to mpirun (which forwards it to every rank): the run saves the
# step it finished, exits 3, and resumes bit for bit. Sent twice: the
# second signal arrives while the first stop is under way.
. "$(dirname "$0")/lib.sh"
  reference_run; check "uninterrupted 2-rank reference runs" "[ -f ref.st ]"
  start_held u
  wait_held u; check "the run reaches step $((HELD_AT - 1)) and waits" "[ $? -eq 0 ]"
  kill -USR1 "$job"; kill -USR1 "$job"
  wait_job
  check_stopped_and_resumed u SIGUSR1 "USR1 (twice) to mpirun"
finish
