#!/bin/bash
# Issue 24: DiLoCo on LoRA adapters: pseudo-gradients and outer state of
# the adapters only. H=1 with outer lr 1 and no momenta is data-parallel
# SGD of the adapters; with H=5 the replicas agree after the last outer
# step, fp32 and bf16 (error feedback) on the wire; a resume in the middle
# of a delayed bf16 round is bit-identical.
. "$(dirname "$0")/lib.sh"
L="--lora-rank 4 --lora-alpha 32 --lora-targets c_attn,c_fc"
SGD="$L --optimizer sgd --momentum 0 --grad-clip 0 --lr 0.05"
# "name crc" of every record of KIND in a checkpoint
crcs() { "$BIN" ckpt info "$1" | awk -v k="$2" '$1 ~ "^"k"/" {sub("^"k"/", "", $1); print $1, $NF}' | sort; }

run 2 dp --dp 2 $SGD
run 2 dl --dp 2 $SGD --diloco 1 --outer-lr 1 --outer-momentum 0
check "DiLoCo-LoRA H=1 dp=2 runs" "[ $? -eq 0 ] && same_steps dp/metrics.jsonl dl/metrics.jsonl"
rel=$(max_rel dp/metrics.jsonl dl/metrics.jsonl)
check "H=1, outer lr 1, no momenta = data-parallel SGD of the adapters (max rel $rel <= 1e-5)" \
  "awk 'BEGIN{exit !($rel <= 1e-5)}'"
for wire in fp32 bf16; do
  run 2 "h5$wire" --dp 2 $L --lr 1e-2 --diloco 5 --diloco-wire $wire --save-every 20 --keep-ckpts 0
  check "$wire: 2 replicas, H=5, 20 steps" "[ $? -eq 0 ] && [ \$(losses h5$wire/metrics.jsonl | wc -l) -eq 20 ]"
  first=$(losses "h5$wire/metrics.jsonl" | head -1 | cut -d' ' -f2)
  last=$(losses "h5$wire/metrics.jsonl" | tail -1 | cut -d' ' -f2)
  check "$wire: the adapters learn (loss $first -> $last)" "awk 'BEGIN{exit !($last < $first - 0.1)}'"
  f="h5$wire/ckpt/step_00000020"
  check "$wire: after the last outer step both replicas hold the same adapters (checksums)" \
    "cmp -s <(crcs $f param) <(crcs $f param.r1) && [ \$(crcs $f param | wc -l) -eq 8 ]"
  check "$wire: the outer state is the adapters' (outer_g, outer_mom: 8 tensors each)" \
    "cmp -s <(crcs $f param | cut -d' ' -f1) <(crcs $f outer_g | cut -d' ' -f1) && [ \$(crcs $f outer_mom | wc -l) -eq 8 ]"
done
check "bf16: the error feedback is kept for the adapters" "[ \$(crcs h5bf16/ckpt/step_00000020 outer_err | wc -l) -eq 8 ]"
# resumed from the middle of a round, a delayed bf16 all-reduce in flight
R="$L --lr 1e-2 --diloco 5 --diloco-wire bf16 --diloco-overlap 1 --save-every 7 --keep-ckpts 0"
run 2 ov --dp 2 $R
timeout 240 "$LOCAL" -n 2 train $TINY $R --dp 2 --resume ov/ckpt/step_00000007 --out ovc > ovc.log 2>&1
check "delayed bf16 rounds: resumed from step 7, steps 8..20 are bit-identical" \
  "[ \$(losses ovc/metrics.jsonl | wc -l) -eq 13 ] && cmp -s <(losses ov/metrics.jsonl | tail -13) <(losses ovc/metrics.jsonl)"
finish
