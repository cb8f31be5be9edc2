#!/usr/bin/env bash
# The test command (README): installs what the tests need, then runs every suite, the MongoDB store included
# (trait MongoDB: the build and the test run must name the same traits, or the test run rebuilds), then fuzzes
# the running server against its OpenAPI document (scripts/fuzz.sh, on the binary just built) and checks one
# message's trace across router, worker and logger processes on Redis and in serve on SQLite
# (scripts/trace_test.py, same binary), follows live status with real SSE and WebSocket clients across processes
# on SQLite and on Redis (scripts/live_test.py), checks the status callbacks with the Standard Webhooks library
# across a server killed with SIGKILL (scripts/callback_test.py, same binary), and checks the Prometheus side (scripts/prometheus-check.sh: promtool on
# deploy/prometheus, a real Prometheus scraping router, workers and logger).
# Arguments go to `swift test` (e.g. --filter); with arguments the fuzz runs only if FUZZ=1, the Prometheus check
# only if PROMETHEUS=1.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
TRAITS=(--traits MongoDB)
swift build --build-tests "${TRAITS[@]}"
swift test --skip-build "${TRAITS[@]}" "$@"
if [ $# -eq 0 ] || [ "${PROMETHEUS:-0}" = 1 ]; then
  SWITCHBOARD_BIN="$(swift build "${TRAITS[@]}" --show-bin-path)/switchboard" scripts/prometheus-check.sh
fi
if [ $# -eq 0 ] || [ "${FUZZ:-0}" = 1 ]; then
  FUZZ_NO_BUILD=1 scripts/fuzz.sh
  python3 scripts/trace_test.py "$(swift build "${TRAITS[@]}" --show-bin-path)/switchboard"
  python3 scripts/live_test.py "$(swift build "${TRAITS[@]}" --show-bin-path)/switchboard"
  python3 scripts/callback_test.py "$(swift build "${TRAITS[@]}" --show-bin-path)/switchboard"
  python3 scripts/messaging_test.py "$(swift build "${TRAITS[@]}" --show-bin-path)/switchboard"
fi
