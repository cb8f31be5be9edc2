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
if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)"; apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
fi
swift build -c release --product switchboard >/dev/null 2>&1 || swift build -c release --product switchboard
BIN=$(swift build -c release --show-bin-path)/switchboard
WORK=$(mktemp -d)
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
REDIS_PORT=$(free_port)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Redis as production runs it: AOF on, fsync every second.
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$WORK" --save "" --appendonly yes --appendfsync everysec \
  --logfile "$WORK/redis.log" --daemonize no &
PIDS+=($!)
for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done

export REDIS_URL="redis://127.0.0.1:$REDIS_PORT" SWITCHBOARD_DATABASE="$WORK/bench.sqlite" PORT SWITCHBOARD_LOG_LEVEL=warning \
  SWITCHBOARD_SQLITE_SYNCHRONOUS=$SYNC
"$BIN" router >"$WORK/router.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$PORT/health/ready" >/dev/null || { echo "router did not start"; cat "$WORK/router.log"; exit 1; }
for i in $(seq 1 "$WORKERS"); do
  "$BIN" worker --channel sms >"$WORK/worker-$i.log" 2>&1 &
  PIDS+=($!)
done
"$BIN" logger >"$WORK/logger.log" 2>&1 &
PIDS+=($!)
sleep 1

source scripts/bench/lib.sh

echo "== Switchboard distributed benchmark: $(nproc) cores, redis $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/'), router + $WORKERS sms workers + logger, sqlite synchronous=$SYNC, $CONNECTIONS connections"
drive_end_to_end "$E2E_MESSAGES"
# The logger catches up on log_stream (4 entries per message).
while [ "$(redis-cli -p "$REDIS_PORT" xlen log_stream)" != "0" ]; do sleep 0.1; done
T3=$(date +%s.%N)
python3 - "$TOTAL" "$SENT" "$T0" "$T1" "$T2" "$T3" <<'PY'
import sys
total, sent, t0, t1, t2, t3 = sys.argv[1:]
total, sent = int(total), int(sent)
t0, t1, t2, t3 = float(t0), float(t1), float(t2), float(t3)
print(f"accepted                     {total:10d} messages in {t1-t0:.1f} s -> {total/(t1-t0):.0f} requests/s")
print(f"end to end                   all {sent} sent after {t2-t0:.1f} s -> {sent/(t2-t0):.0f} messages/s")
print(f"logs indexed                 log_stream drained after {t3-t0:.1f} s")
PY
