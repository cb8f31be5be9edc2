#!/usr/bin/env bash
# Scheduled sends at scale (issue 19): do a million scheduled messages slow accepts or the outbox? On the embedded
# engine (`serve`, sandbox provider), twice: on an empty file, then on a file holding PRELOAD (1,000,000)
# messages scheduled a month ahead. Each time:
#   1. single seed requests with wrk (64 connections, DURATION) while the workers deliver them: accepts per second;
#   2. DUE (10,000) messages scheduled for the same instant a few seconds ahead: how long after that instant
#      the outbox had published them all (none left scheduled) and the workers had sent them all.
# Prints figures; asserts nothing. Everything runs on 127.0.0.1 and stops at the end.
# CONTROL=1 adds a third file of the same size whose PRELOAD messages were sent at once (all `sent` before the
# measure), to tell what the scheduled rows cost from what a file of that size costs.
# After a preload, the measure waits for the search's full-text indexes to catch up with it (`caught_up`).
#   PRELOAD=1000000 DUE=10000 DURATION=10s CONTROL=1 scripts/bench-scheduled.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PRELOAD=${PRELOAD:-1000000}
DUE=${DUE:-10000}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10s}
SYNC=${SWITCHBOARD_SQLITE_SYNCHRONOUS:-full}

source scripts/bench/lib.sh
ensure_wrk
BIN=$(build_release switchboard)
WORK=$(mktemp -d)
PORT=$(free_port)
PID=""
trap stop_embedded_and_clean EXIT

caught_up() {
  local t0=$SECONDS
  curl -fs -m 900 "http://127.0.0.1:$PORT/api/v1/communications?q=catchup&limit=1" >/dev/null
  echo "(the full-text indexes caught up with the preload in $((SECONDS - t0)) s)"
}
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%S.000Z; }
now_ms() { date +%s%3N; }

measure() { # $1: label
  # The logging service indexes a preload's log records (two a message) in the background: not during the measure.
  local waited=$SECONDS
  wait_for_logs
  [ $((SECONDS - waited)) -gt 1 ] && echo "(waited $((SECONDS - waited)) s for the logging service to index the preload's log records)"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s scripts/bench/post.lua "http://127.0.0.1:$PORT/api/v1/communication" >"$WORK/post.txt"
  local rps p99 sent total scheduled
  rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$WORK/post.txt"); p99=$(awk '$1=="99%" {print $2}' "$WORK/post.txt")
  # Let the workers finish what wrk sent before the scheduled messages come due.
  while :; do read -r sent total < <(stat_of sent); read -r scheduled _ < <(stat_of scheduled); [ $((sent + scheduled)) -ge "$total" ] && break; sleep 0.2; done
  local base_sent=$sent due_at due_ms
  due_at=$(( $(date +%s) + 8 + DUE / 2000 ))
  due_ms=$((due_at * 1000))
  python3 scripts/bench/batch_load.py "$PORT" "$DUE" "$(iso "$due_at")" >/dev/null
  local published="" all_sent=""
  while :; do
    read -r scheduled _ < <(stat_of scheduled); read -r sent _ < <(stat_of sent)
    if [ -z "$published" ] && [ $(( $(now_ms) )) -ge "$due_ms" ] && [ "$scheduled" -le "$PRELOADED" ]; then published=$(( $(now_ms) - due_ms )); fi
    if [ "$sent" -ge $((base_sent + DUE)) ]; then all_sent=$(( $(now_ms) - due_ms )); break; fi
    sleep 0.05
  done
  printf '%-28s accepts %6s/s (p99 %s); %s due at once: all published %5s ms after their time, all sent %5s ms after\n' "$1" "$rps" "$p99" "$DUE" "$published" "$all_sent"
}

echo "== scheduled sends: $(nproc) cores, sqlite synchronous=$SYNC, $DURATION accepts, $DUE due at once"
PRELOADED=0
start "$WORK/empty.sqlite"
measure "no other scheduled:"
stop
start "$WORK/loaded.sqlite"
echo "preloading $PRELOAD messages scheduled a month ahead: $(python3 scripts/bench/batch_load.py "$PORT" "$PRELOAD" "$(iso $(( $(date +%s) + 30 * 86400 )))")"
PRELOADED=$PRELOAD
# A million rows written in half a minute leave the embedded search's background refresh (full-text indexes, in
# chunks of 500 rows a write) minutes of work, which would share the writer with the measure: a text search
# refreshes first, so it returns once that is done. (The control's refresh runs while its messages are sent.)
caught_up
measure "$PRELOAD scheduled:"
ls -l "$WORK/loaded.sqlite" | awk '{printf "file with them: %.0f MiB\n", $5 / 1048576}'
stop
if [ "${CONTROL:-0}" = 1 ]; then
  start "$WORK/control.sqlite"
  echo "preloading $PRELOAD messages sent at once: $(python3 scripts/bench/batch_load.py "$PORT" "$PRELOAD" -)"
  while :; do read -r sent total < <(stat_of sent); [ "$sent" -ge "$total" ] && break; sleep 1; done
  PRELOADED=0
  caught_up
  measure "$PRELOAD sent (control):"
  ls -l "$WORK/control.sqlite" | awk '{printf "file with them: %.0f MiB\n", $5 / 1048576}'
  stop
fi
