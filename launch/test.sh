#!/bin/bash
# Builds mpitrain (installing its Debian packages) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
launch/setup.sh
cd build
ctest --output-on-failure --timeout 600 "$@"
