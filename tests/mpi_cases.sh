#!/bin/bash
# Multi-rank behaviour, one case per ctest entry, each a separate mpirun.
# usage: mpi_cases.sh CASE MPITRAIN_BINARY SCRATCH_DIR
set -u
CASE=$1
BIN=$2
DIR=$3
HERE=$(cd "$(dirname "$0")" && pwd)
export MPITRAIN_BIN=$BIN
LOCAL="$HERE/../launch/mpitrain-local"
rm -rf "$DIR" && mkdir -p "$DIR" && cd "$DIR" || exit 1
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $1"; }
bad() { fail=$((fail + 1)); echo "FAIL - $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
losses() { sed -n 's/.*"step":\([0-9]*\),"loss":\([^,]*\),.*/\1 \2/p' "$1"; }
# max relative difference of the losses of two runs, step by step
max_rel() { join <(losses "$1") <(losses "$2") | awk '{d=$2-$3; if(d<0)d=-d; r=d/($2<0?-$2:$2); if(r>m)m=r} END{printf "%.3g", m+0}'; }
same_steps() { [ "$(losses "$1" | wc -l)" -eq "$(losses "$2" | wc -l)" ] && [ "$(losses "$1" | wc -l)" -gt 0 ]; }

for i in $(seq 1 80); do echo "Line $i: and the evening and the morning were the day, saith the preacher."; done > corpus.txt
"$BIN" prepare corpus.txt --out corpus.tok --val-fraction 0.1 > /dev/null || { echo "FAIL - prepare"; exit 1; }
TINY="--layers 2 --heads 2 --embd 32 --seq-len 32 --batch 12 --data corpus.tok --threads 1 --quiet --eval-every 0 --steps 20"
run() { local n=$1 out=$2; shift 2; timeout 240 "$LOCAL" -n "$n" train $TINY --out "$out" "$@" > "$out.log" 2>&1; }

case "$CASE" in
dp[0-9])
  n=${CASE#dp}
  run 1 base; check "single-rank baseline runs" "[ $? -eq 0 ]"
  run "$n" "dp$n" --dp "$n"; check "dp=$n runs" "[ $? -eq 0 ]"
  check "dp=$n has all 20 steps" "same_steps base/metrics.jsonl dp$n/metrics.jsonl"
  rel=$(max_rel base/metrics.jsonl "dp$n/metrics.jsonl")
  check "dp=$n losses match single rank (max rel diff $rel <= 1e-4)" "awk 'BEGIN{exit !($rel <= 1e-4)}'"
  ;;
zero)
  for z in 0 1 2; do run 4 "z$z" --dp 4 --zero $z; check "dp=4 zero=$z runs" "[ $? -eq 0 ]"; done
  for z in 1 2; do
    rel=$(max_rel z0/metrics.jsonl "z$z/metrics.jsonl")
    check "zero=$z losses match zero=0 (max rel diff $rel <= 1e-4)" "same_steps z0/metrics.jsonl z$z/metrics.jsonl && awk 'BEGIN{exit !($rel <= 1e-4)}'"
  done
  run 1 one --zero 0
  one=$(sed -n 's/.*"opt_state_bytes_per_rank":\[\([0-9]*\).*/\1/p' one/summary.json)
  four=$(sed -n 's/.*"opt_state_bytes_per_rank":\[\([0-9,]*\)\].*/\1/p' z1/summary.json)
  check "zero=1 at dp=4: optimizer bytes per rank ($four) ~ 1/4 of dp=1 ($one)" \
    "echo $four | tr , '\n' | awk -v one=$one '{r=\$1*4/one; if (r<0.99||r>1.01) bad=1} END{exit bad}'"
  ;;
