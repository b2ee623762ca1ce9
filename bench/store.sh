#!/usr/bin/env bash
# The store's hot paths on SQLite and PostgreSQL in one run
# (BenchmarkEngines: 10,000 users, 100,000 keys, 10,000 repositories, two
# backups; PostgreSQL is a throwaway server on loopback). Prints each
# path's median latency on both engines and the PostgreSQL/SQLite ratio.
# On PostgreSQL the authentication lookup and the authorization decision
# are timed twice: through a serving node's cache (current, every read a
# hit: what a node serves from; the *-cached rows) and straight from the
# database (what a cache miss costs). Goals: ratio <= 3 for each, the
# reads judged on their cached rows; authentication lookup <= 2 ms median
# on PostgreSQL, cached or not. Exit status 1 when a goal is missed.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(go test -run '^$' -bench 'BenchmarkEngines' -benchtime "${BENCHTIME:-2s}" -count 1 ./internal/access/)"
echo "$out" | grep '^Benchmark'
echo "$out" | awk '
	/^BenchmarkEngines\// {
		split($1, p, "/"); engine = p[2]; op = p[3]; sub(/-[0-9]+$/, "", op)
		for (i = 4; i < NF; i++) if ($(i + 1) == "median-ns") med[engine "/" op] = $i
		ops[op] = 1
	}
	END {
		ok = 1
		printf "%-18s %14s %14s %8s\n", "path", "sqlite median", "postgres median", "ratio"
		# The reads are judged on what a serving node answers from (its
		# cache, current: a hit); the uncached rows are what a miss costs.
		n = split("auth-lookup authorize queue-write claim-8-workers auth-lookup-cached authorize-cached", order, " ")
		for (k = 1; k <= n; k++) {
			op = order[k]; base = op; sub(/-cached$/, "", base)
			s = med["sqlite/" base]; g = med["postgres/" op]
			if (s == "" || g == "") continue
			r = g / s
			judged = (op != "auth-lookup" && op != "authorize") || med["postgres/" op "-cached"] == ""
			printf "%-18s %11.1f µs %12.1f µs %7.2fx%s\n", op, s / 1000, g / 1000, r, judged ? "" : "  (a cache miss; not judged)"
			if (judged && r > 3) ok = 0
			if ((op == "auth-lookup" || op == "auth-lookup-cached") && g > 2000000) ok = 0
		}
		rt = med["postgres/round-trip"]
		if (rt != "") {
			printf "postgres round trip (SELECT 1 on loopback): %.1f µs; auth-lookup %.1f µs above it\n", rt / 1000, (med["postgres/auth-lookup"] - rt) / 1000
		}
		print ok ? "goals met" : "goal missed: PostgreSQL above 3x SQLite, or authentication lookup above 2 ms"
		exit ok ? 0 : 1
	}'
