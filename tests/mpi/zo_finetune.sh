#!/bin/bash
. "$(dirname "$0")/lib.sh"
  # pretrain with backprop on the King James Bible, fine-tune with ZO on fortunes
  bible 'gen1:1-gen20:18' > kjv.txt && "$BIN" prepare kjv.txt --out kjv.tok > /dev/null
  cat /usr/share/games/fortunes/fortunes > fort.txt && "$BIN" prepare fort.txt --out fort.tok --val-fraction 0.1 > /dev/null
  M="--layers 2 --heads 2 --embd 64 --seq-len 64 --batch 8 --threads 1 --quiet"
  timeout 240 "$BIN" train $M --data kjv.tok --steps 200 --lr 3e-3 --eval-every 0 --out pre > pre.log 2>&1
  check "backprop pretraining on KJV" "[ $? -eq 0 ]"
  timeout 300 "$LOCAL" -n 4 train $M --dp 4 --optimizer zo --init-from pre --data fort.tok --steps 200 \
    --lr 3e-3 --min-lr 3e-3 --warmup 0 --zo-samples 4 --weight-decay 0 --eval-every 100 --eval-batches 8 --out ft > ft.log 2>&1
  check "ZO fine-tuning on fortunes with 4 machines" "[ $? -eq 0 ]"
  v0=$(sed -n 's/^{"step":0,"val_loss":\([^}]*\)}/\1/p' ft/metrics.jsonl)
  v1=$(sed -n 's/.*"step":200,.*"val_loss":\([^,]*\),.*/\1/p' ft/metrics.jsonl)
  check "fortunes validation loss drops ($v0 -> $v1)" "awk -v a='$v0' -v b='$v1' 'BEGIN{exit !(a != \"\" && b != \"\" && b < a - 0.1)}'"
finish
