#!/bin/bash
# ZO at the memory of inference, from the run's own accounting
# (summary.json): activations and the weight view's scratch do not grow
# with the layers (no per-layer activation set, a block's scratch and not a
# model's), and the malloc heap measured after each step holds the weights,
# those two and little else (a whole-model perturbation copy or int32
# accumulator would each add the weights again). AdamW's heap, for contrast,
# holds gradients and moments. Not a timing or RSS threshold: the bytes the
# process holds against the bytes its parts account for.
# usage: zo_memory_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
. "$(cd "$(dirname "$0")/.." && pwd)/check.sh"
scratch_dir "$1" "$2"

for i in $(seq 1 200); do echo "Line $i: the quick brown fox jumps over the lazy dog, again and again."; done > corpus.txt
"$BIN" prepare corpus.txt --out corpus.tok > /dev/null || { echo "FAIL - prepare"; exit 1; }
M="--heads 4 --embd 256 --seq-len 64 --batch 4 --data corpus.tok --threads 1 --quiet --eval-every 0 --steps 2"
field() { sed -n "s/.*\"$2\":\[\([0-9]*\)\].*/\1/p" "$1/summary.json"; }
for L in 2 8; do
  "$BIN" train $M --layers $L --optimizer zo --zo-scale 1e-3 --out zo$L > zo$L.log 2>&1
  check "zo with $L layers runs" "[ $? -eq 0 ]"
done
a2=$(field zo2 act_bytes_per_rank) a8=$(field zo8 act_bytes_per_rank)
v2=$(field zo2 view_bytes_per_rank) v8=$(field zo8 view_bytes_per_rank)
w8=$(field zo8 weight_bytes_per_rank) h8=$(field zo8 heap_peak_bytes_per_rank)
check "activations do not grow with the layers (2: $a2 B, 8: $a8 B)" "[ -n '$a2' ] && [ '$a2' = '$a8' ]"
check "the view scratch is one block's: the same at 2 and 8 layers ($v2 B)" "[ -n '$v2' ] && [ '$v2' = '$v8' ]"
check "the view scratch ($v8 B) is under a quarter of the weights ($w8 B)" "[ $v8 -gt 0 ] && [ $((v8 * 4)) -lt $w8 ]"
# 8 MB: the loader, the journal, MPI's and the libraries' small blocks
check "zo's heap ($h8 B) is the weights + activations + view + < 8 MB" \
  "[ -n '$h8' ] && [ $h8 -lt $((w8 + a8 + v8 + 8 * 1024 * 1024)) ] && [ $h8 -ge $w8 ]"
"$BIN" train $M --layers 8 --optimizer adamw --out ad8 > ad8.log 2>&1
ha=$(field ad8 heap_peak_bytes_per_rank) aa=$(field ad8 act_bytes_per_rank)
check "adamw's heap ($ha B) holds weights, gradients and two moments" "[ -n '$ha' ] && [ $ha -ge $((4 * w8)) ]"
check "training keeps every layer's activations ($aa B vs forward-only $a8 B)" "[ $aa -gt $((3 * a8)) ]"
finish
