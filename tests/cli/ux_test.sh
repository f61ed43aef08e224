#!/bin/bash
# What a newcomer sees (issue 21): validation losses that say what they are
# a mean over (metrics, summary, the start line) and `eval --windows N`
# reproducing the trainer's; an empty validation split said once at the
# start; --keep-best (ckpt/best, never rotated away); a refused command
# makes no dataset first; the progress bar keeps its ETA at 80 columns;
# plan --help lists what plan uses; plan --link is range-checked.
# usage: ux_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../check.sh"
scratch_dir "$1" "$2"
has() { grep -qF -- "$1" last.out; }

for i in $(seq 1 80); do
  echo "And it came to pass, in verse $i, that the quick brown fox jumped over the lazy dog."
done > corpus.txt
run prepare corpus.txt --out corpus.tok --val-fraction 0.1
[ "$rc" -eq 0 ] || { echo "FAIL - prepare failed; cannot go on"; cat last.err; exit 1; }
TINY="--layers 2 --heads 2 --embd 16 --seq-len 16 --batch 4 --data corpus.tok --threads 1"

# ---- which validation loss: the trainer's windows, and eval's ---------------
# 679 val tokens, T 16: 42 windows; --eval-batches 2 x --batch 4 = the first 8
run train $TINY --steps 3 --eval-every 3 --eval-batches 2 --progress lines --out val
check "the start says what val_loss is a mean over, and how to reproduce it" \
  "[ $rc -eq 0 ] && has 'validation: val_loss is the mean loss over the first 8 of the 42 windows' && has 'mpitrain eval --windows 8'"
check "metrics.jsonl's evaluation rows say val_windows 8" \
  "[ \$(grep -c '\"val_loss\":[^,]*,\"val_windows\":8' val/metrics.jsonl) -eq 2 ]"
check "summary.json says final_val_loss is over 8 windows" \
  "grep -q '\"final_val_loss\":[0-9.]*,\"val_windows\":8' val/summary.json"
want=$(printf '%.4f' "$(sed -n 's/.*"step":3,.*"val_loss":\([^,}]*\).*/\1/p' val/metrics.jsonl)")
run eval --ckpt val --data corpus.tok --threads 1
check "eval by default covers every window and says so, naming the run's 8 and the flag" \
  "[ $rc -eq 0 ] && grep -q '^loss [0-9.]* over 42 windows (672 tokens): all of corpus.tok.s validation split; the run.s val_loss is over its first 8 (--windows 8)$' last.out"
run eval --ckpt val --data corpus.tok --threads 1 --windows 8
check "eval --windows 8 gives the trainer's final val_loss ($want)" \
  "[ $rc -eq 0 ] && grep -qx 'loss $want over 8 windows (128 tokens)' last.out"
# past the split's end the trainer takes the windows round again; so does --windows
run train $TINY --steps 1 --eval-every 1 --eval-batches 12 --progress lines --out cyc
check "a validation of more windows than the split holds says they are taken round again" \
  "[ $rc -eq 0 ] && has 'the first 48 of the 42 windows' && has 'taken round again'"
want=$(printf '%.4f' "$(sed -n 's/.*"step":1,.*"val_loss":\([^,}]*\).*/\1/p' cyc/metrics.jsonl)")
run eval --ckpt cyc --data corpus.tok --threads 1 --windows 48
check "eval --windows 48 gives that val_loss too ($want)" \
  "[ $rc -eq 0 ] && grep -qx 'loss $want over 48 windows (768 tokens)' last.out"
run eval --ckpt cyc --data corpus.tok --windows 8 --batches 2
expect "--windows with --batches is refused" 1 "give one of them"

# ---- --out and --trace make their folders (plot, export, prepare: cli_test)
run train $TINY --steps 1 --eval-every 0 --quiet --trace traces/a/t.json --out traced
check "train --trace into folders that do not exist yet makes them" \
  "[ $rc -eq 0 ] && [ -s traces/a/t.json ]"

# ---- an empty validation split is said once, at the start --------------------
# corpus.tok with every token moved into the training part (n_val = 0)
python3 - corpus.tok noval.tok <<'EOF'
import struct, sys
def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
    return c ^ 0xFFFFFFFF
d = bytearray(open(sys.argv[1], 'rb').read())
tr, va = struct.unpack_from('<QQ', d, 24)
struct.pack_into('<QQ', d, 24, tr + va, 0)
struct.pack_into('<I', d, 40, crc32c(bytes(d[:40])))
open(sys.argv[2], 'wb').write(bytes(d))
EOF
run train --layers 2 --heads 2 --embd 16 --seq-len 16 --batch 4 --threads 1 --data noval.tok \
  --steps 2 --eval-every 1 --progress lines --out noval
check "an empty validation split with --eval-every 1: said once at the start" \
  "[ $rc -eq 0 ] && [ \$(grep -c 'noval.tok has no validation tokens, so --eval-every 1 computes no val_loss' last.out) -eq 1 ]"
check "  ... and summary.json's val_windows is 0" "grep -q '\"final_val_loss\":null,\"val_windows\":0' noval/summary.json"

# ---- --keep-best: the lowest validation loss stays, as ckpt/best -------------
# lr 0.3: val falls at step 1, jumps at step 2, and stays above step 1's
run train $TINY --steps 3 --eval-every 1 --save-every 0 --keep-ckpts 1 --keep-best --lr 0.3 \
  --warmup 0 --quiet --out best
