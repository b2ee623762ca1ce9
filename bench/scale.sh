#!/usr/bin/env bash
# Scale benchmark (issue 25): for each N in NS (default "10 100 200 1000
# 5000"; 50000 takes about an hour), N small repositories made in bulk
# (bench/scalegen: rows through storetest, copies of one bare repository
# on disk; no cpm-admin process each) and one backup, a real OpenSSH sshd
# on loopback. For each N, wall time and CPU seconds of:
#   - the initial replication of every repository to the new backup;
#   - one reconciliation pass over current replicas (server set --every);
#   - maintenance: the first pass (every repository repacked once) and a
#     second one (nothing changed since);
#   - `info` for a user who reads 3 repositories (median of INFO_RUNS);
#   - `sync status` (summed up beyond 100 rows).
# CPU is cpm's process with its children (git, ssh, rsync) and, apart,
# the backup's sshd with its children. At the end, the growth factors:
# 200 vs 10 repositories (goal <= 6x), info at the largest N vs 100
# (goal <= 1.1x), and each pass against its goal.
set -euo pipefail
cd "$(dirname "$0")/.."
NS="${NS:-10 100 200 1000 5000}"
INFO_RUNS="${INFO_RUNS:-20}"
# From SEEDED repositories on, the initial replication is not run: the
# replicas are laid down as copies and their jobs marked synced
# (scalegen -replicas), and the other passes measured on them; their
# repositories are made as maintenance leaves them, so both maintenance
# passes find nothing changed (the first pass's cost per repository is
# measured at the smaller sizes).
SEEDED="${SEEDED:-50000}"
. bench/lib.sh
bench_init cpm-scale
go build -o "$ROOT/bin/" ./bench/scalegen
ssh-keygen -q -t ed25519 -N '' -f "$ROOT/key"
RES="$ROOT/results"
: > "$RES"
TICK=$(getconf CLK_TCK)

# cpu PID: CPU seconds of PID and of every process under it, those
# running (an sshd's session for cpm's multiplexed connection lives
# throughout) and those it waited for.
cpu() {
	local total c
	total=$(awk -v t="$TICK" '{printf "%.2f", ($14+$15+$16+$17)/t}' "/proc/$1/stat" 2>/dev/null || echo 0)
	for c in $(ps -o pid= --ppid "$1"); do
		total=$(awk -v a="$total" -v b="$(cpu "$c")" 'BEGIN {printf "%.2f", a+b}')
	done
	echo "$total"
}
sub() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a-b}'; }
secs() { awk -v ms="$1" 'BEGIN {printf "%.2f", ms/1000}'; }
put() { echo "$1 $2 $3" >> "$RES"; }
# events LOG MESSAGE: how many events with that message LOG holds.
events() { grep -c "\"message\":\"$2\"" "$1" || true; }
# field LOG MESSAGE NAME [I]: NAME's value in the I-th such event (1).
field() { grep "\"message\":\"$2\"" "$1" | sed -n "${4:-1}p" | sed -n "s/.*\"$3\":\([0-9]*\).*/\1/p"; }
# wait_events LOG MESSAGE COUNT [SECONDS]
wait_events() {
	local deadline=$(( $(date +%s) + ${4:-7200} ))
	until [ "$(events "$1" "$2")" -ge "$3" ]; do
		[ "$(date +%s)" -lt "$deadline" ] || { echo "no $2 event $3 in $1" >&2; exit 1; }
		sleep 0.2
	done
}
# synced: how many of the backup's rows are done.
synced() {
	local out
	out=$($A sync status)
	if grep -q 'summed up' <<<"$out"; then
		awk '$1 == "backup" {print $2}' <<<"$out"
	else
		grep -c ' done ' <<<"$out" || true
	fi
}

