#!/bin/bash
# All-reduce overhead of the comm layer versus raw MPI_Allreduce, at 2 and 4
# ranks on this machine (4 ranks oversubscribe a 2-core box), for 4 KB, 1 MB
# and 64 MB. Builds nothing: takes bench_allreduce from $BENCH_ALLREDUCE, or
# next to $MPITRAIN_BIN, or build/. Prints figures, never judges them; exits
# non-zero if a run fails (wrong sum, MPI error, launch failure).
# usage: bench/allreduce.sh [extra bench_allreduce args, e.g. --budget-s 1]
# env:   RANKS="2 4" (rank counts to run)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
bin=${MPITRAIN_BIN:-$repo/build/mpitrain}
bench=${BENCH_ALLREDUCE:-$(dirname "$bin")/bench_allreduce}
[ -x "$bench" ] || { echo "allreduce.sh: $bench not found; build first (cmake --build build)" >&2; exit 2; }

# the flags a 2-core box needs (same as launch/mpitrain-local):
#   --oversubscribe       more ranks than cores
#   --bind-to none        ranks share cores
#   mpi_yield_when_idle   waiting ranks yield instead of spinning on the core
root=()
[ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)

echo "== allreduce: comm layer vs raw MPI_Allreduce ($(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg))"
for n in ${RANKS:-2 4}; do
  mpirun "${root[@]}" -np "$n" --oversubscribe --bind-to none \
    --mca mpi_yield_when_idle 1 -x OMPI_MCA_mpi_yield_when_idle=1 \
    "$bench" "$@"
done
