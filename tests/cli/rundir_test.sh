#!/bin/bash
# The run directory: --overwrite starts from an empty one (and replaces
# only a run's, never through a link), a finished run resumed is complete,
# one run at a time holds it, metrics.jsonl describes every step once (ZO catch-up included)
# and a row that cannot be written stops the run.
# usage: rundir_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
. "$(cd "$(dirname "$0")/.." && pwd)/check.sh"
BIN=$1
DIR=$2
rm -rf "$DIR" && mkdir -p "$DIR" && cd "$DIR" || exit 1
for i in $(seq 1 60); do
  echo "And it came to pass, line $i, that the quick brown fox jumped over the lazy dog."
done > corpus.txt
"$BIN" prepare corpus.txt --out corpus.tok --val-fraction 0.1 > /dev/null || { echo "FAIL - prepare"; exit 1; }
TINY="--layers 2 --heads 2 --embd 32 --seq-len 32 --batch 4 --data corpus.tok --threads 1 --progress lines --eval-every 0"
ZO="--optimizer zo --zo-samples 2"
steps_once() { # every step 1..$2 has exactly one row in $1
  [ "$(sed -n 's/^{"step":\([0-9]*\),"loss".*/\1/p' "$1" | tr '\n' ' ')" = "$(seq 1 "$2" | tr '\n' ' ')" ]
}

# --overwrite: nothing of the old run survives (its journal, its checkpoints)
"$BIN" train $TINY $ZO --steps 10 --save-every 5 --keep-ckpts 0 --out o > o1.log 2>&1
check "zo run to overwrite" "[ $? -eq 0 ] && [ -f o/ckpt/step_00000010/manifest.pb ]"
"$BIN" train $TINY $ZO --zo-samples 3 --seed 5 --steps 6 --save-every 5 --keep-ckpts 0 --out o --overwrite > o2.log 2>&1
check "overwrite with other settings runs" "[ $? -eq 0 ]"
check "no steps caught up from the old journal" "! grep -q 'caught up' o2.log"
check "only the new run's checkpoints" "[ \"\$(ls o/ckpt | tr '\n' ' ')\" = 'latest step_00000005 step_00000006 ' ]"
check "the old directory is gone, not left beside" "[ -z \"\$(ls -d o.* 2> /dev/null)\" ]"
check "metrics.jsonl holds the new run's 6 steps" "steps_once o/metrics.jsonl 6"

# --overwrite replaces only what a run wrote, and never through a link
mkdir -p d/Documents && echo x > d/Documents/thesis.txt
"$BIN" train $TINY --steps 2 --out d --overwrite > d.log 2>&1
check "--overwrite of a folder that holds no run is refused (exit 2)" "[ $? -eq 2 ]"
check "naming what is not the run's" "grep -q 'overwrite would remove d/Documents, which is not a run' d.log"
check "and nothing in it is touched" "[ \"\$(cat d/Documents/thesis.txt)\" = x ] && [ \"\$(ls -A d)\" = Documents ]"
mkdir real && echo y > real/keep && ln -s real lnk
for out in lnk lnk/; do
  "$BIN" train $TINY --steps 2 --out $out --overwrite > lnk.log 2>&1
  check "--overwrite --out $out (a link to real/) is refused (exit 2)" "[ $? -eq 2 ] && grep -q 'lnk: it is a symbolic link' lnk.log"
  check "real/ and the link are untouched" "[ -L lnk ] && [ \"\$(ls -A real)\" = keep ]"
done
cp -r o o2 && echo mine > o2/notes.txt
"$BIN" train $TINY --steps 2 --out o2 --overwrite > o2.log 2>&1
check "a run directory holding someone's file is refused too" "[ $? -eq 2 ] && grep -q 'o2/notes.txt' o2.log && [ -f o2/notes.txt ]"
rm o2/notes.txt && ln -s "$PWD/real" o2/ckpt/step_00000009
"$BIN" train $TINY --steps 2 --out o2 --overwrite > o2.log 2>&1
check "so is one whose ckpt/ holds a link" "[ $? -eq 2 ] && grep -q 'o2/ckpt/step_00000009' o2.log && [ -f real/keep ]"

