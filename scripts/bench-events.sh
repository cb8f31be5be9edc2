#!/usr/bin/env bash
# Live-status figures (issue 18): event latency across processes on SQLite and Redis, the router's memory with
# 10,000 subscribers, and accepts with 0 and 1,000 subscribers side by side. Prints figures; asserts nothing.
#   scripts/bench-events.sh                  # all three
#   scripts/bench-events.sh latency rss      # some
# Everything runs on 127.0.0.1 and stops at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench/lib.sh
ensure_wrk
BIN=$(build_release switchboard)
echo "== live status: $(nproc) cores, release build"
python3 scripts/bench/events_bench.py "$BIN" "$@"
