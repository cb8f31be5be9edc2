#!/usr/bin/env bash
# Fuzzes the API against its OpenAPI document (issue 16, point 9): schemathesis against a running
# `switchboard serve` on 127.0.0.1 (a fresh temporary SQLite database, the sandbox provider, the webhooks
# configured with throwaway secrets), checks `not_a_server_error` and `response_schema_conformance`, over every
# operation of the document (the committed file, which must be what the server serves at /openapi.json).
# Fails unless there are 0 failures, at least FUZZ_MIN_CASES generated cases (default 1000), a case for every
# operation (scripts/fuzz_report.py), and no error-level line in the server's log. Then, with a key, the
# authorization matrix (scripts/auth_matrix.py).
#
#   scripts/fuzz.sh                   # builds the debug binary first (swift build --traits MongoDB)
#   FUZZ_NO_BUILD=1 scripts/fuzz.sh   # uses .build/debug/switchboard as it is (scripts/test.sh, after its build)
#
# Knobs: FUZZ_MAX_EXAMPLES (per operation and phase, default 100), FUZZ_SEED (reproduce a run), FUZZ_STRICT_ROUTES,
# FUZZ_MIN_CASES, FUZZ_KEEP=1 (keep the temporary folder: server log, schemathesis reports).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
PYTHON="${PYTHON:-python3}"
BIN="${SWITCHBOARD_BIN:-$ROOT/.build/debug/switchboard}"
MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-100}"
MIN_CASES="${FUZZ_MIN_CASES:-1000}"

if [ "${FUZZ_NO_BUILD:-0}" != 1 ]; then
  swift build --traits MongoDB --product switchboard
fi
[ -x "$BIN" ] || { echo "fuzz: no binary at $BIN (swift build --traits MongoDB)" >&2; exit 1; }
# Through the interpreter the packages were installed for (its `st` script may not be on PATH).
ST=("$PYTHON" -m schemathesis.cli)
"${ST[@]}" --version >/dev/null 2>&1 || { echo "fuzz: schemathesis is not installed for $PYTHON: scripts/install-test-deps.sh" >&2; exit 1; }

# The committed document is the one the binary serves, and it is valid.
"$PYTHON" scripts/openapi-embed.py --check
"$PYTHON" -m openapi_spec_validator --schema 3.1 docs/openapi.json

WORK="$(mktemp -d /tmp/switchboard-fuzz.XXXXXX)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "${FUZZ_KEEP:-0}" = 1 ]; then echo "fuzz: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
URL="http://127.0.0.1:$PORT"
DB="$WORK/fuzz.sqlite"

TWILIO_TOKEN="fuzz-auth-token-$RANDOM"
WHATSAPP_SECRET="fuzz-app-secret-$RANDOM"
VERIFY_TOKEN="fuzz-verify-token-$RANDOM"

# Only this process's settings: the embedded engine, the sandbox on every channel, webhooks with throwaway
# secrets (their signature checks are fuzzed too; Twilio's API base points at a closed loopback port, and SMS
# stays on the sandbox), a key allowance the fuzzer cannot exhaust, no limit on failed authentications (the
# matrix makes hundreds on purpose). scripts/fuzz_hooks.py signs most generated
# callbacks with the same secrets, so that the fuzzer gets past the signature checks.
SERVER_ENV=(
  env -u REDIS_URL -u MONGODB_URL -u ELASTICSEARCH_NODE -u SWITCHBOARD_SMTP_HOST -u SWITCHBOARD_WHATSAPP_TOKEN
  ACCOUNTSID=ACfuzz AUTHTOKEN="$TWILIO_TOKEN" SWITCHBOARD_TWILIO_BASE_URL=http://127.0.0.1:9 SWITCHBOARD_SMS_PROVIDERS=sandbox
  SWITCHBOARD_WHATSAPP_VERIFY_TOKEN="$VERIFY_TOKEN" SWITCHBOARD_WHATSAPP_APP_SECRET="$WHATSAPP_SECRET"
  SWITCHBOARD_PUBLIC_URL="$URL"
  SWITCHBOARD_KEY_RATE=1000000 SWITCHBOARD_KEY_BURST=1000000 SWITCHBOARD_AUTH_FAILURES_PER_MINUTE=0
  SWITCHBOARD_DATABASE="$DB"
  # Event streams end after a second (heartbeats every 200 ms see the limit), so the fuzzer reads whole answers.
  SWITCHBOARD_EVENTS_STREAM_MAX_SECONDS=1 SWITCHBOARD_EVENTS_HEARTBEAT_MS=200
)

# Keys: the fuzzer runs with a bootstrap admin key (SWITCHBOARD_ADMIN_KEY, from `switchboard keys generate`): it
# cannot revoke that one (409 bootstrap_key), however its stateful phase chains GET and DELETE /api/v1/keys.
# The authorization matrix afterwards uses a key made by `switchboard keys create`, the stored kind.
# A binary without `switchboard keys` (before issue 16's keys) is fuzzed in open loopback mode, without the matrix.
# (`--help` after an unknown subcommand prints the top-level help and exits 0: look for the command's own flag.)
AUTH=()
ADMIN_KEY=""
if "$BIN" keys create --help 2>/dev/null | grep -q -- '--name'; then
  ADMIN_KEY="$("$BIN" keys generate)"
  case "$ADMIN_KEY" in sb_live_*) ;; *) echo "fuzz: switchboard keys generate printed no key" >&2; exit 1 ;; esac
  SERVER_ENV+=(SWITCHBOARD_ADMIN_KEY="$ADMIN_KEY")
  AUTH=(-H "Authorization: Bearer $ADMIN_KEY")
  echo "fuzz: with an admin key"
