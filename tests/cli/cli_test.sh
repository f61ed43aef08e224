#!/bin/bash
# Process-level checks of the mpitrain command line: exit codes (0 ok,
# 1 runtime error, 2 usage error), one-line error messages that name the
# flag / file / tensor, config files, a tiny real run and what it writes,
# and the sample / ckpt / prepare commands on good and broken inputs.
# usage: cli_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../check.sh"
scratch_dir "$1" "$2"
one_line_stderr() { [ "$(wc -l < last.err)" -eq 1 ]; }
# rows PATTERN FILE: lines of FILE containing PATTERN (0 if FILE is missing)
rows() { local n; n=$(grep -cF -- "$1" "$2" 2>/dev/null); echo "${n:-0}"; }

# ---- a small corpus -------------------------------------------------------
for i in $(seq 1 80); do
  echo "And it came to pass, in verse $i, that the quick brown fox jumped over the lazy dog."
done > corpus.txt
run prepare corpus.txt --out corpus.tok --val-fraction 0.1
expect "prepare a text file" 0
[ -s corpus.tok ] || { echo "FAIL - prepare wrote no corpus.tok; cannot go on"; exit 1; }

# ---- top level ------------------------------------------------------------
run --help
check "mpitrain --help exits 0" "[ $rc -eq 0 ] && grep -q 'usage: mpitrain' last.out"
run
expect "mpitrain without a command is a usage error" 2
run frobnicate
expect "unknown command exits 2" 2 "frobnicate"

# ---- train: flag errors ---------------------------------------------------
run train --bogus
expect "train --bogus exits 2 naming it" 2 "--bogus"
check "train --bogus: one line on stderr" one_line_stderr
run train --layers abc
expect "train --layers abc exits 2 naming --layers" 2 "--layers"
check "train --layers abc: one line on stderr" one_line_stderr
run train --layers 0
expect "train --layers 0 exits 2" 2 "--layers"
run train --heads 3 --embd 256 --data corpus.tok --out heads_bad --steps 1 --threads 1 --quiet
check "train --heads 3 --embd 256 fails naming --heads" \
  "[ $rc -ne 0 ] && grep -qF -- '--heads' last.err"
check "train --heads 3 --embd 256 leaves no run directory" "[ ! -e heads_bad/metrics.jsonl ]"

printf 'layers = 2\n# a comment\nthis line has no equals sign\n' > bad.cfg
run train --config bad.cfg
expect "train --config with a bad line exits 2 naming file:line" 2 "bad.cfg:3"
printf 'layers = 2\nnot-an-option = 3\n' > unknown.cfg
run train --config unknown.cfg
expect "train --config with an unknown key exits 2 naming it" 2 "unknown.cfg:2" "not-an-option"
run train --config missing.cfg
expect "train --config of a missing file exits 2" 2 "missing.cfg"

# ---- train: data errors -----------------------------------------------------
run train --data /nonexistent/tokens.bin --out nodata --steps 1 --threads 1 --quiet
expect "train --data /nonexistent exits 1 naming the file" 1 "/nonexistent/tokens.bin"
head -c 300 corpus.tok > truncated.tok
run train --data truncated.tok --out trunc --steps 1 --threads 1 --quiet
expect "truncated token file exits 1" 1 "truncated.tok" "truncated"
cp /bin/ls foreign.tok
run train --data foreign.tok --out foreign --steps 1 --threads 1 --quiet
expect "foreign file as token data exits 1" 1 "foreign.tok"

# ---- train: tokens at or above the vocabulary (a corrupt file, or one made
# for another tokenizer) are an error at open, not an out-of-bounds read ----
# hostile.py KIND OUT: an llm.c file with one token of 60000 (above GPT-2's
# 50257), or a native file whose header says vocab 100 over byte tokens
cat > hostile.py <<'PY'
import struct, sys
def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    return c ^ 0xFFFFFFFF
kind, out = sys.argv[1], sys.argv[2]
toks = [(i * 7) % 200 for i in range(400)]
if kind == "llmc":
    toks[20] = 60000
    data = struct.pack("<3i", 20240520, 1, len(toks)).ljust(1024, b"\0")
    data += struct.pack("<%dH" % len(toks), *toks)
