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
