#!/bin/bash
# Issue 24: LoRA adapters under every parallelism. The single rank's
# adapters learn, and each layout's 20 losses equal the single rank's: a
# tiny llama (all-linear adapters, GQA) and a tiny GPT-2 (c_attn and c_fc,
# its head tied to a frozen wte) under dp (ZeRO 0/1/2), tp, pp (GPipe and
# 1F1B, stages that own no adapter: the embedding's and the head's blocks
# alone), dp x tp and dp x pp (ZeRO 2, allowed under LoRA: the tied wte is
# frozen), AdamW and SGD, weight decay and an active gradient clip; and
# --lora-dropout under dp, tp and pp.
. "$(dirname "$0")/lib.sh"
# alpha 32 / rank 4 and lr 1e-2: the adapters move the loss within 20 steps
LORA="--lora-rank 4 --lora-alpha 32 --lr 1e-2 --grad-clip 0.05 --weight-decay 0.1"
COMMON="--seq-len 32 --batch 16 --data corpus.tok --threads 1 --quiet --eval-every 0 --steps 20 $LORA"
LL="--model llama --layers 2 --heads 4 --kv-heads 2 --embd 32 --mlp-hidden 48 $COMMON --lora-targets all-linear"
GP="--layers 2 --heads 4 --embd 32 $COMMON --lora-targets c_attn,c_fc"
SGD="--optimizer sgd --momentum 0.9 --lr 1"
# "step grad_norm" pairs: the adapters' norm, the clip's input
norms() { sed -n 's/.*"step":\([0-9]*\),.*"grad_norm":\([^,}]*\).*/\1 \2/p' "$1"; }
same_as() { # BASE OUT WHAT
  rel=$(max_rel "$1/metrics.jsonl" "$2/metrics.jsonl")
  check "$3 matches the single rank (max rel $rel <= 1e-4)" \
    "same_steps $1/metrics.jsonl $2/metrics.jsonl && awk 'BEGIN{exit !($rel <= 1e-4)}'"
  grel=$(join <(norms "$1/metrics.jsonl") <(norms "$2/metrics.jsonl") |
    awk '{d=$2-$3; if(d<0)d=-d; r=d/$2; if(r>m)m=r; n++} END{printf "%.3g", n == 20 ? m : 1}')
  check "... and so do its gradient norms over the adapters (max rel $grel <= 1e-4)" \
    "awk 'BEGIN{exit !($grel <= 1e-4)}'"
}
baseline() { # NAME OPTS...
  local name=$1
  shift
  timeout 240 "$LOCAL" -n 1 train "$@" --out "$name" > "$name.log" 2>&1
  check "$name: single-rank baseline runs" "[ $? -eq 0 ]"
  first=$(losses "$name/metrics.jsonl" | head -1 | cut -d' ' -f2)
  last=$(losses "$name/metrics.jsonl" | tail -1 | cut -d' ' -f2)
  check "$name: the adapters learn (loss $first at step 1, $last at step 20)" \
    "awk 'BEGIN{exit !($last < $first - 0.15)}'"
  check "$name: the clip at 0.05 acts at every step" \
    "[ \$(norms $name/metrics.jsonl | awk '\$2 > 0.05' | wc -l) -eq 20 ]"
}
layouts() { # BASE "OPTS" "d t p [FLAGS]"...
  local base=$1 opts=$2
  shift 2
  for lay in "$@"; do
    run_layout "$base" "$opts" $lay
    same_as "$base" "$o" "$what"
  done
}
baseline llama $LL
# --layers 2 --pp 4: one block a stage, the first (embedding) and the last
# (norm + head) without a trained tensor
layouts llama "$LL" "2 1 1" "2 1 1 --zero 1" "1 2 1" "1 1 2 --pp-schedule gpipe --micro-batches 2" \
  "1 1 2 --pp-schedule 1f1b --micro-batches 2" "2 2 1 --micro-batches 2" "1 1 4 --micro-batches 2"
baseline llama_sgd $LL $SGD
layouts llama_sgd "$LL $SGD" "2 1 1 --zero 2"
baseline gpt $GP
layouts gpt "$GP" "2 1 1 --zero 2" "1 2 1" "1 1 2 --pp-schedule 1f1b --micro-batches 2" \
  "2 1 2 --zero 2"
# LoRA dropout: each token row's mask is drawn from its global row, so a
# data-parallel half, a tp slice of a row-parallel input and a micro-batch
# draw what the single rank draws
baseline llama_drop $LL --lora-dropout 0.1
layouts llama_drop "$LL --lora-dropout 0.1" "2 1 1" "1 2 1" "1 1 2 --micro-batches 2"
finish