else:
    h = b"MPTOKENS" + struct.pack("<IIIIQQ", 1, 1, 100, 64, 360, 40)
    data = (h + struct.pack("<I", crc32c(h))).ljust(64, b"\0") + bytes(toks)
open(out, "wb").write(data)
PY
python3 hostile.py llmc hostile_llmc.bin
run train --data hostile_llmc.bin --vocab 50257 --layers 1 --heads 2 --embd 16 --seq-len 16 \
  --batch 4 --steps 1 --threads 1 --quiet --out hostile_llmc
expect "llm.c token 60000 under --vocab 50257 exits 1 (not 139) naming file, offset and value" 1 \
  "hostile_llmc.bin: train token 20 " "is 60000, at or above the vocabulary 50257"
python3 hostile.py native hostile.tok
run train --data hostile.tok --layers 1 --heads 2 --embd 16 --seq-len 16 --batch 4 --steps 1 \
  --threads 1 --quiet --out hostile_native
expect "byte tokens above a header vocab of 100 exit 1 naming file, offset and value" 1 \
  "hostile.tok: train token 15 " "is 105, at or above the vocabulary 100 (header)"
check "the refused runs wrote no metrics" "[ ! -e hostile_llmc/metrics.jsonl ] && [ ! -e hostile_native/metrics.jsonl ]"

# ---- a tiny real run ----------------------------------------------------------
TINY="--layers 1 --heads 2 --embd 16 --seq-len 16 --batch 4 --data corpus.tok --threads 1"
run train $TINY --steps 6 --eval-every 3 --save-every 3 --out run --progress lines
expect "tiny training run exits 0" 0
M=run/metrics.jsonl
check "metrics.jsonl exists" "[ -s $M ]"
check "6 step rows and the step-0 evaluation row" "[ \$(rows '\"loss\":' $M) -eq 6 ] && [ \$(rows '\"step\":' $M) -eq 7 ]"
for key in loss tokens_per_s gflops comm_bytes time_ms; do
  check "every step row has \"$key\"" "[ \$(rows '\"$key\":' $M) -eq 6 ]"
done
check "val_loss before training and at steps 3 and 6" \
  "[ \$(rows '\"val_loss\":' $M) -eq 3 ] && grep -q '^{\"step\":0,\"val_loss\"' $M && grep '\"val_loss\"' $M 2>/dev/null | grep -q '\"step\":3,' && grep '\"val_loss\"' $M 2>/dev/null | grep -q '\"step\":6,'"
check "loss values are finite numbers" \
  "[ -s $M ] && ! grep -Eq '\"loss\":(nan|inf|-inf|null)' $M"
check "run/ckpt/latest names step 6" "grep -qx step_00000006 run/ckpt/latest"
check "checkpoint of step 3 exists" "[ -f run/ckpt/step_00000003/manifest.pb ]"

run train $TINY --steps 6 --out run --quiet
expect "second run into the same --out without --resume exits 1" 1 "--resume"
check "the refused run left the metrics alone" "[ \$(rows '\"step\":' $M) -eq 7 ]"

# ---- nanoGPT's raw uint16 train.bin / val.bin (no header), --val-data ------
python3 -c '
import struct
b = open("corpus.txt", "rb").read()
cut = len(b) * 9 // 10
for name, part in (("ngpt_train.bin", b[:cut]), ("ngpt_val.bin", b[cut:])):
    open(name, "wb").write(struct.pack("<%dH" % len(part), *part))
'
NGPT="--layers 1 --heads 2 --embd 16 --seq-len 16 --batch 4 --threads 1 --quiet"
run train $NGPT --data ngpt_train.bin --val-data ngpt_val.bin --data-format nanogpt \
  --steps 4 --eval-every 2 --out ngpt
expect "a nanoGPT train.bin/val.bin pair trains with --data-format nanogpt" 0
check "the nanoGPT run evaluated on val.bin: val_loss at steps 0, 2 and 4" \
  "[ \$(rows '\"val_loss\":' ngpt/metrics.jsonl) -eq 3 ] && [ \$(rows '\"loss\":' ngpt/metrics.jsonl) -eq 4 ]"
check "config.json records --data-format and --val-data" \
  "grep -q '\"data-format\": *\"nanogpt\"' ngpt/config.json && grep -q '\"val-data\": *\"ngpt_val.bin\"' ngpt/config.json"
