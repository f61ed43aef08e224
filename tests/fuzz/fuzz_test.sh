#!/bin/bash
# Fuzzes every reader of hostile input with libFuzzer (clang): the checkpoint
# manifest, the coordinator's plan message, the ZO journal, the --config file,
# the token file header + batch loader, the GPT-2 weight readers (HF
# config.json + safetensors, llm.c) and the swarm's wire messages. Targets
# are tests/fuzz/fuzz_*.c; each file's comment says what it feeds the reader
# and what it checks.
#
# usage: fuzz_test.sh MPITRAIN_BINARY SCRATCH_DIR
#
# The fuzzers are built here, with clang and ASan + UBSan + libFuzzer, from
# the project's sources (not the gcc build); the protobuf-c code generated
# by the build is taken from <dir of the binary>/proto. comm/ (MPI) is not
# compiled: the few comm symbols the linked objects mention are stubbed
# with functions that abort if ever called. Seed inputs come from the
# project's own writers (each target's LLVMFuzzerInitialize with
# MPITRAIN_FUZZ_GEN), from real runs of the binary (prepare, a tiny train,
# a tiny --optimizer zo train) and from tests/fuzz/corpus/<target>/.
#
# Inputs under tests/fuzz/regress/<target>/ (known findings) are replayed
# first: one that still crashes fails the test. Each target then runs
# its budget (secs_of). A crash, sanitizer report, leak, hang
# (an input over FUZZ_TIMEOUT seconds) or out-of-memory (a single malloc
# over 1 GB, or RSS over 2 GB) is a finding: the input is kept under
# SCRATCH_DIR/findings/<target>/ and the test fails. Without clang or its
# fuzzer runtime the test prints SKIP and passes.
#
# Environment:
#   FUZZ_SECONDS   seconds per target (default: 12, or 6 for journal, tokfile
#                  and swarm_msg; see secs_of)
#   FUZZ_TARGETS   targets to run (default: manifest plan journal config tokfile gpt2 bpe swarm_msg)
#   FUZZ_JOBS      fuzzers run at once (default: 2, or 1 on a single core)
#   FUZZ_TIMEOUT   seconds one input may take (default 25)
#   FUZZ_CC        the clang to use (default: the newest clang found)
set -u
BIN=${1:?usage: fuzz_test.sh MPITRAIN_BINARY SCRATCH_DIR}
S=${2:?usage: fuzz_test.sh MPITRAIN_BINARY SCRATCH_DIR}
case "$BIN" in /*) ;; *) BIN=$PWD/$BIN ;; esac
case "$S" in /*) ;; *) S=$PWD/$S ;; esac
[ "$S" != / ] || { echo "FAIL - refusing scratch dir /"; exit 1; }
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "$(dirname "$BIN")" && pwd)
PROTO=$BUILD/proto
# Seconds per target. At 20 s each (2026-12-06, 2 loaded cores) the targets
# had reached, at half their executions, 95-97% of their final coverage
# (manifest 410/419 edges, plan 628/662, config 650/659, gpt2 899/930, bpe
# 417/427) and journal, tokfile and swarm_msg all but 0-2 edges (140/140,
# 146/147, 218/220): 12 s, and 6 s for those three, keep nearly all of it
# for half the suite's time. Longer runs: FUZZ_SECONDS (see README.md).
secs_of() {
  if [ -n "${FUZZ_SECONDS:-}" ]; then
    echo "$FUZZ_SECONDS"
  else
    case $1 in journal | tokfile | swarm_msg) echo 6 ;; *) echo 12 ;; esac
  fi
}
TARGETS=${FUZZ_TARGETS:-manifest plan journal config tokfile gpt2 bpe swarm_msg}
TIMEOUT=${FUZZ_TIMEOUT:-25}
CORES=$(nproc 2>/dev/null || echo 1)
JOBS=${FUZZ_JOBS:-$([ "$CORES" -ge 2 ] && echo 2 || echo 1)}
PACKAGES="clang-14 libclang-rt-14-dev libomp-14-dev"

skip() {
  echo "######################################################################"
  echo "## SKIP fuzz_test: $*"
  echo "## the fuzzers did NOT run. Install: apt-get install -y $PACKAGES"
  echo "######################################################################"
  exit 0
}
die() { echo "FAIL - $*"; exit 1; }

rm -rf "$S" && mkdir -p "$S"/{obj,bin,tmp,logs,findings,corpus,run} || die "cannot create $S"
cd "$S" || die "cannot enter $S"

# ---- toolchain ------------------------------------------------------------
CC=${FUZZ_CC:-}
if [ -z "$CC" ]; then
  for c in clang clang-19 clang-18 clang-17 clang-16 clang-15 clang-14; do
    if command -v "$c" > /dev/null 2>&1; then CC=$c; break; fi
  done
fi
[ -n "$CC" ] || skip "no clang found"
cat > probe.c <<'EOF'
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }
EOF
"$CC" -fsanitize=fuzzer,address,undefined probe.c -o probe > logs/probe.log 2>&1 ||
  skip "$CC cannot build a libFuzzer binary (no libclang-rt / compiler-rt?): $(head -c 300 logs/probe.log)"

# OpenMP: clang's runtime (libomp) if present, else no OpenMP at all
cat > omp_probe.c <<'EOF'
#include <omp.h>
int main(void) { omp_set_num_threads(1); return omp_get_max_threads() == 1 ? 0 : 1; }
EOF
if "$CC" -fopenmp omp_probe.c -o omp_probe > logs/omp_probe.log 2>&1; then
  OMP=-fopenmp
else
  echo "note: $CC has no OpenMP runtime (libomp-dev); building the fuzzers single-threaded"
  OMP="-I$REPO/tests/fuzz/noomp"
fi

for pc in /usr/lib/*/openblas-openmp/pkgconfig; do
  [ -d "$pc" ] && export PKG_CONFIG_PATH="$pc${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
