#!/bin/bash
# A ZO journal whose last record was torn (disk full, power cut) resumes
# bit-identically; damage before the tail is still refused; a journal does
# not replay onto another run's checkpoint.
. "$(dirname "$0")/lib.sh"
  Z="--optimizer zo --zo-samples 2 --save-every 10 --keep-ckpts 0"
  run 2 a --dp 2 $Z; check "uninterrupted 20-step run" "[ $? -eq 0 ]"
  # b: a that died writing step 20's journal record: its step-10 checkpoint
  # is the latest, and the journal's last record is cut 5 bytes short
  cp -r a b && rm -rf b/ckpt/step_00000020 && echo step_00000010 > b/ckpt/latest
  sz=$(stat -c %s b/zo/journal.bin) && truncate -s $((sz - 5)) b/zo/journal.bin
  resume() { timeout 240 "$LOCAL" -n 2 train --resume "$1" --dp 2 --steps 20 --threads 1 \
    --progress lines --save-every 10 --keep-ckpts 0 > "$1.resume.log" 2>&1; }
  resume b; check "resume over a torn journal tail" "[ $? -eq 0 ]"
  check "the torn record is reported" "grep -q 'dropped a torn last record at byte [0-9]* (31 bytes): the write was cut short' b.resume.log"
  check "steps 11..19 caught up from the journal" "grep -q 'caught up 9 step(s)' b.resume.log"
  check "final weights bit-identical to the uninterrupted run" \
    "cmp -s a/ckpt/step_00000020/rank_00000.bin b/ckpt/step_00000020/rank_00000.bin && cmp -s a/ckpt/step_00000020/rank_00001.bin b/ckpt/step_00000020/rank_00001.bin"
  check "the journal is the uninterrupted run's" "cmp -s a/zo/journal.bin b/zo/journal.bin"
  check "losses of steps 1..20 equal, each step once" \
    "cmp -s <(losses a/metrics.jsonl) <(losses b/metrics.jsonl) && [ \$(losses b/metrics.jsonl | wc -l) -eq 20 ]"
  # replay reads past a torn tail with a warning too
  cp a/zo/journal.bin torn.bin && truncate -s $(($(stat -c %s torn.bin) - 3)) torn.bin
  "$BIN" ckpt replay a/ckpt/step_00000010 torn.bin --out rp > rp.log 2>&1
  check "replay over a torn tail warns and stops at step 19" \
    "[ $? -eq 0 ] && grep -q 'warning: journal torn.bin: dropped a torn last record' rp.log && grep -q 'replayed to step 19' rp.log"
  # c: a record in the middle damaged; intact records follow it
  cp -r b c && rm -rf c/ckpt/step_00000020 && echo step_00000010 > c/ckpt/latest
  # header 64 + roster 24 + 36-byte steps: a code byte of step 6's record
  printf '\x55' | dd of=c/zo/journal.bin bs=1 seek=$((64 + 24 + 36 * 5 + 28)) conv=notrunc 2> /dev/null
  resume c; check "damage before the tail is refused" "[ $? -ne 0 ] && grep -q 'record 7 (byte 268): checksum mismatch' c.resume.log"
  "$BIN" ckpt replay a/ckpt/step_00000010 c/zo/journal.bin --out rc > rc.log 2>&1
  check "and replay refuses it" "[ $? -ne 0 ] && grep -q 'checksum mismatch' rc.log"
  # a journal onto a foreign base
  run 1 other $Z --seed 7 --steps 10 --batch 6 --embd 64; check "another run" "[ $? -eq 0 ]"
  "$BIN" ckpt replay other/ckpt/step_00000010 a/zo/journal.bin --out rf > rf.log 2>&1
  check "replay onto a foreign base is refused, naming what differs" \
    "[ $? -ne 0 ] && grep -q 'does not belong to the base checkpoint (seed: journal 1337, base 7; parameters: journal' rf.log"
finish
