#!/bin/bash
# Checkpoints written before the manifest held the run's settings by name
# still serve. tests/cli/ckpt_v1/ holds two made by the build before that
# change (a tiny GPT, 1 layer, embd 16, seed 7, trained 4 steps with
# --save-every 2: adamw, and zo with --zo-scale 0, so the checkpoint holds
# the warm-up's scale), step 2 of each, with what that build printed for
# them. On them this build's `ckpt info` prints the same, eval, sample and
# export give the same bytes, --resume takes the settings from the old
# fields (a conflicting flag is named) and goes on to the losses the
# uninterrupted run had, to 1e-7: they were recorded on another machine,
# and another CPU's BLAS kernels round differently.
# usage: ckpt_v1_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../check.sh"
scratch_dir "$1" "$2"
FIX=$HERE/ckpt_v1
cp "$FIX/corpus.tok" . || { echo "FAIL - no fixture in $FIX"; exit 1; }

for k in adamw zo; do
  mkdir -p "$k" && cp -r "$FIX/$k/step_00000002" "$k/"
  step=$k/step_00000002
  run ckpt info "$step"
  check "$k: ckpt info prints what the build before printed" \
    "[ $rc -eq 0 ] && diff <(grep -v '^created\|^checkpoint' last.out) $FIX/$k/info.out > /dev/null"
  run eval --ckpt "$step" --data corpus.tok
  check "$k: eval gives the same loss" "[ $rc -eq 0 ] && cmp -s last.out $FIX/$k/eval.out"
  run sample --ckpt "$step" --prompt And --tokens 20 --seed 3
  check "$k: sample draws the same tokens" "[ $rc -eq 0 ] && cmp -s last.out $FIX/$k/sample.out"
  run ckpt export "$step" --format safetensors --out "$k.st"
  check "$k: export writes the same bytes" \
    "[ $rc -eq 0 ] && [ \"\$(sha256sum < $k.st | cut -d' ' -f1)\" = \"\$(cat $FIX/$k/export.sha256)\" ]"
  run train --resume "$step" --steps 4 --layers 2 --threads 1 --quiet --out "${k}_conflict"
  expect "$k: --resume with a conflicting --layers names the checkpoint's" 2 \
    "--layers 2 conflicts with the checkpoint's 1"
  run train --resume "$step" --steps 4 --threads 1 --quiet --out "${k}_resumed"
  # the fixture's losses came from another machine: OpenBLAS's kernels for
  # another CPU round differently (2.5e-10 apart on a Xeon), while a resume
  # that lost the optimizer state or the schedule is 1e-4 or more apart
  rel=$(join <(losses "${k}_resumed/metrics.jsonl") "$FIX/$k/losses_3_4.txt" |
    awk '{d = $2 - $3; if (d < 0) d = -d; r = d / $3; if (r > m) m = r; n++} END {printf "%.3g %d", m, n}')
  check "$k: --resume goes on to the uninterrupted run's losses (max rel ${rel% *} <= 1e-7)" \
    "[ $rc -eq 0 ] && [ '${rel#* }' = 2 ] && awk 'BEGIN{exit !(${rel% *} <= 1e-7)}'"
  run ckpt info "${k}_resumed"
  check "$k: the resumed run's own checkpoint (settings by name) reads" \
    "[ $rc -eq 0 ] && diff <(grep -v '^created\|^checkpoint\|^step\|^data \|^ \|^tensors\|^$' last.out) \
       <(grep -v '^created\|^checkpoint\|^step\|^data \|^ \|^tensors\|^$' $FIX/$k/info.out) > /dev/null"
done
# the old zo field's scale (the one the warm-up chose) is the checkpoint's
run train --resume zo/step_00000002 --steps 4 --zo-scale 0.5 --threads 1 --quiet --out zo_scale
expect "zo: --zo-scale against the old checkpoint's chosen scale is named" 2 \
  "--zo-scale 0.5 conflicts with the checkpoint's"
finish
