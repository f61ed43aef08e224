#!/bin/bash
# Issue 24: zeroth-order training of LoRA adapters (--optimizer zo
# --lora-rank R). The perturbation covers the adapters only: two machines
# stay bit-identical (the hash check compares their weights every 5
# steps), the journal holds one byte per (machine, sample) per step, a
# re-run and `ckpt replay` give the live adapters bit for bit; --zo-params
# chooses among the adapters, and a selector of frozen weights is refused
# by name. With --init-from the replay reads the run's base.
. "$(dirname "$0")/lib.sh"
LZ="--model llama --layers 2 --heads 4 --kv-heads 2 --embd 32 --mlp-hidden 48 --lora-rank 4 --lora-targets all-linear"
Z="$LZ --optimizer zo --zo-samples 2 --zo-check-every 5 --save-every 10 --keep-ckpts 0 --steps 30"
# "name crc" of every param record of a checkpoint (ckpt info's rows)
crcs() { "$BIN" ckpt info "$1" | awk '$1 ~ /^param\// {print $1, $NF}' | sort; }

run 2 a --dp 2 $Z; check "ZO-LoRA: 2 machines x 30 steps with hash checks every 5 steps" "[ $? -eq 0 ]"
first=$(losses a/metrics.jsonl | head -1 | cut -d' ' -f2)
last=$(losses a/metrics.jsonl | tail -1 | cut -d' ' -f2)
check "ZO-LoRA: the loss moves (step 1 $first, step 30 $last)" "[ '$first' != '$last' ]"
# header 64 + roster 24 + 30 steps x (8 head + 20 + 2 machines x 2 samples + 4 crc)
check "the journal holds one byte per (machine, sample) per step" \
  "[ \$(stat -c %s a/zo/journal.bin) -eq \$((64 + 24 + 30 * 36)) ]"
n=$(crcs a/ckpt/step_00000030 | wc -l)
check "the checkpoint's params are the 28 adapters ($n records)" "[ $n -eq 28 ]"
check "... and it learned: the adapters at step 30 differ from step 10's" \
  "! cmp -s <(crcs a/ckpt/step_00000010) <(crcs a/ckpt/step_00000030)"
run 2 b --dp 2 $Z
check "a re-run gives bit-identical adapters" "[ $n -gt 0 ] && cmp -s <(crcs a/ckpt/step_00000030) <(crcs b/ckpt/step_00000030)"
"$BIN" ckpt replay a/ckpt/step_00000010 a/zo/journal.bin --out replay > replay.log 2>&1
check "replay from step 10 reaches step 30" "grep -q 'replayed to step 30' replay.log"
check "replayed adapters == live adapters, bit for bit" \
  "cmp -s <(crcs a/ckpt/step_00000030) <(crcs replay/step_00000030)"

# on a pretrained base (--init-from; the checkpoints refer to it): replay
# reads the base the run started from, and the merged models agree
run 1 pre $LZ --lora-rank 0 --lora-targets '' --steps 3 --lr 1e-2
run 2 ib --dp 2 $Z --steps 20 --init-from "$PWD/pre"; check "ZO-LoRA on a pretrained base: 2 machines x 20 steps" "[ $? -eq 0 ]"
"$BIN" ckpt replay ib/ckpt/step_00000010 ib/zo/journal.bin --out ibr > ibr.log 2>&1
check "replay from step 10 reaches step 20" "grep -q 'replayed to step 20' ibr.log"
for r in ib ibr; do "$BIN" ckpt export $r --format hf --merge-lora --out $r.hf > /dev/null 2>&1; done
"$BIN" ckpt export pre --format hf --out pre.hf > /dev/null 2>&1
check "the replayed run's merged model == the live run's, bit for bit" \
  "[ -s ib.hf/model.safetensors ] && cmp -s ib.hf/model.safetensors ibr.hf/model.safetensors"
check "... and it is not the base's (the adapters moved)" \
  "[ -s pre.hf/model.safetensors ] && ! cmp -s pre.hf/model.safetensors ib.hf/model.safetensors"

# --zo-params among the adapters
run 1 sel $LZ --optimizer zo --steps 3 --zo-params 'h.*.lora_B'
check "--zo-params 'h.*.lora_B' under LoRA runs" "[ $? -eq 0 ]"
for bad in norms embeddings 'h.0.attn.q.w'; do
  run 1 "bad_${bad//[^a-z]/}" $LZ --optimizer zo --steps 2 --zo-params "$bad"
  rc=$?
  check "--zo-params '$bad' under LoRA is refused, saying only the adapters train" \
    "[ $rc -ne 0 ] && grep -q \"zo-params '$bad'.*only the adapters train\" bad_${bad//[^a-z]/}.log"
done
finish
