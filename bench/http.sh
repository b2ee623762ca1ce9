#!/usr/bin/env bash
# HTTP benchmark: git clone over cpm's smart HTTP side by side with
# soft-serve's HTTP, with `git http-backend` behind lighttpd (a plain web
# server running git's own CGI), and with cpm's own ssh, on the same
# packed repositories, all on loopback in one run so that the ratios
# compare like with like on a noisy machine.
#
#   bench/http.sh                          # cpm, lighttpd + http-backend
#   SOFT=/tmp/soft-bin/soft bench/http.sh  # and soft-serve
#
# soft-serve is built from its own repository under /tmp and never enters
# this project (git clone https://github.com/charmbracelet/soft-serve
# /tmp/soft-src && cd /tmp/soft-src && go build -o /tmp/soft-bin/soft
# ./cmd/soft). lighttpd is installed with apt-get when missing.
#
# cpm is measured twice over HTTP: a private repository with an access
# token (git's first request gets 401, then the credential helper's token
# is checked: the path every private clone takes) and the same repository
# made public, read anonymously (as the others are read).
#
# Knobs: SIZE_MB (big repository, default 100), RUNS (big clones per
# server, default 5), CLONES (concurrent small clones, default 100; 0
# skips them), ROUNDS (rounds of concurrent clones, default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB="${SIZE_MB:-100}"
RUNS="${RUNS:-5}"
CLONES="${CLONES:-100}"
ROUNDS="${ROUNDS:-3}"
. bench/lib.sh

if ! command -v lighttpd >/dev/null; then
	echo "installing lighttpd…" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q lighttpd >/dev/null
fi
BACKEND="$(git --exec-path)/git-http-backend"

echo "building cpm…" >&2
bench_init cpm-http
ssh-keygen -q -t ed25519 -N '' -f "$ROOT/key"
KH="$ROOT/known_hosts"
export GIT_SSH_COMMAND="ssh -i $ROOT/key -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$KH -o LogLevel=ERROR"
export GIT_TERMINAL_PROMPT=0

make_repos
mkdir -p "$ROOT/plain"
git clone -q --bare --no-local "$src" "$ROOT/plain/big.git"
git clone -q --bare --no-local "$small" "$ROOT/plain/small.git"

# cpm: ssh and HTTP from one serve, like a real installation.
CPM_DATA="$ROOT/cpm"
A="$ROOT/bin/cpm-admin --data-dir $CPM_DATA"
$A init >/dev/null
$A user add bench --key "$ROOT/key.pub" >/dev/null
$A org create bench --owner bench >/dev/null
$A repo create bench/big >/dev/null
$A repo create bench/small >/dev/null
git -C "$src" push -q "$CPM_DATA/repos/bench/big.git" main
git -C "$small" push -q "$CPM_DATA/repos/bench/small.git" main
TOKEN=$($A token create bench --name bench --read-only | tail -n 1)
CPM_PORT=$(freeport); CPM_HTTP=$(freeport)
"$ROOT/bin/cpm-shell" serve --data-dir "$CPM_DATA" --listen "127.0.0.1:$CPM_PORT" --git-listen '' \
	--http-listen "127.0.0.1:$CPM_HTTP" 2>"$ROOT/cpm.log" &
CPM_PID=$!; PIDS+=("$CPM_PID")
waitport "$CPM_PORT"; waitport "$CPM_HTTP"
echo "[127.0.0.1]:$CPM_PORT $(cut -d' ' -f1,2 "$CPM_DATA/ssh_host_ed25519_key.pub")" >> "$KH"

# lighttpd running git http-backend as CGI on the plain repositories.
LH_PORT=$(freeport)
mkdir -p "$ROOT/www"
cat >"$ROOT/lighttpd.conf" <<CFG
server.modules = ("mod_alias", "mod_cgi", "mod_setenv")
server.bind = "127.0.0.1"
server.port = $LH_PORT
server.document-root = "$ROOT/www"
server.errorlog = "$ROOT/lighttpd.err"
server.max-connections = 1024
alias.url = ("/git/" => "$BACKEND/")
\$HTTP["url"] =~ "^/git/" {
	cgi.assign = ("" => "")
	setenv.add-environment = ("GIT_PROJECT_ROOT" => "$ROOT/plain", "GIT_HTTP_EXPORT_ALL" => "1")
}
CFG
lighttpd -D -f "$ROOT/lighttpd.conf" 2>"$ROOT/lighttpd.out" &
LH_PID=$!; PIDS+=("$LH_PID")
waitport "$LH_PORT"

# soft-serve (anonymous read is its default).
SOFT_HTTP_PORT=""
if [ -n "${SOFT:-}" ]; then
	start_soft "$SOFT" "$ROOT/soft" "$ROOT/key.pub" "$KH"
	git -C "$src" push -q "ssh://git@127.0.0.1:$SOFT_PORT/big" main
	git -C "$small" push -q "ssh://git@127.0.0.1:$SOFT_PORT/small" main
	waitport "$SOFT_HTTP_PORT"
fi

