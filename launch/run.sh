#!/bin/bash
# Builds mpitrain (installing its Debian packages), then trains the default
# GPT on the King James Bible with 2 simulated ranks on this machine and
# prints a sample of what it learned. Extra arguments go to `mpitrain train`.
set -euo pipefail
cd "$(dirname "$0")/.."
launch/setup.sh
out=runs/default-$(date +%Y%m%d-%H%M%S)
launch/mpitrain-local -n "${RANKS:-2}" train --out "$out" "$@"
val=$(sed -n 's/.*"final_val_loss":\([0-9.]*\).*/\1/p' "$out/summary.json")
echo
echo "== validation loss at the end: ${val:-not measured} (it starts near 5.5, ln 256)"
echo "== sample from $out:"
build/mpitrain sample --ckpt "$out" --prompt "And God said" --tokens 300
echo
cat <<NEXT

== what to try next
  build/mpitrain sample --ckpt $out --prompt "In the beginning" --tokens 500
  build/mpitrain plot $out --out $out/curves.png          # loss curves, step-time breakdown
  launch/mpitrain-local -n 2 train --resume $out --steps 600   # train on from the last checkpoint
  build/mpitrain ckpt export $out --format safetensors --out $out/model.safetensors
  launch/mpitrain-local -n 2 train --optimizer zo --init-from $out --out runs/zo   # shared-randomness fine-tuning
NEXT