rerun)
  run 3 a --dp 3 --zero 1; run 3 b --dp 3 --zero 1
  check "dp=3 re-run is bit-identical" "same_steps a/metrics.jsonl b/metrics.jsonl && cmp -s <(losses a/metrics.jsonl) <(losses b/metrics.jsonl)"
  check "dp=3 final weights are byte-identical" "cmp -s a/ckpt/step_00000020/rank_00001.bin b/ckpt/step_00000020/rank_00001.bin"
  ;;
resume)
  run 2 full --dp 2 --zero 1 --save-every 10; check "dp=2 zero=1 run saves" "[ -f full/ckpt/step_00000010/manifest.pb ]"
  check "each rank wrote its shard" "[ -f full/ckpt/step_00000010/rank_00000.bin ] && [ -f full/ckpt/step_00000010/rank_00001.bin ]"
  timeout 240 "$LOCAL" -n 2 train --resume full/ckpt/step_00000010 --out cont --steps 20 --dp 2 --zero 1 --threads 1 --quiet > cont.log 2>&1
  check "resume under the same layout runs" "[ $? -eq 0 ]"
  check "resumed steps 11..20 are bit-identical" "cmp -s <(losses full/metrics.jsonl | tail -10) <(losses cont/metrics.jsonl)"
  ;;
badlaunch)
  timeout 60 "$LOCAL" -n 2 train $TINY --dp 3 --out x > x.log 2>&1; rc=$?
  check "world 2 vs --dp 3 fails (rc $rc), no hang" "[ $rc -ne 0 ] && [ $rc -ne 124 ]"
  check "message says what to change" "grep -q 'the job has 2 ranks but --dp 3' x.log"
  check "rank 0 alone prints it" "[ \$(grep -c 'invalid plan' x.log) -eq 1 ]"
  timeout 60 "$LOCAL" -n 3 train $TINY --dp 3 --batch 8 --out y > y.log 2>&1; rc=$?
  check "dp 3 with batch 8 fails (rc $rc)" "[ $rc -ne 0 ] && [ $rc -ne 124 ]"
  check "message names the fix" "grep -q -- '--dp 3 does not divide global batch 8' y.log"
  check "no run directory was made" "[ ! -e y ]"
  # the data exists for rank 0 (working dir a/) but not for rank 1 (b/)
  mkdir -p a b && cp corpus.tok a/
  root=(); [ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
  timeout 60 mpirun "${root[@]}" --oversubscribe --bind-to none --mca mpi_yield_when_idle 1 \
    -np 1 -wdir "$DIR/a" "$BIN" train $TINY --data corpus.tok --out run : \
    -np 1 -wdir "$DIR/b" "$BIN" train $TINY --data corpus.tok --out run > z.log 2>&1; rc=$?
  check "data missing on rank 1 fails (rc $rc), no hang" "[ $rc -ne 0 ] && [ $rc -ne 124 ]"
  check "rank 0 names rank 1 and the file" "grep -q 'rank 1: --data: corpus.tok' z.log"
  ;;
trace)
  run 2 tr --micro-batches 2 --steps 3 --trace tr.json; check "traced run exits 0" "[ $? -eq 0 ]"
  /usr/bin/python3 - tr.json 2 > trace_check.log 2>&1 <<'PY'
import json, sys
ev = json.load(open(sys.argv[1]))["traceEvents"]
ranks = int(sys.argv[2])
spans = [e for e in ev if e["ph"] == "X"]
assert {e["pid"] for e in spans} == set(range(ranks)), "every rank has a track"
for r in range(ranks):
    mine = sorted((e for e in spans if e["pid"] == r), key=lambda e: (e["ts"], -e["dur"]))
    names = {e["name"] for e in mine}
    assert {"forward mb0", "backward mb1", "optimizer"} <= names, names
    stack = []
    for e in mine:
        assert e["dur"] >= 0, e
        while stack and stack[-1] <= e["ts"]:
            stack.pop()
        if stack:  # a span that starts inside another must end inside it
            assert e["ts"] + e["dur"] <= stack[-1] + 1e-3, ("badly nested", e)
        stack.append(e["ts"] + e["dur"])
