# Helpers shared by the benchmark scripts; source it, do not run it.

# freeport prints a free loopback port.
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
# now_ms prints the time in milliseconds.
now_ms() { date +%s%3N; }
# waitport waits up to 10 s for something to listen on 127.0.0.1:PORT.
waitport() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }
# median and pct P read numbers on stdin.
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
pct() { sort -n | awk -v p="$1" '{a[NR]=$1} END {i=int((NR*p+99)/100); if (i<1) i=1; print a[i]}'; }
# next_commit DIR N commits a change numbered N in the work tree DIR.
next_commit() {
	echo "$2" > "$1/n"
	git -C "$1" add n
	git -C "$1" -c user.name=b -c user.email=b@x commit -q -m "push $2"
}
# bench_init PREFIX makes ROOT, a scratch directory removed at exit with
# every process in PIDS, and builds cpm into ROOT/bin.
bench_init() {
	ROOT="$(mktemp -d "/tmp/$1.XXXXXX")"
	PIDS=()
	trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$ROOT"' EXIT
	go build -o "$ROOT/bin/" ./cmd/...
	export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
}
# start_sshd DIR PUBKEY [CONFIG LINE...] starts an OpenSSH sshd on a free
# loopback port (BPORT; its pid in SSHD_PID), its host key in DIR/host.pub,
# the key PUBKEY let in as this user, a home of its own (no shell rc of
# ours runs there), and the extra config lines given.
start_sshd() {
	local dir=$1 pub=$2
	shift 2
	BPORT=$(freeport)
	mkdir -p "$dir" /run/sshd 2>/dev/null || true
	ssh-keygen -q -t ed25519 -N '' -f "$dir/host"
	cp "$pub" "$dir/authorized_keys"
	{
		cat <<CFG
Port $BPORT
ListenAddress 127.0.0.1
HostKey $dir/host
PidFile $dir/pid
AuthorizedKeysFile $dir/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
AllowUsers $(id -un)
SetEnv HOME=$dir
CFG
		printf '%s\n' "$@"
	} >"$dir/config"
	/usr/sbin/sshd -D -f "$dir/config" -E "$dir/log" &
	SSHD_PID=$!
	PIDS+=("$SSHD_PID")
	waitport "$BPORT"
}
# start_backup_sshd DIR PUBKEY starts an sshd standing for a backup server.
start_backup_sshd() { start_sshd "$1" "$2" "MaxStartups 100"; }
# start_git_sshd DIR PUBKEY starts an sshd that serves plain git-upload-pack
# to many clients at once, as a peer to compare cpm with.
start_git_sshd() { start_sshd "$1" "$2" "AcceptEnv GIT_PROTOCOL" "MaxStartups 200" "MaxSessions 200"; }
# start_soft BINARY DIR PUBKEY KNOWN_HOSTS starts soft-serve on free
# loopback ports with its data in DIR and PUBKEY as its admin (SOFT_PORT,
# its HTTP port SOFT_HTTP_PORT, SOFT_PID), and pins its host key in
# KNOWN_HOSTS.
start_soft() {
	SOFT_PORT=$(freeport)
	SOFT_HTTP_PORT=$(freeport)
	SOFT_SERVE_DATA_PATH="$2" SOFT_SERVE_INITIAL_ADMIN_KEYS="$(cat "$3")" \
	SOFT_SERVE_SSH_LISTEN_ADDR="127.0.0.1:$SOFT_PORT" SOFT_SERVE_SSH_PUBLIC_URL="ssh://127.0.0.1:$SOFT_PORT" \
	SOFT_SERVE_GIT_LISTEN_ADDR="127.0.0.1:$(freeport)" SOFT_SERVE_HTTP_LISTEN_ADDR="127.0.0.1:$SOFT_HTTP_PORT" \
	SOFT_SERVE_HTTP_PUBLIC_URL="http://127.0.0.1:$SOFT_HTTP_PORT" \
	SOFT_SERVE_STATS_LISTEN_ADDR="127.0.0.1:$(freeport)" SOFT_SERVE_LOG_PATH="$2.log" \
		"$1" serve >"$2.out" 2>&1 &
	SOFT_PID=$!
	PIDS+=("$SOFT_PID")
	waitport "$SOFT_PORT"
	ssh-keyscan -p "$SOFT_PORT" -t ed25519 127.0.0.1 2>/dev/null >>"$4"
}

# make_repos makes $src, a repository of SIZE_MB MB of random data in 20
# commits, and $small, five small commits, under $ROOT.
make_repos() {
	echo "making a ${SIZE_MB} MB repository…" >&2
	src="$ROOT/src"
	git init -q -b main "$src"
	per=$(( SIZE_MB / 20 )); [ "$per" -ge 1 ] || per=1
	for i in $(seq 20); do
		head -c "${per}M" /dev/urandom > "$src/blob$i"
		git -C "$src" add "blob$i"
		git -C "$src" -c user.name=b -c user.email=b@x commit -q -m "commit $i"
	done
	small="$ROOT/small"
	git init -q -b main "$small"
	for i in $(seq 5); do echo "line $i" >> "$small/README"; git -C "$small" add README; git -C "$small" -c user.name=b -c user.email=b@x commit -q -m "c$i"; done
}
