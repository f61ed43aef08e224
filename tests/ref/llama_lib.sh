#!/bin/bash
# Sourced by the llama-family tests (tests/cli/llama_*_test.sh) after
# check.sh: $REF, the reference script (llama_ref.py), ref_lib.sh's scratch
# dir, launcher and loss arithmetic, and the random models the tests share.
# (The family's layouts against the single rank: tests/mpi/llama_layouts.sh.)
# usage of a test: TEST.sh MPITRAIN_BINARY SCRATCH_DIR
REF="/usr/bin/python3 $(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/llama_ref.py"
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/ref_lib.sh"
# One tiny model per variant (2 layers, width 64, 4 heads, 2 kv heads, MLP
# 96, context 64): name, then make-hf's flags
VARIANTS=(
  "llama3|--arch llama --tied --rope-llama3 8,1,4,32 --vocab 512"
  "qwen2|--arch qwen2 --untied --vocab 700 --eps 1e-6 --rope-theta 1000000"
  "qwen3|--arch qwen3 --tied --head-dim 32 --vocab 600 --eps 1e-6"
  "mistral|--arch mistral --untied --eps 1e-2 --vocab 300"
  "llama_bf16_sharded|--arch llama --untied --bias --mlp-bias --dtype BF16 --shards 3 --vocab 1000"
)
variant_name() { echo "${1%%|*}"; }
variant_flags() { echo "${1#*|}"; }
variant_vocab() { sed -n 's/.*--vocab \([0-9]*\).*/\1/p' <<< "$1"; }
# make_variants: every variant's model dir NAME and its tokens NAME.tok
# (ids over the variant's whole vocabulary)
make_variants() {
  local v n
  for v in "${VARIANTS[@]}"; do
    n=$(variant_name "$v")
    $REF make-hf "$n" $(variant_flags "$v") && $REF make-tokens "$n.tok" --n 20000 --vocab "$(variant_vocab "$v")" || return 1
  done
}
