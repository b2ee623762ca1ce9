#!/usr/bin/env bash
# Deep-history benchmark: clones of git.git's master (about 82,000
# commits, 300 MB packed) through cpm (after its own maintenance), plain
# OpenSSH sshd running git-upload-pack on a copy maintained with `git gc`,
# and soft-serve (SOFT=/path/to/soft, its copy `git gc`-ed too); and
# `git clone --no-local file://` of the gc'd copy as the floor. Everything
# runs on loopback in one go, so the ratios compare like with like.
#
#   GITGIT=/tmp/gitgit.git SOFT=/tmp/soft-bin/soft bench/deephistory.sh
#
# GITGIT is a bare repository holding git.git's master (BENCHMARKS.md says
# how to make one; it never enters this project). Knobs: RUNS (rounds of
# one clone per server, alternating, default 3), FLEET (concurrent clones,
# default 20; 0 skips them).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${GITGIT:?set GITGIT to a bare repository with git.git master (see BENCHMARKS.md)}"
RUNS="${RUNS:-3}"
FLEET="${FLEET:-20}"
. bench/lib.sh
echo "building cpm…" >&2
bench_init cpm-deep
here="$(pwd)/bench"
ssh-keygen -q -t ed25519 -N '' -f "$ROOT/key"
KH="$ROOT/known_hosts"
export GIT_SSH_COMMAND="ssh -i $ROOT/key -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$KH -o LogLevel=ERROR"

echo "copying git.git and running git gc on the copy…" >&2
git clone -q --bare --no-local "$GITGIT" "$ROOT/plain/git.git"
git -C "$ROOT/plain/git.git" gc -q

# cpm: the history pushed in, then one pass of its own maintenance.
CPM_DATA="$ROOT/cpm"
A="$ROOT/bin/cpm-admin --data-dir $CPM_DATA"
$A init >/dev/null
$A user add bench --admin --key "$ROOT/key.pub" >/dev/null
$A org create bench --owner bench >/dev/null
$A repo create bench/git >/dev/null
git -C "$GITGIT" push -q "$CPM_DATA/repos/bench/git.git" master
start_cpm() {
	CPM_PORT=$(freeport)
	"$ROOT/bin/cpm-shell" serve --data-dir "$CPM_DATA" --listen "127.0.0.1:$CPM_PORT" --git-listen '' "$@" 2>>"$ROOT/cpm.log" &
	CPM_PID=$!; PIDS+=("$CPM_PID")
	waitport "$CPM_PORT"
}
echo "cpm maintenance…" >&2
start_cpm --repack 1s
for _ in $(seq 600); do grep -q '"repo":"bench/git".*"message":"repack"' "$ROOT/cpm.log" && break; sleep 1; done
grep -q '"repo":"bench/git".*"message":"repack"' "$ROOT/cpm.log" || { echo "cpm never repacked" >&2; exit 1; }
kill "$CPM_PID"; wait "$CPM_PID" 2>/dev/null || true
ls "$CPM_DATA/repos/bench/git.git/objects/pack/"*.bitmap >/dev/null
start_cpm --repack 0
echo "[127.0.0.1]:$CPM_PORT $(cut -d' ' -f1,2 "$CPM_DATA/ssh_host_ed25519_key.pub")" >> "$KH"

# OpenSSH sshd with plain git-upload-pack on the gc'd copy.
start_git_sshd "$ROOT/sshd" "$ROOT/key.pub"
SSHD_PORT=$BPORT
echo "[127.0.0.1]:$SSHD_PORT $(cut -d' ' -f1,2 "$ROOT/sshd/host.pub")" >> "$KH"

