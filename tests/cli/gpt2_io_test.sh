#!/bin/bash
# GPT-2 weights in and out: `ckpt import` of Hugging Face GPT-2 directories
# and llm.c model files, `train --init-from` of the same sources, `ckpt
# export --format hf|llmc`, against tests/ref/gpt2_ref.py (an independent
# PyTorch GPT-2 in float64, HF semantics). A small GPT-2-shaped model:
# 2 layers, 2 heads, width 64, context 64, vocab 50257.
# usage: gpt2_io_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
. "$(cd "$(dirname "$0")/.." && pwd)/check.sh"
. "$(cd "$(dirname "$0")/.." && pwd)/ref/gpt2_lib.sh"

RUN="--batch 2 --steps 1 --data tok.bin --threads 1 --quiet --eval-every 0 --save-every 0"

$REF make-tokens tok.bin --n 20000 || { echo "FAIL - make tokens"; exit 1; }
$REF make-hf hf --tokenizer --buffers && $REF make-hf hfp --prefix --lm-head same --order reverse &&
  $REF make-llmc m.bin && $REF make-hf hf16 --dtype BF16 && $REF make-llmc m5.bin --version 5 ||
  { echo "FAIL - reference models"; exit 1; }
# every reference loss of the sources in one process (refq: one torch import)
refq want.txt loss hf --tokens tok.bin --batch 2
refq want_llmc.txt loss m.bin --tokens tok.bin --batch 2
refq want32.txt loss hf --tokens tok.bin --batch 2 --seq 32
refq want16.txt loss hf16 --tokens tok.bin --batch 2
refq want5.txt loss m5.bin --tokens tok.bin --batch 2
ref_run
want=$(cat want.txt)
check "reference: the llm.c file holds the same model (loss $want)" "[ \"\$(cat want_llmc.txt)\" = $want ]"

# ---- import ----------------------------------------------------------------
"$BIN" ckpt import hf --out imp_hf > /dev/null 2> last.err; check "import HF dir (no prefix, no lm_head) exits 0" "[ $? -eq 0 ]"
"$BIN" ckpt import hfp/model.safetensors --out imp_hfp > /dev/null 2> last.err
check "import HF .safetensors (transformer. prefix, lm_head = wte, reverse order) exits 0" "[ $? -eq 0 ]"
"$BIN" ckpt import m.bin --out imp_llmc > /dev/null 2> last.err; check "import llm.c .bin exits 0" "[ $? -eq 0 ]"
check "all three imports hold the same weights" \
  "cmp -s imp_hf/step_00000000/rank_00000.bin imp_hfp/step_00000000/rank_00000.bin && cmp -s imp_hf/step_00000000/rank_00000.bin imp_llmc/step_00000000/rank_00000.bin"
check "tokenizer files copied into <step>/tokenizer/" \
  "cmp -s hf/vocab.json imp_hf/step_00000000/tokenizer/vocab.json && cmp -s hf/merges.txt imp_hf/step_00000000/tokenizer/merges.txt"
"$BIN" ckpt info --verify imp_hf > info.txt 2> last.err
check "ckpt info --verify reads the import (shape from config.json)" "grep -q 'layers 2, heads 2, embd 64, seq-len 64, vocab 50257' info.txt && grep -q verified info.txt"

"$BIN" train --resume imp_hf --data tok.bin --steps 2 --threads 1 --quiet --eval-every 0 --out resumed > /dev/null 2> last.err
check "--resume of an import (weights only: the run creates its AdamW state) runs its steps" "[ $? -eq 0 ] && [ \$(losses resumed/metrics.jsonl | wc -l) -eq 2 ]"

# ---- loss against the reference ------------------------------------------------
for src in imp_hf hf hfp/model.safetensors m.bin; do
  out=loss_$(echo "$src" | tr '/.' '__')
  "$BIN" train --init-from "$src" $RUN --out "$out" > "$out.log" 2> last.err
  got=$(first_loss "$out")
  r=$(rel "${got:-0}" "$want")
  check "--init-from $src without model flags: loss $got vs reference $want (rel $r <= 1e-5)" "within $r 1e-5"