run train --resume ngpt --steps 6 --eval-every 2 --quiet --out ngpt_more
expect "a nanoGPT run resumes without repeating --data-format and --val-data" 0
check "and goes on evaluating on val.bin (val_loss at step 6)" \
  "grep -q '^{\"step\":6,.*\"val_loss\"' ngpt_more/metrics.jsonl && grep -q '\"val-data\": *\"ngpt_val.bin\"' ngpt_more/config.json"
run train $NGPT --data ngpt_train.bin --steps 1 --out ngpt_auto
expect "a headerless file is not guessed: auto refuses it and names --data-format nanogpt" 1 \
  "ngpt_train.bin" "bad magic" "--data-format nanogpt"
run train $NGPT --data corpus.tok --data-format nanogpt --steps 1 --out ngpt_wrong
expect "--data-format nanogpt on an MPTOKENS file is a clear error" 1 \
  "corpus.tok: --data-format nanogpt, but the file is an MPTOKENS file"
run train $NGPT --data ngpt_train.bin --val-data corpus.tok --data-format nanogpt --steps 1 --out ngpt_wrong2
expect "--val-data in another format than --data-format names --val-data and the file" 1 \
  "--val-data: corpus.tok: --data-format nanogpt"
run train $NGPT --data corpus.tok --data-format llmc --steps 1 --out ngpt_wrong3
expect "--data-format llmc on an MPTOKENS file is a clear error" 1 "corpus.tok: --data-format llmc, but"
head -c 301 ngpt_val.bin > ngpt_odd.bin
run train $NGPT --data ngpt_train.bin --val-data ngpt_odd.bin --data-format nanogpt --steps 1 --out ngpt_odd
expect "an odd-length raw file is refused naming it" 1 "ngpt_odd.bin: 301 bytes, an odd number"
run train $NGPT --data ngpt_train.bin --data-format nanogpt --vocab 100 --steps 1 --out ngpt_vocab
expect "raw tokens are checked against the model's --vocab" 1 \
  "ngpt_train.bin: train token 1 (byte 2) is 110, at or above the vocabulary 100 (the model's --vocab)"
run train $NGPT --data corpus.tok --data-format auto --steps 2 --eval-every 1 --out fmt_auto
expect "--data-format auto reads an MPTOKENS file as before" 0
check "no metrics for the refused data runs" \
  "! ls ngpt_auto/metrics.jsonl ngpt_wrong/metrics.jsonl ngpt_odd/metrics.jsonl ngpt_vocab/metrics.jsonl 2>/dev/null | grep -q ."

# ---- a deep model: more tensors than a fixed-size table would hold --------
run train --layers 400 --embd 8 --heads 1 --seq-len 8 --batch 1 --steps 1 --eval-every 0 \
  --save-every 0 --data corpus.tok --threads 1 --quiet --out deep
expect "train --layers 400 at width 8 exits 0" 0

# ---- config file values apply; flags override them -------------------------
printf '# tiny model\nlayers = 2\nheads = 2\nembd = 32\nseq-len = 16\nbatch = 4\nsteps = 2\n' > good.cfg
run train --config good.cfg --embd 16 --data corpus.tok --threads 1 --quiet --out cfgrun
expect "train --config good.cfg --embd 16 exits 0" 0
run ckpt info cfgrun
check "config value applied (layers 2 from the file)" "grep -q 'layers 2,' last.out"
check "flag overrides config (embd 16 from the flag)" "grep -q 'embd 16,' last.out"
check "config value applied (step 2 from steps = 2)" "grep -Eq '^step +2 ' last.out"

# ---- hostile flags: plain decimal only, one --config, a regular file ---------
run train --stpes 3
expect "a misspelt option suggests the nearest one" 2 "unknown option --stpes" "did you mean --steps?"
run train --batch 0x4
expect "--batch 0x4 (hex) is refused" 2 "--batch: '0x4'"
run train --seed " -1"
expect "--seed ' -1' is refused" 2 "--seed: ' -1'"
run train --steps " 5"
expect "--steps ' 5' (leading blank) is refused" 2 "--steps: ' 5'"
run train --config /dev/zero
expect "--config /dev/zero is refused, not read forever" 2 "/dev/zero: not a regular file"
run train --config .
expect "--config of a directory is refused" 2 "not a regular file"
run train --config good.cfg --config good.cfg
expect "a second --config is refused, not ignored" 2 "--config given twice"
OMPI_COMM_WORLD_RANK=1 "$BIN" train --stpes 3 > last.out 2> last.err; rc=$?
check "under a launcher, rank 1 exits 2 on a usage error but leaves the message to rank 0" \
  "[ $rc -eq 2 ] && [ ! -s last.err ]"
