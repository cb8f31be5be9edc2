#!/usr/bin/env bash
# Installs what the build, the tests and the benchmarks use (Debian). Idempotent; quiet when all is there.
#   - libsqlite3-dev: the embedded engine
#   - redis-server, redis-tools: the Redis tests start their own servers on free loopback ports;
#     redis-benchmark and redis-cli serve the benchmarks
#   - openssl: the SMTP and Redis tests' CA and certificates
#   - python3 + pip + aiosmtpd (PyPI): the SMTP server the SMTP tests talk to (scripts/smtp_test_server.py)
#   - noida-db, osmem-server (PyPI): Elasticsearch 8 and OpenSearch dialect emulators the search tests start
#   - libmongoc-dev: the MongoDB store (built with --traits MongoDB)
#   - SecantusDB (PyPI): `secantusd-py`, a MongoDB wire-protocol peer the MongoDB tests start on free loopback
#     ports (not MongoDB; no mongod is needed)
#   - openapi-spec-validator (PyPI): the HTTP tests validate docs/openapi.json with it
#   - schemathesis (PyPI): scripts/fuzz.sh fuzzes a running `switchboard serve` against docs/openapi.json
#   - prometheus (its promtool too): scripts/prometheus-check.sh checks deploy/prometheus with promtool and runs a
#     Prometheus on a free loopback port scraping the system (the package's own service is not used)
#   - python3-yaml: scripts/prometheus_check.py reads the rule and compose files
#   - opentelemetry-proto (PyPI): scripts/trace_test.py decodes the spans the processes export over OTLP/HTTP
#   - httpx + httpx-sse, websockets (PyPI): scripts/live_test.py follows live status as real SSE and WebSocket clients
#   - standardwebhooks (PyPI): scripts/callback_test.py verifies the status callbacks with the specification's library
set -euo pipefail
AIOSMTPD_VERSION="1.4.6"
NOIDA_DB_VERSION="0.2.3"
OSMEM_SERVER_VERSION="0.1.6"
SECANTUSDB_VERSION="0.7.0b3"
OPENAPI_SPEC_VALIDATOR_VERSION="0.9.0"
SCHEMATHESIS_VERSION="4.32.5"
OPENTELEMETRY_PROTO_VERSION="1.45.2"
HTTPX_VERSION="0.28.1"
HTTPX_SSE_VERSION="0.4.3"
WEBSOCKETS_VERSION="15.0.1"
STANDARDWEBHOOKS_VERSION="1.3.0"
PYTHON="${PYTHON:-python3}"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

need=()
for pkg in libsqlite3-dev libmongoc-dev redis-server redis-tools openssl prometheus; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
command -v "$PYTHON" >/dev/null 2>&1 || need+=(python3)
if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then need+=(python3-pip); fi
if ! "$PYTHON" -c 'import yaml' 2>/dev/null; then need+=(python3-yaml); fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  as_root apt-get update -qq >/dev/null
  # The Debian redis-server package starts a system redis on port 6379; the tests do not use it.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! "$PYTHON" -c "import aiosmtpd, sys; sys.exit(0 if aiosmtpd.__version__ == '${AIOSMTPD_VERSION}' else 1)" 2>/dev/null; then
  echo "installing: aiosmtpd==${AIOSMTPD_VERSION} (PyPI)"
  # --break-system-packages is needed on Debian's externally managed Python; older pips do not know it.
  "$PYTHON" -m pip install --quiet --disable-pip-version-check "aiosmtpd==${AIOSMTPD_VERSION}" --break-system-packages 2>/dev/null \
    || "$PYTHON" -m pip install --quiet --disable-pip-version-check "aiosmtpd==${AIOSMTPD_VERSION}"
fi