print("trace ok:", len(spans), "spans")
PY
  rc=$?
  check "trace is valid JSON, every rank present, spans well nested ($(tail -1 trace_check.log))" "[ $rc -eq 0 ]"
  ;;
layout_*)
  # any dp x tp x pp, either schedule, 1 or 4 micro-batches: the single-rank losses
  IFS=_ read -r _ d t p <<< "$CASE"
  L="--layers 2 --heads 4 --embd 32 --seq-len 32 --batch 32 --data corpus.tok --threads 1 --quiet --eval-every 0 --steps 20"
  timeout 240 "$LOCAL" -n 1 train $L --out base > base.log 2>&1; check "single-rank baseline runs" "[ $? -eq 0 ]"
  for sched in gpipe 1f1b; do
    for M in 1 4; do
      o="l${d}${t}${p}_${sched}_$M"
      timeout 240 "$LOCAL" -n $((d * t * p)) train $L --dp "$d" --tp "$t" --pp "$p" --pp-schedule $sched \
        --micro-batches $M --out "$o" > "$o.log" 2>&1
      check "($d,$t,$p) $sched M=$M runs" "[ $? -eq 0 ]"
      rel=$(max_rel base/metrics.jsonl "$o/metrics.jsonl")
      check "($d,$t,$p) $sched M=$M matches single rank (max rel $rel <= 1e-4)" \
        "same_steps base/metrics.jsonl $o/metrics.jsonl && awk 'BEGIN{exit !($rel <= 1e-4)}'"
    done
  done
  ;;
zero_layouts)
  L="--layers 2 --heads 4 --embd 32 --seq-len 32 --batch 16 --data corpus.tok --threads 1 --quiet --eval-every 0 --steps 20"
  timeout 240 "$LOCAL" -n 1 train $L --out base > base.log 2>&1
  for lay in "4 1 1" "2 2 1" "1 1 4"; do
    set -- $lay
    o="z$1$2$3"
    timeout 240 "$LOCAL" -n 4 train $L --dp $1 --tp $2 --pp $3 --zero 1 --micro-batches 2 --out $o > $o.log 2>&1
    check "($1,$2,$3) zero=1 runs" "[ $? -eq 0 ]"
    rel=$(max_rel base/metrics.jsonl "$o/metrics.jsonl")
    check "($1,$2,$3) zero=1 matches single rank (max rel $rel <= 1e-4)" "same_steps base/metrics.jsonl $o/metrics.jsonl && awk 'BEGIN{exit !($rel <= 1e-4)}'"
  done
  ;;
pipeline)
  # every pp x M x schedule finishes (no deadlock); activation slots as promised
  L="--layers 2 --heads 2 --embd 16 --seq-len 16 --batch 24 --data corpus.tok --threads 1 --quiet --eval-every 1 --eval-batches 1 --steps 2"
  for p in 2 3 4; do
    for M in 1 2 3 8; do
      for sched in gpipe 1f1b; do
        o="p${p}_m${M}_$sched"
        timeout 60 "$LOCAL" -n $p train $L --pp $p --micro-batches $M --pp-schedule $sched --out $o > $o.log 2>&1; rc=$?
        check "pp=$p M=$M $sched completes (rc $rc)" "[ $rc -eq 0 ]"
        slots=$(sed -n 's/.*"act_slots_per_rank":\[\([0-9,]*\)\].*/\1/p' $o/summary.json)
        want=$(awk -v p=$p -v M=$M -v s=$sched 'BEGIN{for(i=0;i<p;i++){v=(s=="gpipe")?M:((p-i<M)?p-i:M); printf "%s%d", (i?",":""), v}}')
        check "pp=$p M=$M $sched keeps activations for [$slots] micro-batches (expected [$want], <= pp under 1f1b)" "[ '$slots' = '$want' ]"
      done
    done
  done
  ;;
