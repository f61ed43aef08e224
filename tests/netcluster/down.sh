#!/usr/bin/env bash
# Removes the namespaces of tests/netcluster/up.sh (same NC_PREFIX).
P=${NC_PREFIX:-mpz}
for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do ip netns del "$ns"; done
rm -rf /etc/netns/$P-h*