else
  echo "fuzz: WARNING: this binary has no 'switchboard keys': fuzzing in open loopback mode, no authorization matrix"
fi

"${SERVER_ENV[@]}" "$BIN" serve --host 127.0.0.1 --port "$PORT" --database "$DB" --log-level info >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
  if curl -fsS "$URL/health/live" >/dev/null 2>&1; then break; fi
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "fuzz: serve exited:" >&2; cat "$WORK/serve.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "$URL/openapi.json" -o "$WORK/served.json"
cmp -s "$WORK/served.json" docs/openapi.json || { echo "fuzz: the served /openapi.json is not docs/openapi.json" >&2; exit 1; }
# The bootstrap key gets a default status-callback endpoint, so that generated messages with a `data.callbackUrl`
# are accepted (not all refused 422 no_default_webhook). `.invalid` never resolves: its callbacks fail and are retried.
if [ -n "$ADMIN_KEY" ]; then
  curl -fsS -o /dev/null -X POST "$URL/api/v1/webhooks" -H "Authorization: Bearer $ADMIN_KEY" -H 'Content-Type: application/json' \
    -d '{"url":"https://callbacks.invalid/fuzz","keyId":"key_bootstrap","default":true}' \
    || { echo "fuzz: could not register the bootstrap key's default callback endpoint" >&2; exit 1; }
fi

# One stored message whose id the hooks give to some generated /api/v1/communication/{id} cases (FUZZ_COMMUNICATION_ID).
KNOWN_ID="$(curl -fsS -X POST "$URL/api/v1/communication" "${AUTH[@]}" -H 'Content-Type: application/json' \
  -d '{"type":"sms","data":{"from":"+15550000000","to":"+15550000001","msg":"fuzz: a known message"}}' \
  | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["id"])')" \
  || { echo "fuzz: could not store the known message" >&2; exit 1; }
SEED_ARGS=()
[ -n "${FUZZ_SEED:-}" ] && SEED_ARGS=(--seed "$FUZZ_SEED")
started=$(date +%s)
set +e
# From the work folder: schemathesis keeps its cache (.schemathesis, .hypothesis) in the current directory.
# The committed file (the same bytes as the served one, checked above): loaded from the server's URL,
# schemathesis would leave GET /openapi.json itself out.
(cd "$WORK" && env PYTHONPATH="$ROOT/scripts" SCHEMATHESIS_HOOKS=fuzz_hooks FUZZ_PUBLIC_URL="$URL" FUZZ_COMMUNICATION_ID="$KNOWN_ID" \
  FUZZ_TWILIO_AUTH_TOKEN="$TWILIO_TOKEN" FUZZ_WHATSAPP_APP_SECRET="$WHATSAPP_SECRET" FUZZ_WHATSAPP_VERIFY_TOKEN="$VERIFY_TOKEN" \
  "${ST[@]}" run "$ROOT/docs/openapi.json" --url "$URL" \
  --checks not_a_server_error,response_schema_conformance \
  --max-examples "$MAX_EXAMPLES" \
  --generation-allow-x00 true \
  --generation-database none \
  --workers 2 \
  --request-timeout 30 \
  --report ndjson --report-dir "$WORK/report" \
  --no-color \
  "${SEED_ARGS[@]}" "${AUTH[@]}") | tee "$WORK/schemathesis.out"
st_status=${PIPESTATUS[0]}
set -e
echo "fuzz: schemathesis took $(( $(date +%s) - started )) s"

fail=0
[ "$st_status" -eq 0 ] || { echo "fuzz: schemathesis exited $st_status" >&2; fail=1; }
kill -0 "$SERVER_PID" 2>/dev/null || { echo "fuzz: the server died during the run" >&2; fail=1; }

# Counts from the run's own report: cases per operation, failed checks, operations the server does not serve
# (a warning, or a failure with FUZZ_STRICT_ROUTES=1).
# Strict by default: every documented operation must be served (FUZZ_STRICT_ROUTES=0 only warns).
STRICT=(--strict-routes)
[ "${FUZZ_STRICT_ROUTES:-1}" = 0 ] && STRICT=()
"$PYTHON" scripts/fuzz_report.py --report "$WORK/report" --document docs/openapi.json --min-cases "$MIN_CASES" "${STRICT[@]}" || fail=1

# A 5xx logs at error level: none may appear, even for answers schemathesis judged acceptable.
if grep -E '^[^ ]+ (error|critical) ' "$WORK/serve.log" >"$WORK/errors.log"; then
  echo "fuzz: error-level lines in the server log:" >&2
  head -20 "$WORK/errors.log" >&2
  fail=1
fi

if [ -n "$ADMIN_KEY" ]; then
  MATRIX_KEY="$("${SERVER_ENV[@]}" "$BIN" keys create --name auth-matrix --scope admin --rate 1000000 --burst 1000000 --database "$DB")"
  # Made by another process: the router's key cache reads the store again within seconds.
  for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $MATRIX_KEY" "$URL/api/v1/keys")" = 200 ] && break
    sleep 0.1
  done
  "$PYTHON" scripts/auth_matrix.py --url "$URL" --admin-key "$MATRIX_KEY" "${STRICT[@]}" || fail=1
fi

if [ "$fail" -ne 0 ]; then
  FUZZ_KEEP=1
  echo "fuzz: FAILED (server log and reports kept in $WORK)" >&2
  exit 1
fi
echo "fuzz: passed"
