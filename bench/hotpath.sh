#!/usr/bin/env bash
# Runs BenchmarkHotPath COUNT times (default 10) and prints the median
# ns/op of each store size and the ratio of the large store to the small
# one, measured in the same run. Target: ratio <= 1.5.
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-10}"
out="$(go test -run '^$' -bench 'BenchmarkHotPath' -benchtime 1s -count "$count" ./internal/access/)"
echo "$out" | grep '^Benchmark'
echo "$out" | awk '
	/^BenchmarkHotPath\// {
		name = $1; sub(/^BenchmarkHotPath\//, "", name); sub(/-[0-9]+$/, "", name)
		v[name] = v[name] " " $3
	}
	function median(s,    a, n, i, j, t) {
		n = split(s, a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	END {
		small = median(v["users=10"]); large = median(v["users=10000"]); spread = median(v["users=10000/callers=1000"])
		printf "median ns/op: users=10 %.0f, users=10000 %.0f, users=10000/callers=1000 %.0f\n", small, large, spread
		printf "ratio large/small: %.2f (target <= 1.50)\n", large / small
		printf "ratio spread/small: %.2f (1,000 distinct callers, for the record)\n", spread / small
		exit (large / small <= 1.5 ? 0 : 1)
	}'
