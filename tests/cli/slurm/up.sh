#!/bin/bash
# Brings up a real single-node SLURM (munged, slurmctld, slurmd) under DIR,
# without systemd, for tests. Needs root (slurmd launches jobs as their
# user) and Debian's slurm-wlm + munge. Prints the line the caller evals:
#   eval "$(tests/slurm/up.sh DIR [CPUS])"  ->  export SLURM_CONF=DIR/slurm.conf
# Always pair it with tests/slurm/down.sh DIR (in an EXIT trap): that stops
# everything started here, even if this script fails half-way.
set -euo pipefail
DIR=${1:?usage: up.sh DIR [CPUS]}
CPUS=${2:-8}
[ "$(id -u)" -eq 0 ] || { echo "up.sh: needs root (slurmd runs jobs as their user)" >&2; exit 1; }
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd -P)   # physical: /proc/*/fd links show resolved paths
# RUN holds the Unix sockets of munged, slurmd and PMIx (munge.socket,
# spool/<node>_<job>.<step>, spool/pmix.<job>.<step>/..., tmp/spmix_appdir_*),
# and a socket path must fit in 108 bytes: under a deep DIR, use a short one.
RUN=$DIR/run
if [ ${#DIR} -gt 40 ]; then
  [ -L "$RUN" ] || ln -s "$(mktemp -d /tmp/mpitrain-slurm.XXXXXX)" "$RUN"
  RUN=$(readlink "$RUN")
fi
mkdir -p "$DIR/state" "$RUN/spool" "$RUN/munge" "$RUN/tmp"
chmod 755 "$RUN" "$RUN/munge"  # munged wants its socket dir writable by its owner only
chmod 1777 "$RUN/tmp"          # like /tmp: steps of any user make their PMIx dirs here

# Every daemon carries this mark in its environment; down.sh finds them by it
# (and by their open files under DIR), not by pid files that may be stale.
export MPITRAIN_SLURM_DIR=$DIR

# A private munged: own key, socket and pid file, so the test neither needs
# nor disturbs a system munge (/etc/munge, /run/munge). It runs as root,
# which munged accepts.
[ -f "$DIR/munge.key" ] || {
  dd if=/dev/urandom of="$DIR/munge.key" bs=1024 count=1 2>/dev/null
  chmod 400 "$DIR/munge.key"
}
/usr/sbin/munged --socket="$RUN/munge/munge.socket" --key-file="$DIR/munge.key" \
  --pid-file="$DIR/munged.pid" --log-file="$DIR/munged.log" --seed-file="$DIR/munged.seed"

# Two free TCP ports next to each other, below the ephemeral range (so a
# client socket cannot take them later), avoiding SLURM's 6817/6818 so a
# real SLURM on this host is left alone.
in_use() { awk -v p="$(printf ':%04X' "$1")" 'NR > 1 && substr($2, length($2) - 4) == p {f = 1} END {exit !f}' /proc/net/tcp /proc/net/tcp6 2>/dev/null; }
for _ in $(seq 1 50); do
  PORT=$((20000 + RANDOM % 12000))
  in_use "$PORT" || in_use $((PORT + 1)) || break
done

# ProctrackType=linuxproc, TaskPlugin=none: no cgroups (containers lack a
# writable cgroup tree). config_overrides: trust CPUs= even if the machine
# has fewer cores, so multi-rank jobs fit on a 2-core CI box.
# TmpFS: PMIx makes TmpFS/spmix_appdir_<uid>_<job>.<step> per step; in the
# default /tmp one left over by an earlier cluster (job ids restart at 1)
# makes the same step of this one fail to launch.
# MinJobAge=5: `sbatch --wait` polls every 2 s only while 2 < MinJobAge/2,
# otherwise it backs off to 8 s and 32 s; 5 keeps it at 2 s.
cat > "$DIR/slurm.conf" <<CONF
ClusterName=mpitrain-test
MailProg=/bin/true
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$RUN/munge/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$RUN/spool
TmpFS=$RUN/tmp
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=5
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=16000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$DIR/slurm.conf
# -c: start clean, ignoring any job state a previous run left in DIR/state
/usr/sbin/slurmctld -c -f "$SLURM_CONF"
/usr/sbin/slurmd -f "$SLURM_CONF" -N localhost

# the node reports in within about a second
for _ in $(seq 1 150); do
  [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && { echo "export SLURM_CONF=$SLURM_CONF"; exit 0; }
  sleep 0.1
done
echo "up.sh: the node did not become idle in 15 s; logs in $DIR:" >&2
tail -n 20 "$DIR/slurmctld.log" "$DIR/slurmd.log" "$DIR/munged.log" >&2 2>/dev/null
exit 1
