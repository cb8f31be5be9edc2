#!/usr/bin/env bash
# End-to-end benchmark of the distributed mode (issue 3): router, 3 SMS workers and the logger as separate
# processes on one redis-server (the streams) and one SQLite file (store, search, sandbox). Prints figures;
# asserts nothing.
#   scripts/bench-distributed.sh                      # defaults: 64 connections, 50k messages
#   E2E_MESSAGES=20000 WORKERS=2 scripts/bench-distributed.sh
# Everything runs on 127.0.0.1 and stops at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
E2E_MESSAGES=${E2E_MESSAGES:-50000}
WORKERS=${WORKERS:-3}
SYNC=${SWITCHBOARD_SQLITE_SYNCHRONOUS:-full}

scripts/install-test-deps.sh
source scripts/bench/lib.sh
BIN=$(build_release switchboard)
WORK=$(mktemp -d)
trap stop_all EXIT
ensure_wrk
PORT=$(free_port)
REDIS_PORT=$(free_port)
start_redis
export SWITCHBOARD_DATABASE="$WORK/bench.sqlite" PORT SWITCHBOARD_LOG_LEVEL=warning SWITCHBOARD_SQLITE_SYNCHRONOUS=$SYNC
start_services "$WORKERS"

echo "== Switchboard distributed benchmark: $(nproc) cores, redis $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/'), router + $WORKERS sms workers + logger, sqlite synchronous=$SYNC, $CONNECTIONS connections"
drive_end_to_end "$E2E_MESSAGES"
# The logger catches up on log_stream.
wait_log_stream_drained
report_end_to_end "$(date +%s.%N)"
report_cpu "$SENT"
