#!/usr/bin/env bash
# A cpm cluster in one run: three nodes on 127.0.0.2, .3, .4 sharing one
# throwaway PostgreSQL, HAProxy (deploy/haproxy/haproxy.cfg) in front
# (TestClusterBenchmark in test/cluster_bench_test.go). Prints:
#   - push latency straight to the primary vs through another node (medians;
#     goal: forwarded at most 150 ms slower);
#   - clone latency from a current replica vs from a lagging one (served
#     through the primary);
#   - replica lag p50/p99 over 100 pushes (push returned until `repo where`
#     shows every replica at the new generation);
#   - clones per second through HAProxy with 1, 2 and 3 nodes in rotation,
#     for the same small repository (goal: 3 nodes >= 2.5x one node).
#
# CPU shares: each node gets the same CPU quota, NODE_CPU cores (default
# 0.25), in a cgroup of its own that this script makes (cgroup v2:
# cpu.max under /sys/fs/cgroup; v1: cpu.cfs_quota_us under
# /sys/fs/cgroup/cpu); everything else, the test process with its git and
# ssh clients, HAProxy and PostgreSQL, shares CLIENT_CPU cores (default
# 1.2). 3 x 0.25 + 1.2 = 1.95 fits a 2-core machine. A node's quota covers
# its git processes too: they start inside its cgroup. Without cgroups
# (not root, no cpu controller) the run goes on unconfined and says so.
# Needs root for the cgroups; CLIENTS (9) concurrent clones for
# SECONDS_PER_COUNT (15) seconds per node count.
#
#   bench/cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_CPU=${NODE_CPU:-0.25}
CLIENT_CPU=${CLIENT_CPU:-1.2}
ROOT="$(mktemp -d /tmp/cpm-cluster-bench.XXXXXX)"
CG=""
cleanup() {
	if [ -n "$CG" ]; then
		echo $$ >"$CG_ROOT/cgroup.procs" 2>/dev/null || true
		for d in "$CG"/*/; do rmdir "$d" 2>/dev/null || true; done
		rmdir "$CG" 2>/dev/null || true
	fi
	rm -rf "$ROOT"
}
trap cleanup EXIT

# quota CORES prints microseconds per 100 ms period.
quota() { awk -v c="$1" 'BEGIN { printf "%d", c * 100000 }'; }

# make_cgroups sets CG to a cgroup with node-1..3 and clients under it.
make_cgroups() {
	if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
		CG_ROOT=/sys/fs/cgroup
		CG="$CG_ROOT/cpm-bench.$$"
		grep -qw cpu "$CG_ROOT/cgroup.controllers" || return 1
		echo +cpu >"$CG_ROOT/cgroup.subtree_control" || return 1
		mkdir "$CG" && echo +cpu >"$CG/cgroup.subtree_control" || return 1
		for g in node-1 node-2 node-3 clients; do mkdir "$CG/$g"; done
		for g in node-1 node-2 node-3; do echo "$(quota "$NODE_CPU") 100000" >"$CG/$g/cpu.max"; done
		echo "$(quota "$CLIENT_CPU") 100000" >"$CG/clients/cpu.max"
	elif [ -w /sys/fs/cgroup/cpu ]; then
		CG_ROOT=/sys/fs/cgroup/cpu
		CG="$CG_ROOT/cpm-bench.$$"
		mkdir "$CG" || return 1
		for g in node-1 node-2 node-3 clients; do
			mkdir "$CG/$g"
			echo 100000 >"$CG/$g/cpu.cfs_period_us"
		done
		for g in node-1 node-2 node-3; do quota "$NODE_CPU" >"$CG/$g/cpu.cfs_quota_us"; done
		quota "$CLIENT_CPU" >"$CG/clients/cpu.cfs_quota_us"
	else
		return 1
	fi
}

go test -c -o "$ROOT/cluster.test" ./test/
if make_cgroups; then
	echo "cpu shares: each node $NODE_CPU cores, clients + HAProxy + PostgreSQL $CLIENT_CPU cores ($CG)"
	echo $$ >"$CG/clients/cgroup.procs"
	export CPM_BENCH_CGROUPS="$CG"
else
	CG=""
	echo "cpu shares: none (no writable cgroup cpu controller): nodes and clients unconfined"
fi
cd test
CPM_BENCH=1 CPM_BENCH_CLIENTS="${CLIENTS:-9}" CPM_BENCH_SECONDS="${SECONDS_PER_COUNT:-15}" \
	"$ROOT/cluster.test" -test.count=1 -test.timeout 30m -test.run 'TestClusterBenchmark$' -test.v >"$ROOT/out" 2>&1 || {
	cat "$ROOT/out" >&2
	exit 1
}
grep '^cluster:' "$ROOT/out"
