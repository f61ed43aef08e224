# Sourced (after lib.sh) by the supervisor's cases, tests/mpi/recovery*.sh:
# the supervisor, the reference run, and what they need to find and watch a
# supervised job's processes. Named .bash, not .sh: it is no case of its own.
#
# Processes are found through /proc by the session each attempt leads
# (mpitrain-launch logs "attempt N: job P (session and process group P)"),
# never by a name pattern, and a check fails when /proc cannot be read:
# "found nothing" must never pass for "nothing is left".
SUP="$HERE/../../launch/mpitrain-launch"
R="--layers 2 --heads 2 --embd 32 --seq-len 32 --batch 8 --data corpus.tok --threads 1 --quiet --eval-every 0 --save-every 4 --steps 16"

# the uninterrupted 16 steps every recovered run must end up equal to
reference() {
  timeout 240 "$LOCAL" -n 4 train $R --dp 4 --out ref > ref.log 2>&1 &&
    "$BIN" ckpt export ref --format safetensors --out ref.st > /dev/null
}

# The live (not zombie) processes of session $1, one "PID PPID" a line.
# Returns 2 when /proc cannot be read.
session_procs() {
  local f line rest st ppid pgrp sess
  [ -r /proc/self/stat ] || return 2
  for f in /proc/[0-9]*/stat; do
    { read -r line < "$f"; } 2> /dev/null || continue
    rest=${line##*) }
    read -r st ppid pgrp sess _ <<< "$rest"
    [ "$sess" = "$1" ] && [ "$st" != Z ] && echo "${f//[!0-9]/} $ppid"
  done
  return 0
}
# the job PID of attempt $2 (default 0) in supervisor log $1
job_of() { sed -n "s/.*attempt ${2:-0}: job \([0-9][0-9]*\) .*/\1/p" "$1" | head -1; }
# every job the supervisor logged in $1 is gone, all its processes with it;
# fails when the log names no job
jobs_gone() {
  local jobs j left
  jobs=$(sed -n 's/.*attempt [0-9]*: job \([0-9][0-9]*\) .*/\1/p' "$1")
  [ -n "$jobs" ] || { echo "     no job in $1" >&2; return 1; }
  for j in $jobs; do
    left=$(session_procs "$j") || return 1
    [ -z "$left" ] || { echo "     job $j left: $left" >&2; return 1; }
  done
}
# no process has $1 (the supervisor) as its parent any more
no_children() {
  local f line rest ppid
  [ -r /proc/self/stat ] || return 2
  for f in /proc/[0-9]*/stat; do
    { read -r line < "$f"; } 2> /dev/null || continue
    rest=${line##*) }
    read -r _ ppid _ <<< "$rest"
    [ "$ppid" = "$1" ] && { echo "     child ${f//[!0-9]/} of $1 is left" >&2; return 1; }
  done
  return 0
}
# wait until run dir $1's heartbeat says step $2 or later; fails when process
# $3 (the supervisor) ends first. The bound (240 s) only keeps a broken
# build from hanging ctest; a working one gets there in seconds.
wait_beat() {
  local hb i
  for ((i = 0; i < 1200; i++)); do
    { read -r hb < "$1/heartbeat"; } 2> /dev/null && [[ "$hb" =~ ^[0-9]+$ ]] && [ "$hb" -ge "$2" ] && return 0
    kill -0 "$3" 2> /dev/null || return 1
    sleep 0.2
  done
  return 1
}
# the "t=" of the first line of log $1 matching $2
t_of() { grep -m1 -- "$2" "$1" | sed -n 's/.*t=\([0-9.]*\).*/\1/p'; }
