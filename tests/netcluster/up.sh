#!/usr/bin/env bash
# N simulated hosts as network namespaces ${NC_PREFIX}-h0.. joined by a bridge
# in ${NC_PREFIX}-sw, each host link rate-limited both ways with tbf (this
# kernel has tbf, not netem: no added delay). Root needed.
# usage: tests/netcluster/up.sh N RATE     e.g. up.sh 4 100mbit
# NC_PREFIX (default mpz) and NC_NET (default 10.214.0) keep two clusters on
# one machine apart. Writes the hostfile to stdout's last line's path.
set -euo pipefail
N=${1:-4}; RATE=${2:-100mbit}
P=${NC_PREFIX:-mpz}; NET=${NC_NET:-10.214.0}
ip netns add $P-sw
ip -n $P-sw link add br0 type bridge
ip -n $P-sw link set br0 up
ip -n $P-sw link set lo up
for i in $(seq 0 $((N-1))); do
  h=$P-h$i
  ip netns add $h
  ip link add $P-v$i type veth peer name $P-p$i
  ip link set $P-v$i netns $h
  ip link set $P-p$i netns $P-sw
  ip -n $h link set $P-v$i name eth0
  ip -n $h addr add $NET.$((i+1))/24 dev eth0
  ip -n $h link set eth0 up
  ip -n $h link set lo up
  ip -n $P-sw link set $P-p$i master br0
  ip -n $P-sw link set $P-p$i up
  # shape the egress of both ends of the host's link
  ip netns exec $h tc qdisc add dev eth0 root tbf rate $RATE burst 64kb latency 400ms
  ip netns exec $P-sw tc qdisc add dev $P-p$i root tbf rate $RATE burst 64kb latency 400ms
  mkdir -p /etc/netns/$h
  { echo "127.0.0.1 localhost"; for j in $(seq 0 $((N-1))); do echo "$NET.$((j+1)) $P-h$j"; done; } \
    > /etc/netns/$h/hosts
done
echo "up: $N hosts $P-h0..$P-h$((N-1)) at $RATE"
