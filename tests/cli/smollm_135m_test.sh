#!/bin/bash
# SmolLM2-135M's full shape (30 layers, width 576, 9 heads, 3 kv heads, MLP
# 1536, vocab 49152, tied, rope_theta 100000, context 8192) with random BF16
# weights in the Hugging Face layout and SmolLM2's config keys, made by
# tests/ref/llama_ref.py: import, the loss of one sequence against the
# float64 PyTorch reference, 2 AdamW steps under dp 2 and under pp 2, 2 ZO
# steps on 2 ranks, `sample`, and HF exports (f32, bf16) the reference
# accepts, the f32 one holding exactly the trained weights. SmolLM2's own
# tokenizer.json cannot be had offline (and none of the npm oracles has
# 49152 ids): llama_ref.py make-tokenizer writes a random byte-level one
# of that size in its layout, which import carries and sample decodes with.
# usage: smollm_135m_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
. "$(cd "$(dirname "$0")/.." && pwd)/check.sh"
. "$(cd "$(dirname "$0")/.." && pwd)/ref/llama_lib.sh"
skip_if_sanitized "too slow for 135M; llama_io_test and llama_ref_test cover the code"
t0=$(date +%s)

# config.json key for key as SmolLM2-135M's (no head_dim key; ids 0 for BOS/EOS)
$REF make-hf smol --arch llama --tied --layers 30 --embd 576 --heads 9 --kv-heads 3 --mlp 1536 \
  --vocab 49152 --ctx 8192 --eps 1e-5 --bos 0 --eos 0 --dtype BF16 --seed 135 \
  --set head_dim=DELETE --set is_llama_config=true --set rope_interleaved=false --set rope_theta=100000 \
  --set initializer_range=0.041666666666666664 --set 'transformers_version="4.42.3"' &&
  $REF make-tokenizer smol --vocab 49152 &&
  $REF make-tokens tok.bin --n 40000 --vocab 49152 || { echo "FAIL - reference model"; exit 1; }
"$BIN" ckpt import smol --out imp > imp.log 2> last.err
check "import the 135M HF dir (BF16, tokenizer.json)" "[ $? -eq 0 ] && grep -q '30 layers, 9 heads, 3 kv-heads, embd 576, mlp 1536, seq-len 8192, vocab 49152' imp.log"

# one sequence of 256 tokens (the float64 reference's time grows with the
# context), before any update; the reference also gives the first loss of
# the steps below (2 x 64, into want2.txt) on the same load of the model
one_sequence_loss 135M smol imp 256 2x64

# The steps use --seq-len 64: every weight takes part; longer ones would
# not fit the budget on 2 shared cores
RUN="--data tok.bin --batch 2 --steps 2 --seq-len 64 --threads 1 --quiet --eval-every 0 --save-every 0"
timeout 600 "$LOCAL" -n 2 train --init-from smol $RUN --dp 2 --tp 1 --pp 1 --out dp2 > dp2.log 2> last.err
check "2 AdamW steps under dp 2 from the HF dir" "[ $? -eq 0 ] && [ \$(losses dp2/metrics.jsonl | wc -l) -eq 2 ]"
want=$(cat want2.txt)
r=$(rel "$(first_loss dp2)" "${want:-1}")
check "dp 2: first loss is the reference's (rel $r <= 1e-5)" "within $r 1e-5"
timeout 600 "$LOCAL" -n 2 train --init-from imp $RUN --dp 1 --tp 1 --pp 2 --micro-batches 2 --out pp2 > pp2.log 2> last.err
check "2 AdamW steps under pp 2" "[ $? -eq 0 ] && [ \$(losses pp2/metrics.jsonl | wc -l) -eq 2 ]"
d=$(losses dp2/metrics.jsonl | tail -1 | cut -d' ' -f2); p=$(losses pp2/metrics.jsonl | tail -1 | cut -d' ' -f2)
r=$(rel "${p:-0}" "${d:-1}")
check "pp 2's step-2 loss equals dp 2's (rel $r <= 1e-4)" "within $r 1e-4"
timeout 600 "$LOCAL" -n 2 train --init-from imp $RUN --optimizer zo --zo-scale 0.01 --lr 1e-4 --dp 2 --tp 1 --pp 1 \
  --out zo > zo.log 2> last.err
check "2 ZO steps on 2 ranks" "[ $? -eq 0 ] && [ \$(losses zo/metrics.jsonl | wc -l) -eq 2 ]"

# the KV-cache decoder at this size, through the tokenizer the run carried
"$BIN" sample --ckpt zo --prompt "Hello" --tokens 6 --seed 5 --threads 1 --raw > sample.txt 2> last.err
check "sample 6 tokens from the ZO run with its tokenizer" \
  "[ $? -eq 0 ] && [ \$(head -c 5 sample.txt) = Hello ] && [ \$(wc -c < sample.txt) -gt 5 ]"

# exports of the dp 2 run: f32 holds the trained weights exactly (as
# mpitrain's own safetensors export of the run has them, under HF's names);
# bf16 is f32 rounded to nearest even
"$BIN" ckpt export dp2 --format hf --dtype f32 --out exp32 > /dev/null 2> last.err &&
  $REF check-hf exp32 --dtype F32 > chk32.txt 2> last.err
rc=$?
check "f32 HF export of the trained model: a directory transformers loads ($(cat chk32.txt))" \
  "[ $rc -eq 0 ] && [ -s exp32/tokenizer.json ]"
"$BIN" ckpt export dp2 --format hf --dtype bf16 --out exp16 > /dev/null 2> last.err &&
  $REF check-hf exp16 --dtype BF16 --source exp32 > chk16.txt 2> last.err
rc=$?
check "bf16 HF export: each weight the f32 one rounded to nearest even ($(cat chk16.txt))" "[ $rc -eq 0 ]"
"$BIN" ckpt export dp2 --format safetensors --out dp2.safetensors > /dev/null 2> last.err &&
  $REF compare exp32 dp2.safetensors --mpitrain-names > same.txt 2> last.err
rc=$?
check "the f32 export's weights are the trained ones, bit for bit ($(cat same.txt))" "[ $rc -eq 0 ]"
echo "     smollm_135m_test took $(( $(date +%s) - t0 )) s"
finish
