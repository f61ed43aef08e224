#!/bin/bash
# LoRA against the float64 references (tests/ref/gpt2_ref.py and
# llama_ref.py, which compute PEFT's LoRA from its definition: a target
# module gives base(x) + alpha / r * (x @ A.T) @ B.T). For a tiny GPT-2 and
# a tiny Qwen2 (q/k/v biases, untied), each with a random PEFT adapter on
# every linear whose B is not zero (so A has a gradient too), mpitrain
# continues from it (--init-from BASE --lora-from ADAPTER):
#   - the first loss equals the reference's to 1e-5 relative;
#   - one plain SGD step (lr 1) moves the adapters by the float64 gradient
#     (export --format peft), within 1e-4 of each tensor's largest entry
#     (the tolerance of llama_ref_test.sh, for the same reasons);
#   - the export --format hf --merge-lora's loss (no adapter) equals the
#     adapted model's;
#   - export --format peft of the start is byte-identical to the adapter
#     it came from.
# usage: lora_ref_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
. "$(cd "$(dirname "$0")/.." && pwd)/check.sh"
. "$(cd "$(dirname "$0")/.." && pwd)/ref/ref_lib.sh"
here=$(cd "$(dirname "$0")/.." && pwd)/ref
GREF="/usr/bin/python3 $here/gpt2_ref.py"
LREF="/usr/bin/python3 $here/llama_ref.py"

LR=1
SGD="--optimizer sgd --momentum 0 --weight-decay 0 --grad-clip 0 --warmup 0 --lr $LR --min-lr $LR"
RUN="--batch 4 --seq-len 32 --steps 1 --threads 1 --quiet --eval-every 0 --save-every 0 --dp 1 --tp 1 --pp 1"

# check_family NAME REF BASE ADAPTER TOKENS: mpitrain's run and exports
# first, then the reference's four commands on them in one process (refq:
# one torch import, not four), then the checks
check_family() {
  local n=$1 ref=$2 base=$3 ad=$4 tok=$5 want got r g rc_run rc_peft rc_merge
  "$BIN" train --init-from "$base" --lora-from "$ad" --data "$tok" $RUN $SGD --out run_$n > /dev/null 2> err_run_$n
  rc_run=$?
  "$BIN" ckpt export run_$n --format peft --out step_$n > /dev/null 2> err_peft_$n
  rc_peft=$?
  "$BIN" ckpt export run_$n --format hf --merge-lora --dtype f32 --out merged_$n > /dev/null 2> err_merge_$n
  rc_merge=$?
  refq want_$n loss "$base" --adapter "$ad" --tokens "$tok" --batch 4 --seq 32
  if [ "$ref" = "$GREF" ]; then
    refq grad_$n grad-check "$base" "$ad" step_$n --tokens "$tok" --batch 4 --seq 32 --lr $LR --tol 1e-4
  else
    refq grad_$n grad-check "$base" step_$n --adapter "$ad" --tokens "$tok" --batch 4 --seq 32 --lr $LR --tol 1e-4
  fi
  refq adapted_$n loss "$base" --adapter step_$n --tokens "$tok" --batch 4 --seq 32
  refq loss_merged_$n loss merged_$n --tokens "$tok" --batch 4 --seq 32
  REF=$ref ref_run
  want=$(cat want_$n)
  cp err_run_$n last.err
  check "$n: train --init-from --lora-from runs" "[ $rc_run -eq 0 ]"
  got=$(first_loss run_$n 2> /dev/null)
  r=$(rel "${got:-0}" "${want:-1}")
  check "$n: first loss $got vs the reference's $want with the adapter (rel $r <= 1e-5)" \
    "[ -n \"$got\" ] && within $r 1e-5"
  cp err_peft_$n last.err
  check "$n: export --format peft" "[ $rc_peft -eq 0 ]"
  g=$(cat grad_$n grad_$n.err)
  cp grad_$n.err last.err
  check "$n: one SGD step (lr $LR) moves the adapters by the float64 gradient: $g" "ref_ok grad_$n"
  cp err_merge_$n last.err
  check "$n: export --format hf --merge-lora" "[ $rc_merge -eq 0 ]"
  local adapted merged
  adapted=$(cat adapted_$n)
  merged=$(cat loss_merged_$n)
  r=$(rel "${merged:-0}" "${adapted:-1}")
  check "$n: the merged model's loss $merged is the adapted one's $adapted (rel $r <= 1e-6)" \
    "[ -n \"$merged\" ] && within $r 1e-6"
}

$GREF make-hf gpt --layers 2 --heads 2 --embd 64 --ctx 64 --vocab 512 --tokenizer &&
  $GREF make-tokens gpt.tok --n 20000 --vocab 512 &&
  $GREF make-peft gpt gpt_ad --r 4 --alpha 8 --targets all-linear || { echo "FAIL - GPT-2 reference files"; exit 1; }
check_family gpt2 "$GREF" gpt gpt_ad gpt.tok

$LREF make-hf qwen --arch qwen2 --untied --vocab 700 &&
  $LREF make-tokens qwen.tok --n 20000 --vocab 700 &&
  $LREF make-peft qwen qwen_ad --r 3 --alpha 6 --targets all-linear || { echo "FAIL - llama reference files"; exit 1; }
check_family qwen2 "$LREF" qwen qwen_ad qwen.tok

# the round trip: a run's adapter at step 0 is the one it came from, byte for byte
# (--lr must be positive: 1e-30 moves no adapter entry this far from zero)
"$BIN" train --init-from qwen --lora-from qwen_ad --data qwen.tok $RUN $SGD --lr 1e-30 --min-lr 0 --out run0 > /dev/null 2> last.err &&
  "$BIN" ckpt export run0 --format peft --out rt > /dev/null 2> last.err
check "PEFT -> mpitrain -> PEFT (lr 1e-30): adapter_model.safetensors byte-identical" \
  "cmp -s qwen_ad/adapter_model.safetensors rt/adapter_model.safetensors"

finish