OMPI_COMM_WORLD_RANK=1 "$BIN" train --help > last.out 2> last.err
check "and rank 1 prints no help either" "[ ! -s last.out ]"

# ---- --resume takes the model from the checkpoint: a conflicting flag is named
run train --resume cfgrun --steps 4 --layers 3 --quiet
expect "--resume with a conflicting --layers exits 2 naming it" 2 "--layers 3 conflicts with the checkpoint's 2"
run train --resume cfgrun --steps 3 --layers 2 --quiet --out cfgresume
expect "--resume with the checkpoint's own --layers goes on" 0

# ---- a closed stdout pipe does not kill the run ----------------------------
"$BIN" train $TINY --steps 6 --out piped --progress lines | head -1 > /dev/null
rc=${PIPESTATUS[0]}
check "train | head -1: the run survives its reader (exit $rc) and writes every step" \
  "[ $rc -eq 0 ] && [ \$(rows '\"loss\":' piped/metrics.jsonl) -eq 6 ]"

# ---- an offline reshard is bounded before it starts writing ------------------
run ckpt reshard cfgrun --dp 100000 --out rs100k
expect "ckpt reshard --dp 100000 is refused up front" 1 "100000 ranks" "more than the"
check "and writes nothing" "[ ! -e rs100k ]"

# ---- plot: the PNG decodes (an independent reader) and is not blank --------
run plot run cfgrun --out curves.png --width 900 --height 700
expect "plot of two runs exits 0" 0
check "the picture is a 900x700 PNG with curves on it" "python3 '$HERE/png_check.py' curves.png 900 700 > /dev/null"
MPITRAIN_TEST_PLOT_SCRIPT=plot.gp "$BIN" plot "$PWD/run/" cfgrun --out labels.png > last.out 2> last.err
check "plot's legend names a run by its folder, not its whole path" \
  "grep -q 'title \"run train\"' plot.gp && grep -q 'title \"cfgrun train\"' plot.gp && ! grep -q 'title \"/' plot.gp"
check "plot's legend sits outside the panels (it hid the curves' ends)" \
  "grep -q '^set key outside bottom' plot.gp && ! grep -q '^set key top right' plot.gp"
mkdir -p other && cp -r run other/run
MPITRAIN_TEST_PLOT_SCRIPT=plot.gp "$BIN" plot run other/run --out labels.png > last.out 2> last.err
check "two runs of the same folder name keep their paths apart" \
  "grep -q 'title \"run train\"' plot.gp && grep -q 'title \"other/run train\"' plot.gp"
# a run that sent bytes (its loss is also drawn against them, on a log axis)
mkdir -p sent && printf '%s\n' '{"step":0,"val_loss":5.5}' \
  '{"step":1,"loss":5.4,"comm_bytes":15,"time_ms":100,"tokens_per_s":100}' \
  '{"step":2,"loss":5.2,"val_loss":5.3,"comm_bytes":15,"time_ms":100,"tokens_per_s":100}' > sent/metrics.jsonl
run plot run sent --out sent.png --loss val --title "validation only"
expect "plot --loss val of a run that sent bytes exits 0" 0
check "and draws it" "python3 '$HERE/png_check.py' sent.png 900 700 > /dev/null"
run plot run corpus.txt --out nope.png
expect "plot of something that is no run exits 1 naming it" 1 "corpus.txt is not a run directory"
check "and leaves no picture" "[ ! -e nope.png ]"
run plot run
expect "plot without --out exits 2" 2 "--out"
run plot run --out plots/deep/ft.png --width 400 --height 300
check "plot --out into folders that do not exist yet makes them" \
  "[ $rc -eq 0 ] && python3 '$HERE/png_check.py' plots/deep/ft.png 400 300 > /dev/null"
touch plotfile
run plot run --out plotfile/ft.png
expect "plot --out under a file is refused in one line" 1 "plotfile: exists and is not a directory"
PATH=/nonexistent "$BIN" plot run --out nope.png > last.out 2> last.err; rc=$?
expect "plot without gnuplot says how to get it" 1 "apt-get install gnuplot-nox"

