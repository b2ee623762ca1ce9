#!/usr/bin/env bash
# Replication of many small repositories to one backup (issue 25, batched
# transfers and bulk reconciliation), measured in one run for each N in NS
# (default "10 200 1000"): N repositories with one small commit each
# (repo create, then the objects of one seed repository copied in), one
# backup on a real OpenSSH sshd on loopback. For each N: the wall time of
# the initial replication (server add to the last verified sync), and the
# duration of one reconciliation pass over current replicas (its own
# `reconcile` event). At the end, each time at the largest N against the
# smallest, per 20x the repositories (goal: at most 6x for 10 vs 200).
set -euo pipefail
cd "$(dirname "$0")/.."
NS="${NS:-10 200 1000}"
. bench/lib.sh
bench_init cpm-replbatch
RES="$ROOT/results"
: > "$RES"

git init -q --bare -b main "$ROOT/seed.git"
git init -q -b main "$ROOT/w"
next_commit "$ROOT/w" seed
git -C "$ROOT/w" push -q "$ROOT/seed.git" HEAD:main

events() { grep -c "\"message\":\"$2\"" "$1" || true; }

run() { # N
	local n=$1 d="$ROOT/n$1"
	local A="$ROOT/bin/cpm-admin --data-dir $d/data"
	mkdir -p "$d"
	$A init >/dev/null
	ssh-keygen -q -t ed25519 -N '' -f "$d/key"
	$A user add bench --admin --key "$d/key.pub" >/dev/null
	$A org create bench --owner bench >/dev/null
	seq -f "bench/r%05g" "$n" | xargs -P 2 -n 50 sh -c 'for r; do '"$A"' repo create "$r" >/dev/null; done' sh
	for r in "$d"/data/repos/bench/*.git; do
		cp -r "$ROOT/seed.git/objects/." "$r/objects/"
		cp "$ROOT/seed.git/refs/heads/main" "$r/refs/heads/main"
	done
	start_backup_sshd "$d/backup" "$d/data/id_ed25519_replication.pub"
	local port
	port=$(freeport)
	"$ROOT/bin/cpm-shell" serve --data-dir "$d/data" --listen "127.0.0.1:$port" --git-listen '' --repack 0 \
		--verify-every 0 2>"$d/server.log" &
	PIDS+=($!)
	waitport "$port"
	local t0 t1
	t0=$(now_ms)
	$A server add backup --host 127.0.0.1 --port "$BPORT" --user "$(id -un)" --path "$d/replicas" \
		--role backup --host-key "$(cat "$d/backup/host.pub")" >/dev/null
	until [ "$(events "$d/server.log" sync)" -ge "$n" ]; do sleep 0.1; done
	t1=$(now_ms)
	echo "initial $n $((t1 - t0))" >> "$RES"
	echo "N=$n initial replication: $((t1 - t0)) ms"
	$A server set backup --every 1s >/dev/null
	until grep -q "\"checked\":$n,.*\"message\":\"reconcile\"" "$d/server.log"; do sleep 0.1; done
	local ms
	ms=$(grep "\"checked\":$n,.*\"message\":\"reconcile\"" "$d/server.log" | head -1 | sed -n 's/.*"duration_ms":\([0-9]*\).*/\1/p')
	echo "reconcile $n $ms" >> "$RES"
	echo "N=$n reconciliation pass: $ms ms"
	kill "${PIDS[-1]}" "$SSHD_PID"
	wait "${PIDS[-1]}" "$SSHD_PID" 2>/dev/null || true
}

for n in $NS; do run "$n"; done
lo=$(echo "$NS" | awk '{print $1}')
hi=$(echo "$NS" | awk '{print $NF}')
for what in initial reconcile; do
	awk -v w="$what" -v lo="$lo" -v hi="$hi" '$1 == w && $2 == lo {a = $3} $1 == w && $2 == hi {b = $3}
		END {printf "%s: %d repositories %.1f s, %d repositories %.1f s: %.2fx for %gx the repositories\n", w, lo, a/1000, hi, b/1000, b/(a ? a : 1), hi/lo}' "$RES"
done
