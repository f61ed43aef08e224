#!/bin/bash
# Sourced by the GPT-2 import/export tests (tests/cli/gpt2_*_test.sh) after
# check.sh: $REF, the GPT-2 reference script, and ref_lib.sh's scratch dir,
# launcher and loss arithmetic. usage of a test: TEST.sh MPITRAIN_BINARY SCRATCH_DIR
REF="/usr/bin/python3 $(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/gpt2_ref.py"
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/ref_lib.sh"
