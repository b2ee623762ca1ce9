#!/usr/bin/env bash
# Replication benchmark on loopback: a cpm server replicating to a backup
# that is a real OpenSSH sshd, measured in one run.
#   - lag from the end of `git push` until the backup's refs show it and
#     cpm has logged the verified sync, p50 and p99 over PUSHES pushes
#     (default 50); targets p50 <= 1 s, p99 <= 3 s;
#   - bytes rsync sends for a one-commit push to a SIZE_MB (default 100) MB
#     repository; target <= 0.1% of its size.
set -euo pipefail
cd "$(dirname "$0")/.."
PUSHES="${PUSHES:-50}"
SIZE_MB="${SIZE_MB:-100}"
ROOT="$(mktemp -d /tmp/cpm-rbench.XXXXXX)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$ROOT"; }
trap cleanup EXIT
[ -n "${KEEP_LOG:-}" ] && trap 'cp "$ROOT/server.log" "$KEEP_LOG"; cleanup' EXIT
. bench/lib.sh

go build -o "$ROOT/bin/" ./cmd/...
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
A="$ROOT/bin/cpm-admin --data-dir $ROOT/data"
$A init >/dev/null
ssh-keygen -q -t ed25519 -N '' -f "$ROOT/key"
$A user add bench --admin --key "$ROOT/key.pub" >/dev/null
$A org create bench --owner bench >/dev/null
$A repo create bench/small >/dev/null
$A repo create bench/big >/dev/null

# The backup: OpenSSH sshd letting cpm's replication key in.
start_backup_sshd "$ROOT/backup" "$ROOT/data/id_ed25519_replication.pub"
$A server add backup --host 127.0.0.1 --port "$BPORT" --user "$(id -un)" --path "$ROOT/replicas" \
	--role backup --host-key "$(cat "$ROOT/backup/host.pub")" >/dev/null

SPORT=$(freeport)
"$ROOT/bin/cpm-shell" serve --data-dir "$ROOT/data" --listen "127.0.0.1:$SPORT" --git-listen '' --repack 0 2>"$ROOT/server.log" &
PIDS+=($!)
waitport "$SPORT"
echo "[127.0.0.1]:$SPORT $(cut -d' ' -f1,2 "$ROOT/data/ssh_host_ed25519_key.pub")" > "$ROOT/known_hosts"
export GIT_SSH_COMMAND="ssh -i $ROOT/key -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$ROOT/known_hosts -o LogLevel=ERROR"
URL="ssh://git@127.0.0.1:$SPORT/bench"

replica_main() { git -C "$ROOT/replicas/bench/$1.git" rev-parse -q --verify refs/heads/main 2>/dev/null || true; }
syncs() { grep -c "\"repo\":\"bench/$1\".*\"message\":\"sync\"" "$ROOT/server.log" || true; }
wait_replica() { # repo commit syncs-before-the-push -> ms waited
	local t0; t0=$(now_ms)
	until [ "$(replica_main "$1")" = "$2" ] && [ "$(syncs "$1")" -gt "${3:-0}" ]; do
		sleep 0.01
		if [ $(( $(now_ms) - t0 )) -gt 60000 ]; then echo "replica of $1 never reached $2" >&2; exit 1; fi
	done
	echo $(( $(now_ms) - t0 ))
}

echo "== lag from the end of git push to the backup, $PUSHES pushes"
git init -q -b main "$ROOT/w"
lags="$ROOT/lags"
: > "$lags"
for i in $(seq "$PUSHES"); do
	next_commit "$ROOT/w" "$i"
	before=$(syncs small)
	git -C "$ROOT/w" push -q "$URL/small.git" HEAD:main
	wait_replica small "$(git -C "$ROOT/w" rev-parse HEAD)" "$before" >> "$lags"
done
echo "p50 $(pct 50 < "$lags") ms, p99 $(pct 99 < "$lags") ms, max $(sort -n "$lags" | tail -1) ms (targets: p50 <= 1000, p99 <= 3000)"

echo
echo "== bytes sent for a one-commit push to a ${SIZE_MB} MB repository"
git init -q -b main "$ROOT/big"
per=$(( SIZE_MB / 20 )); [ "$per" -ge 1 ] || per=1
for i in $(seq 20); do
	head -c "${per}M" /dev/urandom > "$ROOT/big/blob$i"
	git -C "$ROOT/big" add "blob$i"
	git -C "$ROOT/big" -c user.name=b -c user.email=b@x commit -q -m "blob $i"
done
git -C "$ROOT/big" push -q "$URL/big.git" HEAD:main
wait_replica big "$(git -C "$ROOT/big" rev-parse HEAD)" >/dev/null
until grep -q '"repo":"bench/big".*"bytes":[0-9]\{7,\}.*"message":"sync"' "$ROOT/server.log"; do sleep 0.05; done
size=$(du -sb "$ROOT/data/repos/bench/big.git/objects" | cut -f1)
echo "one more line" > "$ROOT/big/README"
git -C "$ROOT/big" add README
git -C "$ROOT/big" -c user.name=b -c user.email=b@x commit -q -m "one commit"
syncs_before=$(grep -c '"repo":"bench/big".*"message":"sync"' "$ROOT/server.log" || true)
git -C "$ROOT/big" push -q "$URL/big.git" HEAD:main
wait_replica big "$(git -C "$ROOT/big" rev-parse HEAD)" >/dev/null
# The sync is logged after its verification: wait for that line.
until [ "$(grep -c '"repo":"bench/big".*"message":"sync"' "$ROOT/server.log")" -gt "$syncs_before" ]; do sleep 0.05; done
bytes=$(grep '"message":"sync"' "$ROOT/server.log" | grep '"repo":"bench/big"' | tail -1 | sed 's/.*"bytes":\([0-9]*\).*/\1/')
echo "repository objects: $size bytes; sent for the one-commit push: $bytes bytes ($(awk "BEGIN {printf \"%.4f\", 100*$bytes/$size}")%, target <= 0.1%)"