done
# the tokenizer travels with the weights: from the HF dir, from an import,
# and on through --resume; an llm.c file has none
tok_of() { ls -d "$1"/ckpt/step_*/tokenizer 2> /dev/null | tail -1; }
check "a run --init-from a HF dir keeps its tokenizer in its checkpoints" \
  "cmp -s hf/merges.txt \$(tok_of loss_hf)/merges.txt && cmp -s hf/vocab.json \$(tok_of loss_hf)/vocab.json"
check "so does a run --init-from an import of it" "cmp -s hf/merges.txt \$(tok_of loss_imp_hf)/merges.txt"
check "and a --resume of the import" "cmp -s hf/merges.txt \$(tok_of resumed)/merges.txt"
check "a run --init-from an llm.c file has no tokenizer/" "[ -z \"\$(tok_of loss_m_bin)\" ]"
"$BIN" train --init-from m.bin $RUN --tokenizer hf --out tok_flag > /dev/null 2> last.err
check "--tokenizer DIR puts that tokenizer in the checkpoints" "cmp -s hf/merges.txt \$(tok_of tok_flag)/merges.txt"
# resuming into the same root prunes the step the tokenizer was copied from:
# later saves take it from the newest checkpoint instead
"$BIN" train --resume loss_hf --data tok.bin --steps 4 --save-every 1 --keep-ckpts 1 --threads 1 \
  --quiet --eval-every 0 > /dev/null 2> last.err
check "a resumed run that prunes its first checkpoint still saves the tokenizer" \
  "[ $? -eq 0 ] && cmp -s hf/merges.txt loss_hf/ckpt/step_00000004/tokenizer/merges.txt"
"$BIN" train --init-from hf --batch 2 --steps 1 --data tok.bin --threads 1 --quiet --eval-every 0 \
  --tokenizer hf --vocab 50257 --out tok_fit > /dev/null 2> last.err
check "a tokenizer that fits the model's vocabulary is kept" "[ $? -eq 0 ]"
$REF make-tokens small.bin --n 4000 --vocab 256 > /dev/null 2>&1 &&
"$BIN" train --layers 1 --heads 1 --embd 16 --seq-len 16 --vocab 256 --batch 2 --steps 1 --data small.bin \
  --threads 1 --quiet --eval-every 0 --tokenizer hf --out tok_big > /dev/null 2> last.err
check "a tokenizer with more tokens than the model's vocabulary is refused" \
  "[ $? -ne 0 ] && grep -q 'but the model.s vocabulary is 256' last.err"
rm -rf hf_badtok && cp -r hf hf_badtok && echo '{"!": 0}' > hf_badtok/vocab.json
"$BIN" train --init-from hf_badtok $RUN --out badtok > badtok.log 2> last.err
check "a broken tokenizer that came with the source is dropped, with a note; the run goes on" \
  "[ $? -eq 0 ] && [ -z \"\$(tok_of badtok)\" ]"
"$BIN" train --init-from m.bin $RUN --tokenizer m.bin.nothing --out tok_bad > /dev/null 2> last.err
check "--tokenizer without tokenizer files is refused by name" \
  "[ $? -ne 0 ] && grep -q -- '--tokenizer m.bin.nothing: no tokenizer files' last.err"
"$BIN" train --init-from m.bin $RUN --seq-len 32 --out loss_seq32 > /dev/null 2> last.err
want32=$(cat want32.txt)
r=$(rel "$(first_loss loss_seq32)" "$want32")
check "--seq-len 32 within the source's 64 positions: loss matches the reference (rel $r)" "within $r 1e-5"
timeout 240 "$LOCAL" -n 2 train --init-from hf $RUN --dp 2 --out loss_dp2 > /dev/null 2> last.err
r=$(rel "$(first_loss loss_dp2)" "$want")
check "--init-from under dp 2: the plan carries the shape to both ranks (rel $r)" "within $r 1e-5"
timeout 240 "$LOCAL" -n 2 train --init-from hf $RUN --pp 2 --out loss_pp2 > /dev/null 2> last.err
r=$(rel "$(first_loss loss_pp2)" "$want")
check "--init-from under pp 2 (tied wte copy on the last stage) (rel $r)" "within $r 1e-5"

"$BIN" train --init-from hf $RUN --embd 256 --out conflict > /dev/null 2> conflict.err
rc=$?
check "--embd 256 with an HF source: usage error naming both values" \
  "[ $rc -eq 2 ] && grep -q -- \"--embd 256 conflicts with the --init-from source's n_embd 64\" conflict.err"
