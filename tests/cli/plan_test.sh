#!/bin/bash
# Process-level checks of `mpitrain plan` (one process, no mpirun): a stated
# link in bits or bytes, printed in bits/s; the modes table (DP, ZO, DiLoCo)
# marking the configured mode, ranked by DP-equivalent tokens/s (not tokens/s
# alone) with the first marked recommended; ZO's layout a data-parallel one
# (one byte per code, no activations across ranks); the oversubscription
# sentence; and --link garbage refused with a usage error naming the flag.
# usage: plan_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../check.sh"
scratch_dir "$1" "$2"
has() { grep -qF -- "$1" last.out; }
M="--model gpt --layers 2 --embd 32 --heads 2 --seq-len 32 --vocab 128 --batch 8 --ranks 4 --gemm-gflops 20"

run plan $M --link 10mbit,150us
expect "plan at a stated 10 Mbit/s link" 0
check "the link is printed in bits/s and said to be stated" "has 'link: 150 us, 10.0 Mbit/s (stated)'"
check "the modes table has DP, ZO K=1, ZO K=4 and DiLoCo H=500" \
  "has ' DP ' && has 'ZO K=1' && has 'ZO K=4' && has 'DiLoCo H=500'"
check "the DP row is this config's mode" "grep -q '^.< DP ' last.out"
check "the modes are ranked by DP-equivalent tokens/s" "has 'ranked by DP-equivalent tokens/s' && has 'DP-equiv tok/s'"
check "the first mode row is marked recommended" \
  "grep -A1 '^   mode ' last.out | sed -n 2p | grep -q '^\*'"

run plan $M --link 100MB/s --optimizer zo --zo-samples 2
expect "plan a ZO run at 100 MB/s" 0
check "100 MB/s is 800 Mbit/s" "has 'link: 100 us, 800.0 Mbit/s (stated)'"
check "a ZO K=2 row is added and marked" "grep -q '^.< ZO K=2 ' last.out"

run plan $M --link 1gbit --diloco 50 --diloco-overlap 1
expect "plan a DiLoCo run" 0
check "the DiLoCo H=50 row is marked" "grep -q '^.< DiLoCo H=50 ' last.out"

# the reference GPT on 4 ranks sharing 2 cores: dp 2 x pp 2 was chosen for
# zo (1,048,577 bytes a step, activations between the stages)
run plan --ranks 4 --cores 2 --gemm-gflops 50 --optimizer zo
expect "plan the reference GPT's ZO run on 4 ranks" 0
check "ZO keeps a data-parallel layout" "has 'chosen: --dp 4 --tp 1 --pp 1'"
check "its ZO K=1 row sends one code to each of 3 peers" \
  "grep -E '^.< ZO K=1 +4 x  1 x  1 .* 3 ' last.out"
check "a ZO step is worth a 60th of a backprop step: DP is recommended over ZO" \
  "grep -q '^\*  DP ' last.out"

run plan $M --cores 2 --threads 2 --link 1gbit
expect "plan 4 ranks x 2 threads on 2 cores" 0
check "the plan says the cores are oversubscribed 4x" \
  "has 'machine: 4 ranks x 2 threads on 2 cores of one machine: oversubscribed 4x'"

for bad in 10 10mb fast 1gbit,abc -3mbit; do
  run plan $M --link "$bad"
  expect "--link $bad is a usage error naming the flag" 2 "--link '$bad'"
done
finish
