#!/usr/bin/env python3
"""A message's trace seen whole (issue 17, point 7).

Starts, all on 127.0.0.1 and stopped at the end: a throwaway redis-server, an OTLP/HTTP receiver (spans decoded
with the `opentelemetry-proto` package), a Twilio stand-in that checks Twilio's wire format (Basic auth with the
account SID and token, a form with To, From and Body) and answers each recipient's first request 503, its second
201; then `switchboard router`, `switchboard worker --channel sms` and `switchboard logger` as separate processes on
that Redis (store and search in one SQLite file), exporting spans to the receiver (OTEL_EXPORTER_OTLP_ENDPOINT).

Then the same in one process on the embedded engine (`switchboard serve`, SQLite streams: the store write and the
publication are one transaction, so one span).

Sends two SMS: one without a `traceparent` (the trace starts at the router) and one with (the trace continues the
caller's). Each is delivered after one retry (the outbox republishes it). Once both are sent and indexed, the
processes are stopped (SIGTERM: their last spans are flushed), and for each message:

  - every span carries the message's trace id, which is the one in the POST's `traceparent` answer header, on
    its record (`traceId`) and on each of its `communication-logs` records;
  - parent links are intact: every span's parent is a span of the trace, but for one root (the router's HTTP
    span; its parent is the caller's span for the second message); no span id twice;
  - the router (validate, store write, publication, outbox republication), the worker (two deliveries, two
    provider calls: the first failed, the second not) and the logger (indexing) all have spans in it; the second
    delivery descends from the outbox's republication (the retry is inside the trace);
  - the worker's JSON log line about the failed attempt carries the trace id (SWITCHBOARD_LOG_FORMAT=json).

    scripts/trace_test.py [path/to/switchboard]     # default .build/debug/switchboard

Exits 1 on any failure.
"""
import base64
import gzip
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from script_support import check, eventually, failures, free_port  # noqa: E402  (scripts/, beside this file)


def serve(handler):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --- OTLP/HTTP receiver -----------------------------------------------------------------------------------------

spans = []
spans_lock = threading.Lock()
otlp_errors = []


class OTLPReceiver(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path != "/v1/traces" or "protobuf" not in (self.headers.get("Content-Type") or ""):
            otlp_errors.append(f"{self.path} {self.headers.get('Content-Type')}")
            self.send_response(404)
            self.end_headers()
            return
        request = trace_service_pb2.ExportTraceServiceRequest()
        request.ParseFromString(body)
        got = []
        for rs in request.resource_spans:
            service = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), "")
            for ss in rs.scope_spans:
                for s in ss.spans:
                    got.append({
                        "trace": s.trace_id.hex(), "span": s.span_id.hex(), "parent": s.parent_span_id.hex(),
                        "name": s.name, "service": service, "status": s.status.code, "start": s.start_time_unix_nano,
                        "attributes": {a.key: (a.value.string_value or a.value.int_value or a.value.bool_value) for a in s.attributes},
                    })
        with spans_lock:
            spans.extend(got)
        answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


# --- Twilio stand-in --------------------------------------------------------------------------------------------

ACCOUNT_SID = "AC" + secrets.token_hex(16)
AUTH_TOKEN = secrets.token_hex(16)
twilio_calls = []  # (to, status answered)
twilio_lock = threading.Lock()


