#!/usr/bin/env bash
# LFS request memory: the resident memory of cpm-shell serve while three
# readers at once send git-lfs-transfer a hostile batch (LINES lines of
# 60,000 bytes each, all under git's packet limit). Prints the server's
# RSS when idle, its peak during the three sessions (VmHWM, reset first),
# the difference, and its RSS once they are over. Target: the difference
# is under 60 MB.
#
#   bench/lfsmem.sh               # the work tree
#   BASE=b3f26c2 bench/lfsmem.sh  # that commit first, then the work tree
#
# Knobs: LINES (default 4000), SESSIONS (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
LINES="${LINES:-4000}"
SESSIONS="${SESSIONS:-3}"
. bench/lib.sh
bench_init cpm-lfsmem
ssh-keygen -q -t ed25519 -N '' -f "$ROOT/key"
KH="$ROOT/known_hosts"

# hostile writes one session's input: a batch of LINES long lines.
hostile() {
	python3 - "$LINES" <<'PY'
import signal, sys
signal.signal(signal.SIGPIPE, signal.SIG_DFL) # the server hangs up on a refused request
out = sys.stdout.buffer
def pkt(b): out.write(b"%04x" % (len(b) + 4) + b)
pkt(b"version 1\n"); out.write(b"0000")
pkt(b"batch\n"); out.write(b"0001")
line = b"a" * 60000
for _ in range(int(sys.argv[1])):
    pkt(line)
out.write(b"0000")
pkt(b"quit\n"); out.write(b"0000")
PY
}

rss() { awk -v k="$2:" '$1 == k {print int($2 / 1024)}' "/proc/$1/status"; }

# measure BINDIR LABEL runs the server built in BINDIR and prints a line.
measure() {
	local bin=$1 label=$2 data="$ROOT/data-$2" port
	"$bin/cpm-admin" --data-dir "$data" init >/dev/null
	"$bin/cpm-admin" --data-dir "$data" user add owner >/dev/null
	"$bin/cpm-admin" --data-dir "$data" user add reader --key "$ROOT/key.pub" >/dev/null
	"$bin/cpm-admin" --data-dir "$data" org create bench --owner owner >/dev/null
	"$bin/cpm-admin" --data-dir "$data" repo create bench/web >/dev/null
	"$bin/cpm-admin" --data-dir "$data" repo grant bench/web reader read >/dev/null
	port=$(freeport)
	"$bin/cpm-shell" serve --data-dir "$data" --listen "127.0.0.1:$port" --git-listen '' 2>"$ROOT/$label.log" &
	local pid=$!
	PIDS+=("$pid")
	waitport "$port"
	echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$data/ssh_host_ed25519_key.pub")" >>"$KH"
	local ssh=(ssh -p "$port" -i "$ROOT/key" -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile="$KH" -o LogLevel=ERROR reader@127.0.0.1)
	# One ordinary session first, so that idle means warmed up.
	printf '000eversion 1\n00000009quit\n0000' | "${ssh[@]}" git-lfs-transfer bench/web download >/dev/null
	sleep 2
	local idle
	idle=$(rss "$pid" VmRSS)
	echo 5 >"/proc/$pid/clear_refs" # resets VmHWM to the current RSS
	local start
	start=$(now_ms)
	local sessions=()
	for i in $(seq "$SESSIONS"); do
		hostile | "${ssh[@]}" git-lfs-transfer bench/web download >"$ROOT/$label.$i.out" 2>&1 &
		sessions+=($!)
	done
	wait "${sessions[@]}" || true
	local took=$(($(now_ms) - start)) peak
	peak=$(rss "$pid" VmHWM)
	sleep 5
	printf '%-10s idle %4d MB, peak under %d hostile sessions %4d MB, difference %4d MB (target < 60), 5 s after %4d MB; %d ms\n' \
		"$label" "$idle" "$SESSIONS" "$peak" $((peak - idle)) "$(rss "$pid" VmRSS)" "$took"
	kill "$pid"
	wait "$pid" 2>/dev/null || true
}

if [ -n "${BASE:-}" ]; then
	mkdir -p "$ROOT/base"
	git archive "$BASE" | tar -x -C "$ROOT/base"
	(cd "$ROOT/base" && go build -o "$ROOT/base-bin/" ./cmd/...)
	measure "$ROOT/base-bin" "base"
fi
measure "$ROOT/bin" "this"