if ! "$PYTHON" -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('noida-db') == '${NOIDA_DB_VERSION}' and m.version('osmem-server') == '${OSMEM_SERVER_VERSION}' else 1)" 2>/dev/null; then
  echo "installing: noida-db==${NOIDA_DB_VERSION} osmem-server==${OSMEM_SERVER_VERSION} (PyPI)"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check "noida-db==${NOIDA_DB_VERSION}" "osmem-server==${OSMEM_SERVER_VERSION}" --break-system-packages 2>/dev/null \
    || "$PYTHON" -m pip install --quiet --disable-pip-version-check "noida-db==${NOIDA_DB_VERSION}" "osmem-server==${OSMEM_SERVER_VERSION}"
fi

if ! "$PYTHON" -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('SecantusDB') == '${SECANTUSDB_VERSION}' else 1)" 2>/dev/null; then
  echo "installing: SecantusDB==${SECANTUSDB_VERSION} (PyPI)"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check "SecantusDB==${SECANTUSDB_VERSION}" --break-system-packages 2>/dev/null \
    || "$PYTHON" -m pip install --quiet --disable-pip-version-check "SecantusDB==${SECANTUSDB_VERSION}"
fi

if ! "$PYTHON" -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('openapi-spec-validator') == '${OPENAPI_SPEC_VALIDATOR_VERSION}' and m.version('schemathesis') == '${SCHEMATHESIS_VERSION}' else 1)" 2>/dev/null; then
  echo "installing: openapi-spec-validator==${OPENAPI_SPEC_VALIDATOR_VERSION} schemathesis==${SCHEMATHESIS_VERSION} (PyPI)"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check "openapi-spec-validator==${OPENAPI_SPEC_VALIDATOR_VERSION}" "schemathesis==${SCHEMATHESIS_VERSION}" --break-system-packages 2>/dev/null \
    || "$PYTHON" -m pip install --quiet --disable-pip-version-check "openapi-spec-validator==${OPENAPI_SPEC_VALIDATOR_VERSION}" "schemathesis==${SCHEMATHESIS_VERSION}"
fi

if ! "$PYTHON" -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('opentelemetry-proto') == '${OPENTELEMETRY_PROTO_VERSION}' else 1)" 2>/dev/null; then
  echo "installing: opentelemetry-proto==${OPENTELEMETRY_PROTO_VERSION} (PyPI)"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check "opentelemetry-proto==${OPENTELEMETRY_PROTO_VERSION}" --break-system-packages 2>/dev/null \
    || "$PYTHON" -m pip install --quiet --disable-pip-version-check "opentelemetry-proto==${OPENTELEMETRY_PROTO_VERSION}"
fi

if ! "$PYTHON" -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('httpx') == '${HTTPX_VERSION}' and m.version('httpx-sse') == '${HTTPX_SSE_VERSION}' and m.version('websockets') == '${WEBSOCKETS_VERSION}' else 1)" 2>/dev/null; then
  echo "installing: httpx==${HTTPX_VERSION} httpx-sse==${HTTPX_SSE_VERSION} websockets==${WEBSOCKETS_VERSION} (PyPI)"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check "httpx==${HTTPX_VERSION}" "httpx-sse==${HTTPX_SSE_VERSION}" "websockets==${WEBSOCKETS_VERSION}" --break-system-packages 2>/dev/null \
    || "$PYTHON" -m pip install --quiet --disable-pip-version-check "httpx==${HTTPX_VERSION}" "httpx-sse==${HTTPX_SSE_VERSION}" "websockets==${WEBSOCKETS_VERSION}"
fi

if ! "$PYTHON" -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('standardwebhooks') == '${STANDARDWEBHOOKS_VERSION}' else 1)" 2>/dev/null; then
  echo "installing: standardwebhooks==${STANDARDWEBHOOKS_VERSION} (PyPI)"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check "standardwebhooks==${STANDARDWEBHOOKS_VERSION}" --break-system-packages 2>/dev/null \
    || "$PYTHON" -m pip install --quiet --disable-pip-version-check "standardwebhooks==${STANDARDWEBHOOKS_VERSION}"
fi
