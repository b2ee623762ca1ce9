#!/usr/bin/env bash
# Deep check benchmark: a SIZE_MB (default 1024) MB repository replicated
# to a backup that is a real OpenSSH sshd on loopback, then, in
# alternating rounds, the normal verification (refs and object names:
# sync verify) and the deep one (every object file by content: sync verify
# --deep). Prints the medians, their ratio, and the bytes the deep check
# compared (each side reads that much).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB="${SIZE_MB:-1024}"
ROUNDS="${ROUNDS:-5}"
ROOT="$(mktemp -d /tmp/cpm-dbench.XXXXXX)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$ROOT"; }
trap cleanup EXIT
. bench/lib.sh

go build -o "$ROOT/bin/" ./cmd/...
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
A="$ROOT/bin/cpm-admin --data-dir $ROOT/data"
$A init >/dev/null
$A org create bench >/dev/null
$A repo create bench/big >/dev/null

echo "making a ${SIZE_MB} MB repository…" >&2
big="$ROOT/data/repos/bench/big.git"
git init -q -b main "$ROOT/w"
for i in $(seq 16); do
	head -c $((SIZE_MB * 1024 * 1024 / 16)) /dev/urandom >"$ROOT/w/f$i.bin"
	git -C "$ROOT/w" add "f$i.bin"
	git -C "$ROOT/w" -c user.name=b -c user.email=b@x commit -q -m "part $i"
	rm "$ROOT/w/f$i.bin"
done
git -C "$ROOT/w" push -q "$big" main 2>/dev/null
git -C "$big" repack -adq
rm -rf "$ROOT/w"

BPORT=$(freeport)
mkdir -p "$ROOT/backup" /run/sshd 2>/dev/null || true
ssh-keygen -q -t ed25519 -N '' -f "$ROOT/backup/host"
cp "$ROOT/data/id_ed25519_replication.pub" "$ROOT/backup/authorized_keys"
cat >"$ROOT/backup/config" <<CFG
Port $BPORT
ListenAddress 127.0.0.1
HostKey $ROOT/backup/host
PidFile $ROOT/backup/pid
AuthorizedKeysFile $ROOT/backup/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
AllowUsers $(id -un)
SetEnv HOME=$ROOT/backup
CFG
/usr/sbin/sshd -D -f "$ROOT/backup/config" -E "$ROOT/backup/log" &
PIDS+=($!)
waitport "$BPORT"
$A server add backup --host 127.0.0.1 --port "$BPORT" --user "$(id -un)" --path "$ROOT/replicas" \
	--role backup --host-key "$(cat "$ROOT/backup/host.pub")" >/dev/null
$A sync push bench/big --to backup >/dev/null

: >"$ROOT/normal"
: >"$ROOT/deep"
for _ in $(seq "$ROUNDS"); do
	s=$(now_ms); $A sync verify bench/big --to backup >/dev/null; echo $(($(now_ms) - s)) >>"$ROOT/normal"
	s=$(now_ms); $A sync verify bench/big --to backup --deep >"$ROOT/out"; echo $(($(now_ms) - s)) >>"$ROOT/deep"
done
n=$(median <"$ROOT/normal")
d=$(median <"$ROOT/deep")
size=$(du -sm "$big/objects" | cut -f1)
echo "repository: ${size} MiB of object files; $ROUNDS alternating rounds"
echo "sync verify (refs, object names and sizes): median ${n} ms"
echo "sync verify --deep (every object file by content): median ${d} ms ($(awk -v a="$d" -v b="$n" 'BEGIN {printf "%.1f", a/b}')× the normal one)"
echo "deep check: $(grep -o '[0-9]* MiB of object files compared' "$ROOT/out") on each side, $(awk -v s="$size" -v d="$d" 'BEGIN {printf "%.0f", s/(d/1000)}') MiB/s"