done
PKG_CFLAGS=$(pkg-config --cflags openblas libprotobuf-c libpcre2-8 libutf8proc) ||
  die "pkg-config cannot find openblas / libprotobuf-c / libpcre2-8 / libutf8proc"
PKG_LIBS=$(pkg-config --libs openblas libprotobuf-c libpcre2-8 libutf8proc)
RPATH=""
for f in $PKG_LIBS; do case "$f" in -L*) RPATH="$RPATH -Wl,-rpath,${f#-L}" ;; esac; done

# the build's -march (CMakeLists.txt's rule: x86-64-v3 on x86-64, else
# none); an empty MPITRAIN_ARCH in the cache means no -march flag at all
case "$(uname -m)" in x86_64 | amd64 | AMD64) ARCH=x86-64-v3 ;; *) ARCH="" ;; esac
if [ -f "$BUILD/CMakeCache.txt" ] && grep -q '^MPITRAIN_ARCH:' "$BUILD/CMakeCache.txt"; then
  ARCH=$(sed -n 's/^MPITRAIN_ARCH:[A-Z]*=//p' "$BUILD/CMakeCache.txt" | head -1)
fi
MARCH=${ARCH:+-march=$ARCH}

ls "$PROTO"/*.pb-c.c > /dev/null 2>&1 || die "no generated protobuf-c code in $PROTO (build mpitrain first)"

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CFLAGS="-g -O1 $SAN -std=c11 -D_GNU_SOURCE $MARCH -ffp-contract=off -fno-trapping-math
        -I$REPO -I$PROTO $PKG_CFLAGS $OMP"
export CC CFLAGS S

# ---- build ----------------------------------------------------------------
t0=$(date +%s)
{
  find "$REPO"/base "$REPO"/sharding "$REPO"/models "$REPO"/worker "$REPO"/coordinator \
       "$REPO"/launch -name '*.c' | grep -v '/launch/main\.c$'
  ls "$PROTO"/*.pb-c.c
} > sources.txt
# shellcheck disable=SC2016
xargs -P "$CORES" -I{} sh -c '
  src=$1; o=$S/obj/$(echo "$src" | tr / _).o
  $CC -c $CFLAGS -fsanitize=fuzzer-no-link -Wno-unused-parameter "$src" -o "$o" \
    > "$o.log" 2>&1 || { echo "compile failed: $src"; cat "$o.log"; exit 255; }
' sh {} < sources.txt > logs/build.log 2>&1
[ $? -eq 0 ] || { cat logs/build.log | head -40; die "compiling the sources with $CC failed"; }
ar rcs libmpitrain_fuzz.a obj/*.o || die "ar failed"

# comm/ is MPI: stub whatever the objects mention of its API (abort if called)
nm libmpitrain_fuzz.a 2>/dev/null | awk '$1 == "U" {print $2}' | sort -u > undefined.txt
nm --defined-only libmpitrain_fuzz.a 2>/dev/null | awk 'NF == 3 {print $3}' | sort -u > defined.txt
# the functions comm/ and its rooms declare or define (non-static, at the
# start of a line)
find "$REPO"/comm -name '*.[ch]' -exec grep -hoE '^[A-Za-z_][A-Za-z0-9_ ]*[ *]+[A-Za-z_][A-Za-z0-9_]*\(' {} + |
  grep -v '^static' | sed -E 's/.*[ *]([A-Za-z_][A-Za-z0-9_]*)\($/\1/' | sort -u > comm_api.txt
{
  echo '/* generated by tests/fuzz_test.sh: comm/ (MPI) is not linked into the fuzzers */'
  echo '#include <stdio.h>'
  echo '#include <stdlib.h>'
  echo 'static void stub(const char *f) { fprintf(stderr, "fuzz: %s (comm/, MPI) was called; the fuzzers link stubs\n", f); abort(); }'
  comm -23 undefined.txt defined.txt | comm -12 - comm_api.txt | while read -r sym; do
    echo "void $sym(void) { stub(\"$sym\"); }"
  done
} > stubs.c
"$CC" -c -g -O1 -w stubs.c -o stubs.o || die "compiling stubs.c failed"

