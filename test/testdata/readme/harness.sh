#!/bin/bash
# Runs README recipes verbatim in a throwaway root. Started by
# readme_test.go as PID 1 of new PID, mount and network namespaces
# (unshare), so that every process it starts ends with it, its users and
# files live only in overlays over the real ones, and its servers listen
# on a loopback no one else shares.
#
# Usage: harness.sh SCRATCH WORK RECIPE CHECK
#   SCRATCH  a directory for overlays and logs
#   WORK     the directory the recipe runs in (binaries, deploy/, alice.pub)
#   RECIPE   the README's shell blocks, in order, as one script
#   CHECK    what a user does afterwards (clone, push, ...), as a script
# Environment: SSHD_AT (ADDRESS for an sshd standing for a machine's
# OpenSSH on port 22; several separated by spaces; the first is the one
# systemctl reload reaches).
set -euo pipefail
scratch=$1 work=$2 recipe=$3 check=$4
here="$(cd "$(dirname "$0")" && pwd)"

mount --make-rprivate /
for d in /etc /var/lib /srv /usr/local /home /root; do
	mkdir -p "$d"
	n="$scratch/overlay/${d//\//_}"
	mkdir -p "$n/upper" "$n/work"
	mount -t overlay overlay -o "lowerdir=$d,upperdir=$n/upper,workdir=$n/work" "$d"
done
mount -t tmpfs tmpfs /run
mkdir -p /run/sshd
ip link set lo up
printf '127.0.0.2 git.example.com\n127.0.0.3 backup.example.com\n' >>/etc/hosts
ssh-keygen -A >/dev/null # a fresh machine's openssh-server made these at install

first=1
for addr in ${SSHD_AT:-}; do
	pid=/run/sshd-$addr.pid
	[ -n "$first" ] && pid=/run/sshd.pid
	first=
	/usr/sbin/sshd -o "ListenAddress=$addr" -o "PidFile=$pid" -E "$scratch/sshd-$addr.log"
done

export PATH="$here:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
cd "$work"
echo "### recipe"
if ! bash -euo pipefail -x "$recipe"; then
	echo "### the recipe failed"
	for f in /run/units/*.log "$scratch"/sshd-*.log; do [ -f "$f" ] && { echo "### $f"; tail -n 30 "$f"; }; done
	exit 1
fi
echo "### check"
if ! bash -euo pipefail -x "$check"; then
	echo "### the check failed"
	for f in /run/units/*.log "$scratch"/sshd-*.log /var/lib/cpm/cpm-shell.log; do [ -f "$f" ] && { echo "### $f"; tail -n 30 "$f"; }; done
	exit 1
fi
echo "### passed"
