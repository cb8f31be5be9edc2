# Shared by scripts/bench.sh and scripts/bench-distributed.sh (sourced; expects PORT, THREADS, CONNECTIONS, WORK).

# Prints "<count of status $1> <total>" from the router's /api/v1/stats.
stat_of() {
  curl -fs "http://127.0.0.1:$PORT/api/v1/stats" | python3 -c "import json,sys; d=json.load(sys.stdin)['communications']; print(d['byStatus'].get('$1',0), d['total'])"
}

# Posts the seed request with wrk until the store holds $1 messages, then waits until all are sent.
# Sets T0 (start), T1 (all accepted), T2 (all sent), SENT and TOTAL.
drive_end_to_end() {
  local messages=$1 wrk_pid
  T0=$(date +%s.%N)
  # wrk's threads stop after messages/THREADS answers each; wrk itself is stopped once the store holds them all.
  STOP_AFTER=$((messages / THREADS)) wrk -t"$THREADS" -c"$CONNECTIONS" -d10m -s scripts/bench/post.lua "http://127.0.0.1:$PORT/api/v1/communication" >"$WORK/e2e.txt" &
  wrk_pid=$!
  while :; do
    read -r SENT TOTAL < <(stat_of sent)
    [ "$TOTAL" -ge "$messages" ] && break
    sleep 0.2
  done
  T1=$(date +%s.%N)
  kill "$wrk_pid" 2>/dev/null; wait "$wrk_pid" 2>/dev/null || true
  while :; do
    read -r SENT TOTAL < <(stat_of sent)
    [ "$SENT" -ge "$TOTAL" ] && break
    sleep 0.2
  done
  T2=$(date +%s.%N)
}
