#!/bin/bash
# Installs what mpitrain needs from Debian 12 (only what is missing) and
# builds it into build/ (or $BUILD_DIR). Usage: launch/setup.sh [cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."

source launch/packages.sh
PACKAGES=("${BUILD_PACKAGES[@]}")
# launch/test.sh asks for its own as well
[ "${MPITRAIN_TEST_PACKAGES:-0}" = 1 ] && PACKAGES+=("${TEST_PACKAGES[@]}")
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