# Every server serves the same packed repository (see bench/gateway.sh).
repack() { git -C "$1" repack -q -a -d; }
repack "$CPM_DATA/repos/bench/big.git"; repack "$CPM_DATA/repos/bench/small.git"
repack "$ROOT/plain/big.git"; repack "$ROOT/plain/small.git"
if [ -n "$SOFT_HTTP_PORT" ]; then repack "$ROOT/soft/repos/big.git"; repack "$ROOT/soft/repos/small.git"; fi

declare -A URL ARGS
URL[cpm-http-token]="http://127.0.0.1:$CPM_HTTP/bench"
ARGS[cpm-http-token]="credential.helper=!f(){ echo username=bench; echo password=$TOKEN; };f"
URL[cpm-http]="http://127.0.0.1:$CPM_HTTP/bench"
URL[lighttpd]="http://127.0.0.1:$LH_PORT/git"
URL[cpm-ssh]="ssh://git@127.0.0.1:$CPM_PORT/bench"
servers=(cpm-http-token cpm-http lighttpd cpm-ssh)
if [ -n "$SOFT_HTTP_PORT" ]; then URL[soft-serve]="http://127.0.0.1:$SOFT_HTTP_PORT"; servers+=(soft-serve); fi

# gitc SERVER ARGS… runs git with the server's extra configuration.
gitc() { local s=$1; shift; if [ -n "${ARGS[$s]:-}" ]; then git -c "${ARGS[$s]}" "$@"; else git "$@"; fi; }
# public switches cpm's repositories to public for the anonymous runs and
# back to private for the token's.
public() { $A repo set bench/big "--$1" >/dev/null; $A repo set bench/small "--$1" >/dev/null; }
visibility() { if [ "$1" = cpm-http ]; then public public; else public private; fi; }

# Check every server serves the same thing before timing anything.
want=$(git -C "$ROOT/plain/big.git" rev-parse main)
for s in "${servers[@]}"; do
	visibility "$s"
	got=$(gitc "$s" ls-remote "${URL[$s]}/big.git" refs/heads/main | cut -f1)
	[ "$got" = "$want" ] || { echo "$s serves main=$got, want $want" >&2; exit 1; }
done

declare -A CC
[ "$CLONES" -gt 0 ] && echo && echo "== $CLONES concurrent clones of a small repository, median of $ROUNDS rounds"
for s in "${servers[@]}"; do
	[ "$CLONES" -gt 0 ] || break
	visibility "$s"
	fails=0
	CC[$s]=$(for r in $(seq "$ROUNDS"); do
		start=$(now_ms); pids=()
		for i in $(seq "$CLONES"); do gitc "$s" clone -q --bare "${URL[$s]}/small.git" "$ROOT/cc-$i" 2>>"$ROOT/cc-$s.err" & pids+=($!); done
		for p in "${pids[@]}"; do wait "$p" || true; done
		echo $(( $(now_ms) - start ))
		ok=$(for i in $(seq "$CLONES"); do git -C "$ROOT/cc-$i" rev-parse -q --verify main >/dev/null 2>&1 && echo ok; done | wc -l)
		[ "$ok" -eq "$CLONES" ] || echo "$s round $r: $(( CLONES - ok )) of $CLONES failed" >&2
		rm -rf "$ROOT"/cc-*
	done | median)
	printf "%-15s %6s ms\n" "$s" "${CC[$s]}"
done

echo
echo "== clone of the ${SIZE_MB} MB repository, median of $RUNS"
declare -A CL
clone_ms() { local s=$1 u=$2; for i in $(seq "$RUNS"); do rm -rf "$ROOT/c"; t=$(now_ms); gitc "$s" clone -q --bare "$u" "$ROOT/c"; echo $(( $(now_ms) - t )); done | median; }
CL[file]=$(clone_ms file "file://$ROOT/plain/big.git")
printf "%-15s %6s ms (git clone --no-local file://, the baseline)\n" file "${CL[file]}"
for s in "${servers[@]}"; do
	visibility "$s"
	CL[$s]=$(clone_ms "$s" "${URL[$s]}/big.git")
	printf "%-15s %6s ms, %s x file://\n" "$s" "${CL[$s]}" "$(awk "BEGIN {printf \"%.2f\", ${CL[$s]} / ${CL[file]}}")"
done

echo
echo "== ratios (below 1.00: cpm faster; goal: no slower than any of them)"
for mine in cpm-http cpm-http-token; do
	for other in lighttpd soft-serve cpm-ssh; do
		[ -n "${CL[$other]:-}" ] || continue
		printf "%-15s / %-10s  big clone %s" "$mine" "$other" "$(awk "BEGIN {printf \"%.2f\", ${CL[$mine]} / ${CL[$other]}}")"
		[ "$CLONES" -gt 0 ] && printf "   %d concurrent %s" "$CLONES" "$(awk "BEGIN {printf \"%.2f\", ${CC[$mine]} / ${CC[$other]}}")"
		echo
	done
done
echo "cpm peak RSS: $(( $(awk '/VmHWM/ {print $2}' "/proc/$CPM_PID/status") / 1024 )) MB"
