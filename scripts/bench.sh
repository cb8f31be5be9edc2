#!/usr/bin/env bash
# Benchmark of the embedded system (issue 2). Prints figures; asserts nothing.
#   scripts/bench.sh                 # defaults: 64 connections, 10 s runs, 100k end-to-end messages
#   DURATION=5s E2E_MESSAGES=20000 scripts/bench.sh
# Everything runs on 127.0.0.1 and stops at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
DURATION=${DURATION:-10s}
E2E_MESSAGES=${E2E_MESSAGES:-100000}
PORT=${PORT:-39017}
SYNC=${SWITCHBOARD_SQLITE_SYNCHRONOUS:-full}

source scripts/bench/lib.sh
ensure_wrk
BIN=$(build_release switchboard)
WORK=$(mktemp -d)
PID=""
SINK=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; [ -n "$SINK" ] && kill "$SINK" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

# OTLP_SINK=1: tracing on, every span of every message exported (100 % sampling) to a local OTLP/HTTP receiver.
if [ "${OTLP_SINK:-0}" = 1 ]; then
  SINK_PORT=$(free_port)
  python3 scripts/bench/otlp_sink.py "$SINK_PORT" &
  SINK=$!
  export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$SINK_PORT" OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_TRACES_SAMPLER=always_on
  echo "== tracing on: OTLP/HTTP to 127.0.0.1:$SINK_PORT, sampler always_on"
fi

rss_peak_mb() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

echo "== Switchboard benchmark: $(nproc) cores, sqlite synchronous=$SYNC, $CONNECTIONS connections, $DURATION per run"

# 1. Ceiling: /health/live of the same binary.
start "$WORK/a.sqlite"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$PORT/health/live" >"$WORK/live.txt"
LIVE_RPS=$(awk '/Requests\/sec/ {print $2}' "$WORK/live.txt")

# 2. Durable accepts: the seed request, workers running in the same process.
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s scripts/bench/post.lua "http://127.0.0.1:$PORT/api/v1/communication" >"$WORK/post.txt"
POST_RPS=$(awk '/Requests\/sec/ {print $2}' "$WORK/post.txt")
P50=$(awk '$1=="50%" {print $2}' "$WORK/post.txt")
P99=$(awk '$1=="99%" {print $2}' "$WORK/post.txt")
NON2XX=$(awk '/Non-2xx/ {print $5}' "$WORK/post.txt"); NON2XX=${NON2XX:-0}
RSS1=$(rss_peak_mb "$PID")
stop

# 2a. The same with an API key on every request (issue 16: keyed >= 0.95 x open), on a file holding one key, so
# that keys are required; its limit is set far above what the run can reach, so that no request is refused.
KEY=$("$BIN" keys create --database "$WORK/k.sqlite" --name bench --scope send --rate 1000000 --burst 1000000)
start "$WORK/k.sqlite"
API_KEY=$KEY wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s scripts/bench/post.lua "http://127.0.0.1:$PORT/api/v1/communication" >"$WORK/keyed.txt"
KEYED_RPS=$(awk '/Requests\/sec/ {print $2}' "$WORK/keyed.txt")
KEYED_P99=$(awk '$1=="99%" {print $2}' "$WORK/keyed.txt")
KEYED_NON2XX=$(awk '/Non-2xx/ {print $5}' "$WORK/keyed.txt"); KEYED_NON2XX=${KEYED_NON2XX:-0}
stop

# 2b. The same, router alone (the seed's router service: no workers in the process).
start "$WORK/r.sqlite" router
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s scripts/bench/post.lua "http://127.0.0.1:$PORT/api/v1/communication" >"$WORK/router.txt"
ROUTER_RPS=$(awk '/Requests\/sec/ {print $2}' "$WORK/router.txt")
ROUTER_P99=$(awk '$1=="99%" {print $2}' "$WORK/router.txt")
stop

# 3. End to end: E2E_MESSAGES accepted and delivered through the sandbox, on a fresh file.
start "$WORK/b.sqlite"
drive_end_to_end "$E2E_MESSAGES"
RSS2=$(rss_peak_mb "$PID")
stop

python3 - "$LIVE_RPS" "$POST_RPS" "$P50" "$P99" "$NON2XX" "$TOTAL" "$SENT" "$T0" "$T1" "$T2" "$RSS1" "$RSS2" "$ROUTER_RPS" "$ROUTER_P99" "$KEYED_RPS" "$KEYED_P99" "$KEYED_NON2XX" <<'PY'
import sys
live, post, p50, p99, non2xx, total, sent, t0, t1, t2, rss1, rss2, router, router_p99, keyed, keyed_p99, keyed_non2xx = sys.argv[1:]
live, post = float(live), float(post)
total, sent = int(total), int(sent)
t0, t1, t2 = float(t0), float(t1), float(t2)
print(f"/health/live                 {live:10.0f} req/s")
print(f"POST /api/v1/communication   {post:10.0f} req/s  ({post/live:.2f} x live)   p50 {p50}   p99 {p99}   non-2xx {non2xx}")
print(f"  with an API key           {float(keyed):10.0f} req/s  ({float(keyed)/post:.2f} x open)   p99 {keyed_p99}   non-2xx {keyed_non2xx}")
print(f"  router alone               {float(router):10.0f} req/s  ({float(router)/live:.2f} x live)   p99 {router_p99}")
print(f"end to end                   {total:10d} messages accepted in {t1-t0:.1f} s, all {sent} sent after {t2-t0:.1f} s -> {sent/(t2-t0):.0f} messages/s")
print(f"peak RSS                     {max(int(rss1), int(rss2)):10d} MB (accept run {rss1} MB, end-to-end run {rss2} MB)")
PY
