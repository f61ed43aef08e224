# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154 # sourced: variables come from and go to the script
# Shared set-up of the benchmark scripts (sourced, not run). Before sourcing,
# set NAME (used in messages and the temp dir) and `here` (the bench dir).
# Gives: repo, bin, local_launch, py, data, die, timed, wall_s, a work dir removed on exit
# unless KEEP=1, and the default KJV token file made if missing.
# Optional, set before sourcing:
#   work_dir=DIR    work in DIR (made if missing, never removed) instead of a
#                   fresh temp dir: for scripts whose outputs outlive them
#   need_kjv=0      do not make the default KJV token file
# bench_on_exit CMD: run CMD when the script ends, also on a failure, ^C or
# SIGTERM (most recent first), e.g. to tear down tests/netcluster hosts.
repo=$(cd "$here/.." && pwd)
export MPITRAIN_BIN=${MPITRAIN_BIN:-$repo/build/mpitrain}
case $MPITRAIN_BIN in */*) MPITRAIN_BIN=$(cd "$(dirname "$MPITRAIN_BIN")" && pwd)/$(basename "$MPITRAIN_BIN") ;; esac
bin=$MPITRAIN_BIN
local_launch=$repo/launch/mpitrain-local
py=/usr/bin/python3
data=${MPITRAIN_DATA:-$repo/data/kjv.tok}

die() { echo "$NAME: $*" >&2; exit 1; }
# A script's run table: lines `name args...` in $TABLE. args_of NAME prints
# a row's arguments (fails for an unknown name); check_names NAMES... dies
# naming the first unknown one and the known ones.
args_of() { echo "$TABLE" | awk -v n="$1" '$1 == n {$1 = ""; print; f = 1} END {exit !f}'; }
check_names() {
  local n
  for n in "$@"; do args_of "$n" > /dev/null || die "no run $n (known: $(echo "$TABLE" | awk '{printf "%s ", $1}'))"; done
}
# timed OUT CMD...: peak RSS in MB (/usr/bin/time -v's maximum resident set)
# of CMD, its output in OUT.log and /usr/bin/time's in OUT.time; dies with
# the last lines on a failure. wall_s OUT: that run's elapsed seconds.
timed() {
  local out=$1
  shift
  if ! /usr/bin/time -v -o "$out.time" "$@" > "$out.log" 2>&1; then
    tail -5 "$out.log" >&2
    die "failed: $*"
  fi
  awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$out.time"
}
wall_s() {
  awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); for (i = 1; i <= n; i++) w = w * 60 + p[i]; printf "%.1f", w }' "$1.time"
}
[ -x "$bin" ] || die "$bin not found; build first (launch/setup.sh) or set MPITRAIN_BIN"

bench_exit_hooks=()
bench_on_exit() { bench_exit_hooks=("$1" "${bench_exit_hooks[@]}"); }
bench_exit() {
  local h
  for h in "${bench_exit_hooks[@]}"; do eval "$h" || true; done
}
# bench_job CMD...: CMD in the background, waited for, so that ^C or SIGTERM
# to the script stops it (SIGTERM, then the wait) before the exit hooks run:
# bash runs a trap only once its foreground command has ended.
bench_job_pid=""
bench_job() {
  "$@" &
  bench_job_pid=$!
  local rc=0
  wait "$bench_job_pid" || rc=$?
  bench_job_pid=""
  return $rc
}
bench_signal() {
  trap - INT TERM
  if [ -n "$bench_job_pid" ]; then
    echo "$NAME: stopping the job under way (pid $bench_job_pid)" >&2
    kill -TERM "$bench_job_pid" 2> /dev/null || true
    wait "$bench_job_pid" 2> /dev/null || true
  fi
  exit "$1"
}
trap bench_exit EXIT
trap 'bench_signal 130' INT
trap 'bench_signal 143' TERM

if [ -n "${work_dir:-}" ]; then
  case $work_dir in /*) ;; *) work_dir=$PWD/$work_dir ;; esac
  mkdir -p "$work_dir"
  work=$work_dir
else
  work=$(mktemp -d "/tmp/mpitrain-$NAME.XXXXXX")
  cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "run dirs kept in $work"; else rm -rf "$work"; fi; }
  bench_on_exit cleanup
fi

if [ "${need_kjv:-1}" = 1 ] && [ ! -s "$data" ]; then
  echo "== preparing $data"
  mkdir -p "$(dirname "$data")"
  "$bin" prepare --out "$data" || die "mpitrain prepare --out $data failed"
fi
