#!/bin/bash
# What a red team tried on the inputs (issue 21, items 17, 18, 20, 21): a
# tokenizer file that is a link out of its directory or not a tokenizer at
# all, a file's mode widened by the copy; named pipes wherever a file is
# read (each run under `timeout -k`: were the check to regress, the case
# fails instead of hanging the suite); NaN weights; safetensors whose byte
# ranges overlap or leave gaps. Needs python3 (standard library only).
# usage: hostile_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../check.sh"
scratch_dir "$1" "$2"
# a generous cap: a refusal takes well under a second; a regressed check
# blocks forever (SIGTERM does not stop it, hence -k)
capped() { timeout -k 10 300 "$BIN" "$@" > last.out 2> last.err; rc=$?; }

for i in $(seq 1 80); do
  echo "And it came to pass, in verse $i, that the quick brown fox jumped over the lazy dog."
done > corpus.txt
run prepare corpus.txt --out corpus.tok --val-fraction 0.1
[ "$rc" -eq 0 ] || { echo "FAIL - prepare failed; cannot go on"; cat last.err; exit 1; }
# vocab 512: room for the toy tokenizer's 258 tokens
TINY="--layers 2 --heads 2 --embd 16 --seq-len 16 --vocab 512 --batch 4 --threads 1 --quiet --eval-every 0"
run train $TINY --data corpus.tok --steps 2 --out run
[ "$rc" -eq 0 ] || { echo "FAIL - training failed; cannot go on"; cat last.err; exit 1; }
run ckpt export run --format hf --out hf
[ "$rc" -eq 0 ] || { echo "FAIL - export failed; cannot go on"; cat last.err; exit 1; }
# a small but complete byte-level BPE: GPT-2's 256 byte tokens, one merge,
# end-of-text
python3 - hf <<'EOF'
import json, os, sys
keep = set(range(0x21, 0x7F)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
alpha, extra = [], 0
for b in range(256):
    alpha.append(chr(b) if b in keep else chr(256 + extra)); extra += b not in keep
vocab = {ch: i for i, ch in enumerate(alpha)}
vocab["\u0120t"] = 256
vocab["<|endoftext|>"] = 257
json.dump(vocab, open(os.path.join(sys.argv[1], "vocab.json"), "w"))
open(os.path.join(sys.argv[1], "merges.txt"), "w").write("#version: 0.2\n\u0120 t\n")
EOF
run ckpt import hf --out imp
check "the baseline HF directory (with its tokenizer) imports" "[ $rc -eq 0 ] && [ -f imp/step_00000000/tokenizer/vocab.json ]"
mk() { rm -rf "$1" && cp -r hf "$1"; }

# ---- 17: tokenizer files ---------------------------------------------------------
echo "-----BEGIN OPENSSH PRIVATE KEY----- secret-key-bytes" > key && chmod 600 key
mk hf_key && ln -sf "$PWD/key" hf_key/vocab.json
run ckpt import hf_key --out imp_key
check "a vocab.json linked to a key outside the directory: import refused by name" \
  "[ $rc -ne 0 ] && grep -q 'hf_key/vocab.json: a symbolic link to .*key, outside hf_key' last.err"
check "... and the key is nowhere in what it wrote, nor in the message" \
  "! grep -rqs secret-key-bytes imp_key last.err"
mk hf_out && mkdir -p elsewhere && cp hf/vocab.json elsewhere/ && ln -sf "$PWD/elsewhere/vocab.json" hf_out/vocab.json
run ckpt import hf_out --out imp_out
check "a valid vocab.json, but a link out of the directory: refused" "[ $rc -ne 0 ] && grep -q 'outside hf_out' last.err"
run train --init-from hf_out --batch 4 --threads 1 --quiet --eval-every 0 --data corpus.tok --steps 1 --out out_run
check "train --init-from it: trains, with a note, and its checkpoints keep no tokenizer" \
  "[ $rc -eq 0 ] && grep -q 'not keeping the source.s tokenizer.*outside hf_out' last.out && ! ls -d out_run/ckpt/step_*/tokenizer 2> /dev/null"
run train $TINY --data corpus.tok --steps 1 --tokenizer hf_out --out out_flag
check "--tokenizer with such a link: refused before training" \
  "[ $rc -eq 1 ] && grep -q -- '--tokenizer: hf_out/vocab.json: a symbolic link' last.err && [ ! -e out_flag/metrics.jsonl ]"
mk hf_in && mv hf_in/vocab.json hf_in/real.json && ln -s real.json hf_in/vocab.json
run ckpt import hf_in --out imp_in
check "a link within the directory is fine, and the copy is a plain file" \
  "[ $rc -eq 0 ] && [ -f imp_in/step_00000000/tokenizer/vocab.json ] && [ ! -L imp_in/step_00000000/tokenizer/vocab.json ]"
mk hf_mode && chmod 600 hf_mode/vocab.json && chmod 640 hf_mode/merges.txt
(umask 022 && "$BIN" ckpt import hf_mode --out imp_mode > last.out 2> last.err)
check "import keeps each tokenizer file's mode (600, 640)" \
  "[ \$(stat -c %a imp_mode/step_00000000/tokenizer/vocab.json) = 600 ] && [ \$(stat -c %a imp_mode/step_00000000/tokenizer/merges.txt) = 640 ]"
(umask 022 && "$BIN" ckpt export imp_mode --format hf --out exp_mode > last.out 2> last.err)
check "so does export --format hf" "[ \$(stat -c %a exp_mode/vocab.json) = 600 ]"
mk hf_junk && echo 'this is not json' > hf_junk/vocab.json
run ckpt import hf_junk --out imp_junk
check "a garbage vocab.json: import refused, naming the file" \
  "[ $rc -eq 1 ] && grep -q 'hf_junk/vocab.json:1:' last.err && [ ! -e imp_junk/latest ]"
rm -rf imp_bad && cp -r imp imp_bad && echo '{"!": 0}' > imp_bad/step_00000000/tokenizer/vocab.json
run ckpt info --verify imp_bad
check "ckpt info --verify loads the checkpoint's tokenizer: a broken one fails it" \
  "[ $rc -eq 1 ] && grep -q 'tokenizer/vocab.json' last.err"
run ckpt info --verify imp
check "... and a good one passes" "[ $rc -eq 0 ] && grep -q 'the tokenizer loads' last.out"

# ---- 18: named pipes -----------------------------------------------------------------
mkfifo p
capped train $TINY --data p --steps 1 --out fifo_run
expect "train --data FIFO: refused at once, naming the file" 1 "p: not a regular file (a named pipe)"
capped train --config p
expect "train --config FIFO: refused" 2 "--config p: not a regular file (a named pipe)"
capped eval --ckpt run --data p
expect "eval --data FIFO: refused" 1 "p: not a regular file (a named pipe)"
mk hf_fv && rm hf_fv/vocab.json && mkfifo hf_fv/vocab.json
capped ckpt import hf_fv --out imp_fv
expect "a FIFO vocab.json in a HF directory: refused" 1 "hf_fv/vocab.json: not a regular file (a named pipe)"
mk hf_fc && rm hf_fc/config.json && mkfifo hf_fc/config.json
capped ckpt import hf_fc --out imp_fc
expect "a FIFO config.json in a HF directory: refused" 1 "hf_fc/config.json: not a regular file (a named pipe)"
capped train --init-from hf_fc $TINY --data corpus.tok --steps 1 --out fifo_init
check "train --init-from the same: refused, not hung" "[ $rc -ne 0 ] && [ $rc -lt 124 ] && grep -q 'named pipe' last.err"
rm -rf ck_fifo && cp -r run ck_fifo && step=$(ls -d ck_fifo/ckpt/step_* | tail -1) &&
  rm "$step/rank_00000.bin" && mkfifo "$step/rank_00000.bin"
capped ckpt info --verify ck_fifo
expect "a FIFO data file in a checkpoint: ckpt info --verify refuses it" 1 "rank_00000.bin: not a regular file (a named pipe)"
capped eval --ckpt ck_fifo --data corpus.tok
expect "... and so does eval" 1 "rank_00000.bin: not a regular file (a named pipe)"
rm -rf ck_latest && cp -r run ck_latest && rm ck_latest/ckpt/latest && mkfifo ck_latest/ckpt/latest
capped ckpt info ck_latest
expect "a FIFO latest pointer: refused" 1 "latest: not a regular file (a named pipe)"

# ---- 20 and 21: hostile safetensors --------------------------------------------------
# edit.py DIR WHAT: rewrites DIR/model.safetensors
cat > edit.py <<'EOF'
import json, struct, sys
d, what = sys.argv[1], sys.argv[2]
p = d + "/model.safetensors"
raw = open(p, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n]); data = bytearray(raw[8 + n:])
P = "transformer."
if what == "nan":    # every value of wte NaN
    b, e = h[P + "wte.weight"]["data_offsets"]; data[b:e] = struct.pack("<f", float("nan")) * ((e - b) // 4)
elif what == "inf":  # one value of lnf's weight +inf
    b, e = h[P + "ln_f.weight"]["data_offsets"]; data[b + 12:b + 16] = struct.pack("<f", float("inf"))
elif what == "overlap":  # ln_2 points at ln_1's bytes
    h[P + "h.0.ln_2.weight"]["data_offsets"] = h[P + "h.0.ln_1.weight"]["data_offsets"]
elif what == "hole":     # 64 bytes nobody owns before the first tensor
    for k, v in h.items():
        if k != "__metadata__": v["data_offsets"] = [x + 64 for x in v["data_offsets"]]
    data = bytearray(64) + data
t = json.dumps(h).encode(); t += b" " * ((8 - len(t) % 8) % 8)
open(p, "wb").write(struct.pack("<Q", len(t)) + t + bytes(data))
EOF
mk hf_nan && python3 edit.py hf_nan nan
run ckpt import hf_nan --out imp_nan
check "an HF model whose wte is all NaN: import refused, naming the tensor and index" \
  "[ $rc -eq 1 ] && grep -q \"tensor 'transformer.wte.weight': element 0 is nan\" last.err && [ ! -e imp_nan/latest ]"
run train --init-from hf_nan $TINY --data corpus.tok --steps 1 --out nan_run
check "train --init-from it: refused the same way" "[ $rc -eq 1 ] && grep -q 'element 0 is nan' last.err"
mk hf_inf && python3 edit.py hf_inf inf
run ckpt import hf_inf --out imp_inf
check "one +inf in ln_f.weight: refused at element 3" \
  "[ $rc -eq 1 ] && grep -q \"ln_f.weight': element 3 is inf\" last.err"
mk hf_ovl && python3 edit.py hf_ovl overlap
run ckpt import hf_ovl --out imp_ovl
check "ln_2.weight pointing at ln_1.weight's bytes: refused, naming both" \
  "[ $rc -eq 1 ] && grep -q \"tensors 'transformer.h.0.ln_1.weight' and 'transformer.h.0.ln_2.weight' overlap\" last.err"
mk hf_hole && python3 edit.py hf_hole hole
run ckpt import hf_hole --out imp_hole
check "a hole before the first tensor: refused" \
  "[ $rc -eq 1 ] && grep -q \"data bytes 0..64, before the first tensor 'transformer.wte.weight'\" last.err"

finish
