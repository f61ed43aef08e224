#!/bin/bash
# DiLoCo (--diloco H): the outer step's plumbing against plain data-parallel
# SGD, replicas that agree after the last outer step, bit-identical resume
# from the middle of a round (blocking and delayed), resharding, bad flags.
. "$(dirname "$0")/lib.sh"
SGD="--optimizer sgd --momentum 0 --grad-clip 0 --lr 0.05"
# inner SGD without momentum for one step, outer lr 1 without momentum:
# the mean of the replicas' steps is the step on the mean gradient
run 4 dp --dp 4 $SGD
run 4 dl --dp 4 $SGD --diloco 1 --outer-lr 1 --outer-momentum 0
check "diloco H=1 dp=4 runs" "[ $? -eq 0 ] && same_steps dp/metrics.jsonl dl/metrics.jsonl"
rel=$(max_rel dp/metrics.jsonl dl/metrics.jsonl)
check "H=1, outer lr 1, no momenta = data-parallel SGD (max rel $rel <= 1e-5)" "awk 'BEGIN{exit !($rel <= 1e-5)}'"
run 4 dl22 --dp 2 --pp 2 $SGD --diloco 1 --outer-lr 1 --outer-momentum 0
rel=$(max_rel dp/metrics.jsonl dl22/metrics.jsonl)
check "... and with 2 pipeline stages per replica (tied embedding; max rel $rel <= 1e-5)" \
  "same_steps dp/metrics.jsonl dl22/metrics.jsonl && awk 'BEGIN{exit !($rel <= 1e-5)}'"

# tensor name -> "crc nbytes" for every record of KIND in a checkpoint
crcs() { "$BIN" ckpt info "$1" | awk -v k="$2" '$1 ~ "^"k"/" {sub("^"k"/", "", $1); print $1, $NF, $(NF-1)}' | sort; }
# the bytes of record NAME (its file, offset and length from ckpt info)
record_bytes() {
  "$BIN" ckpt info "$1" | awk -v n="$2" '$1 == n {print $3, $4, $5}' | {
    read -r f off len && tail -c +$((off + 1)) "$1/$f" | head -c "$len"; }
}
D="--diloco 5 --save-every 7 --keep-ckpts 0"
for ov in 0 1; do
  run 4 "full$ov" --dp 4 $D --diloco-overlap "$ov"
  check "overlap $ov: 4 replicas, H=5, 20 steps" "[ $? -eq 0 ] && [ \$(losses full$ov/metrics.jsonl | wc -l) -eq 20 ]"
  first=$(losses "full$ov/metrics.jsonl" | head -1 | cut -d' ' -f2)
  last=$(losses "full$ov/metrics.jsonl" | tail -1 | cut -d' ' -f2)
  check "overlap $ov: it learns (loss $first -> $last)" "awk 'BEGIN{exit !($last < $first - 0.5)}'"
  f="full$ov/ckpt/step_00000020"
  agree=1
  for r in 1 2 3; do cmp -s <(crcs "$f" param) <(crcs "$f" "param.r$r") || agree=0; done
  check "overlap $ov: after the last outer step every replica holds the same weights (checksums)" \
    "[ $agree -eq 1 ] && [ \$(crcs $f param | wc -l) -gt 10 ]"
  check "overlap $ov: ... and the bytes (replica 3's lm-head embedding = replica 0's)" \
    "cmp -s <(record_bytes $f param/wte) <(record_bytes $f param.r3/wte) && [ \$(record_bytes $f param/wte | wc -c) -gt 0 ]"
  check "overlap $ov: the outer state is in the checkpoint" \
    "[ \$(crcs $f outer_g | wc -l) -gt 10 ] && [ \$(crcs $f outer_mom | wc -l) -gt 10 ]"
  # step 7 is the middle of the second round (and under overlap the first
  # round's all-reduce is still to be applied)
  timeout 240 "$LOCAL" -n 4 train $TINY $D --dp 4 --diloco-overlap "$ov" --resume "full$ov/ckpt/step_00000007" \
    --out "cont$ov" > "cont$ov.log" 2>&1
  check "overlap $ov: resume from step 7 runs" "[ $? -eq 0 ]"
  check "overlap $ov: resumed steps 8..20 are bit-identical" \
    "cmp -s <(losses full$ov/metrics.jsonl | tail -13) <(losses cont$ov/metrics.jsonl)"
  check "overlap $ov: ... and so are the final weights of every replica" \
    "cmp -s <(\"$BIN\" ckpt info $f | awk '/^  (param|opt|outer)/{print \$1, \$NF}') <(\"$BIN\" ckpt info cont$ov/ckpt/step_00000020 | awk '/^  (param|opt|outer)/{print \$1, \$NF}')"
done
check "a delayed round in flight is saved" "[ \$(crcs full1/ckpt/step_00000007 outer_pend | wc -l) -gt 10 ]"
timeout 240 "$LOCAL" -n 4 train $TINY $D --dp 4 --resume full1/ckpt/step_00000007 --out noov > noov.log 2>&1
check "resuming it without --diloco-overlap 1 is refused by name" "[ $? -ne 0 ] && grep -q -- '--diloco-overlap 1' noov.log"

