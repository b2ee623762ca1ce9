#!/usr/bin/env bash
# info at two sizes, alternately (issue 25's goal: within 1.1x from 100 to
# 50,000 repositories): two cpm servers, one on SMALL and one on LARGE
# repositories made in bulk (bench/scalegen), both with a user who reads
# 3 of them; RUNS rounds of one `info` over ssh on each, in turn, so that
# the machine's load falls on both alike. Prints each median and the
# ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
SMALL="${SMALL:-100}"
LARGE="${LARGE:-50000}"
RUNS="${RUNS:-40}"
. bench/lib.sh
bench_init cpm-scaleinfo
go build -o "$ROOT/bin/" ./bench/scalegen
ssh-keygen -q -t ed25519 -N '' -f "$ROOT/key"

start() { # N -> a server on N repositories; sets PORT_N
	local n=$1 d="$ROOT/n$1"
	local A="$ROOT/bin/cpm-admin --data-dir $d/data"
	$A init >/dev/null
	"$ROOT/bin/scalegen" -data "$d/data" -repos "$n" -hook "$ROOT/bin/cpm-hook"
	$A user add reader --key "$ROOT/key.pub" >/dev/null
	for r in 1 2 3; do $A repo grant "org1/repo$r" reader read >/dev/null; done
	local port; port=$(freeport)
	"$ROOT/bin/cpm-shell" serve --data-dir "$d/data" --listen "127.0.0.1:$port" --git-listen '' --repack 0 2>"$d/server.log" &
	PIDS+=($!)
	waitport "$port"
	echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$d/data/ssh_host_ed25519_key.pub")" >> "$ROOT/known_hosts"
	eval "PORT_$n=$port"
}
info() { # PORT -> ms
	local t0; t0=$(now_ms)
	ssh -i "$ROOT/key" -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile="$ROOT/known_hosts" -o LogLevel=ERROR \
		-p "$1" git@127.0.0.1 info > "$ROOT/out"
	echo $(( $(now_ms) - t0 ))
	[ "$(grep -c ' org1/repo' "$ROOT/out")" = 3 ] || { echo "info does not list 3 repositories" >&2; exit 1; }
}

start "$SMALL"
start "$LARGE"
small_port="PORT_$SMALL" large_port="PORT_$LARGE"
: > "$ROOT/small"; : > "$ROOT/large"
for _ in $(seq "$RUNS"); do
	info "${!small_port}" >> "$ROOT/small"
	info "${!large_port}" >> "$ROOT/large"
done
s=$(median < "$ROOT/small"); l=$(median < "$ROOT/large")
echo "info for a user who reads 3 repositories, median of $RUNS alternate runs:"
echo "  $SMALL repositories: $s ms; $LARGE repositories: $l ms; ratio $(awk -v a="$l" -v b="$s" 'BEGIN {printf "%.2f", a/b}')x (goal <= 1.1x)"