"$BIN" train --init-from hf $RUN --layers 2 --heads 2 --out agree > /dev/null 2> last.err
check "model flags equal to the source's are fine" "[ $? -eq 0 ]"
"$BIN" train --init-from imp_hf $RUN --layers 3 --out conflict2 > /dev/null 2> conflict2.err
check "--layers 3 with an mpitrain checkpoint: refused by name" "[ $? -eq 2 ] && grep -q -- '--layers 3 conflicts' conflict2.err"

# ---- export and round trips -------------------------------------------------------
"$BIN" ckpt export imp_hf --format hf --out exp_hf > /dev/null 2> last.err; check "export --format hf exits 0" "[ $? -eq 0 ]"
check "HF -> mpitrain -> HF: every tensor byte-identical" "$REF compare hf/model.safetensors exp_hf/model.safetensors > /dev/null"
check "HF (prefixed, lm_head) -> mpitrain -> HF: byte-identical" "$REF compare hfp/model.safetensors exp_hf/model.safetensors > /dev/null"
# eos: the id of <|endoftext|> in the tokenizer that goes out with it (the
# toy tokenizer's 257; GPT-2's own has it at 50256)
check "export hf writes GPT2LMHeadModel's config" \
  "grep -q '\"architectures\":\[\"GPT2LMHeadModel\"\]' exp_hf/config.json && grep -q '\"eos_token_id\":257' exp_hf/config.json && grep -q '\"tie_word_embeddings\":true' exp_hf/config.json"
check "export hf carries the tokenizer files" "cmp -s hf/vocab.json exp_hf/vocab.json && cmp -s hf/merges.txt exp_hf/merges.txt"
got=$($REF loss exp_hf --tokens tok.bin --batch 2 2> last.err)
check "exported HF dir loads strictly in the reference (exact keys and shapes), same loss" "[ \"$got\" = \"$want\" ]"
"$BIN" ckpt export imp_llmc --format llmc --out exp.bin > /dev/null 2> last.err; check "export --format llmc exits 0" "[ $? -eq 0 ]"
check "llm.c -> mpitrain -> llm.c: the files are byte-identical (padded rows zero)" "cmp -s m.bin exp.bin"
check "llm.c export is padded to Vp = 50304" "[ $(stat -c %s exp.bin) -eq $(stat -c %s m.bin) ]"
"$BIN" ckpt export imp_hf --format safetensors --out plain.safetensors > /dev/null 2> last.err
check "export --format safetensors (mpitrain names) still works" "[ $? -eq 0 ] && grep -aq '\"h.0.attn.qkv.w\"' plain.safetensors"

# the half-precision sources convert exactly
"$BIN" ckpt import hf16 --out imp16 > /dev/null 2> last.err
check "BF16 safetensors import" "[ $? -eq 0 ]"
"$BIN" train --init-from imp16 $RUN --out loss16 > /dev/null 2> last.err
want16=$(cat want16.txt)
r=$(rel "$(first_loss loss16)" "$want16")
check "BF16 weights give the reference loss of the same BF16 values (rel $r)" "within $r 1e-5"

"$BIN" train --init-from m5.bin $RUN --out loss_v5 > /dev/null 2> last.err
want5=$(cat want5.txt)
r=$(rel "$(first_loss loss_v5)" "$want5")
check "llm.c version 5 (bf16) gives the reference loss of the same bf16 values (rel $r)" "within $r 1e-5"

