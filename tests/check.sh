# The harness every process-level test sources (tests/cli/*.sh,
# tests/mpi/lib.sh): tallies, checks, the losses of a metrics file, and the
# closing line ctest's readers look for. Sourcing it also lets mpirun run as
# root and idle ranks yield their core.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $1"; }
# a failure shows what the last command said on stderr, if it kept last.err
bad() {
  fail=$((fail + 1))
  echo "FAIL - $1"
  [ -s last.err ] && sed 's/^/       stderr: /' last.err | head -8
  return 0
}
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
# "step loss" pairs of a metrics.jsonl
losses() { sed -n 's/.*"step":\([0-9]*\),"loss":\([^,]*\),.*/\1 \2/p' "$1"; }
# max relative difference of the losses of two runs, step by step
max_rel() { join <(losses "$1") <(losses "$2") | awk '{d=$2-$3; if(d<0)d=-d; r=d/($2<0?-$2:$2); if(r>m)m=r} END{printf "%.3g", m+0}'; }
same_steps() { [ "$(losses "$1" | wc -l)" -eq "$(losses "$2" | wc -l)" ] && [ "$(losses "$1" | wc -l)" -gt 0 ]; }
# is_sanitized: $BIN is an ASan/UBSan build (several times slower: big
# tests shrink or skip)
is_sanitized() { nm -D "$BIN" 2>/dev/null | grep -q __asan_init || ldd "$BIN" 2>/dev/null | grep -q libasan; }
# The closing line, and the verdict: a test that checked nothing is broken,
# not passed. Exits.
finish() {
  echo "$pass passed, $fail failed"
  [ "$pass" -gt 0 ] && [ "$fail" -eq 0 ]
  exit
}
# scratch_dir BIN DIR: a script test's preamble: $BIN made absolute, DIR
# emptied and entered (the test runs there), one thread per process; exits
# on failure.
scratch_dir() {
  BIN=$1
  case "$BIN" in /*) ;; *) BIN=$PWD/$BIN ;; esac
  rm -rf "$2" && mkdir -p "$2" && cd "$2" || { echo "FAIL - cannot create $2"; exit 1; }
  export OMP_NUM_THREADS=1
}
# run ARGS...: runs $BIN; stdout -> last.out, stderr -> last.err, exit code
# -> $rc (tests/mpi/lib.sh has its own run, for mpirun jobs)
run() {
  "$BIN" "$@" > last.out 2> last.err
  rc=$?
}
# expect NAME CODE [GREP...]: the last run exited CODE and stderr contains each GREP
expect() {
  local name=$1 code=$2
  shift 2
  if [ "$rc" -ne "$code" ]; then
    bad "$name: exit $rc, expected $code"
    return
  fi
  for want in "$@"; do
    if ! grep -qF -- "$want" last.err; then
      bad "$name: stderr lacks '$want'"
      return
    fi
  done
  ok "$name"
}