# a run resumed at its --steps is complete: nothing to train, exit 0
"$BIN" train --resume o --steps 6 --threads 1 > done.log 2>&1
check "--resume of a finished run exits 0" "[ $? -eq 0 ]"
check "saying the run is complete" "grep -q 'the run is complete: checkpoint o/ckpt/step_00000006 is at step 6 of --steps 6' done.log"
check "and trains nothing" "steps_once o/metrics.jsonl 6"
"$BIN" train --resume o --steps 5 --threads 1 > past.log 2>&1
check "--steps below the checkpoint's is refused (exit 2)" "[ $? -eq 2 ] && grep -q 'at step 6, past --steps 5' past.log"

# rows: wall-clock time, tokens so far; mfu only with --peak-gflops
check "rows carry time and tokens" "grep -q '^{\"step\":6,.*\"tokens\":768,.*\"time\":[0-9]*\\.[0-9]*}' o/metrics.jsonl"
check "no mfu without a peak" "! grep -q mfu o/metrics.jsonl"
"$BIN" train $TINY --steps 2 --peak-gflops 100 --eval-every 2 --out p > p.log 2>&1
check "mfu with --peak-gflops" "[ $? -eq 0 ] && grep -q '^{\"step\":2,.*\"mfu\":[0-9]' p/metrics.jsonl"
check "summary.json has the final validation loss and the wall time" \
  "grep -q '\"final_val_loss\":[0-9].*\"wall_s\":[0-9]' p/summary.json"

# one run at a time: a second run on a directory in use is refused
MPITRAIN_TEST_HANG=0,3 "$BIN" train $TINY --steps 5 --save-every 1 --out busy > holder.log 2>&1 &
holder=$!
for _ in $(seq 1 600); do grep -qx 2 busy/heartbeat 2> /dev/null && break; sleep 0.1; done
"$BIN" train $TINY --steps 5 --out busy --overwrite > second.log 2>&1
check "a second --overwrite run is refused" "[ $? -eq 1 ]"
check "naming the directory and the holder's pid" "grep -q -- \"--out busy is in use by another run (pid $holder holds busy/.lock)\" second.log"
"$BIN" train --resume busy --steps 5 --threads 1 > third.log 2>&1
check "a resume of the directory in use is refused too" "[ $? -eq 1 ] && grep -q 'in use by another run' third.log"
kill -KILL "$holder"; wait "$holder" 2> /dev/null   # it sleeps in the hang hook, deaf to TERM
check "the holder's rows are whole (no NUL bytes)" "steps_once busy/metrics.jsonl 2 && ! grep -qaP '\\x00' busy/metrics.jsonl"
check "nothing moved aside" "[ -z \"\$(ls -d busy.* 2> /dev/null)\" ]"

# ZO catch-up: steps past the checkpoint keep (or regain) their rows
"$BIN" train $TINY $ZO --steps 10 --save-every 5 --keep-ckpts 0 --out m > m1.log 2>&1
check "zo run" "[ $? -eq 0 ]"
rm -rf m/ckpt/step_00000010 && echo step_00000005 > m/ckpt/latest
head -6 m/metrics.jsonl > m1.rows && cp m1.rows m/metrics.jsonl   # died before writing step 7's row
"$BIN" train --resume m --steps 12 --threads 1 --progress lines > m2.log 2>&1
check "resume with catch-up" "[ $? -eq 0 ] && grep -q 'caught up 5 step(s)' m2.log"
check "metrics.jsonl has every step 1..12 once" "steps_once m/metrics.jsonl 12"
check "the rows the old sitting wrote are kept" "cmp -s m1.rows <(head -6 m/metrics.jsonl)"
check "the rows it never wrote come from the journal" \
  "[ \$(grep -c '\"loss\":null,\"lr\":[0-9.e-]*,\"tokens\":[0-9]*,\"time\":[0-9.]*,\"replayed\":true}' m/metrics.jsonl) -eq 4 ]"

# disk full: a row that cannot be written stops the run, naming the file
"$BIN" train $TINY --steps 4 --save-every 2 --out f > f1.log 2>&1
check "run to fill" "[ $? -eq 0 ]"
rm f/metrics.jsonl && ln -s /dev/full f/metrics.jsonl
"$BIN" train --resume f --steps 6 --threads 1 --progress lines > f2.log 2>&1
check "a full disk stops the run with exit 1" "[ $? -eq 1 ]"
check "naming metrics.jsonl and why" "grep -q 'f/metrics.jsonl: cannot write a row: No space left on device' f2.log"
check "no step past the failed row is saved" "grep -qx step_00000004 f/ckpt/latest"

finish