# ---- bad inputs: each a clear message and exit 1 ------------------------------------
n_bad=0
bad_import() { # what src expected-message
  n_bad=$((n_bad + 1))
  local out=bad$n_bad
  "$BIN" ckpt import "$2" --out $out > /dev/null 2> $out.err
  local rc=$?
  cp $out.err last.err
  check "$1: exit 1, says '$3'" "[ $rc -eq 1 ] && grep -qF -- \"$3\" $out.err && [ ! -e $out/latest ]"
}
mk() { rm -rf "$1" && cp -r hf "$1"; }
python3 -c "import sys; d=open('m.bin','rb').read(); open('magic.bin','wb').write(b'\x01\x02\x03\x04'+d[4:])"
bad_import "wrong magic" magic.bin "magic 20240326 expected"
$REF make-llmc trunc.bin --truncate 100
bad_import "truncated .bin" trunc.bin "truncated"
mk trst && truncate -s -1000 trst/model.safetensors
bad_import "truncated safetensors" trst "the file is truncated"
mk miss && $REF make-hf miss --layers 2 > /dev/null && python3 - miss/model.safetensors <<'EOF'
import json, struct, sys
p = sys.argv[1]; raw = open(p, 'rb').read(); n = struct.unpack('<Q', raw[:8])[0]
h = json.loads(raw[8:8 + n]); d = raw[8 + n:]
del h['h.1.mlp.c_fc.bias']
out, blobs, off = {}, [], 0
for k, v in h.items():
    if k == '__metadata__': out[k] = v; continue
    b, e = v['data_offsets']; blobs.append(d[b:e]); v['data_offsets'] = [off, off + e - b]; off += e - b; out[k] = v
t = json.dumps(out).encode(); t += b' ' * ((8 - len(t) % 8) % 8)
open(p, 'wb').write(struct.pack('<Q', len(t)) + t + b''.join(blobs))
EOF
bad_import "missing tensor" miss "missing tensor 'h.1.mlp.c_fc.bias'"
mk shape && sed -i 's/"n_embd": 64/"n_embd": 32/' shape/config.json && sed -i 's/"n_head": 2/"n_head": 2/' shape/config.json
bad_import "wrong shape (config n_embd 32, tensors 64 wide)" shape "tensor 'wte.weight' has shape 50257 x 64"
mk unk && python3 - unk/model.safetensors <<'EOF'
import json, struct, sys
p = sys.argv[1]; raw = open(p, 'rb').read(); n = struct.unpack('<Q', raw[:8])[0]
h = json.loads(raw[8:8 + n]); d = raw[8 + n:]
h['h.0.attn.rotary.weight'] = {'dtype': 'F32', 'shape': [1], 'data_offsets': [len(d), len(d) + 4]}
t = json.dumps(h).encode(); t += b' ' * ((8 - len(t) % 8) % 8)
open(p, 'wb').write(struct.pack('<Q', len(t)) + t + d + b'\0\0\0\0')
EOF
bad_import "unknown tensor" unk "unknown tensor 'h.0.attn.rotary.weight'"
$REF make-hf relu --activation relu
bad_import "activation relu" relu "activation_function relu"
$REF make-hf eps6 --eps 1e-6
bad_import "layer_norm_epsilon 1e-6" eps6 "layer_norm_epsilon 1e-06"
$REF make-hf head --lm-head different
bad_import "lm_head different from wte" head "lm_head.weight differs from wte.weight"
$REF make-hf vmis --config-vocab 50000
bad_import "vocab_size 50000 in config, 50257 rows in wte" vmis "tensor 'wte.weight' has shape 50257 x 64; config.json (n_embd 64, vocab_size 50000"
mk inv && sed -i 's/"scale_attn_by_inverse_layer_idx": false/"scale_attn_by_inverse_layer_idx": true/' inv/config.json
bad_import "scale_attn_by_inverse_layer_idx true" inv "scale_attn_by_inverse_layer_idx true"
mk inner && sed -i 's/"n_inner": null/"n_inner": 128/' inner/config.json
bad_import "n_inner 128 (not 4 x 64)" inner "n_inner 128"
mk big && sed -i 's/"n_embd": 64/"n_embd": 1099511627776/' big/config.json
bad_import "n_embd 2^40: too large, with the limit" big "n_embd 1099511627776 is too large: at most 1073741824"
mk quoted && sed -i 's/"n_layer": 2/"n_layer": "2"/' quoted/config.json
bad_import "n_layer as a string" quoted 'n_layer must be a non-negative integer, not the string'
check "  ... and shows it with its quotes" "grep -qF 'not the string \"2\"' last.err"
bad_import "not a model at all" tok.bin "neither an llm.c GPT-2 model file"
"$BIN" train --init-from relu $RUN --out bad_train > /dev/null 2> last.err
check "--init-from a refused source: exit 1 with the reason" "[ $? -eq 1 ] && grep -q 'activation_function relu' last.err"

finish
