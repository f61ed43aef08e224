#!/usr/bin/env bash
# mpirun started "on" simulated host h0 of tests/netcluster/up.sh, its ranks
# placed by HOSTFILE on the other hosts through the nsrsh agent: TCP between
# hosts over their rate-limited links (no shared memory across hosts).
# usage: tests/netcluster/mpirun.sh HOSTFILE NP COMMAND [ARGS...]
# NC_PREFIX as for up.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
P=${NC_PREFIX:-mpz}
hostfile=$1 np=$2
shift 2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec ip netns exec "$P-h0" unshare --uts sh -c 'hostname "$0"; shift; exec "$@"' "$P-h0" sh \
  mpirun -q --hostfile "$hostfile" -np "$np" --mca plm_rsh_agent "$here/nsrsh" \
  --mca btl tcp,self --mca btl_tcp_if_include eth0 --mca oob_tcp_if_include eth0 \
  --bind-to none --mca mpi_yield_when_idle 1 -x OMPI_MCA_mpi_yield_when_idle=1 "$@"
