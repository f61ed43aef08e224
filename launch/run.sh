#!/bin/bash
# Builds mpitrain (installing its Debian packages), then trains the default
# GPT on the King James Bible with 2 simulated ranks on this machine and
# prints a sample of what it learned. Extra arguments go to `mpitrain train`.
set -euo pipefail
cd "$(dirname "$0")/.."
launch/setup.sh
out=runs/default-$(date +%Y%m%d-%H%M%S)
launch/mpitrain-local -n "${RANKS:-2}" train --out "$out" "$@"
echo
echo "== sample from $out:"
build/mpitrain sample --ckpt "$out" --prompt "And God said" --tokens 300
echo