class TwilioStandIn(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        expected_auth = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        form = urllib.parse.parse_qs(body, keep_blank_values=True)
        problems = []
        if self.path != f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json":
            problems.append(f"path {self.path}")
        if self.headers.get("Authorization") != expected_auth:
            problems.append("authorization")
        if self.headers.get("Content-Type") != "application/x-www-form-urlencoded":
            problems.append(f"content type {self.headers.get('Content-Type')}")
        if not form.get("To") or not form.get("Body") or not (form.get("From") or form.get("MessagingServiceSid")):
            problems.append(f"form {sorted(form)}")
        if problems:
            check(False, f"Twilio wire format: {problems}")
            return self.answer(400, {"code": 21602, "message": "; ".join(problems), "status": 400})
        to = form["To"][0]
        with twilio_lock:
            first = not any(t == to for t, _ in twilio_calls)
            twilio_calls.append((to, 503 if first else 201))
        if first:
            return self.answer(503, {"code": 20503, "message": "Service Unavailable", "more_info": "https://www.twilio.com/docs/errors/20503", "status": 503})
        return self.answer(201, {"sid": "SM" + secrets.token_hex(16), "status": "queued", "to": to, "from": form.get("From", [""])[0], "body": form["Body"][0]})


# --- processes --------------------------------------------------------------------------------------------------

processes = []


def spawn(args, log, env=None):
    p = subprocess.Popen(args, stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    processes.append(p)
    return p


def stop(p, timeout=20):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def http(method, url, body=None, headers=None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()




SCENARIOS = {
    # name: (processes, router span names, whether a redis-server is needed)
    "redis": ({"router": ["router"], "worker": ["worker", "--channel", "sms"], "logger": ["logger"]}, ["validate", "accept", "store write", "publication", "outbox republication"], True),
    "sqlite": ({"serve": ["serve"]}, ["validate", "store write + publication (one SQLite transaction)", "outbox republication"], False),
}


def main():
    binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".build", "debug", "switchboard"))
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"no switchboard binary at {binary}: build it first (swift build --traits MongoDB)")
    otlp = serve(OTLPReceiver)
    twilio = serve(TwilioStandIn)
    works = []
    try:
        for offset, scenario in enumerate(SCENARIOS):
            work = tempfile.mkdtemp(prefix=f"switchboard-trace-{scenario}-")
            works.append(work)
            print(f"== {scenario}", flush=True)
            run(binary, scenario, work, otlp, twilio, offset * 10)
    finally:
        for p in reversed(processes):
            stop(p, 10)
        otlp.shutdown()
        twilio.shutdown()
        for work in works:
            if failures:
                print(f"logs kept in {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
    print(f"trace test: {'FAILED, ' + str(len(failures)) + ' failures' if failures else 'passed'}")
    sys.exit(1 if failures else 0)


def run(binary, scenario, work, otlp, twilio, offset):
    commands, router_spans, needs_redis = SCENARIOS[scenario]
    service = {role: "switchboard-" + ("worker" if role == "worker" else role) for role in commands}
    front = "serve" if "serve" in commands else "router"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SWITCHBOARD_", "REDIS_", "MONGODB_", "ELASTICSEARCH_"))}
    if needs_redis:
        redis_port = free_port()
        spawn(["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "", "--appendonly", "no", "--dir", work], os.path.join(work, "redis.log"))

        def redis_up():
            with socket.create_connection(("127.0.0.1", redis_port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        if not eventually("redis-server answers", redis_up, 20):
            return
        env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}"

    env.update({
        "PORT": str(port), "SWITCHBOARD_HOST": "127.0.0.1", "SWITCHBOARD_DATABASE": os.path.join(work, "switchboard.sqlite"),
        "SWITCHBOARD_AUTH": "off",
        "ACCOUNTSID": ACCOUNT_SID, "AUTHTOKEN": AUTH_TOKEN, "SWITCHBOARD_TWILIO_BASE_URL": f"http://127.0.0.1:{twilio.server_address[1]}",
        "SWITCHBOARD_RETRY_BASE_MS": "300", "SWITCHBOARD_RETRY_JITTER": "0", "SWITCHBOARD_SCHEDULER_INTERVAL_MS": "100",
        "SWITCHBOARD_LOG_FORMAT": "json", "SWITCHBOARD_LOG_LEVEL": "info",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp.server_address[1]}", "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    })
    logs = {role: os.path.join(work, f"{role}.log") for role in commands}
    roles = {role: spawn([binary] + args, logs[role], env) for role, args in commands.items()}
    base = f"http://127.0.0.1:{port}"
    if not eventually("the router answers", lambda: http("GET", base + "/health/ready")[0] == 200, 60):
        return

    # The log lines written so far are counted by level on GET /metrics (switchboard_log_messages_total).
    metrics = http("GET", base + "/metrics")[2].decode()
    counted = [l for l in metrics.splitlines() if l.startswith('switchboard_log_messages_total{level="info"}')]
    check(counted and float(counted[0].split()[-1]) >= 1, f"info lines counted on /metrics: {counted}")

    caller_parent = secrets.token_hex(8)
    caller_trace = secrets.token_hex(16)
    messages = []  # (id, trace id, expected parent of the root or "")
    for i, incoming in enumerate([None, f"00-{caller_trace}-{caller_parent}-01"]):
        headers = {"Content-Type": "application/json"}
        if incoming:
            headers["traceparent"] = incoming
        body = json.dumps({"type": "sms", "data": {"from": "+15005550006", "to": f"+1555000{offset + i:04d}", "msg": f"traced message {i}"}}).encode()
        status, answer_headers, data = http("POST", base + "/api/v1/communication", body, headers)
        check(status == 200, f"POST answered {status}: {data[:200]!r}")
        header = {k.lower(): v for k, v in answer_headers.items()}.get("traceparent", "")
        parts = header.split("-")
        check(len(parts) == 4 and len(parts[1]) == 32, f"traceparent answer header {header!r}")
        trace = parts[1] if len(parts) == 4 else ""
        if incoming:
            check(trace == caller_trace, f"the caller's trace {caller_trace} continued, not {trace}")
        messages.append((json.loads(data)["id"], trace, caller_parent if incoming else ""))

    for id, trace, _ in messages:
        def sent():
            record = json.loads(http("GET", f"{base}/api/v1/communication/{id}")[2])
            return record["status"] == "sent"
        eventually(f"{id} sent", sent)
        record = json.loads(http("GET", f"{base}/api/v1/communication/{id}")[2])
        check(record.get("traceId") == trace, f"record traceId {record.get('traceId')} != {trace}")
        check(record.get("attempts") == 2 and "retrying" in [h["status"] for h in record.get("history", [])], f"{id} delivered after one retry: {record.get('attempts')} attempts, {[h['status'] for h in record.get('history', [])]}")

        def indexed():
            items = json.loads(http("GET", f"{base}/api/v1/logs?communicationId={id}&limit=100")[2])["items"]
            return {"pending", "queued", "retrying", "sent"} <= {r.get("status") for r in items}
        eventually(f"log records of {id}", indexed)
        items = json.loads(http("GET", f"{base}/api/v1/logs?communicationId={id}&limit=100")[2])["items"]
        check(items and all(r.get("traceId") == trace for r in items), f"every log record of {id} has trace id {trace}: {[r.get('traceId') for r in items]}")

    # Wait until the indexing spans of the last records have come, then stop: SIGTERM flushes the rest.
    def all_services():
        with spans_lock:
            return all(set(service.values()) <= {s["service"] for s in spans if s["trace"] == t} and any(s["name"] == "index log record" for s in spans if s["trace"] == t) for _, t, _ in messages)
    eventually("spans of every process", all_services, 30)
    time.sleep(1)  # the last records' indexing spans
    for role in commands:
        stop(roles[role])
        check(roles[role].returncode == 0, f"{role} stopped cleanly (exit {roles[role].returncode})")
    time.sleep(0.5)

    check(not otlp_errors, f"OTLP requests refused: {otlp_errors}")
    with spans_lock:
        collected = [s for s in spans if s["trace"] in {t for _, t, _ in messages}]
    print(f"{len(collected)} spans received from {sorted({s['service'] for s in collected})}")
    for id, trace, root_parent in messages:
        mine = sorted((s for s in collected if s["trace"] == trace), key=lambda s: s["start"])
        names = [f"{s['service'].removeprefix('switchboard-')}:{s['name']}" for s in mine]
        print(f"trace {trace} of {id}: {len(mine)} spans: {', '.join(names)}")
        ids = [s["span"] for s in mine]
        check(len(ids) == len(set(ids)), f"{trace}: no span id twice")
        by_id = {s["span"]: s for s in mine}
        roots = [s for s in mine if s["parent"] not in by_id]
        check(len(roots) == 1, f"{trace}: one root, not {[(r['service'], r['name'], r['parent']) for r in roots]}")
        if roots:
            check(roots[0]["service"] == service[front], f"{trace}: the root is the router's, not {roots[0]['service']}")
            check(roots[0]["parent"] == root_parent, f"{trace}: the root's parent is {roots[0]['parent']!r}, expected {root_parent!r}")

        def named(name, service):
            return [s for s in mine if s["name"] == name and s["service"] == service]
        worker, logger = service.get("worker", service[front]), service.get("logger", service[front])
        for name in router_spans:
            check(named(name, service[front]), f"{trace}: router span {name!r}")
        deliveries = named("deliver sms", worker)
        calls = named("provider twilio", worker)
        check(len(deliveries) == 2, f"{trace}: two deliveries, not {len(deliveries)}")
        check(len(calls) == 2, f"{trace}: two provider calls, not {len(calls)}")
        if len(calls) == 2:
            check(calls[0]["status"] == 2 and calls[1]["status"] != 2, f"{trace}: the first provider call failed, the second did not: {[c['status'] for c in calls]}")
            check(all(by_id.get(c["parent"], {}).get("name") == "deliver sms" for c in calls), f"{trace}: each provider call inside a delivery")
            check([c["attributes"].get("switchboard.outcome") for c in calls] == ["retryable", "sent"], f"{trace}: outcomes {[c['attributes'].get('switchboard.outcome') for c in calls]}")
        if len(deliveries) == 2:
            parent = by_id.get(deliveries[1]["parent"], {})
            check(parent.get("name") == "outbox republication", f"{trace}: the retry's delivery descends from the outbox's republication, not {parent.get('name')!r}")
        indexing = named("index log record", logger)
        check(len(indexing) >= 5, f"{trace}: the logger indexed its records in the trace ({len(indexing)} spans)")

        # The worker's JSON log line about the failed attempt carries the trace id.
        lines = []
        with open(logs["worker" if "worker" in logs else front], encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    check(False, f"a log line that is not JSON (SWITCHBOARD_LOG_FORMAT=json): {line[:300]!r}")
        retry_lines = [l for l in lines if l.get("message") == "provider failed, retryable" and l.get("trace_id") == trace]
        check(retry_lines, f"{trace}: the worker's log line about the retry has trace_id")
        # Written inside the delivery's span: its span_id is that span's (swift-otel's metadata provider).
        check(any(by_id.get(l.get("span_id"), {}).get("name") == "deliver sms" for l in retry_lines), f"{trace}: the retry's log line has the delivery span's span_id: {[l.get('span_id') for l in retry_lines]}")
    recipients = {f"+1555000{offset + i:04d}" for i in range(len(messages))}
    with twilio_lock:
        answered = sorted(s for to, s in twilio_calls if to in recipients)
    check(answered == [201, 201, 503, 503], f"Twilio stand-in answered {answered}")
    for p in list(processes):
        stop(p, 10)


if __name__ == "__main__":
    main()
