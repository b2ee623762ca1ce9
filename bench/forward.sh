#!/usr/bin/env bash
# Push latency through a neighbour's replica (forwarded to the origin,
# the replica synced before the push returns) against a push straight to
# the origin, both measured in one run on two nodes on 127.0.0.2/.3.
#
#   bench/forward.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CPM_BENCH=1 go test -count=1 -run 'TestForwardedPushLatency$' -v ./test/ | grep -E '^(push|through)'
