#!/usr/bin/env bash
# Git LFS over HTTPS against Git LFS over ssh, with the real git-lfs
# client and one cpm-shell serve: each run uploads a new random object of
# SIZE MiB through each transport (git lfs push --object-id), then
# downloads the object of main's tree into an empty LFS store through
# each (git lfs fetch). Prints the medians and the ratio HTTPS / ssh
# (below 1: HTTPS is faster). Goal: no slower than ssh (ratio <= 1.1 on
# a loaded machine).
#
#   bench/lfshttp.sh               # SIZE=64 RUNS=5
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE="${SIZE:-64}"
RUNS="${RUNS:-5}"
. bench/lib.sh
bench_init cpm-lfshttp
bin="$ROOT/bin" data="$ROOT/data"
ssh-keygen -q -t ed25519 -N '' -f "$ROOT/key"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$ROOT/tls.key" -out "$ROOT/tls.crt" 2>/dev/null
"$bin/cpm-admin" --data-dir "$data" init >/dev/null
"$bin/cpm-admin" --data-dir "$data" user add bench --key "$ROOT/key.pub" >/dev/null
"$bin/cpm-admin" --data-dir "$data" org create bench --owner bench >/dev/null
"$bin/cpm-admin" --data-dir "$data" repo create bench/web >/dev/null
token=$("$bin/cpm-admin" --data-dir "$data" token create bench --name bench | tail -n 1)
port=$(freeport) hport=$(freeport)
"$bin/cpm-shell" serve --data-dir "$data" --listen "127.0.0.1:$port" --git-listen '' \
	--http-listen "127.0.0.1:$hport" --tls-cert "$ROOT/tls.crt" --tls-key "$ROOT/tls.key" 2>"$ROOT/serve.log" &
PIDS+=($!)
waitport "$port"
waitport "$hport"
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$data/ssh_host_ed25519_key.pub")" >"$ROOT/known_hosts"

export HOME="$ROOT/home" GIT_CONFIG_GLOBAL="$ROOT/home/.gitconfig" GIT_SSL_CAINFO="$ROOT/tls.crt" GIT_TERMINAL_PROMPT=0
export GIT_SSH_COMMAND="ssh -i $ROOT/key -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=$ROOT/known_hosts -o LogLevel=ERROR"
mkdir -p "$HOME"
git lfs install --skip-repo >/dev/null
git config --global credential.helper "!f() { test \"\$1\" = get && echo username=bench && echo password=$token; }; f"
git config --global user.name bench
git config --global lfs.locksverify false
git config --global user.email bench@example.com

work="$ROOT/work"
git init -q -b main "$work"
git -C "$work" remote add ssh "ssh://git@127.0.0.1:$port/bench/web.git"
git -C "$work" remote add https "https://127.0.0.1:$hport/bench/web.git"
git -C "$work" lfs track '*.bin' >/dev/null
git -C "$work" add .gitattributes
git -C "$work" commit -q -m start
git -C "$work" push -q ssh main

# timed CMD... prints how long CMD took, in ms.
timed() {
	local start
	start=$(now_ms)
	"$@" >/dev/null 2>"$ROOT/last.err" || { cat "$ROOT/last.err" >&2; return 1; }
	echo $(($(now_ms) - start))
}

# newobject NAME commits SIZE MiB of random bytes as NAME, prints its id.
newobject() {
	head -c "$((SIZE << 20))" /dev/urandom >"$work/$1"
	git -C "$work" add "$1"
	git -C "$work" commit -q -m "$1"
	git -C "$work" lfs ls-files -l -I "$1" | cut -d' ' -f1
}

for i in $(seq "$RUNS"); do
	for t in ssh https; do
		oid=$(newobject "$t.bin")
		timed git -C "$work" lfs push --object-id "$t" "$oid" >>"$ROOT/up.$t"
	done
	git -C "$work" push -q ssh main
	for t in ssh https; do
		rm -rf "$work/.git/lfs/objects"
		timed git -C "$work" lfs fetch "$t" main >>"$ROOT/down.$t"
	done
done

report() {
	local s h
	s=$(median <"$ROOT/$1.ssh") h=$(median <"$ROOT/$1.https")
	printf '%-8s %d MiB: ssh median %6d ms, https median %6d ms, https/ssh %.2f (%d runs)\n' \
		"$1" "$SIZE" "$s" "$h" "$(echo "$h / $s" | bc -l)" "$RUNS"
}
report up
report down
