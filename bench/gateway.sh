#!/usr/bin/env bash
# Gateway benchmark: cpm's embedded SSH server side by side with plain
# OpenSSH sshd running git-upload-pack on the same repositories, and with
# soft-serve when SOFT=/path/to/soft is given (build it from its own
# repository; it never enters this project). Everything runs on loopback
# in one go, so the ratios compare like with like on a noisy machine.
#
#   bench/gateway.sh                       # cpm and OpenSSH
#   SOFT=/tmp/soft-bin/soft bench/gateway.sh
#
# Knobs: SIZE_MB (big repository, default 100), RUNS (ls-remote runs,
# default 21), CLONES (concurrent clones, default 100).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB="${SIZE_MB:-100}"
RUNS="${RUNS:-21}"
CLONES="${CLONES:-100}"
ROOT="$(mktemp -d /tmp/cpm-bench.XXXXXX)"
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$ROOT"
}
trap cleanup EXIT

. bench/lib.sh

echo "building cpm…" >&2
go build -o "$ROOT/bin/" ./cmd/...
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
ssh-keygen -q -t ed25519 -N '' -f "$ROOT/key"
KH="$ROOT/known_hosts"
export GIT_SSH_COMMAND="ssh -i $ROOT/key -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$KH -o LogLevel=ERROR"

make_repos
git clone -q --bare --no-local "$src" "$ROOT/plain/big.git"
git clone -q --bare --no-local "$small" "$ROOT/plain/small.git"

# cpm
CPM_DATA="$ROOT/cpm"
A="$ROOT/bin/cpm-admin --data-dir $CPM_DATA"
$A init >/dev/null
$A user add bench --admin --key "$ROOT/key.pub" >/dev/null
$A org create bench --owner bench >/dev/null
$A repo create bench/big >/dev/null
$A repo create bench/small >/dev/null
git -C "$src" push -q "$CPM_DATA/repos/bench/big.git" main
git -C "$small" push -q "$CPM_DATA/repos/bench/small.git" main
CPM_PORT=$(freeport)
"$ROOT/bin/cpm-shell" serve --data-dir "$CPM_DATA" --listen "127.0.0.1:$CPM_PORT" --git-listen '' 2>"$ROOT/cpm.log" &
CPM_PID=$!; PIDS+=("$CPM_PID")
waitport "$CPM_PORT"
echo "[127.0.0.1]:$CPM_PORT $(cut -d' ' -f1,2 "$CPM_DATA/ssh_host_ed25519_key.pub")" >> "$KH"

# OpenSSH sshd with plain git-upload-pack
start_git_sshd "$ROOT/sshd" "$ROOT/key.pub"
SSHD_PORT=$BPORT
echo "[127.0.0.1]:$SSHD_PORT $(cut -d' ' -f1,2 "$ROOT/sshd/host.pub")" >> "$KH"

# soft-serve
SOFT_PORT=""
if [ -n "${SOFT:-}" ]; then
	start_soft "$SOFT" "$ROOT/soft" "$ROOT/key.pub" "$KH"
	git -C "$src" push -q "ssh://git@127.0.0.1:$SOFT_PORT/big" main
	git -C "$small" push -q "ssh://git@127.0.0.1:$SOFT_PORT/small" main
fi

# Every server serves the same packed repository. A push of fewer than
# receive.unpackLimit (100) objects is stored loose, and serving 100 MB of
# loose objects means compressing them again on every clone: measure the
# servers, not that.
repack() { git -C "$1" repack -q -a -d; }
repack "$CPM_DATA/repos/bench/big.git"; repack "$CPM_DATA/repos/bench/small.git"
if [ -n "$SOFT_PORT" ]; then repack "$ROOT/soft/repos/big.git"; repack "$ROOT/soft/repos/small.git"; fi

declare -A URL
URL[cpm]="ssh://git@127.0.0.1:$CPM_PORT/bench"
URL[openssh]="ssh://$(id -un)@127.0.0.1:$SSHD_PORT$ROOT/plain"
[ -n "$SOFT_PORT" ] && URL[soft-serve]="ssh://git@127.0.0.1:$SOFT_PORT"
servers=(cpm openssh); [ -n "$SOFT_PORT" ] && servers+=(soft-serve)

rss_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

echo
echo "== $CLONES concurrent clones of a small repository (first, on fresh servers)"
for s in "${servers[@]}"; do
	start=$(now_ms); fails=0
	for i in $(seq "$CLONES"); do git clone -q --bare "${URL[$s]}/small.git" "$ROOT/cc-$s-$i" 2>/dev/null & done
	for job in $(jobs -p); do case " ${PIDS[*]} " in *" $job "*) ;; *) wait "$job" || fails=$((fails+1));; esac; done
	took=$(( $(now_ms) - start ))
	ok=$(ls -d "$ROOT"/cc-"$s"-* 2>/dev/null | while read -r d; do git -C "$d" rev-parse -q --verify main >/dev/null && echo ok; done | wc -l)
	rss="n/a (a process per connection)"
	[ "$s" = cpm ] && rss="$(( $(rss_kb "$CPM_PID") / 1024 )) MB peak RSS"
	[ "$s" = soft-serve ] && rss="$(( $(rss_kb "$SOFT_PID") / 1024 )) MB peak RSS"
	printf "%-10s %4d ok, %3d failed, %6d ms, %s\n" "$s" "$ok" "$(( CLONES - ok ))" "$took" "$rss"
	rm -rf "$ROOT"/cc-"$s"-*
done

echo
echo "== git ls-remote latency, median of $RUNS"
declare -A LS
for s in "${servers[@]}"; do
	LS[$s]=$(for i in $(seq "$RUNS"); do t=$(now_ms); git ls-remote "${URL[$s]}/small.git" >/dev/null; echo $(( $(now_ms) - t )); done | median)
	printf "%-10s %6s ms\n" "$s" "${LS[$s]}"
done
echo "cpm / openssh: $(awk "BEGIN {printf \"%.2f\", ${LS[cpm]} / ${LS[openssh]}}")"
[ -n "$SOFT_PORT" ] && echo "cpm / soft-serve: $(awk "BEGIN {printf \"%.2f\", ${LS[cpm]} / ${LS[soft-serve]}}")"

echo
echo "== clone of the ${SIZE_MB} MB repository, median of 5"
declare -A CL
clone_ms() { for i in 1 2 3 4 5; do rm -rf "$ROOT/c"; t=$(now_ms); git clone -q --bare "$1" "$ROOT/c"; echo $(( $(now_ms) - t )); done | median; }
CL[file]=$(clone_ms "file://$ROOT/plain/big.git")
printf "%-10s %6s ms (git clone --no-local file://, the baseline)\n" file "${CL[file]}"
for s in "${servers[@]}"; do
	CL[$s]=$(clone_ms "${URL[$s]}/big.git")
	printf "%-10s %6s ms, %s x file://\n" "$s" "${CL[$s]}" "$(awk "BEGIN {printf \"%.2f\", ${CL[$s]} / ${CL[file]}}")"
done