vals=$(sed -n 's/.*"step":\([1-9][0-9]*\),.*"val_loss":\([^,}]*\).*/\1 \2/p' best/metrics.jsonl)
low=$(echo "$vals" | sort -g -k2 | head -1 | cut -d' ' -f1)
check "--keep-best: ckpt/best names the step of the lowest val_loss (step $low)" \
  "[ $rc -eq 0 ] && [ \"\$(head -1 best/ckpt/best)\" = \$(printf 'step_%08d' $low) ]"
check "  ... which rotation (--keep-ckpts 1) kept beside the latest" \
  "[ $low -ne 3 ] && [ -f best/ckpt/\$(printf 'step_%08d' $low)/manifest.pb ] && [ -f best/ckpt/step_00000003/manifest.pb ] && [ \$(ls -d best/ckpt/step_* | wc -l) -eq 2 ]"
want=$(printf '%.4f' "$(echo "$vals" | awk -v s=$low '$1 == s {print $2}')")
run eval --ckpt best/ckpt/best --data corpus.tok --windows 16 --threads 1
check "eval --ckpt <run>/ckpt/best reads that checkpoint (val $want)" \
  "[ $rc -eq 0 ] && grep -qx 'loss $want over 16 windows (256 tokens)' last.out"
run train $TINY --steps 2 --eval-every 1 --save-every 0 --keep-best --quiet --out best --overwrite
check "a --keep-best run is a run's folder: --overwrite replaces it (ckpt/best is the run's)" \
  "[ $rc -eq 0 ] && [ -f best/ckpt/best ] && [ ! -e best/ckpt/step_00000003 ]"
run train $TINY --steps 3 --keep-best --eval-every 0 --out nobest
expect "--keep-best without --eval-every is refused" 2 "--keep-best" "--eval-every"

# ---- a refused command leaves nothing behind -------------------------------
mkdir -p fresh
(cd fresh && "$BIN" train --heads 5 --steps 1 > ../last.out 2> ../last.err)
rc=$?
expect "train --heads 5 (the default data) is refused" 2 "--heads 5"
check "  ... before it makes the default dataset (no data/ folder)" "[ ! -e fresh/data ] && [ -z \"\$(ls fresh)\" ]"

# ---- the progress bar at 80 columns keeps its ETA ----------------------------
COLUMNS=80 "$BIN" train $TINY --steps 4 --eval-every 2 --progress bar --out bar > bar.out 2> last.err
tr '\r' '\n' < bar.out | sed 's/\x1b\[K//g' | grep 'step [0-9]/4' > bar.lines
check "every progress line fits 80 columns and ends with its ETA" \
  "[ \$(wc -l < bar.lines) -eq 4 ] && awk 'length(\$0) > 79 || !/ETA [^|]*\$/ {bad = 1} END {exit bad}' bar.lines"
check "  ... and has a bar" "[ \$(grep -c '^\[[#.]*\] step' bar.lines) -eq 4 ]"

# ---- the ZO recipes say what they are for; GPT-2's leaves the embedding alone
DOCS=$HERE/../../docs
check "docs/zo-finetune.conf says it is for small vocabularies, and where GPT-2's recipe is" \
  "grep -q '^# .*small vocabularies' '$DOCS/zo-finetune.conf' && grep -q 'docs/zo-finetune-gpt2.conf' '$DOCS/zo-finetune.conf'"
python3 -c 'import struct, random; random.seed(1); open("g2.bin","wb").write(struct.pack("<4000H", *[random.randrange(50257) for _ in range(4000)]))'
run train --layers 2 --heads 2 --embd 16 --seq-len 16 --batch 4 --threads 1 --vocab 50257 \
  --data g2.bin --data-format nanogpt --steps 2 --eval-every 0 --quiet --out g2pre
run train --config "$DOCS/zo-finetune-gpt2.conf" --init-from g2pre --data g2.bin --data-format nanogpt \
  --batch 4 --threads 1 --steps 2 --eval-every 0 --progress lines --out g2zo
share=$(sed -n 's/.*perturbing [0-9]* of [0-9]* tensors, \([0-9.]*\)M of \([0-9.]*\)M parameters.*/\1 \2/p' last.out)
check "the GPT-2 recipe trains a GPT-2-vocabulary model, perturbing the blocks: under 10% of it ($share)" \
  "[ $rc -eq 0 ] && [ -n '$share' ] && awk -v s='$share' 'BEGIN {split(s, a, \" \"); exit !(a[1] < 0.1 * a[2])}'"

# ---- plan --help lists what plan uses; --link in --link-gbps's range --------
run plan --help
check "plan --help lists the model, the batch and the layout flags" \
  "[ $rc -eq 0 ] && has '--layers L' && has '--batch B' && has '--tp N' && has '--link BW'"
check "  ... and not the training-only ones" \
  "! has '--lr X' && ! has '--save-every' && ! has '--swarm-listen' && ! has '--keep-best'"
M="--model gpt --layers 2 --embd 32 --heads 2 --seq-len 32 --vocab 128 --batch 8 --ranks 4 --gemm-gflops 20"
run plan $M --link 1e300gbit
expect "--link 1e300gbit is refused with the range" 2 "--link '1e300gbit'" "8000 Tbit/s"
run plan $M --link 1e-300kbit
expect "--link 1e-300kbit is refused with the range" 2 "--link '1e-300kbit'" "from 8 kbit/s"
run plan $M --link 1gbit,1e300s
expect "--link with a 1e300 s latency is refused" 2 "at most 10 s"
run plan $M --link 8kbit,10s
expect "--link at both ends of the range is planned" 0
finish
