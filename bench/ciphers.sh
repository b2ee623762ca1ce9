#!/usr/bin/env bash
# Cipher benchmark: a clone of a large repository through cpm's embedded
# server with each cipher it offers, forced from the client (ssh -c), in
# alternating rounds of one run, so that the medians and ratios compare
# like with like on a noisy machine. The client picks the first of its
# own ciphers that the server offers, so this says which ciphers cpm
# should offer at all, not only in which order.
#
#   bench/ciphers.sh           # SIZE_MB=100 ROUNDS=7
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB="${SIZE_MB:-100}"
ROUNDS="${ROUNDS:-7}"
CIPHERS="${CIPHERS:-chacha20-poly1305@openssh.com aes128-gcm@openssh.com aes256-gcm@openssh.com aes128-ctr}"
. bench/lib.sh
bench_init cpm-cbench
ssh-keygen -q -t ed25519 -N '' -f "$ROOT/key"
admin() { "$ROOT/bin/cpm-admin" --data-dir "$ROOT/data" "$@" >/dev/null; }
admin init
admin user add b --admin --key "$ROOT/key.pub"
admin org create acme --owner b
port=$(freeport)
"$ROOT/bin/cpm-shell" serve --data-dir "$ROOT/data" --listen "127.0.0.1:$port" --git-listen "" 2>"$ROOT/serve.log" &
PIDS+=($!)
waitport "$port"
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$ROOT/data/ssh_host_ed25519_key.pub")" >"$ROOT/kh"
ssh_base="ssh -i $ROOT/key -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$ROOT/kh -o LogLevel=ERROR"
url="ssh://git@127.0.0.1:$port/acme/big.git"

echo "making a ${SIZE_MB} MB repository…" >&2
git init -q -b main "$ROOT/src"
for i in $(seq 20); do head -c $((SIZE_MB * 1024 * 1024 / 20)) /dev/urandom >"$ROOT/src/f$i.bin"; done
git -C "$ROOT/src" add . && git -C "$ROOT/src" -c user.name=b -c user.email=b@x commit -q -m big
GIT_SSH_COMMAND="$ssh_base" git -C "$ROOT/src" push -q "$url" main
# A push of a few large objects is kept loose; serve it from a pack, as
# maintenance leaves it, so the clone measures the transport, not zlib.
git -C "$ROOT/data/repos/acme/big.git" repack -adq

for c in $CIPHERS; do : >"$ROOT/t.$c"; done
for r in $(seq "$ROUNDS"); do
	for c in $CIPHERS; do
		rm -rf "$ROOT/clone"
		s=$(now_ms)
		GIT_SSH_COMMAND="$ssh_base -c $c" git clone -q --bare "$url" "$ROOT/clone"
		echo $(($(now_ms) - s)) >>"$ROOT/t.$c"
	done
done
base=$(median <"$ROOT/t.chacha20-poly1305@openssh.com")
printf "%-32s %10s %8s\n" cipher "median ms" "ratio"
for c in $CIPHERS; do
	m=$(median <"$ROOT/t.$c")
	printf "%-32s %10s %8s\n" "$c" "$m" "$(awk -v a="$m" -v b="$base" 'BEGIN {printf "%.2f", a/b}')"
done
echo "(ratio: against chacha20-poly1305, OpenSSH's first choice; $ROUNDS alternating rounds, ${SIZE_MB} MB, CPU AES: $(grep -q -m1 -w aes /proc/cpuinfo && echo yes || echo no))"