for t in $TARGETS; do
  src=$REPO/tests/fuzz/fuzz_$t.c
  [ -f "$src" ] || die "no fuzz target $src"
  # shellcheck disable=SC2086
  "$CC" $CFLAGS -fsanitize=fuzzer -Wall -Wextra "$src" libmpitrain_fuzz.a stubs.o \
    $PKG_LIBS $RPATH $OMP -lm -o "bin/fuzz_$t" > "logs/link_$t.log" 2>&1 ||
    { head -40 "logs/link_$t.log"; die "building fuzz_$t failed"; }
done
echo "built $(echo $TARGETS | wc -w) fuzzers with $CC ($($CC --version | head -1)) in $(( $(date +%s) - t0 ))s"

# ---- seeds ----------------------------------------------------------------
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
export OMP_NUM_THREADS=1
# the targets write a file per input: on tmpfs when there is one (8x faster)
FUZZ_TMP=$S/tmp
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  FUZZ_TMP=/dev/shm/mpitrain-fuzz.$$
  trap 'rm -rf "$FUZZ_TMP"' EXIT
fi
export MPITRAIN_FUZZ_TMP=$FUZZ_TMP
for t in $TARGETS; do mkdir -p "corpus/$t" "findings/$t"; done

# real files from the binary: a token file, a checkpoint, a ZO journal, a config
(
  cd run || exit 1
  for i in $(seq 1 30); do echo "In the beginning was the word $i, and the word was short."; done > text.txt
  cat > tiny.conf <<'EOF'
# the tiny GPT of tests/fuzz/fuzz_manifest.c
layers = 1
heads = 2
embd = 8
seq-len = 8
batch = 2
steps = 2
save-every = 0
eval-every = 0
threads = 1
quiet = true
EOF
  seedrun() { timeout 120 "$BIN" "$@" > last.out 2> last.err || { echo "note: seed run 'mpitrain $*' failed:"; head -3 last.err; return 1; }; }
  seedrun prepare text.txt --out seed.tok --val-fraction 0.1 && cp seed.tok "$S/corpus/tokfile/prepare.tok"
  cp tiny.conf "$S/corpus/config/tiny.conf"
  if [ -f seed.tok ]; then
    seedrun train --config tiny.conf --data seed.tok --out adamw
    seedrun train --config tiny.conf --data seed.tok --out zo --optimizer zo --zo-samples 2 &&
      cp zo/zo/journal.bin "$S/corpus/journal/run.jnl"
  fi
)
CKPT=""
if [ -f run/adamw/ckpt/latest ]; then
  CKPT=$S/run/adamw/ckpt/$(head -1 run/adamw/ckpt/latest)
  [ -f "$CKPT/manifest.pb" ] || CKPT=""