# ---- a failure under mpitrain-local: one line from rank 0, no mpirun boxes --
MPITRAIN_BIN="$BIN" "$HERE/../../launch/mpitrain-local" -n 2 train --data nonexist.tok --out mq \
  > last.out 2> last.err; rc=$?
check "a 2-rank failure exits 1 with one line naming the file and rank 0" \
  "[ $rc -eq 1 ] && [ \$(wc -l < last.err) -eq 1 ] && grep -q 'rank 0: --data: nonexist.tok' last.err"

# ---- config.json: the resolved settings, re-usable with --config ------------
check "the run wrote config.json, and it is JSON with every setting" \
  "python3 -c 'import json,sys; d=json.load(open(\"cfgrun/config.json\")); sys.exit(not (d[\"layers\"]==2 and d[\"embd\"]==16 and d[\"optimizer\"]==\"adamw\" and len(d)>40))'"
run train --config cfgrun/config.json --out cfgagain
expect "train --config <run>/config.json exits 0" 0
check "a run from config.json repeats the first bit for bit" \
  "[ -s cfgagain/metrics.jsonl ] && cmp -s <(losses cfgrun/metrics.jsonl) <(losses cfgagain/metrics.jsonl)"
printf '{"layers": {"deep": 2}}\n' > nested.json
run train --config nested.json
expect "a JSON config with a nested value exits 2 naming the key" 2 "nested.json:1" '"layers"'
printf '{"layers": 2,\n "not-an-option": 1}\n' > unknown.json
run train --config unknown.json
expect "a JSON config with an unknown key exits 2 naming file:line and key" 2 "unknown.json:2" "not-an-option"

# ---- sample ----------------------------------------------------------------
run sample --ckpt run --prompt "And " --tokens 20
check "sample exits 0" "[ $rc -eq 0 ]"
check "sample prints the prompt and 20 more bytes" \
  "[ \$(wc -c < last.out) -ge 24 ] && [ \"\$(head -c 4 last.out)\" = 'And ' ]"
cp last.out sample1.out
run sample --ckpt run --prompt "And " --tokens 20
check "sample with the same seed is reproducible" "cmp -s sample1.out last.out"
run sample --ckpt run/ckpt/step_00000003 --prompt "" --tokens 5 --temperature 0 --raw
check "greedy sample from a step dir with an empty prompt (--raw: the 5 bytes only)" "[ $rc -eq 0 ] && [ \$(wc -c < last.out) -eq 5 ]"
cp last.out raw.out
run sample --ckpt run/ckpt/step_00000003 --prompt "" --tokens 5 --temperature 0
check "without --raw the same text ends with a newline" \
  "[ $rc -eq 0 ] && [ \"\$(tail -c 1 last.out | od -An -c | tr -d ' ')\" = '\\n' ] && [ \"\$(cat raw.out)\" = \"\$(cat last.out)\" ]"
run sample --ckpt run --prompt "$(head -c 100 corpus.txt)" --tokens 10 --top-k 5
check "sample with a prompt longer than the context" \
  "[ $rc -eq 0 ] && cmp -s <(head -c 100 corpus.txt) <(head -c 100 last.out) && [ \$(wc -c < last.out) -ge 110 ]"
# an untrained model emits any byte: the output is still valid UTF-8 (U+FFFD
# for what no character is)
run sample --ckpt run --prompt "x" --tokens 400 --temperature 2
check "sample output is valid UTF-8 whatever bytes the model picks" \
  "[ $rc -eq 0 ] && python3 -c 'import sys; open(\"last.out\", \"rb\").read().decode(\"utf-8\")'"
run sample --prompt "And "
expect "sample without --ckpt exits 2" 2 "--ckpt"
run sample --ckpt nowhere
expect "sample of a missing checkpoint exits 1" 1 "mpitrain sample:" "nowhere"

# ---- ckpt info / export -----------------------------------------------------
run ckpt info run
check "ckpt info exits 0 and lists param/wte" "[ $rc -eq 0 ] && grep -q 'param/wte' last.out"
check "ckpt info shows step, layout and parameters" \
  "grep -Eq '^step +6 ' last.out && grep -q 'dp 1, tp 1, pp 1, zero 0' last.out && grep -q '^parameters' last.out"