badlayout)
  timeout 60 "$LOCAL" -n 2 train $TINY --tp 2 --heads 3 --embd 33 --out x > x.log 2>&1; rc=$?
  check "tp 2 with 3 heads is refused before training (rc $rc)" "[ $rc -eq 2 ] && grep -q -- '--tp 2 does not divide --heads 3' x.log && [ ! -e x ]"
  timeout 60 "$LOCAL" -n 5 train $TINY --pp 5 --batch 5 --out y > y.log 2>&1; rc=$?
  check "pp 5 for a 4-block model is refused (rc $rc)" "[ $rc -eq 2 ] && grep -q -- '--pp 5 is more stages' y.log"
  timeout 60 "$LOCAL" -n 2 train $TINY --pp 2 --zero 2 --out z > z.log 2>&1; rc=$?
  check "zero 2 with pp 2 is refused with the fix (rc $rc)" "[ $rc -eq 2 ] && grep -q -- 'use --zero 1' z.log"
  ;;
tpgrad)
  for n in 2 4; do
    timeout 60 mpirun $( [ "$(id -u)" -eq 0 ] && echo --allow-run-as-root ) --oversubscribe --bind-to none \
      --mca mpi_yield_when_idle 1 -np $n "$(dirname "$BIN")/tests/mpi_tpgrad" > tpgrad$n.log 2>&1; rc=$?
    check "tp=$n: every shard's gradient equals its slice of the single-rank gradient ($(tail -1 tpgrad$n.log))" "[ $rc -eq 0 ]"
  done
  ;;
zo_identical)
  # 4 machines x 50 steps: the hash check compares every shard's weight bits across
  # machines every 5 steps; replaying base + journal gives the live weights bit for bit
  Z="--optimizer zo --zo-samples 2 --zo-check-every 5 --eval-every 0 --save-every 20 --keep-ckpts 0"
  run 4 a --dp 4 $Z --steps 50; check "4 machines x 50 steps with hash checks every 5 steps" "[ $? -eq 0 ]"
  check "journal written" "[ -s a/zo/journal.bin ]"
  # header 64 + roster record 24 + 50 steps x (8 head + 20 + 4 machines x 2 samples codes + 4 crc)
  check "the journal holds one byte per (machine, sample) per step" "[ \$(stat -c %s a/zo/journal.bin) -eq \$((64 + 24 + 50 * 40)) ]"
  run 4 b --dp 4 $Z --steps 50
  "$BIN" ckpt export a --format safetensors --out a.st > /dev/null && "$BIN" ckpt export b --format safetensors --out b.st > /dev/null
  check "a re-run gives byte-identical weights" "cmp -s a.st b.st"
  "$BIN" ckpt replay a/ckpt/step_00000020 a/zo/journal.bin --out replay > replay.log 2>&1
  check "replay from step 20 reaches step 50" "grep -q 'replayed to step 50' replay.log"
  "$BIN" ckpt export replay --format safetensors --out replay.st > /dev/null
  check "replayed weights == live weights, bit for bit" "cmp -s a.st replay.st"
  ;;
zo_layout)
  Z="--optimizer zo --zo-samples 2 --eval-every 0 --steps 30"
  run 2 flat --dp 2 $Z; run 4 piped --dp 2 --pp 2 $Z --micro-batches 2
  "$BIN" ckpt export flat --format safetensors --out flat.st > /dev/null && "$BIN" ckpt export piped --format safetensors --out piped.st > /dev/null
  check "dp=2 with pp=2 gives bit-identical weights to dp=2 after 30 steps" "[ -s flat.st ] && cmp -s flat.st piped.st"
  ;;