declare -A URL PID
URL[cpm]="ssh://git@127.0.0.1:$CPM_PORT/bench/git.git"; PID[cpm]=$CPM_PID
URL[openssh]="ssh://$(id -un)@127.0.0.1:$SSHD_PORT$ROOT/plain/git.git"; PID[openssh]=$SSHD_PID
servers=(cpm openssh)
if [ -n "${SOFT:-}" ]; then
	echo "soft-serve: pushing the history, then git gc…" >&2
	start_soft "$SOFT" "$ROOT/soft" "$ROOT/key.pub" "$KH"
	git -C "$GITGIT" push -q "ssh://git@127.0.0.1:$SOFT_PORT/git" master
	git -C "$ROOT/soft/repos/git.git" gc -q
	URL[soft-serve]="ssh://git@127.0.0.1:$SOFT_PORT/git"; PID[soft-serve]=$SOFT_PID
	servers+=(soft-serve)
fi

# cpu_ticks PID: CPU of the process and of every child it has reaped.
cpu_ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

echo
echo "== one clone of git.git master at a time, median of $RUNS alternating rounds"
printf "%-11s %10s %10s %12s\n" "" "first byte" "total" "server CPU"
declare -A TTFBS TOTALS CPUS
one() { # NAME URL PID: one clone, its figures appended to NAME's lists
	rm -rf "$ROOT/c"
	local before=0; [ -n "$3" ] && before=$(cpu_ticks "$3")
	read -r f t < <(python3 "$here/clonetime.py" "$2" "$ROOT/c")
	local after=0; [ -n "$3" ] && after=$(cpu_ticks "$3")
	TTFBS[$1]+="$f "; TOTALS[$1]+="$t "; CPUS[$1]+="$(( after - before )) "
}
# Rounds alternate between the servers, so that a busy spell on the shared
# machine falls on all of them alike.
for i in $(seq "$RUNS"); do
	one file "file://$ROOT/plain/git.git" ""
	for s in "${servers[@]}"; do one "$s" "${URL[$s]}" "${PID[$s]}"; done
done
med() { printf '%s\n' $1 | median; }
floor=$(med "${TOTALS[file]}")
printf "%-11s %8s ms %8s ms %12s\n" "file://" "$(med "${TTFBS[file]}")" "$floor" "(the floor)"
for s in "${servers[@]}"; do
	printf "%-11s %8s ms %8s ms %10s s   %s x floor\n" "$s" "$(med "${TTFBS[$s]}")" "$(med "${TOTALS[$s]}")" \
		"$(awk "BEGIN {printf \"%.2f\", $(med "${CPUS[$s]}") / $HZ}")" "$(awk "BEGIN {printf \"%.2f\", $(med "${TOTALS[$s]}") / $floor}")"
done
echo "server CPU ticks per round (CLK_TCK $HZ):"
for s in "${servers[@]}"; do echo "  $s: ${CPUS[$s]}"; done

[ "$FLEET" -gt 0 ] || exit 0
echo
echo "== $FLEET concurrent clones of git.git master"
printf "%-11s %10s %12s %14s %8s\n" "" "wall" "server CPU" "peak memory" "failed"
for s in "${servers[@]}"; do
	rm -f "$ROOT/stop"
	python3 "$here/treemem.py" "${PID[$s]}" "$ROOT/stop" > "$ROOT/peak" &
	sampler=$!
	before=$(cpu_ticks "${PID[$s]}"); start=$(now_ms); fails=0
	clones=()
	for i in $(seq "$FLEET"); do git clone -q --bare "${URL[$s]}" "$ROOT/f-$i" 2>>"$ROOT/fleet.err" & clones+=($!); done
	for c in "${clones[@]}"; do wait "$c" || fails=$((fails+1)); done
	took=$(( $(now_ms) - start )); after=$(cpu_ticks "${PID[$s]}")
	touch "$ROOT/stop"; wait "$sampler"
	printf "%-11s %7s ms %10s s %11s MB %8s\n" "$s" "$took" "$(awk "BEGIN {printf \"%.1f\", ($after - $before) / $HZ}")" "$(cat "$ROOT/peak")" "$fails"
	rm -rf "$ROOT"/f-*
done