run ckpt info --verify run
check "ckpt info --verify of a good checkpoint exits 0" "[ $rc -eq 0 ]"
run ckpt --help
check "ckpt --help exits 0" "[ $rc -eq 0 ] && grep -q 'export' last.out"
run ckpt info --help
check "ckpt info --help exits 0" "[ $rc -eq 0 ] && grep -q 'usage: mpitrain ckpt info' last.out"
run ckpt frobnicate run
expect "ckpt with an unknown subcommand exits 2" 2 "frobnicate"
check "ckpt unknown subcommand: one line on stderr" one_line_stderr
run ckpt info
expect "ckpt info without DIR exits 2" 2 "DIR"

run ckpt export run --format safetensors --out model.safetensors
check "ckpt export exits 0" "[ $rc -eq 0 ] && [ -s model.safetensors ]"
check "export: header length fits the file and the JSON names wte" \
  "/usr/bin/python3 -c 'import json,struct,sys; b=open(\"model.safetensors\",\"rb\").read(); n=struct.unpack(\"<Q\",b[:8])[0]; h=json.loads(b[8:8+n]); sys.exit(0 if h[\"wte\"][\"shape\"]==[256,16] and h[\"__metadata__\"][\"mpitrain_model\"]==\"gpt\" else 1)'"
run ckpt export run --format onnx --out model.onnx
expect "ckpt export --format onnx exits 2" 2 "onnx"
check "no file for the refused format" "[ ! -e model.onnx ]"
run ckpt export run --format safetensors
expect "ckpt export without --out exits 2" 2 "--out"
run ckpt export run --format safetensors --out a/b/m.safetensors
check "ckpt export --out into folders that do not exist yet makes them" \
  "[ $rc -eq 0 ] && cmp -s model.safetensors a/b/m.safetensors"

# ---- corruption ------------------------------------------------------------------
cp -r run corrupt
data=corrupt/ckpt/step_00000006/rank_00000.bin
byte=$(od -An -tu1 -j 1000 -N 1 "$data" | tr -d ' ')
printf "$(printf '\\%03o' $(((byte + 1) % 256)))" | dd of="$data" bs=1 seek=1000 conv=notrunc 2>/dev/null
check "the corrupted copy differs from the original" "! cmp -s $data run/ckpt/step_00000006/rank_00000.bin"
run sample --ckpt corrupt --prompt "And " --tokens 5
expect "sample of a corrupted checkpoint exits 1 with 'checksum'" 1 "mpitrain sample:" "checksum" "param/"
check "sample of a corrupted checkpoint prints nothing to stdout" "[ ! -s last.out ]"
run ckpt export corrupt --out corrupt.safetensors
expect "export of a corrupted checkpoint exits 1" 1 "checksum"
check "failed export leaves no file" "[ -z \"\$(ls | grep corrupt.safetensors)\" ]"
run ckpt info --verify corrupt
expect "ckpt info --verify of a corrupted checkpoint exits 1" 1 "checksum"

# ---- prepare errors -------------------------------------------------------------
run prepare missing.txt --out missing.tok
expect "prepare of a missing file exits 1" 1 "missing.txt"
check "prepare of a missing file leaves no output" "[ -z \"\$(ls | grep missing.tok)\" ]"
run prepare corpus.txt --out tok/dir/c.tok
check "prepare --out into folders that do not exist yet makes them" "[ $rc -eq 0 ] && [ -s tok/dir/c.tok ]"

# ---- version -------------------------------------------------------------------
# the VERSION file at the top of the tree is the one version (OLDPWD: where
# the script was started, for a relative $0)
src=$(dirname "$0")
case "$src" in /*) ;; *) src=$OLDPWD/$src ;; esac
want=$(head -1 "$src/../../VERSION")
run --version
check "mpitrain --version prints 'mpitrain $want' (the VERSION file) and exits 0" \
  "[ $rc -eq 0 ] && [ \"\$(head -1 last.out)\" = 'mpitrain $want' ]"
check "mpitrain --version adds a line of build facts" "grep -q '^built with .*-march=' last.out"
run version
check "mpitrain version is the same as --version" "[ $rc -eq 0 ] && grep -qx 'mpitrain $want' last.out"

finish