zo_roster)
  Z="--optimizer zo --zo-samples 2 --eval-every 0 --save-every 10 --keep-ckpts 0"
  run 4 four --dp 4 $Z --steps 20; check "4-machine run" "[ $? -eq 0 ]"
  # resume its step-10 checkpoint with 2 machines: steps 11..20 come from the journal
  timeout 240 "$LOCAL" -n 2 train --resume four/ckpt/step_00000010 --dp 2 --steps 30 --threads 1 \
    --save-every 10 --keep-ckpts 0 > two.log 2>&1
  check "2 machines resume a 4-machine run" "[ $? -eq 0 ]"
  check "caught up 10 steps by replay" "grep -q 'caught up 10 step' two.log"
  check "new roster epoch recorded" "grep -q 'roster epoch 1: 2 machine' two.log"
  check "continued to step 30" "grep -qx step_00000030 four/ckpt/latest"
  "$BIN" ckpt replay four/ckpt/step_00000010 four/zo/journal.bin --out rp > rp.log 2>&1
  "$BIN" ckpt export rp --format safetensors --out rp.st > /dev/null; "$BIN" ckpt export four --format safetensors --out live.st > /dev/null
  check "replay across the roster change == the live weights" "grep -q 'replayed to step 30' rp.log && cmp -s rp.st live.st"
  ;;
zo_bad)
  Z="--optimizer zo --zo-samples 2 --eval-every 0 --save-every 10 --keep-ckpts 0 --dp 2"
  run 2 j $Z --steps 10
  cp -r j cut && size=$(stat -c %s cut/zo/journal.bin) && truncate -s $((size - 3)) cut/zo/journal.bin
  "$BIN" ckpt replay j/ckpt/step_00000010 cut/zo/journal.bin --out x > cut.log 2>&1; rc=$?
  check "truncated journal: error naming the record (rc $rc)" "[ $rc -eq 1 ] && grep -q 'record 11 (byte' cut.log && grep -q truncated cut.log"
  cp -r j flip && printf '\x55' | dd of=flip/zo/journal.bin bs=1 seek=100 conv=notrunc 2> /dev/null
  "$BIN" ckpt replay j/ckpt/step_00000010 flip/zo/journal.bin --out y > flip.log 2>&1; rc=$?
  check "corrupted journal: checksum error naming the record (rc $rc)" "[ $rc -eq 1 ] && grep -q 'record 2 (byte' flip.log && grep -q checksum flip.log"
  MPITRAIN_TEST_FLIP_BIT=1,7 timeout 120 "$LOCAL" -n 2 train $TINY $Z --steps 20 --zo-check-every 5 --out desync > desync.log 2>&1; rc=$?
  check "a flipped weight bit on one rank stops the run (rc $rc)" "[ $rc -eq 1 ]"
  check "the message names the step and the shard" "grep -q 'step 10: weights of shard (tp 0, pp 0) differ between machines' desync.log"
  ;;
zo_finetune)
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
  ;;
reshard)
  # save under (2,2,1), continue under other layouts: the losses of the next
  # steps match the unresharded continuation; the weights are the same bits
  R="--layers 2 --heads 2 --embd 32 --seq-len 32 --batch 8 --data corpus.tok --threads 1 --quiet --eval-every 0 --save-every 5 --keep-ckpts 0"
  timeout 240 "$LOCAL" -n 4 train $R --steps 10 --dp 2 --tp 2 --zero 1 --out src > src.log 2>&1
  check "(2,2,1) zero=1 run saves step 5" "[ -f src/ckpt/step_00000005/manifest.pb ]"
  for lay in "1 1 4 0" "4 1 1 1" "1 2 2 0" "4 1 1 0" "1 1 4 1"; do
    set -- $lay
    o="to$1$2$3z$4"
    timeout 240 "$LOCAL" -n $(($1 * $2 * $3)) train --resume src/ckpt/step_00000005 --steps 10 --dp $1 --tp $2 --pp $3 \
      --zero $4 --threads 1 --quiet --out $o > $o.log 2>&1
    rel=$(max_rel <(grep '"loss"' src/metrics.jsonl | tail -5) $o/metrics.jsonl)
    check "resume under ($1,$2,$3) zero=$4 matches the continuation (max rel $rel <= 1e-4)" \
      "[ \$(losses $o/metrics.jsonl | wc -l) -eq 5 ] && awk 'BEGIN{exit !($rel <= 1e-4)}'"
  done
  "$BIN" ckpt reshard src/ckpt/step_00000005 --dp 1 --tp 1 --pp 4 --out off > off.log 2>&1
  check "offline reshard to (1,1,4)" "grep -q 'resharded to dp 1 x tp 1 x pp 4' off.log"
  "$BIN" ckpt export src/ckpt/step_00000005 --format safetensors --out a.st > /dev/null
  "$BIN" ckpt export off --format safetensors --out b.st > /dev/null
  check "resharded weights are byte-equal after gathering" "[ -s a.st ] && cmp -s a.st b.st"
  ;;
