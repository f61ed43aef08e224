#!/bin/bash
# Issue 24: AdamW on LoRA adapters holds the frozen base as weights only:
# no gradient and no moment buffer for it. From the run's own accounting
# (summary.json, as tests/cli/zo_memory_test.sh): the optimizer state is
# two moments of the adapters exactly, and the malloc heap measured after
# each step holds the weights (base + adapters), the activations, the
# adapters' gradient and moments and little else (a base gradient alone
# would add the base again); the peak RSS keeps the same bound with the
# process's own slack. The full model's AdamW, for contrast, holds four
# copies of the weights. Not a timing threshold: bytes against bytes.
. "$(dirname "$0")/lib.sh"
M="--layers 8 --heads 4 --embd 384 --seq-len 64 --batch 4 --steps 2"
field() { sed -n "s/.*\"$2\":\[\([0-9]*\)\].*/\1/p" "$1/summary.json"; }
rss() { sed -n 's/.*"peak_rss_mb":\([0-9]*\).*/\1/p' "$1/summary.json"; }
run 1 full $M; check "full AdamW runs" "[ $? -eq 0 ]"
run 1 lora $M --lora-rank 8 --lora-targets c_attn,c_proj,c_fc; check "LoRA AdamW runs" "[ $? -eq 0 ]"
wf=$(field full weight_bytes_per_rank) hf=$(field full heap_peak_bytes_per_rank)
wa=$(field lora weight_bytes_per_rank) hl=$(field lora heap_peak_bytes_per_rank)
ol=$(field lora opt_state_bytes_per_rank) al=$(field lora act_bytes_per_rank)
check "the adapters ($wa B) are a few percent of the weights ($wf B)" \
  "[ -n '$wa' ] && [ $wa -gt 0 ] && [ $((wa * 20)) -lt $wf ]"
check "the optimizer state is the adapters' two moments ($ol B = 2 x $wa B)" "[ '$ol' = $((2 * wa)) ]"
check "full AdamW's heap ($hf B) holds weights, gradients and moments" "[ $hf -ge $((4 * wf)) ]"
# 8 MB: the loader, MPI's and the libraries' small blocks
bound=$((wf + wa + al + 3 * wa))
check "LoRA's heap ($hl B) holds the base ($wf B) and <= weights + activations + 3 x adapters + 8 MB ($bound B + 8 MB)" \
  "[ -n '$hl' ] && [ $hl -ge $wf ] && [ $hl -le $((bound + 8 * 1024 * 1024)) ]"
# the process beyond its heap (the binary, OpenBLAS, MPI's segments; about
# 20 MB): 48 MB, less than the base's 55 MB that a base gradient would add.
# A sanitizer's shadow memory is not the program's.
rl=$(rss lora)
is_sanitized ||
  check "LoRA's peak RSS (${rl} MB) <= weights + activations + 3 x adapters + 48 MB" \
    "[ -n '$rl' ] && [ $((rl * 1024 * 1024)) -le $((bound + 48 * 1024 * 1024)) ]"
finish
