#!/bin/bash
# Builds mpitrain (installing its Debian packages) and runs every test.
# SANITIZE=1: build with AddressSanitizer + UBSan into build-asan/ instead.
# Arguments go to ctest (e.g. -R mpi_).
set -euo pipefail
cd "$(dirname "$0")/.."
# FRESH_PATH=1: run the tests on a PATH of only what a fresh minimal Debian 12
# has plus the packages of launch/packages.sh (tests/fresh_path.py), so a
# tool no script installs fails here as it would on a new machine.
# setup.sh installs the test packages of launch/packages.sh too
export MPITRAIN_TEST_PACKAGES=1
if [ "${SANITIZE:-0}" = 1 ]; then
  export BUILD_DIR=build-asan
  # Open MPI and OpenBLAS keep process-lifetime allocations: leaks are theirs
  export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  launch/setup.sh -DCMAKE_BUILD_TYPE=Debug -DMPITRAIN_SANITIZE=ON
else
  export BUILD_DIR=build
  launch/setup.sh
fi
if [ "${FRESH_PATH:-0}" = 1 ]; then
  fresh=$BUILD_DIR/fresh-path
  /usr/bin/python3 tests/fresh_path.py "$fresh"
  export PATH=$PWD/$fresh
fi
cd "$BUILD_DIR"
# two tests at a time: many are one process waiting on mpirun, python or
# node, and every test passes on a loaded machine
ctest --output-on-failure --timeout 600 -j "${CTEST_JOBS:-2}" "$@"
