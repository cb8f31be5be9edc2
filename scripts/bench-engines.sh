#!/usr/bin/env bash
# End-to-end benchmark on the seed's engines (issue 5): router, workers and the logger as separate processes
# with the store in MongoDB, the streams in Redis and the search indices in Elasticsearch — here on the local
# peers the tests use: SecantusDB (a MongoDB wire-protocol server in Python) and the noida-db (Elasticsearch 8)
# or osmem-server (OpenSearch) emulators. The figures measure those peers as much as Switchboard. Prints
# figures; asserts nothing. Everything runs on 127.0.0.1 and stops at the end.
#   scripts/bench-engines.sh                              # MongoDB + Redis + Elasticsearch, 5,000 messages
#   SEARCH=opensearch E2E_MESSAGES=2000 scripts/bench-engines.sh
#   STORE=sqlite SEARCH=elasticsearch scripts/bench-engines.sh   # any combination: STORE=mongodb|sqlite,
#   SEARCH=elasticsearch|opensearch|sqlite
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
E2E_MESSAGES=${E2E_MESSAGES:-5000}
WORKERS=${WORKERS:-3}
STORE=${STORE:-mongodb}
SEARCH=${SEARCH:-elasticsearch}

scripts/install-test-deps.sh
source scripts/bench/lib.sh
BIN=$(build_release switchboard --traits MongoDB)
WORK=$(mktemp -d)
trap stop_all EXIT
ensure_wrk
PORT=$(free_port)
REDIS_PORT=$(free_port)
start_redis
export SWITCHBOARD_DATABASE="$WORK/bench.sqlite" PORT SWITCHBOARD_LOG_LEVEL=warning

STORE_VERSION=sqlite
if [ "$STORE" = mongodb ]; then
  MONGO_PORT=$(free_port)
  spawn secantusd-py --host 127.0.0.1 --port "$MONGO_PORT" --storage-path :memory: --standalone >"$WORK/secantus.log" 2>&1
  wait_for secantusdb python3 -c "import socket; socket.create_connection(('127.0.0.1', $MONGO_PORT), 1)"
  export MONGODB_URL="mongodb://127.0.0.1:$MONGO_PORT/communication-aggregator"
  STORE_VERSION="MongoDB peer SecantusDB $(pip show SecantusDB 2>/dev/null | sed -n 's/^Version: //p')"
fi

SEARCH_VERSION=sqlite
ES_PORT=$(free_port)
case "$SEARCH" in
  elasticsearch)
    spawn noida-db start --data-dir "$WORK/noida" --host 127.0.0.1 --only elasticsearch --elasticsearch-port "$ES_PORT" >"$WORK/noida.log" 2>&1
    SEARCH_VERSION="Elasticsearch emulator noida-db $(pip show noida-db 2>/dev/null | sed -n 's/^Version: //p')";;
  opensearch)
    spawn "$(python3 -c 'import osmem_server,os;print(os.path.dirname(osmem_server.__file__))')/bin/osmem-server" -addr "127.0.0.1:$ES_PORT" -no-stdin-watch >"$WORK/osmem.log" 2>&1
    SEARCH_VERSION="OpenSearch emulator osmem-server $(pip show osmem-server 2>/dev/null | sed -n 's/^Version: //p')";;
  sqlite) ;;
  *) echo "SEARCH=$SEARCH: use elasticsearch, opensearch or sqlite"; exit 2;;
esac
if [ "$SEARCH" != sqlite ]; then
  wait_for "$SEARCH" curl -fs "http://127.0.0.1:$ES_PORT/"
  export ELASTICSEARCH_NODE="http://127.0.0.1:$ES_PORT"
fi

start_services "$WORKERS"

echo "== Switchboard on the seed's engines: $(nproc) cores; store: $STORE_VERSION; streams: redis $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/'); search: $SEARCH_VERSION; router + $WORKERS sms workers + logger, $CONNECTIONS connections"
drive_end_to_end "$E2E_MESSAGES"
# The logger catches up on log_stream; with a search engine, wait until communication-logs holds every record.
wait_log_stream_drained
if [ "$SEARCH" != sqlite ]; then
  # Every entry was acknowledged, so the cluster has it; wait until a refreshed count stops moving. (Fewer than
  # 4 records per message is normal: a worker that takes an entry before the router recorded `queued` makes
  # that `queued` a no-op, which is not logged.)
  last=-1
  for _ in $(seq 1 600); do
    curl -fs -XPOST "http://127.0.0.1:$ES_PORT/communication-logs/_refresh" >/dev/null 2>&1 || true
    got=$(curl -fs "http://127.0.0.1:$ES_PORT/communication-logs/_count" | sed -n 's/.*"count":\([0-9]*\).*/\1/p')
    got=${got:-0}
    [ "$got" = "$last" ] && [ "$got" -ge "$TOTAL" ] && break
    last=$got
    sleep 1
  done
  curl -fs -XPOST "http://127.0.0.1:$ES_PORT/communications/_refresh" >/dev/null 2>&1 || true
  docs=$(curl -fs "http://127.0.0.1:$ES_PORT/communications/_count" | sed -n 's/.*"count":\([0-9]*\).*/\1/p')
  docs=${docs:-0}
  echo "search holds $docs communications and $got log records ($(python3 -c "print(f'{$got / $TOTAL:.2f}')") per message)"
fi
report_end_to_end "$(date +%s.%N)"
