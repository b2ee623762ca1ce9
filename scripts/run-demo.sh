#!/usr/bin/env bash
# make run: a cpm server on 127.0.0.1:2222 that you can clone from at once.
# Initialises DATA (default ./cpm-data), registers your ~/.ssh/id_ed25519.pub
# (creating the key if you have none) as a site admin, creates demo/hello
# and serves it. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${DATA:-./cpm-data}"
LISTEN="${LISTEN:-127.0.0.1:2222}"
GIT_LISTEN="${GIT_LISTEN:-127.0.0.1:9418}"
admin() { bin/cpm-admin --data-dir "$DATA" "$@"; }

admin init
key="$HOME/.ssh/id_ed25519"
if [ ! -f "$key.pub" ]; then
	mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh"
	admin key generate "$key"
fi
# cpm names are letters, digits, . _ -; fall back to "admin" otherwise.
user="$(id -un | tr -c 'A-Za-z0-9._\n-' '-')"
case "$user" in [A-Za-z0-9]*) ;; *) user=admin ;; esac
fp="$(ssh-keygen -lf "$key.pub" | awk '{print $2}')"
if ! admin user list --json | grep -q "\"name\": \"$user\""; then
	admin user add "$user" --admin
fi
if ! admin key list --json | grep -q "\"fingerprint\": \"$fp\""; then
	admin key add "$user" "$key.pub"
fi
admin org list --json | grep -q '"name": "demo"' || admin org create demo --owner "$user"
admin repo list demo --json | grep -q '"name": "hello"' || admin repo create demo/hello --description "Hello from cpm"

port="${LISTEN##*:}"
cat <<MSG

cpm is starting: ssh on $LISTEN, and git:// (public repositories,
read-only) on $GIT_LISTEN. Clone the demo repository with:

    git clone ssh://git@127.0.0.1:$port/demo/hello.git

The server's host key is $DATA/ssh_host_ed25519_key.pub; ssh asks you to
confirm its fingerprint on first connect (ssh-keygen -lf shows it).
Stop with Ctrl-C.

MSG
exec bin/cpm-shell serve --data-dir "$DATA" --listen "$LISTEN" --git-listen "$GIT_LISTEN"
