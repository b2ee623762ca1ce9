#!/usr/bin/env bash
# Deep check benchmark: a SIZE_MB (default 1024) MB repository replicated
# to a backup that is a real OpenSSH sshd on loopback, then, in
# alternating rounds, the normal verification (refs and object names:
# sync verify) and the deep one (every object file by content: sync verify
# --deep). Prints the medians, their ratio, and the bytes the deep check
# compared (each side reads that much). COLD=1 drops the page cache
# before every deep check (root only), so that it reads from the disk.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB="${SIZE_MB:-1024}"
ROUNDS="${ROUNDS:-5}"
. bench/lib.sh
bench_init cpm-dbench
A="$ROOT/bin/cpm-admin --data-dir $ROOT/data"
$A init >/dev/null
$A org create bench >/dev/null
$A repo create bench/big >/dev/null

echo "making a ${SIZE_MB} MB repository…" >&2
big="$ROOT/data/repos/bench/big.git"
# Random data neither compresses nor deltas: store it as it is, or zlib
# and the delta search spend many minutes on it.
export GIT_CONFIG_COUNT=3 GIT_CONFIG_KEY_0=core.compression GIT_CONFIG_VALUE_0=0 GIT_CONFIG_KEY_1=pack.compression GIT_CONFIG_VALUE_1=0 GIT_CONFIG_KEY_2=core.bigFileThreshold GIT_CONFIG_VALUE_2=1m
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
unset GIT_CONFIG_COUNT GIT_CONFIG_KEY_0 GIT_CONFIG_VALUE_0 GIT_CONFIG_KEY_1 GIT_CONFIG_VALUE_1 GIT_CONFIG_KEY_2 GIT_CONFIG_VALUE_2

start_backup_sshd "$ROOT/backup" "$ROOT/data/id_ed25519_replication.pub"
$A server add backup --host 127.0.0.1 --port "$BPORT" --user "$(id -un)" --path "$ROOT/replicas" \
	--role backup --host-key "$(cat "$ROOT/backup/host.pub")" >/dev/null
$A sync push bench/big --to backup >/dev/null

: >"$ROOT/normal"
: >"$ROOT/deep"
for _ in $(seq "$ROUNDS"); do
	s=$(now_ms); $A sync verify bench/big --to backup >/dev/null; echo $(($(now_ms) - s)) >>"$ROOT/normal"
	[ -n "${COLD:-}" ] && sync && echo 3 >/proc/sys/vm/drop_caches
	s=$(now_ms); $A sync verify bench/big --to backup --deep >"$ROOT/out"; echo $(($(now_ms) - s)) >>"$ROOT/deep"
done
n=$(median <"$ROOT/normal")
d=$(median <"$ROOT/deep")
size=$(du -sm "$big/objects" | cut -f1)
cache=warm
[ -n "${COLD:-}" ] && cache="dropped before each deep check"
echo "repository: ${size} MiB of object files; $ROUNDS alternating rounds; page cache $cache"
echo "sync verify (refs, object names and sizes): median ${n} ms"
echo "sync verify --deep (every object file by content): median ${d} ms ($(awk -v a="$d" -v b="$n" 'BEGIN {printf "%.1f", a/b}')× the normal one)"
echo "deep check: $(grep -o '[0-9]* MiB of object files compared' "$ROOT/out") on each side, $(awk -v s="$size" -v d="$d" 'BEGIN {printf "%.0f", s/(d/1000)}') MiB/s"
