# Shared by the scripts/bench*.sh scripts (sourced; the end-to-end helpers expect PORT, THREADS, CONNECTIONS, WORK).

# Prints the count of messages in status $1 and the total, from /api/v1/stats. Parsed with sed, not a
# Python interpreter: on a 2-core machine, starting one every 0.2 s would take CPU from the system measured.
stat_of() {
  local body
  body=$(curl -fs "http://127.0.0.1:$PORT/api/v1/stats") || { echo "0 0"; return; }
  body=${body#*\"byStatus\":\{}
  local statuses=${body%%\}*} total=${body#*\"total\":}
  local n
  n=$(sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" <<<"$statuses")
  echo "${n:-0} ${total%%[^0-9]*}"
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
    if ! kill -0 "$wrk_pid" 2>/dev/null; then
      echo "wrk stopped after $TOTAL of $messages messages were stored:" >&2
      cat "$WORK/e2e.txt" >&2
      return 1
    fi
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

# --- One embedded process (scripts/bench.sh, bench-batch.sh, bench-scheduled.sh) -------------------------------
# Expect BIN, PORT, WORK and SYNC (SWITCHBOARD_SQLITE_SYNCHRONOUS); PID is the running process.

# start DATABASE [SUBCOMMAND]: `switchboard SUBCOMMAND` (serve unless given) on DATABASE, once it answers.
start() {
  SWITCHBOARD_LOG_LEVEL=warning SWITCHBOARD_SQLITE_SYNCHRONOUS=$SYNC "$BIN" "${2:-serve}" --port "$PORT" --database "$1" >"$WORK/serve.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/health/live" >/dev/null && return; sleep 0.1; done
  echo "server did not start"; cat "$WORK/serve.log"; exit 1
}
# Stops it (SIGTERM) and waits for it.
stop() { kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }
# For `trap … EXIT`: the process if it still runs, then WORK.
stop_embedded_and_clean() { [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$WORK"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# --- Separate processes (scripts/bench-distributed.sh, scripts/bench-engines.sh) ---------------------------
# Expect WORK (a temporary folder) and BIN (the switchboard binary).

# build_release PRODUCT [swift build options…]: builds the release product (quietly; the errors are shown when it
# fails) and prints the path of the binary.
build_release() {
  local product=$1; shift
  if ! swift build -c release "$@" --product "$product" >/dev/null 2>&1; then
    swift build -c release "$@" --product "$product" >&2 || return 1
  fi
  echo "$(swift build -c release "$@" --show-bin-path)/$product"
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

ensure_wrk() {
  if ! command -v wrk >/dev/null; then
    echo "installing wrk (Debian package)"; apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
  fi
}

# Background processes started with `spawn`; `trap stop_all EXIT` stops them (SIGTERM, then waited for) and
# removes WORK.
PIDS=()
spawn() { "$@" & PIDS+=($!); }
stop_all() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  # Launchers such as noida-db fork their server: stop whatever still names the work folder.
  pkill -TERM -f "$WORK" 2>/dev/null || true
  rm -rf "$WORK"
}

# wait_for <what> <command…>: polls the command for up to 30 s.
wait_for() {
  local what=$1; shift
  for _ in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "$what did not start"; tail -20 "$WORK"/*.log; exit 1
}

# Redis as production runs it (AOF, fsync every second) on REDIS_PORT; exports REDIS_URL.
start_redis() {
  spawn redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$WORK" --save "" --appendonly yes --appendfsync everysec \
    --logfile "$WORK/redis.log" --daemonize no
  wait_for redis redis-cli -p "$REDIS_PORT" ping
  export REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
}

# The router on PORT, $1 SMS workers and the logger, each its own process, as the environment configures them.
start_services() {
  spawn "$BIN" router >"$WORK/router.log" 2>&1
  wait_for router curl -fs "http://127.0.0.1:$PORT/health/ready"
  for i in $(seq 1 "$1"); do spawn "$BIN" worker --channel sms >"$WORK/worker-$i.log" 2>&1; done
  spawn "$BIN" logger >"$WORK/logger.log" 2>&1
  sleep 1
}

# report_cpu <messages>: CPU seconds (user + system) each process started with `spawn` has used so far, and
# per message: a steadier yardstick than messages/s on a shared 2-core machine.
report_cpu() {
  local messages=$1 p name ticks total=0 hz
  hz=$(getconf CLK_TCK)
  for p in "${PIDS[@]}"; do
    [ -r "/proc/$p/stat" ] || continue
    name=$(tr '\0' ' ' <"/proc/$p/cmdline" | awk '{sub(".*/", "", $1); print $1, $2, $3, $4}')
    ticks=$(awk '{print $14 + $15}' "/proc/$p/stat")
    total=$((total + ticks))
    awk -v n="$name" -v t="$ticks" -v hz="$hz" -v m="$messages" 'BEGIN { printf "  cpu %-34s %6.1f s  %5.0f µs/message\n", n, t / hz, 1e6 * t / hz / m }'
  done
  awk -v t="$total" -v hz="$hz" -v m="$messages" 'BEGIN { printf "  cpu %-34s %6.1f s  %5.0f µs/message\n", "all of the above", t / hz, 1e6 * t / hz / m }'
}

# Waits until the logger has drained log_stream in Redis.
wait_log_stream_drained() {
  while [ "$(redis-cli -p "$REDIS_PORT" xlen log_stream)" != "0" ]; do sleep 0.1; done
}

# Prints the end-to-end figures from TOTAL, SENT, T0, T1, T2 and $1 (when every log record was searchable).
report_end_to_end() {
  python3 - "$TOTAL" "$SENT" "$T0" "$T1" "$T2" "$1" <<'PY'
import sys
total, sent, t0, t1, t2, t3 = sys.argv[1:]
total, sent = int(total), int(sent)
t0, t1, t2, t3 = float(t0), float(t1), float(t2), float(t3)
print(f"accepted                     {total:10d} messages in {t1-t0:.1f} s -> {total/(t1-t0):.0f} requests/s")
print(f"end to end                   all {sent} sent after {t2-t0:.1f} s -> {sent/(t2-t0):.0f} messages/s")
print(f"logs indexed                 every log record searchable after {t3-t0:.1f} s")
PY
}

# Waits until the logging service has indexed every log record (the log_stream's length in /api/v1/stats is 0),
# at most $1 seconds (default 600): a measure taken while it still indexes a preload's records measures that too.
wait_for_logs() {
  local limit=${1:-600} start=$SECONDS length
  while :; do
    length=$(curl -fs "http://127.0.0.1:$PORT/api/v1/stats" | python3 -c 'import json, sys; print(next((s["length"] for s in json.load(sys.stdin)["streams"] if s["stream"] == "log_stream"), 0))' 2>/dev/null || echo 0)
    [ "$length" -eq 0 ] && return
    [ $((SECONDS - start)) -ge "$limit" ] && { echo "the logging service still had $length log records to index after ${limit} s" >&2; return; }
    sleep 0.5
  done
}
