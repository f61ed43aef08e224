#!/bin/bash
# Stops everything tests/slurm/up.sh DIR started: munged, slurmctld, slurmd,
# the slurmstepd's and the job processes under them. Safe to call when up.sh
# failed half-way or never ran, and more than once.
DIR=${1:?usage: down.sh DIR}
[ -d "$DIR" ] || exit 0
DIR=$(cd "$DIR" && pwd -P)   # physical: /proc/*/fd links show resolved paths

# Ours: every process that carries MPITRAIN_SLURM_DIR=DIR in its environment
# (up.sh exports it to the daemons) or holds a file under DIR open (daemon
# logs, job scripts in the spool), plus all their descendants. Both tests are
# needed: slurmstepd is double-forked away from slurmd and overwrites its
# environment with its process title, but it keeps slurmd.log open.
# (No pid files: a stale one could name an unrelated process.)
marked() {  # one grep and one find over all of /proc: this runs in a loop
  { grep -lzxF "MPITRAIN_SLURM_DIR=$DIR" /proc/[0-9]*/environ
    find /proc/[0-9]*/fd -lname "$DIR/*"; } 2>/dev/null | cut -d/ -f3 | sort -u
}
family() {  # marked processes and their descendants, never this script or its callers
  # "/proc/PID/status:PPid: PPID" lines: no procps needed, and grep (unlike
  # mawk) skips a process that exits while we read
  grep -H '^PPid:' /proc/[0-9]*/status 2>/dev/null | awk -v roots="$(marked | tr '\n' ' ')" -v self=$$ '
    BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
    { split($1, f, "/"); parent[f[3]] = $2 }
    END { for (p = self; p > 1; p = parent[p]) spare[p] = 1
          do { grew = 0; for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; grew = 1 } } while (grew)
          for (p in keep) if ((p in parent) && !(p in spare)) print p }'
}

# First ask SLURM to cancel the jobs while the controller still runs: then
# slurmstepd ends the tasks and cleans up after PMIx itself.
if [ -f "$DIR/slurm.conf" ] && SLURM_CONF=$DIR/slurm.conf timeout 2 squeue -h > /dev/null 2>&1; then
  export SLURM_CONF=$DIR/slurm.conf
  scancel --quiet $(squeue -h -o %A) 2>/dev/null
  for _ in $(seq 1 30); do [ -z "$(timeout 2 squeue -h 2>/dev/null)" ] && break; sleep 0.1; done
fi
# Then stop whatever is left. slurmstepd and srun ignore a lone SIGTERM.
pids=$(family)
[ -n "$pids" ] && kill -TERM $pids 2>/dev/null
for _ in $(seq 1 10); do   # 1 s for a clean exit, then SIGKILL
  pids=$(family)
  [ -z "$pids" ] && break
  sleep 0.1
done
[ -n "$pids" ] && kill -KILL $pids 2>/dev/null
# the short socket dir up.sh made under /tmp for a deep DIR
[ -L "$DIR/run" ] && rm -rf "$(readlink "$DIR/run")" "$DIR/run"
exit 0
