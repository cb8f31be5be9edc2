#!/usr/bin/env bash
# Compares the XADD rate of redis-benchmark with SwitchboardRedis's redis-xadd-bench,
# unpipelined and at pipeline depth 16, with the same request and client counts,
# against a throwaway redis-server on 127.0.0.1.
#
# Usage: scripts/bench-redis.sh [REQUESTS] [CLIENTS] [DEPTH]   (defaults: 200000 50 16)
set -euo pipefail

REQUESTS="${1:-200000}"
CLIENTS="${2:-50}"
DEPTH="${3:-16}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

for tool in redis-server redis-benchmark redis-cli; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found; run scripts/install-test-deps.sh" >&2; exit 1; }
done

source "$ROOT/scripts/bench/lib.sh"
echo "Building redis-xadd-bench (release)..."
BENCH=$(build_release redis-xadd-bench --package-path "$ROOT")

PORT=$(free_port)
WORK="$(mktemp -d)"
trap stop_all EXIT
spawn redis-server --bind 127.0.0.1 --port "$PORT" --save "" --appendonly no --dir "$WORK" \
    --logfile "$WORK/redis.log" --daemonize no
wait_for redis-server redis-cli -p "$PORT" ping

reset_stream() { redis-cli -p "$PORT" del benchstream >/dev/null; }

# redis-benchmark -q prints e.g. "XADD benchstream * f v: 123456.79 requests per second, p50=..."
redis_benchmark_rate() {
    reset_stream
    redis-benchmark -p "$PORT" -q -n "$REQUESTS" -c "$CLIENTS" -P "$1" XADD benchstream '*' f v 2>/dev/null \
        | tr '\r' '\n' | grep 'requests per second' | tail -1 | sed -E 's/.*: ([0-9.]+) requests per second.*/\1/'
}

# redis-xadd-bench prints e.g. "XADD pipelined (-P 16, 50 clients): 200000 requests in 0.5 s, 400000 requests per second"
our_rate() {
    reset_stream
    "$BENCH" --url "redis://127.0.0.1:$PORT" -n "$REQUESTS" -c "$CLIENTS" -P "$DEPTH" --mode "$1" \
        | grep 'requests per second' | tail -1 | sed -E 's/.* ([0-9]+) requests per second.*/\1/'
}

RB1="$(redis_benchmark_rate 1)"
OURS1="$(our_rate unpipelined)"
RBP="$(redis_benchmark_rate "$DEPTH")"
OURSP="$(our_rate pipelined)"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo
echo "XADD benchstream * f v — $REQUESTS requests, $CLIENTS clients, redis-server $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/')"
printf '%-22s %18s %18s %8s\n' "pipeline depth" "redis-benchmark" "SwitchboardRedis" "ratio"
printf '%-22s %18.0f %18.0f %8s\n' "-P 1 (unpipelined)" "$RB1" "$OURS1" "$(ratio "$OURS1" "$RB1")"
printf '%-22s %18.0f %18.0f %8s\n' "-P $DEPTH" "$RBP" "$OURSP" "$(ratio "$OURSP" "$RBP")"
echo "(requests per second; target ratio >= 0.5)"