run_n() {
	local n=$1 d="$ROOT/n$1"
	A="$ROOT/bin/cpm-admin --data-dir $d/data"
	$A init >/dev/null
	local t0; t0=$(now_ms)
	# Seeded sizes are made as a maintenance pass left them: their first
	# pass here finds nothing changed, like every pass after the first.
	local maintained=false
	[ "$n" -lt "$SEEDED" ] || maintained=true
	"$ROOT/bin/scalegen" -data "$d/data" -repos "$n" -hook "$ROOT/bin/cpm-hook" -maintained=$maintained
	put "$n" make_s "$(secs $(( $(now_ms) - t0 )))"
	$A user add reader --key "$ROOT/key.pub" >/dev/null
	for r in 1 2 3; do $A repo grant "org1/repo$r" reader read >/dev/null; done

	start_backup_sshd "$d/backup" "$d/data/id_ed25519_replication.pub"
	local sshd=$SSHD_PID
	$A server add backup --host 127.0.0.1 --port "$BPORT" --user "$(id -un)" --path "$d/replicas" \
		--role backup --host-key "$(cat "$d/backup/host.pub")" >/dev/null
	$A server set backup --every 24h >/dev/null

	if [ "$n" -ge "$SEEDED" ]; then
		t0=$(now_ms)
		"$ROOT/bin/scalegen" -data "$d/data" -repos "$n" -replicas "$d/replicas" -server backup
		put "$n" seed_s "$(secs $(( $(now_ms) - t0 )))"
	fi
	# Initial replication: every repository queued by server add.
	local sport; sport=$(freeport)
	"$ROOT/bin/cpm-shell" serve --data-dir "$d/data" --listen "127.0.0.1:$sport" --git-listen '' --repack 0 2>"$d/server.log" &
	local srv=$!
	PIDS+=("$srv")
	t0=$(now_ms)
	local c0 b0; c0=$(cpu "$srv"); b0=$(cpu "$sshd")
	until [ "$(synced)" -ge "$n" ]; do sleep 0.5; done
	if [ "$n" -lt "$SEEDED" ]; then
		put "$n" initial_s "$(secs $(( $(now_ms) - t0 )))"
		put "$n" initial_cpu "$(sub "$(cpu "$srv")" "$c0")"
		put "$n" initial_backup_cpu "$(sub "$(cpu "$sshd")" "$b0")"
	fi

	# One reconciliation pass over current replicas.
	c0=$(cpu "$srv"); b0=$(cpu "$sshd")
	$A server set backup --every 1s >/dev/null
	wait_events "$d/server.log" reconcile 1
	$A server set backup --every 24h >/dev/null
	put "$n" reconcile_s "$(secs "$(field "$d/server.log" reconcile duration_ms)")"
	put "$n" reconcile_cpu "$(sub "$(cpu "$srv")" "$c0")"
	put "$n" reconcile_backup_cpu "$(sub "$(cpu "$sshd")" "$b0")"

	# info for a user who reads 3 repositories.
	echo "[127.0.0.1]:$sport $(cut -d' ' -f1,2 "$d/data/ssh_host_ed25519_key.pub")" > "$d/known_hosts"
	local sshc=(ssh -i "$ROOT/key" -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile="$d/known_hosts" -o LogLevel=ERROR -p "$sport" git@127.0.0.1)
	[ "$("${sshc[@]}" info | grep -c ' org1/repo')" = 3 ] || { echo "info does not list 3 repositories" >&2; exit 1; }
	local lat="$d/info-ms"
	: > "$lat"
	for _ in $(seq "$INFO_RUNS"); do
		t0=$(now_ms)
		"${sshc[@]}" info >/dev/null
		echo $(( $(now_ms) - t0 )) >> "$lat"
	done
	put "$n" info_ms "$(median < "$lat")"

	# sync status, as an operator types it.
	local TIMEFORMAT='%R %U %S' tm
	tm=$( { time $A sync status >/dev/null; } 2>&1 )
	put "$n" status_s "$(awk '{print $1}' <<<"$tm")"
	put "$n" status_cpu "$(awk '{printf "%.2f", $2+$3}' <<<"$tm")"
	kill "$srv"; wait "$srv" 2>/dev/null || true

	# Maintenance with the backup: the first pass repacks every
	# repository once; the second finds nothing changed.
	"$ROOT/bin/cpm-shell" replicate --data-dir "$d/data" --repack 1s 2>"$d/maint.log" &
	srv=$!
	PIDS+=("$srv")
	c0=$(cpu "$srv"); b0=$(cpu "$sshd")
	wait_events "$d/maint.log" "maintenance pass" 1
	put "$n" maint1_s "$(secs "$(field "$d/maint.log" "maintenance pass" duration_ms)")"
	put "$n" maint1_cpu "$(sub "$(cpu "$srv")" "$c0")"
	put "$n" maint1_backup_cpu "$(sub "$(cpu "$sshd")" "$b0")"
	c0=$(cpu "$srv")
	wait_events "$d/maint.log" "maintenance pass" 2
	put "$n" maint2_s "$(secs "$(field "$d/maint.log" "maintenance pass" duration_ms 2)")"
	put "$n" maint2_cpu "$(sub "$(cpu "$srv")" "$c0")"
	# The backup's sessions first: cpm's multiplexed connection would
	# outlive the listener by its ControlPersist.
	kill "$srv"; pkill -P "$sshd" || true; kill "$sshd"; wait "$srv" "$sshd" 2>/dev/null || true
	if [ -n "${KEEP_LOGS:-}" ]; then for f in "$d"/*.log; do cp "$f" "$KEEP_LOGS/n$n-$(basename "$f")"; done; fi
	rm -rf "$d"
	echo "N=$n: $(awk -v n="$n" '$1 == n {printf "%s %s  ", $2, $3}' "$RES")"
}

for n in $NS; do run_n "$n"; done

get() { awk -v n="$1" -v k="$2" '$1 == n && $2 == k {print $3}' "$RES"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a/b; else print "-"}'; }
echo
printf '%-8s %8s %10s %9s %10s %9s %9s %9s %9s %8s %9s\n' N make_s initial_s init_cpu reconcile_s rec_cpu maint1_s maint1_cpu maint2_s info_ms status_s
for n in $NS; do
	printf '%-8s %8s %10s %9s %10s %9s %9s %9s %9s %8s %9s\n' "$n" "$(get "$n" make_s)" "$(get "$n" initial_s)" "$(get "$n" initial_cpu)" \
		"$(get "$n" reconcile_s)" "$(get "$n" reconcile_cpu)" "$(get "$n" maint1_s)" "$(get "$n" maint1_cpu)" "$(get "$n" maint2_s)" \
		"$(get "$n" info_ms)" "$(get "$n" status_s)"
done
echo
set -- $NS
first=$1
for n in $NS; do last=$n; done
if [[ " $NS " == *" 10 "* && " $NS " == *" 200 "* ]]; then
	echo "200 vs 10 repositories (goal <= 6x): initial replication $(ratio "$(get 200 initial_s)" "$(get 10 initial_s)")x, reconciliation $(ratio "$(get 200 reconcile_s)" "$(get 10 reconcile_s)")x"
fi
if [[ " $NS " == *" 100 "* ]]; then
	echo "info at $last vs 100 repositories (goal <= 1.1x): $(ratio "$(get "$last" info_ms)" "$(get 100 info_ms)")x"
fi
echo "growth $first -> $last repositories ($(ratio "$last" "$first")x): initial $(ratio "$(get "$last" initial_s)" "$(get "$first" initial_s)")x, reconciliation $(ratio "$(get "$last" reconcile_s)" "$(get "$first" reconcile_s)")x, maintenance $(ratio "$(get "$last" maint1_s)" "$(get "$first" maint1_s)")x, info $(ratio "$(get "$last" info_ms)" "$(get "$first" info_ms)")x"
echo "goals: reconciliation of 50,000 < 180 s; initial replication of 5,000 < 120 s; maintenance of 50,000 < 900 s"