fi
# fuzz_env LOG CMD...: runs a fuzzer with its environment, output to LOG.
# clang's OpenMP runtime registers itself in /dev/shm/__KMP_REGISTERED_LIB_<pid>_*
# and removes that file only at a normal exit: a crashing fuzzer leaves it.
fuzz_env() {
  local log=$1 pid rc
  shift
  env MPITRAIN_FUZZ_TMP="$FUZZ_TMP" ${CKPT:+MPITRAIN_FUZZ_CKPT=$CKPT} \
    ASAN_OPTIONS=${FUZZ_ASAN_OPTIONS:-detect_leaks=1} \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$@" > "$log" 2>&1 &
  pid=$!
  wait "$pid"
  rc=$?
  rm -f /dev/shm/__KMP_REGISTERED_LIB_"${pid}"_* 2> /dev/null
  return "$rc"
}
# seeds from the project's writers, and committed ones
for t in $TARGETS; do
  MPITRAIN_FUZZ_GEN="$S/corpus/$t" MPITRAIN_FUZZ_DICT="$S/$t.dict" \
    fuzz_env "logs/seed_$t.log" "bin/fuzz_$t" -runs=0 ||
    { tail -30 "logs/seed_$t.log"; die "fuzz_$t failed while writing its seeds (see $S/logs/seed_$t.log)"; }
  [ -d "$REPO/tests/fuzz/corpus/$t" ] && cp "$REPO/tests/fuzz/corpus/$t"/* "corpus/$t/" 2>/dev/null
  [ -s "$t.dict" ] || rm -f "$t.dict"
done

# ---- known findings ---------------------------------------------------------
# tests/fuzz/regress/<target>/: inputs that once crashed a reader. Each is
# replayed on its own; one that still crashes fails the test (and stays out
# of the corpus, so the fuzzer keeps looking for other bugs), one that no
# longer does becomes a seed.
failed=0
for t in $TARGETS; do
  for f in "$REPO/tests/fuzz/regress/$t"/*; do
    [ -f "$f" ] || continue
    name=$(basename "$f")
    fuzz_env "logs/regress_${t}_$name.log" "bin/fuzz_$t" -runs=1 "$f"
    rc=$?
    if [ "$rc" = 0 ]; then
      cp "$f" "corpus/$t/regress-$name"
      continue
    fi
    failed=1
    echo "FAIL - fuzz_$t: known finding tests/fuzz/regress/$t/$name still crashes (exit $rc)"
    grep -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|SUMMARY:|round trip|^(journal|tokfile):|deadly signal|out-of-memory|fuzz harness' \
      "logs/regress_${t}_$name.log" | head -4 | sed 's/^/       /'
    echo "       rerun:      cd $S && MPITRAIN_FUZZ_TMP=$S/tmp${CKPT:+ MPITRAIN_FUZZ_CKPT=$CKPT} bin/fuzz_$t $f"
  done
done

# ---- fuzz -----------------------------------------------------------------
run_one() {
  local t=$1
  local args=(-max_total_time="$(secs_of "$t")" -timeout="$TIMEOUT" -rss_limit_mb=2048 -malloc_limit_mb=1024
              -close_fd_mask=3 -print_final_stats=1 -artifact_prefix="$S/findings/$t/")
  [ -f "$t.dict" ] && args+=(-dict="$S/$t.dict")
  fuzz_env "logs/$t.log" "bin/fuzz_$t" "${args[@]}" "corpus/$t"
  echo $? > "logs/$t.rc"
}
echo "fuzzing $(echo $TARGETS | wc -w) targets for $(for t in $TARGETS; do printf '%s ' "$t:$(secs_of "$t")s"; done)$JOBS at a time ..."
for t in $TARGETS; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
  run_one "$t" &
done
wait

# ---- report ---------------------------------------------------------------
for t in $TARGETS; do
  log=logs/$t.log
  rc=$(cat "logs/$t.rc" 2>/dev/null || echo 99)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
  cov=$(echo "$done_line" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
  corp=$(echo "$done_line" | sed -n 's/.*corp: \([0-9]*\).*/\1/p')
  mapfile -t found < <(find "findings/$t" -type f \( -name 'crash-*' -o -name 'leak-*' -o \
                        -name 'timeout-*' -o -name 'oom-*' \) 2>/dev/null)
  printf 'fuzz_%-9s %10s executions  cov %-5s corpus %-5s findings %d  (exit %s)\n' \
         "$t" "${execs:-?}" "${cov:-?}" "${corp:-?}" "${#found[@]}" "$rc"
  if [ "$rc" != 0 ] || [ "${#found[@]}" -gt 0 ]; then
    failed=1
    echo "FAIL - fuzz_$t: log $S/$log"
    grep -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|SUMMARY:|round trip|^(journal|tokfile):|deadly signal|out-of-memory|fuzz harness' \
      "$log" | head -8 | sed 's/^/       /'
    for f in "${found[@]}"; do
      echo "       reproducer: $S/$f"
      echo "       rerun:      cd $S && MPITRAIN_FUZZ_TMP=$S/tmp${CKPT:+ MPITRAIN_FUZZ_CKPT=$CKPT} bin/fuzz_$t $S/$f"
    done
  fi
done
[ "$failed" = 0 ] && echo "ok   - no findings in $(echo $TARGETS | wc -w) fuzz targets"
[ "$failed" = 0 ] || echo "reproducers and logs are under $S (findings/, logs/)"
exit "$failed"
