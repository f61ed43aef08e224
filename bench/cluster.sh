# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154 # sourced: variables come from and go to the script
# The simulated cluster of the slow-link benchmarks (sourced after
# bench/common.sh): 4 hosts of tests/netcluster (network namespaces joined by
# tbf rate-limited links, mpirun over TCP), or one host on shared memory.
#   nc_available        0 when this machine can build the hosts (root, ip
#                       netns); else 1, with the reason in $nc_why
#   nc_net NET          make NET current: shm (one host, no namespaces) or a
#                       tc rate such as 1gbit, 100mbit, 10mbit (4 hosts at that
#                       rate, rebuilt when the rate changes); torn down on exit
#   nc_launch ARGS...   run `mpitrain ARGS...` as 4 ranks on the current NET
#                       (under `timeout -s $RUN_SIGNAL $RUN_TIMEOUT`, default
#                       TERM after 3600 s; USR1 makes a clean stop; as a
#                       bench_job: a signal to the script stops it)
#   nc_down             remove the hosts (also run on exit and on failure)
#   rate_bps NET        NET's rate in bit/s (shm: 0)
# Env: NC_PREFIX (default mb<pid>: apart from other users' clusters),
#      NC_NET (10.216.<pid % 200>), RANKS (4), RUN_TIMEOUT (3600).
export NC_PREFIX=${NC_PREFIX:-mb$$}
export NC_NET=${NC_NET:-10.216.$(($$ % 200))}
nc_dir=$repo/tests/netcluster
nc_ranks=${RANKS:-4}
nc_rate=""   # the rate the hosts are up at ("" = not up)
nc_cur=shm
nc_why=""

nc_available() {
  if [ "$(id -u)" != 0 ]; then nc_why="not root: the simulated hosts need network namespaces"; return 1; fi
  command -v ip > /dev/null || { nc_why="no ip command (apt-get install iproute2)"; return 1; }
  command -v tc > /dev/null || { nc_why="no tc command (apt-get install iproute2)"; return 1; }
  if ! ip netns add "$NC_PREFIX-probe" 2> /dev/null; then nc_why="ip netns add failed: no network namespaces here"; return 1; fi
  ip netns del "$NC_PREFIX-probe"
  return 0
}

nc_down() {
  if [ -n "$nc_rate" ]; then "$nc_dir/down.sh" || true; nc_rate=""; fi
}
bench_on_exit nc_down

nc_net() {
  nc_cur=$1
  [ "$1" = shm ] && return 0
  [ "$nc_rate" = "$1" ] && return 0
  nc_down
  nc_rate=$1   # set before up.sh so that a half-built cluster is torn down too
  "$nc_dir/up.sh" "$nc_ranks" "$1" > "$work/netcluster-up.log" 2>&1 ||
    die "the simulated hosts could not be built at $1: $(tail -3 "$work/netcluster-up.log")"
  for i in $(seq 0 $((nc_ranks - 1))); do echo "$NC_PREFIX-h$i slots=1"; done > "$work/hosts"
}

nc_launch() {
  if [ "$nc_cur" = shm ]; then
    bench_job timeout -k 30 -s "${RUN_SIGNAL:-TERM}" "${RUN_TIMEOUT:-3600}" "$local_launch" -n "$nc_ranks" "$@"
  else
    bench_job timeout -k 30 -s "${RUN_SIGNAL:-TERM}" "${RUN_TIMEOUT:-3600}" "$nc_dir/mpirun.sh" "$work/hosts" "$nc_ranks" "$bin" "$@"
  fi
}

# The links of $1 (shm, or tc rates like 100mbit) this machine can build,
# into $nets; the others are skipped with a message, a malformed one dies.
usable_nets() {
  local n
  nets=""
  for n in $1; do
    if [ "$n" != shm ] && ! nc_available; then
      echo "$NAME: skipping $n: $nc_why" >&2
      continue
    fi
    [ "$n" = shm ] || [ "$(rate_bps "$n")" -gt 0 ] || die "NETS: $n is not shm or a tc rate (e.g. 100mbit)"
    nets="$nets $n"
  done
}
rate_bps() {
  echo "$1" | awk '{ r = tolower($1); m = 0
    if (r ~ /gbit$/) m = 1e9; else if (r ~ /mbit$/) m = 1e6; else if (r ~ /kbit$/) m = 1e3; else if (r ~ /bit$/) m = 1
    sub(/[a-z]+$/, "", r); printf "%.0f\n", r * m }'
}