recovery)
  SUP="$HERE/../launch/mpitrain-launch"
  R="--layers 2 --heads 2 --embd 32 --seq-len 32 --batch 8 --data corpus.tok --threads 1 --quiet --eval-every 0 --save-every 4 --steps 16"
  timeout 240 "$LOCAL" -n 4 train $R --dp 4 --out ref > ref.log 2>&1
  "$BIN" ckpt export ref --format safetensors --out ref.st > /dev/null
  victim=$((RANDOM % 4)) step=$((5 + RANDOM % 10))
  MPITRAIN_TEST_KILL=$victim,$step timeout 240 "$SUP" --max-restarts 2 --timeout 60 -n 4 train $R --dp 4 --out k > k.log 2>&1
  check "kill -9 of rank $victim at step $step: the supervisor restarts and finishes" "[ $? -eq 0 ] && grep -q 'restart 1/2' k.log"
  "$BIN" ckpt export k --format safetensors --out k.st > /dev/null
  check "final weights equal the uninterrupted run's, bit for bit" "cmp -s ref.st k.st"
  MPITRAIN_TEST_DIE_IN_SAVE=0,12 timeout 240 "$SUP" --max-restarts 2 --timeout 60 -n 4 train $R --dp 4 --out s > s.log 2>&1
  check "killed while writing checkpoint 12: restarted from the intact step 8" "[ $? -eq 0 ] && grep -q 'from s/ckpt/step_00000008' s.log"
  "$BIN" ckpt export s --format safetensors --out s.st > /dev/null
  check "and the final weights are still bit-identical" "cmp -s ref.st s.st"
  MPITRAIN_TEST_HANG=2,6 timeout 240 "$SUP" --max-restarts 2 --timeout 4 -n 4 train $R --dp 4 --out h > h.log 2>&1
  check "a rank sleeping inside step 6 is detected within the timeout and restarted" "[ $? -eq 0 ] && grep -q 'a rank is stuck' h.log && grep -q 'restart 1/2' h.log"
  "$BIN" ckpt export h --format safetensors --out h.st > /dev/null
  check "the hung run's final weights are bit-identical too" "cmp -s ref.st h.st"
  check "no rank of a killed job is left running" "! pgrep -f 'out h ' > /dev/null"
  echo 2 > avail
  MPITRAIN_TEST_KILL=3,7 timeout 240 "$SUP" --elastic --ranks-file avail --max-restarts 2 --timeout 60 -n 4 train $R --out el > el.log 2>&1
  check "--elastic restarts with the 2 ranks still available" "[ $? -eq 0 ] && grep -q 'with 2 rank(s)' el.log && grep -q '\"ranks\":2' el/summary.json"
  rel=$(max_rel ref/metrics.jsonl el/metrics.jsonl)
  check "and continues the same trajectory (max rel $rel <= 1e-4)" "awk 'BEGIN{exit !($rel <= 1e-4)}'"
  grep -h 'recovered' k.log s.log h.log | sed 's/^/     /'
  ;;
*) echo "unknown case $CASE"; exit 2 ;;
esac
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
