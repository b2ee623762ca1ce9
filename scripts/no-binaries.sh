#!/usr/bin/env bash
# Fails when git tracks a compiled executable (ELF, Mach-O, PE) or any file
# over 2 MB: build output belongs in bin/, which is ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
while IFS= read -r -d '' f; do
	[ -f "$f" ] || continue
	magic=$(head -c 4 -- "$f" | od -An -tx1 | tr -d ' \n')
	case "$magic" in
	7f454c46 | cffaedfe | cefaedfe | feedfacf | feedface | 4d5a*)
		echo "cpm: tracked binary: $f (build output belongs in bin/)" >&2; bad=1 ;;
	esac
	size=$(stat -c %s -- "$f")
	if [ "$size" -gt 2097152 ]; then
		echo "cpm: tracked file over 2 MB: $f ($size bytes)" >&2; bad=1
	fi
done < <(git ls-files -z)
exit $bad
