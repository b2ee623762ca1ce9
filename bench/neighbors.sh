#!/usr/bin/env bash
# Neighbour benchmark on loopback: two cpm nodes, A on 127.0.0.2 and B on
# 127.0.0.3, measured in one run.
#   - discovery of 127.0.0.0/24 (RUNS runs, default 5); target < 3 s;
#   - lag from the end of `git push` to A until a user's `git ls-remote`
#     on B shows the commit, p50 and p99 over PUSHES pushes (default 30);
#   - time from `cpm-admin key remove` on A until the key is refused on B
#     (RUNS runs).
set -euo pipefail
cd "$(dirname "$0")/.."
PUSHES="${PUSHES:-30}"
RUNS="${RUNS:-5}"
ROOT="$(mktemp -d /tmp/cpm-nbench.XXXXXX)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$ROOT"; }
trap cleanup EXIT
. bench/lib.sh

go build -o "$ROOT/bin/" ./cmd/...
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
A="$ROOT/bin/cpm-admin --data-dir $ROOT/a"
B="$ROOT/bin/cpm-admin --data-dir $ROOT/b"
$A init --node-name node-a >/dev/null
$B init --node-name node-b >/dev/null
ssh-keygen -q -t ed25519 -N '' -f "$ROOT/key"
$A user add bench --admin --key "$ROOT/key.pub" >/dev/null
$A org create bench --owner bench >/dev/null
$A repo create bench/small >/dev/null

# One git:// port free on both addresses; ssh ports picked by the kernel
# are read back from the log.
GPORT=$(freeport)
start() { # dir addr log; sets PORT
	"$ROOT/bin/cpm-shell" serve --data-dir "$1" --listen "$2:0" --git-listen "$2:$GPORT" --repack 0 2>"$3" &
	PIDS+=($!)
	until grep -q 'cpm-shell serving' "$3"; do sleep 0.05; done
	PORT=$(sed -n 's/.*"ssh":"[0-9.]*:\([0-9]*\)".*/\1/p' "$3" | head -1)
}
start "$ROOT/a" 127.0.0.2 "$ROOT/a.log"
APORT=$PORT
start "$ROOT/b" 127.0.0.3 "$ROOT/b.log"
BPORT=$PORT
{
	echo "[127.0.0.2]:$APORT $(cut -d' ' -f1,2 "$ROOT/a/ssh_host_ed25519_key.pub")"
	echo "[127.0.0.3]:$BPORT $(cut -d' ' -f1,2 "$ROOT/b/ssh_host_ed25519_key.pub")"
} > "$ROOT/known_hosts"
export GIT_SSH_COMMAND="ssh -i $ROOT/key -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$ROOT/known_hosts -o LogLevel=ERROR"

echo "== discovery of 127.0.0.0/24 with two nodes, $RUNS runs"
times="$ROOT/times"
: > "$times"
for _ in $(seq "$RUNS"); do
	t0=$(now_ms)
	n=$($A neighbor discover 127.0.0.0/24 --port "$GPORT" --json | grep -o '"host"' | wc -l)
	echo $(( $(now_ms) - t0 )) >> "$times"
	[ "$n" -eq 2 ] || { echo "found $n nodes, want 2" >&2; exit 1; }
done
echo "median $(median < "$times") ms, max $(sort -n "$times" | tail -1) ms (target < 3000)"

$A neighbor discover 127.0.0.3/32 --port "$GPORT" --add --yes >/dev/null
$B neighbor discover 127.0.0.2/32 --port "$GPORT" --add --yes >/dev/null

on_b() { git ls-remote "ssh://git@127.0.0.3:$BPORT/bench/small.git" refs/heads/main 2>/dev/null | cut -f1; }

echo
echo "== lag from the end of git push on A to a read on B, $PUSHES pushes"
git init -q -b main "$ROOT/w"
lags="$ROOT/lags"
: > "$lags"
for i in $(seq "$PUSHES"); do
	next_commit "$ROOT/w" "$i"
	want=$(git -C "$ROOT/w" rev-parse HEAD)
	git -C "$ROOT/w" push -q "ssh://git@127.0.0.2:$APORT/bench/small.git" HEAD:main
	t0=$(now_ms)
	until [ "$(on_b)" = "$want" ]; do
		sleep 0.01
		if [ $(( $(now_ms) - t0 )) -gt 60000 ]; then echo "B never showed push $i" >&2; exit 1; fi
	done
	echo $(( $(now_ms) - t0 )) >> "$lags"
done
echo "p50 $(pct 50 < "$lags") ms, p99 $(pct 99 < "$lags") ms, max $(sort -n "$lags" | tail -1) ms"

echo
echo "== from key remove on A until B refuses the key, $RUNS runs"
: > "$times"
for i in $(seq "$RUNS"); do
	ssh-keygen -q -t ed25519 -N '' -f "$ROOT/k$i"
	$A key add bench "$ROOT/k$i.pub" >/dev/null
	reads() { GIT_SSH_COMMAND="ssh -i $ROOT/k$i -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=$ROOT/known_hosts -o LogLevel=ERROR" \
		git ls-remote "ssh://git@127.0.0.3:$BPORT/bench/small.git" >/dev/null 2>&1; }
	until reads; do sleep 0.05; done # the new key reached B
	fp=$(ssh-keygen -lf "$ROOT/k$i.pub" | cut -d' ' -f2)
	t0=$(now_ms)
	$A key remove "$fp" >/dev/null
	while reads; do sleep 0.01; done
	echo $(( $(now_ms) - t0 )) >> "$times"
done
echo "median $(median < "$times") ms, max $(sort -n "$times" | tail -1) ms"
