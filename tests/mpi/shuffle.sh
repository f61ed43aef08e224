#!/bin/bash
# train --shuffle: every layout reads the single rank's seeded window order
# (20 steps of 12 cross a pass over the split's windows, so a second pass's
# order is read too): the same losses under data, tensor and pipeline
# parallelism; and the order is not the file's (the losses differ from an
# unshuffled run's).
. "$(dirname "$0")/lib.sh"
run 1 base --shuffle; check "single-rank baseline runs" "[ $? -eq 0 ]"
for lay in "2 1 1" "3 1 1" "1 2 1" "1 1 2 --micro-batches 2"; do
  run_layout shuf "$TINY --shuffle" $lay
  same_as_base base "$o" "$what"
done
run 1 plain; check "an unshuffled run runs" "[ $? -eq 0 ]"
rel=$(max_rel base/metrics.jsonl plain/metrics.jsonl)
check "the shuffled order is not the file's (max rel $rel > 1e-3)" "awk 'BEGIN{exit !($rel > 1e-3)}'"
finish
