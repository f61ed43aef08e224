#!/bin/bash
# Sampling speed, KV cache vs the full-context recompute sampling used
# before (each token re-ran the whole T-token forward):
#  (a) `mpitrain sample` on the 3.3 M-parameter default GPT (4 layers,
#      4 heads, 256 wide, T 256, bytes), a 1-step checkpoint, --no-cache vs
#      the cache;
#  (b) the GPT-2 124M shape (12 layers, 12 heads, 768, T 1024, vocab
#      50257) with random weights, in bench_decode (no tokenizer needed).
# Each at 1 and 2 threads: on a 2-core machine other jobs share, 2 threads
# can be the slower. Prints; asserts nothing.
# usage: bench/sample_speed.sh   (TOKENS=100 THREADS="1 2" FULL124=2)
set -euo pipefail
NAME=sample_speed
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
TOKENS=${TOKENS:-100}
THREADS=${THREADS:-1 2}
FULL124=${FULL124:-2}
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== (a) default GPT (3.3 M), mpitrain sample --tokens $TOKENS"
"$bin" train --data "$data" --steps 1 --batch 1 --eval-every 0 --threads 1 --quiet \
  --out "$work/default" > /dev/null || die "training the default model failed"
for k in $THREADS; do
  for mode in --no-cache ""; do
    "$bin" sample --ckpt "$work/default" --prompt "In the beginning" --tokens "$TOKENS" \
      --threads "$k" --verbose $mode 2>&1 > /dev/null | sed "s/^mpitrain sample: /threads $k: /"
  done
done

echo "== (b) GPT-2 124M shape, random weights (bench_decode)"
for k in $THREADS; do
  "$(dirname "$bin")/bench_decode" --layers 12 --heads 12 --embd 768 --seq-len 1024 \
    --vocab 50257 --prompt 64 --tokens "$TOKENS" --full "$FULL124" --threads "$k"
done
