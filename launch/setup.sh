#!/bin/bash
# Installs what mpitrain needs from Debian 12 (only what is missing) and
# builds it into build/ (or $BUILD_DIR). Usage: launch/setup.sh [cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential cmake pkg-config openmpi-bin libopenmpi-dev
          libopenblas-openmp-dev libprotobuf-c-dev protobuf-c-compiler
          libcriterion-dev libfabric-dev libpcre2-dev bible-kjv gnuplot-nox)
PACKAGES+=(${MPITRAIN_EXTRA_PACKAGES:-})

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi

build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "$@" > /dev/null
cmake --build "$build" -j"$(nproc)"
