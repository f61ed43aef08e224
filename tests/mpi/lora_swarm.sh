#!/bin/bash
# Issue 24: a ZO swarm (--swarm-listen/--swarm-join, libfabric on loopback)
# training LoRA adapters on a pretrained base. A joiner takes the LoRA
# settings from the keeper's configuration (it gives none), catches up by
# replaying the journal onto its adapters, and ends with the keeper's
# adapters and journal bit for bit; a joiner whose base differs is refused
# at its HELLO (the weight hashes start from the frozen base's).
. "$(dirname "$0")/lib.sh"
PORT=$((21000 + $$ % 20000))
K="127.0.0.1:$PORT"
M="--model llama --layers 2 --heads 4 --kv-heads 2 --embd 32 --mlp-hidden 48 --seq-len 32 --batch 4 --data $PWD/corpus.tok --threads 1 --eval-every 0 --progress lines"
S="--swarm-deadline 2 --swarm-misses 3"
crcs() { "$BIN" ckpt info "$1" | awk '$1 ~ /^param\// {print $1, $NF}' | sort; }
# two bases of one shape: a few AdamW steps from two seeds
"$BIN" train $M --steps 3 --lr 1e-2 --save-every 0 --out pre > pre.log 2>&1 &&
  "$BIN" train $M --steps 3 --lr 1e-2 --seed 5 --save-every 0 --out pre5 > pre5.log 2>&1 ||
  { echo "FAIL - the base checkpoints"; exit 1; }
Z="--optimizer zo --zo-samples 2 --zo-scale 0.05 --zo-check-every 5 --steps 20 --lora-rank 4 --lora-targets all-linear"
# the keeper holds step 10 until a second machine is in (capped: a broken
# join fails the checks below, it does not hang)
MPITRAIN_TEST_SWARM_HOLD=10,2 "$BIN" train $M $Z --init-from "$PWD/pre" --swarm-listen "$K" $S \
  --save-every 0 --out k > k.log 2>&1 & pk=$!
sleep 0.3
"$BIN" train $M --init-from "$PWD/pre5" --swarm-join "$K" $S --save-every 0 --out other > other.log 2>&1
rc=$?
check "a joiner on another base is refused at its HELLO (exit $rc)" \
  "[ $rc -ne 0 ] && grep -q 'other starting weights' other.log"
"$BIN" train $M --init-from "$PWD/pre" --swarm-join "$K" $S --save-every 0 --out j > j.log 2>&1
rcj=$?
wait $pk
rck=$?
check "keeper and joiner finish the 20 steps (exit $rck $rcj)" "[ $rck -eq 0 ] && [ $rcj -eq 0 ]"
check "the joiner took the LoRA settings from the swarm's configuration" \
  "\"$BIN\" ckpt info j | grep -q 'lora' && [ \$(crcs j | grep -c lora_) -eq 28 ]"
check "the joiner caught up from the journal and joined" "grep -q 'welcomed into the swarm' j.log"
check "both hold the same adapters, bit for bit" "[ \$(crcs k | wc -l) -eq 28 ] && cmp -s <(crcs k) <(crcs j)"
check "... and byte-identical journals" "cmp -s k/zo/journal.bin j/zo/journal.bin"
finish
