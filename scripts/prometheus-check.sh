#!/usr/bin/env bash
# Prometheus checks (issue 17; README "Metrics and alerts"): promtool on deploy/prometheus (config, rules, rule unit
# tests), then a real Prometheus on 127.0.0.1 scraping a router, three workers and a logger started as separate
# processes on a throwaway redis-server, with the counters and every expression of the alert rules and the Grafana
# dashboard checked through its HTTP API (scripts/prometheus_check.py says what exactly).
#   scripts/prometheus-check.sh                  # builds (debug, trait MongoDB, as scripts/test.sh) unless built
#   SWITCHBOARD_BIN=.build/release/switchboard scripts/prometheus-check.sh
#   PROMETHEUS_CHECK=static scripts/prometheus-check.sh   # the files only (no build, no processes)
# Everything it starts is stopped at the end, failed or interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
need() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$tool is missing: run scripts/install-test-deps.sh" >&2; exit 1; }
  done
}
need promtool
if [ "${PROMETHEUS_CHECK:-live}" = static ]; then
  exec "$PYTHON" scripts/prometheus_check.py static
fi
need prometheus redis-server redis-cli
if [ -z "${SWITCHBOARD_BIN:-}" ]; then
  swift build --traits MongoDB --product switchboard >/dev/null 2>&1 || swift build --traits MongoDB --product switchboard >&2
  SWITCHBOARD_BIN="$(swift build --traits MongoDB --show-bin-path)/switchboard"
fi
# The Python script stops what it started in a `finally`; SIGTERM (from this trap, or anyone) gets it there too.
"$PYTHON" scripts/prometheus_check.py live "$SWITCHBOARD_BIN" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' INT TERM
trap 'kill -TERM "$pid" 2>/dev/null || true' EXIT
wait "$pid"