# bf16, int8 and int4 on the wire with error feedback: 1/2, ~0.27 and ~0.14
# of an outer step's bytes, the feedback in the checkpoint (resume stays
# bit-identical), about the same loss
bytes5() { sed -n 's/.*"step":5,.*"comm_bytes":\([0-9]*\),.*/\1/p' "$1/metrics.jsonl"; }
run 4 w32 --dp 4 --diloco 5 --steps 5
a=$(losses full1/metrics.jsonl | tail -1 | cut -d' ' -f2)
# format, bytes ratio range, final-loss tolerance against fp32's (a list,
# not a here-document on stdin: mpirun would read it)
for spec in "bf16 0.45 0.55 1e-3" "int8 0.24 0.32 1e-3" "int4 0.12 0.19 1e-2"; do
  read -r w lo hi tol <<< "$spec"
  run 4 "$w" --dp 4 $D --diloco-wire "$w" --diloco-overlap 1
  check "$w pseudo-gradients run" "[ $? -eq 0 ] && [ \$(crcs $w/ckpt/step_00000007 outer_err.r2 | wc -l) -gt 10 ]"
  timeout 240 "$LOCAL" -n 4 train $TINY $D --dp 4 --diloco-wire "$w" --diloco-overlap 1 \
    --resume "$w/ckpt/step_00000007" --out "${w}c" > "${w}c.log" 2>&1
  check "$w: resumed steps 8..20 are bit-identical" "cmp -s <(losses $w/metrics.jsonl | tail -13) <(losses ${w}c/metrics.jsonl)"
  b=$(losses "$w/metrics.jsonl" | tail -1 | cut -d' ' -f2)
  check "$w: the final loss is fp32's to $tol ($b vs $a)" "awk 'BEGIN{d=$a-$b; if(d<0)d=-d; exit !(d < $tol)}'"
  run 4 "${w}5" --dp 4 --diloco 5 --steps 5 --diloco-wire "$w"
  check "$w: an outer step sends $lo..$hi of fp32's bytes ($(bytes5 "${w}5") vs $(bytes5 w32))" \
    "awk 'BEGIN{r=$(bytes5 "${w}5")/$(bytes5 w32); exit !(r > $lo && r < $hi)}'"
done

# resharding: saved as 2 replicas of 2 tensor-parallel ranks, continued as
# 2 replicas of 2 pipeline stages (on the fly, and after `ckpt reshard`)
R="--diloco 4 --save-every 6 --keep-ckpts 0 --steps 12"
run 4 src --dp 2 --tp 2 $R
check "2 replicas x tp 2 run saves step 6 (mid-round)" "[ -f src/ckpt/step_00000006/manifest.pb ]"
timeout 240 "$LOCAL" -n 4 train $TINY $R --dp 2 --pp 2 --resume src/ckpt/step_00000006 --out to_pp > to_pp.log 2>&1
rel=$(max_rel <(grep '"loss"' src/metrics.jsonl | tail -6) to_pp/metrics.jsonl)
check "resumed as 2 replicas x pp 2: the continuation's losses (max rel $rel <= 1e-4)" \
  "[ \$(losses to_pp/metrics.jsonl | wc -l) -eq 6 ] && awk 'BEGIN{exit !($rel <= 1e-4)}'"
"$BIN" ckpt reshard src/ckpt/step_00000006 --dp 2 --tp 1 --pp 2 --out off > off.log 2>&1
check "offline reshard carries the outer state and each replica's own" \
  "[ \$(crcs off outer_g | wc -l) -gt 10 ] && [ \$(crcs off param.r1 | wc -l) -gt 10 ] && [ \$(crcs off opt_v.r1 | wc -l) -gt 10 ]"
timeout 240 "$LOCAL" -n 4 train $TINY $R --dp 2 --pp 2 --resume off --out from_off > from_off.log 2>&1
check "... and resuming it gives the same losses as resharding on the fly" \
  "cmp -s <(losses to_pp/metrics.jsonl) <(losses from_off/metrics.jsonl) && [ \$(losses from_off/metrics.jsonl | wc -l) -eq 6 ]"

# bad flags: a clear message naming the flag, non-zero exit
for bad in "--diloco 5 --optimizer zo" "--diloco 5 --zero 1" "--diloco-overlap 1" "--diloco-wire bf16" "--diloco-wire int4" "--diloco-wire int2" \
  "--diloco 10 --diloco-fragments 3" "--diloco 10 --diloco-fragments 2"; do
  timeout 60 "$LOCAL" -n 2 train $TINY --dp 2 $bad --out badrun > bad.log 2>&1
  rc=$?
  flag=$(echo "$bad" | awk '{print $(NF-1)}')
  check "refused: $bad (exit $rc, message names $flag)" "[ $rc -ne 0 ] && grep -q -- '$flag' bad.log && ! grep -qi 'segmentation\|core dumped' bad.log"
done
finish
