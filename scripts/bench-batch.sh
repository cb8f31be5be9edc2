#!/usr/bin/env bash
# Batches against single requests (issue 19), on the embedded engine. Prints figures; asserts nothing.
#   1. Accepts: the router alone (`switchboard router`, no workers in the process), single seed requests with wrk
#      (64 connections) against batches of 1,000 with wrk (4 connections), alternated RUNS times each on fresh
#      files; messages accepted per second, medians and their ratio.
#   2. End to end in `serve` (workers, logger): E2E_MESSAGES sent as single requests, then as batches of 1,000,
#      each on a fresh file; the rate from the first request to the last message sent, and how fast the
#      messages drained once all were accepted.
#   RUNS=3 DURATION=10s E2E_MESSAGES=50000 scripts/bench-batch.sh
# Everything runs on 127.0.0.1 and stops at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
BATCH_CONNECTIONS=${BATCH_CONNECTIONS:-4}
DURATION=${DURATION:-10s}
E2E_MESSAGES=${E2E_MESSAGES:-50000}
SYNC=${SWITCHBOARD_SQLITE_SYNCHRONOUS:-full}

source scripts/bench/lib.sh
ensure_wrk
BIN=$(build_release switchboard)
WORK=$(mktemp -d)
PORT=$(free_port)
PID=""
trap stop_embedded_and_clean EXIT


echo "== batches against single requests: $(nproc) cores, sqlite synchronous=$SYNC, $RUNS alternating runs of $DURATION"
SINGLE=(); BATCH=(); BATCH_P99=()
for run in $(seq 1 "$RUNS"); do
  start "$WORK/s$run.sqlite" router
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s scripts/bench/post.lua "http://127.0.0.1:$PORT/api/v1/communication" >"$WORK/single.txt"
  stop
  SINGLE+=("$(awk '/Requests\/sec/ {print $2}' "$WORK/single.txt")")
  start "$WORK/b$run.sqlite" router
  wrk -t"$THREADS" -c"$BATCH_CONNECTIONS" -d"$DURATION" --latency -s scripts/bench/batch.lua "http://127.0.0.1:$PORT/api/v1/communications/batch" >"$WORK/batch.txt" 2>"$WORK/batch.err"
  stop
  if [ -s "$WORK/batch.err" ]; then echo "some batches were not fully accepted:"; head -3 "$WORK/batch.err"; fi
  BATCH+=("$(awk '/Requests\/sec/ {printf "%.0f", $2 * 1000}' "$WORK/batch.txt")")
  BATCH_P99+=("$(awk '$1=="99%" {print $2}' "$WORK/batch.txt")")
  echo "run $run: single $(printf %.0f "${SINGLE[-1]}") messages/s, batches ${BATCH[-1]} messages/s (batch p99 ${BATCH_P99[-1]})"
done
S=$(printf '%s\n' "${SINGLE[@]}" | median); B=$(printf '%s\n' "${BATCH[@]}" | median)
printf 'accepted per second, medians: single %.0f, batches of 1,000 %.0f: %.1f x\n' "$S" "$B" "$(echo "$B / $S" | bc -l)"

echo "== end to end in serve: $E2E_MESSAGES messages, sandbox provider"
start "$WORK/e1.sqlite" serve
drive_end_to_end "$E2E_MESSAGES"
stop
printf 'single requests: accepted in %.1f s, all sent after %.1f s: %.0f messages/s end to end\n' "$(echo "$T1 - $T0" | bc)" "$(echo "$T2 - $T0" | bc)" "$(echo "$TOTAL / ($T2 - $T0)" | bc -l)"
start "$WORK/e2.sqlite" serve
# The bodies are built before batch_load.py's clock starts; T0 is when its first batch went out.
LOADED=$(python3 scripts/bench/batch_load.py "$PORT" "$E2E_MESSAGES" - 2)
T1=$(date +%s.%N)
T0=$(echo "$T1 - $(awk '{print $4}' <<<"$LOADED")" | bc)
read -r SENT_AT_T1 TOTAL < <(stat_of sent)
while :; do
  read -r SENT TOTAL < <(stat_of sent)
  [ "$SENT" -ge "$TOTAL" ] && break
  sleep 0.2
done
T2=$(date +%s.%N)
stop
printf 'batches of 1,000: %s messages accepted in %.1f s (%s sent by then), all sent after %.1f s: %.0f messages/s end to end; the %s left drained at %.0f messages/s\n' \
  "$TOTAL" "$(echo "$T1 - $T0" | bc)" "$SENT_AT_T1" "$(echo "$T2 - $T0" | bc)" "$(echo "$TOTAL / ($T2 - $T0)" | bc -l)" "$((TOTAL - SENT_AT_T1))" "$(echo "($TOTAL - $SENT_AT_T1) / ($T2 - $T1)" | bc -l)"
