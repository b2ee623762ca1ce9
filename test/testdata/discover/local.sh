#!/bin/bash
# Runs inside a network namespace of its own (see TestNeighborDiscoverLocal):
# the only networks are the ones made here, so no real network is probed.
# $1 cpm-shell, $2 cpm-admin, $3 A's data dir (scans), $4 B's data dir (found).
set -eu
shell=$1 admin=$2 a=$3 b=$4
ip link set lo up
ip link add v0 type veth peer name v1
ip addr add 10.77.0.1/24 dev v0
ip addr add 10.77.0.5/24 dev v0
ip -6 addr add fd00:77::1/64 dev v0
ip link add v2 type veth peer name v3
ip addr add 10.99.0.1/16 dev v2
for l in v0 v1 v2 v3; do ip link set "$l" up; done
"$shell" serve --data-dir "$b" --listen 10.77.0.5:2222 --git-listen 10.77.0.5:9418 --metrics-listen 127.0.0.1:0 2>"$b/../serve.log" &
server=$!
trap 'kill $server; wait $server' EXIT
for _ in $(seq 100); do
	grep -q 'cpm-shell serving' "$b/../serve.log" && break
	sleep 0.1
done
echo "### discover"
"$admin" --data-dir "$a" neighbor discover
echo "### discover --json"
"$admin" --data-dir "$a" neighbor discover --local --json
echo "### end"
