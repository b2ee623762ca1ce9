#!/usr/bin/env bash
# The store's hot paths on SQLite and PostgreSQL in one run
# (BenchmarkEngines: 10,000 users, 100,000 keys, 10,000 repositories, two
# backups; PostgreSQL is a throwaway server on loopback). Prints each
# path's median latency on both engines and the PostgreSQL/SQLite ratio.
# Goals: ratio <= 3 for each, authentication lookup <= 2 ms median on
# PostgreSQL. Exit status 1 when a goal is missed.
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
		n = split("auth-lookup authorize queue-write claim-8-workers", order, " ")
		for (k = 1; k <= n; k++) {
			op = order[k]; s = med["sqlite/" op]; g = med["postgres/" op]
			if (s == "" || g == "") continue
			r = g / s
			printf "%-18s %11.1f µs %12.1f µs %7.2fx\n", op, s / 1000, g / 1000, r
			if (r > 3) ok = 0
			if (op == "auth-lookup" && g > 2000000) ok = 0
		}
		rt = med["postgres/round-trip"]
		if (rt != "") {
			printf "postgres round trip (SELECT 1 on loopback): %.1f µs; auth-lookup %.1f µs above it\n", rt / 1000, (med["postgres/auth-lookup"] - rt) / 1000
		}
		print ok ? "goals met" : "goal missed: PostgreSQL above 3x SQLite, or authentication lookup above 2 ms"
		exit ok ? 0 : 1
	}'
