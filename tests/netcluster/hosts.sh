# shellcheck shell=bash
# Where a test's machines live (sourced by tests/cli/swarm_test.sh and
# elastic_test.sh): `netcluster_hosts PREFIX NET N RATE` builds N network-
# namespace hosts at RATE when this user may (root, ip netns), else
# loopback; then MODE is netns or loopback, `host H` prints host H's
# address, and `on H CMD...` runs CMD there in place of the shell (a
# subshell, or & for the background). The hosts are removed on exit.
NC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
netcluster_hosts() {
  MODE=loopback
  if [ "$(id -u)" -eq 0 ] && ip netns add "$1$$-probe" 2> /dev/null; then
    ip netns del "$1$$-probe"
    export NC_PREFIX=$1$$ NC_NET=$2
    trap '"$NC/down.sh" > /dev/null 2>&1' EXIT
    if "$NC/up.sh" "$3" "$4" > up.log 2>&1; then MODE=netns; else "$NC/down.sh" > /dev/null 2>&1; fi
  fi
  if [ $MODE = netns ]; then
    host() { echo "$NC_NET.$(($1 + 1))"; }
    on() { local h=$1; shift; exec ip netns exec "$NC_PREFIX-h$h" "$@"; }
  else
    host() { echo 127.0.0.1; }
    on() { shift; exec "$@"; }
  fi
}
