#!/usr/bin/env python3
"""Checks Switchboard's Prometheus side against a real Prometheus (issue 17, points 4 to 6).

    prometheus_check.py static                # the files alone: promtool, the compose targets, the dashboard
    prometheus_check.py live <switchboard>    # a running system scraped by a real Prometheus

static: `promtool check rules` and `promtool test rules` on deploy/prometheus/alerts.yml, `promtool check config`
on deploy/prometheus/prometheus.yml; every router, worker and logger service of docker-compose.yml is a target of
that config (on its HTTP or metrics port); every alert has a summary, a description and a runbook anchor the README
has, and unit tests expecting it to fire and to stay quiet; the README's metrics table is MetricNames.swift (names,
types, labels); the rules and the dashboard name only those metrics (their expressions are parsed and evaluated by
the live run's Prometheus: promtool has no "check expression").

live: starts redis-server, the router, one worker per channel and the logger as separate processes (Redis streams,
SQLite store), each serving /metrics behind a bearer token made for the run, and Debian's `prometheus` on
127.0.0.1 scraping them every 3 seconds with alerts.yml loaded. It sends messages (some failing through the sandbox's
magic recipients; WhatsApp through a Meta endpoint that does not answer, so its circuit opens and the sandbox takes
over), waits until each has ended, then asks Prometheus's HTTP API that
  - the counters say exactly what was sent: accepted by channel, sent and failed by channel, provider calls by
    outcome, HTTP requests by route template and status;
  - every expression of alerts.yml and of deploy/grafana/switchboard.json evaluates without error or warning, and
    every metric they name is exported;
  - the backlog gauges: each failed message dead-lettered, the streams drained, every engine up in every process;
  - /api/v1/rules shows every rule of alerts.yml, healthy;
  - each process's exposition passes `promtool check metrics` (HELP lines aside);
  - Meta's circuit is open (2) and SwitchboardCircuitOpen goes pending;
  - a process stopped is `up == 0` and SwitchboardProcessDown goes pending;
  - Redis stopped: the processes still answer their scrapes with switchboard_engine_up{role="queue"} 0, and
    SwitchboardEngineDown goes pending.
Everything listens on 127.0.0.1 and is stopped at the end, failed or not.
"""
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
RULES = os.path.join(ROOT, "deploy/prometheus/alerts.yml")
RULES_TEST = os.path.join(ROOT, "deploy/prometheus/alerts_test.yml")
PROM_CONFIG = os.path.join(ROOT, "deploy/prometheus/prometheus.yml")
DASHBOARD = os.path.join(ROOT, "deploy/grafana/switchboard.json")
COMPOSE = os.path.join(ROOT, "docker-compose.yml")
README = os.path.join(ROOT, "README.md")
METRIC_NAMES = os.path.join(ROOT, "Sources/SwitchboardTelemetry/MetricNames.swift")

# Grafana's variables, as the live check puts them in (the run lasts about a minute; scrapes are 1 s apart).
GRAFANA_VARIABLES = {"$__rate_interval": "15s", "$__range": "5m", "$__interval": "5s"}

failures = []


def check(ok, what):
    print(("  ok    " if ok else "  FAIL  ") + what, flush=True)
    if not ok:
        failures.append(what)
    return ok


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


# --- the files ---------------------------------------------------------------------------------------------------

def rule_expressions():
    doc = yaml.safe_load(open(RULES))
    return [(r["alert"], r["expr"].strip()) for g in doc["groups"] for r in g["rules"]]


def dashboard_expressions():
    """Every `expr` anywhere in the dashboard (panels, rows' panels, targets), Grafana variables put in."""
    found = []

    def walk(node, title):
        if isinstance(node, dict):
            title = node.get("title", title)
            if isinstance(node.get("expr"), str):
                found.append((title, node["expr"]))
            for v in node.values():
                walk(v, title)
        elif isinstance(node, list):
            for v in node:
                walk(v, title)

    walk(json.load(open(DASHBOARD)), "")
    return found


def substitute(expr):
    for k, v in GRAFANA_VARIABLES.items():
        expr = expr.replace(k, v)
    return expr


def metric_names(expr):
    """Metric names an expression selects (identifiers before `{`, or bare ones that are not PromQL words)."""
    words = {"sum", "by", "without", "rate", "increase", "delta", "max", "min", "avg", "count", "histogram_quantile",
             "max_over_time", "min_over_time", "time", "and", "or", "unless", "on", "ignoring", "group_left",
             "group_right", "bool", "offset", "absent", "topk", "bottomk", "irate", "le"}
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # no label values
    expr = re.sub(r"\{[^}]*\}", "{}", expr)  # no matchers
    expr = re.sub(r"\[[^\]]*\]", "[]", expr)  # no ranges
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", expr)  # no grouping labels
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b", expr)) - words
    return {n for n in names if not re.fullmatch(r"\d.*", n)}


def exported_names():
    """Every metric name of MetricNames.swift, as Prometheus stores it (histograms: their _bucket series)."""
    text = open(METRIC_NAMES).read()
    names = re.findall(r'public static let \w+ = "([a-z_]+)"', text)
    histograms = set()
    for m in re.finditer(r'/// Histogram[^\n]*\n\s*public static let \w+ = "([a-z_]+)"', text):
        histograms.add(m.group(1))
    return names, histograms


def github_anchor(heading):
    a = heading.strip().lower()
    a = re.sub(r"[^\w\- ]", "", a)
    return a.replace(" ", "-")


def static():
    print("== promtool and the files", flush=True)
    rc, out = run(["promtool", "check", "rules", RULES])
    check(rc == 0, f"promtool check rules deploy/prometheus/alerts.yml\n{out if rc else ''}".rstrip())
    rc, out = run(["promtool", "test", "rules", RULES_TEST])
    check(rc == 0, f"promtool test rules deploy/prometheus/alerts_test.yml\n{out if rc else ''}".rstrip())
    rc, out = run(["promtool", "check", "config", PROM_CONFIG])
    check(rc == 0, f"promtool check config deploy/prometheus/prometheus.yml\n{out if rc else ''}".rstrip())

    # Each alert: a summary, a description, a runbook that is an anchor of the README; each tested by alerts_test.yml.
    doc = yaml.safe_load(open(RULES))
    anchors = {github_anchor(h) for h in re.findall(r"^#+ (.*)$", open(README).read(), re.M)}
    tests = yaml.safe_load(open(RULES_TEST))["tests"]
    tested = {}
    for t in tests:
        for a in t.get("alert_rule_test", []):
            tested.setdefault(a["alertname"], set()).add(bool(a.get("exp_alerts")))
    for g in doc["groups"]:
        for r in g["rules"]:
            ann = r.get("annotations", {})
            check(all(ann.get(k) for k in ("summary", "description", "runbook")), f"{r['alert']}: summary, description, runbook")
            anchor = ann.get("runbook", "").partition("README.md#")[2]
            check(anchor in anchors, f"{r['alert']}: runbook README.md#{anchor} is a README heading")
            check(tested.get(r["alert"]) == {True, False}, f"{r['alert']}: alerts_test.yml expects it to fire and to stay quiet")

    # docker-compose.yml: every Switchboard process is a target of prometheus.yml, on the port it serves /metrics on.
    compose = yaml.safe_load(open(COMPOSE))
    config = yaml.safe_load(open(PROM_CONFIG))
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "switchboard")
    targets = {t: sc.get("labels", {}).get("service") for sc in job["static_configs"] for t in sc["targets"]}
    expected = {}
    for name, svc in compose["services"].items():
        cmd = svc.get("command") or []
        if not cmd or cmd[0] not in ("router", "worker", "logger"):
            continue
        env = svc.get("environment") or {}
        port = env.get("PORT", "3001") if cmd[0] == "router" else env.get("SWITCHBOARD_METRICS_PORT")
        check(port is not None, f"docker-compose {name}: serves /metrics (SWITCHBOARD_METRICS_PORT)")
        expected[f"{name}:{port}"] = cmd[0]
    check(targets == expected, f"prometheus.yml targets are docker-compose's processes: {sorted(expected)}"
          + ("" if targets == expected else f", got {sorted(targets)}"))
    prom = compose["services"].get("prometheus", {})
    check(any(v.startswith("./deploy/prometheus:/etc/prometheus") for v in prom.get("volumes", [])),
          "docker-compose prometheus mounts deploy/prometheus (config and rules)")

    # The dashboard: an importable Grafana dashboard on a datasource variable, the three rows of the seed.
    dash = json.load(open(DASHBOARD))
    rows = [p["title"] for p in dash["panels"] if p["type"] == "row"]
    check(rows == ["Communication overview", "Service health", "Operational metrics"], f"dashboard rows {rows}")
    ds = {json.dumps(p.get("datasource")) for p in dash["panels"] if p["type"] != "row"}
    check(ds == {json.dumps({"type": "prometheus", "uid": "${datasource}"})}, "every panel reads the ${datasource} variable")
    check(any(v["type"] == "datasource" and v["name"] == "datasource" for v in dash["templating"]["list"]),
          "the dashboard has the datasource variable")
    ids = [p["id"] for p in dash["panels"]]
    check(len(ids) == len(set(ids)), "panel ids are unique")
    exprs = dashboard_expressions()
    check(len(exprs) > 20, f"{len(exprs)} dashboard expressions")
    leftover = [e for _, e in exprs if "$" in substitute(e)]
    check(not leftover, f"no Grafana variable left unsubstituted: {leftover}")

    # The README's metrics table is MetricNames.swift: every metric, with its type and labels (from the doc comment).
    names, histograms = exported_names()
    table = {}
    for m in re.finditer(r"^\| `([a-z_]+)` \| (counter|gauge|histogram) \|\s*([a-z_, ]*?)\s*\|", open(README).read(), re.M):
        table[m.group(1)] = (m.group(2), {l.strip() for l in m.group(3).split(",") if l.strip()})
    declared = {}
    for m in re.finditer(r'(?:/// (Counter|Gauge|Histogram)(?: \{([a-z_, ]*)\})?:[^\n]*\n(?:\s*///[^\n]*\n)*)?\s*public static let \w+ = "([a-z_]+)"',
                         open(METRIC_NAMES).read()):
        kind, labels, name = m.groups()
        declared[name] = (kind.lower() if kind else None, {l.strip() for l in (labels or "").split(",") if l.strip()})
    check(sorted(table) == sorted(declared), "README's metrics table lists exactly the metrics of MetricNames.swift"
          + ("" if sorted(table) == sorted(declared) else f": only in README {sorted(set(table) - set(declared))}, only in MetricNames {sorted(set(declared) - set(table))}"))
    for name, (kind, labels) in declared.items():
        if kind is not None and name in table:
            check(table[name] == (kind, labels), f"README: {name} is a {kind} {{{', '.join(sorted(labels))}}}"
                  + ("" if table[name] == (kind, labels) else f", the table says {table[name]}"))

    # Every name the rules and the dashboard select is a metric of MetricNames.swift (or Prometheus's own `up`).
    known = set(names) | {"up"}
    for h in histograms:
        known |= {h + "_bucket", h + "_sum", h + "_count"}
    for what, e in rule_expressions() + exprs:
        unknown = metric_names(substitute(e)) - known
        check(not unknown, f"{what}: names only known metrics" + (f", not {sorted(unknown)}" if unknown else ""))
    return names, histograms


# --- the live run ------------------------------------------------------------------------------------------------

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class System:
    def __init__(self, work):
        self.work = work
        self.procs = {}

    def spawn(self, name, cmd, env=None):
        log = open(os.path.join(self.work, name + ".log"), "w")
        self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        return self.procs[name]

    def stop(self, name):
        p = self.procs.get(name)
        if p and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop_all(self):
        for name in reversed(list(self.procs)):
            self.stop(name)

    def tail(self, name, n=30):
        try:
            return "".join(open(os.path.join(self.work, name + ".log")).readlines()[-n:])
        except OSError:
            return ""


def http(method, url, body=None, headers=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_for(what, probe, seconds=60, system=None, log=None):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if probe():
                return True
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what}: not within {seconds} s" + (f"\n{system.tail(log)}" if system and log else ""))


class Prom:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def api(self, path, **params):
        status, body = http("GET", f"{self.base}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        return status, json.loads(body)

    def query(self, expr):
        status, doc = self.api("query", query=expr)
        if status != 200 or doc.get("status") != "success":
            raise RuntimeError(f"{expr}: {status} {doc.get('errorType')} {doc.get('error')}")
        return doc

    def vector(self, expr, label):
        """{label value: number} of an instant vector query."""
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(expr)["data"]["result"]}


def live(binary, names, histograms):
    print("== a real Prometheus scraping router, workers and logger (separate processes, Redis streams)", flush=True)
    work = tempfile.mkdtemp(prefix="sb-prometheus-")
    system = System(work)
    try:
        live_run(binary, names, histograms, work, system)
    except Exception as e:  # reported as a failure, then everything is stopped
        check(False, f"live run: {e}")
        for name in system.procs:
            print(f"--- {name}.log (tail)\n{system.tail(name)}")
    finally:
        system.stop_all()
        shutil.rmtree(work, ignore_errors=True)


def live_run(binary, names, histograms, work, system):
    token = secrets.token_hex(16)  # made for this run: the processes want it, Prometheus sends it
    ports = {k: free_port() for k in ("redis", "router", "email", "sms", "whatsapp", "logger", "prometheus", "closed")}
    system.spawn("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(ports["redis"]), "--dir", work,
                           "--save", "", "--appendonly", "no"])
    wait_for("redis", lambda: run(["redis-cli", "-p", str(ports["redis"]), "ping"])[1].strip() == "PONG", 30, system, "redis")

    env = dict(os.environ)
    for k in [k for k in env if k.startswith("SWITCHBOARD_") or k in ("PORT", "MONGODB_URL", "ELASTICSEARCH_NODE")]:
        del env[k]
    env.update({
        "REDIS_URL": f"redis://127.0.0.1:{ports['redis']}",
        "SWITCHBOARD_DATABASE": os.path.join(work, "switchboard.sqlite"),
        "SWITCHBOARD_HOST": "127.0.0.1",
        "PORT": str(ports["router"]),
        "SWITCHBOARD_LOG_LEVEL": "info",
        "SWITCHBOARD_METRICS_TOKEN": token,
        # Retries fast, so the failing recipients end within seconds.
        "SWITCHBOARD_RETRY_MAX_ATTEMPTS": "3",
        "SWITCHBOARD_RETRY_BASE_MS": "100",
        "SWITCHBOARD_RETRY_MAX_MS": "200",
        "SWITCHBOARD_RETRY_JITTER": "0",
        "SWITCHBOARD_SCHEDULER_INTERVAL_MS": "100",
    })
    router = f"http://127.0.0.1:{ports['router']}"
    system.spawn("router", [binary, "router"], env)
    wait_for("router /health/ready", lambda: http("GET", router + "/health/ready")[0] == 200, 60, system, "router")
    # The workers: the sms one with the flag, the others with the variable.
    system.spawn("worker-sms", [binary, "worker", "--channel", "sms", "--metrics-port", str(ports["sms"])], env)
    system.spawn("worker-email", [binary, "worker", "--channel", "email"], dict(env, SWITCHBOARD_METRICS_PORT=str(ports["email"])))
    # WhatsApp through Meta first, on a loopback port nothing listens on: its calls fail retryably, its circuit opens
    # (and stays open), and the sandbox delivers instead (failover). The token is a placeholder, never sent anywhere.
    meta = dict(env, SWITCHBOARD_METRICS_PORT=str(ports["whatsapp"]), SWITCHBOARD_WHATSAPP_PROVIDERS="meta,sandbox",
                SWITCHBOARD_WHATSAPP_TOKEN="placeholder", SWITCHBOARD_WHATSAPP_PHONE_NUMBER_ID="1000000000",
                SWITCHBOARD_WHATSAPP_BASE_URL=f"http://127.0.0.1:{ports['closed']}",
                SWITCHBOARD_BREAKER_THRESHOLD="5", SWITCHBOARD_BREAKER_COOLDOWN_MS="600000")
    system.spawn("worker-whatsapp", [binary, "worker", "--channel", "whatsapp"], meta)
    system.spawn("logger", [binary, "logger"], dict(env, SWITCHBOARD_METRICS_PORT=str(ports["logger"])))
    targets = {"router": f"127.0.0.1:{ports['router']}", "worker-sms": f"127.0.0.1:{ports['sms']}",
               "worker-email": f"127.0.0.1:{ports['email']}", "worker-whatsapp": f"127.0.0.1:{ports['whatsapp']}",
               "logger": f"127.0.0.1:{ports['logger']}"}
    auth = {"Authorization": f"Bearer {token}"}
    for name, t in targets.items():
        wait_for(f"{name} /metrics", lambda t=t: http("GET", f"http://{t}/metrics", headers=auth)[0] == 200, 60, system, name)
    for name in ("router", "worker-sms"):
        status, _ = http("GET", f"http://{targets[name]}/metrics")
        check(status == 401, f"{name}: /metrics without the token is refused ({status})")
        status, _ = http("GET", f"http://{targets[name]}/metrics", headers={"Authorization": "Bearer wrong"})
        check(status == 401, f"{name}: /metrics with another token is refused ({status})")

    # The exposition passes promtool's lint, but for HELP lines (swift-prometheus writes none).
    for name, t in targets.items():
        status, text = http("GET", f"http://{t}/metrics", headers=auth)
        lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        problems = [l for l in (lint.stdout + lint.stderr).splitlines() if l.strip() and not l.endswith("no help text")]
        check(not problems, f"{name}: promtool check metrics" + (f": {problems}" if problems else " (HELP lines aside)"))

    token_file = os.path.join(work, "metrics-token")
    with open(token_file, "w") as f:
        f.write(token)
    config = {
        # A scrape waits up to 2 s for an engine that does not answer (the collector's bound): a 3 s timeout.
        "global": {"scrape_interval": "3s", "evaluation_interval": "1s", "scrape_timeout": "3s"},
        "rule_files": [RULES],
        "scrape_configs": [{
            "job_name": "switchboard",
            "authorization": {"type": "Bearer", "credentials_file": token_file},
            "static_configs": [{"targets": [t], "labels": {"service": n.split("-")[0]}} for n, t in targets.items()],
        }],
    }
    config_file = os.path.join(work, "prometheus.yml")
    with open(config_file, "w") as f:
        yaml.safe_dump(config, f)
    system.spawn("prometheus", ["prometheus", f"--config.file={config_file}", f"--storage.tsdb.path={work}/tsdb",
                                f"--web.listen-address=127.0.0.1:{ports['prometheus']}", "--log.level=warn"])
    prom = Prom(ports["prometheus"])
    wait_for("prometheus /-/ready", lambda: http("GET", prom.base + "/-/ready")[0] == 200, 60, system, "prometheus")

    def all_up():
        active = prom.api("targets")[1]["data"]["activeTargets"]
        return len(active) == len(targets) and all(t["health"] == "up" for t in active)
    wait_for("every target scraped (up)", all_up, 30, system, "prometheus")
    check(True, f"Prometheus scrapes {len(targets)} processes with the bearer token: {', '.join(targets)}")

    # --- traffic --------------------------------------------------------------------------------------------------
    plan = {  # channel: [(recipient, how many, outcome)]
        "sms": [("+15550000001", 12, "sent"), ("+15005550001", 2, "failed"), ("+15005550002", 1, "failed"),
                ("+15005550003", 1, "sent")],
        "email": [("ada@example.com", 7, "sent"), ("fail-permanent@sandbox.test", 1, "failed"),
                  ("flaky@sandbox.test", 1, "sent")],
        "whatsapp": [("+15550000002", 10, "sent"), ("+15005550001", 1, "failed")],
    }
    sender = {"sms": "+1234567890", "whatsapp": "+1234567890", "email": "hello@example.com"}
    ids = {}

    def send(ch, to, n, outcome):
        for i in range(n):
            status, body = http("POST", router + "/api/v1/communication",
                                {"type": ch, "data": {"from": sender[ch], "to": to, "msg": f"metrics check {i}"}})
            if status != 200:
                raise RuntimeError(f"POST {ch} {to}: {status} {body}")
            ids[json.loads(body)["id"]] = (ch, outcome)
    for ch, items in plan.items():
        for item in items:
            send(ch, *item)
    invalid = 3  # answered 400: not accepted
    for _ in range(invalid):
        status, _ = http("POST", router + "/api/v1/communication", {"type": "sms", "data": {"from": "x", "to": "y", "msg": "z"}})
        check(status == 400, f"an invalid message is answered 400 ({status})")

    def all_ended():
        for i, (ch, outcome) in ids.items():
            status, body = http("GET", f"{router}/api/v1/communication/{i}")
            if status != 200 or json.loads(body)["status"] not in ("sent", "failed"):
                return False
        return True
    wait_for("every message sent or failed", all_ended, 120, system, "worker-sms")
    # Meta's circuit is open by now: two more WhatsApp messages are refused by it without a call, and sent by the sandbox.
    plan["whatsapp"].append(("+15550000003", 2, "sent"))
    send("whatsapp", "+15550000003", 2, "sent")
    wait_for("the last WhatsApp messages sent", all_ended, 60, system, "worker-whatsapp")
    accepted = {ch: sum(n for _, n, _ in items) for ch, items in plan.items()}
    failed = {ch: sum(n for _, n, o in items if o == "failed") for ch, items in plan.items()}
    sent = {ch: accepted[ch] - failed[ch] for ch in plan}
    gets = 0
    for i, (ch, outcome) in ids.items():
        status, body = http("GET", f"{router}/api/v1/communication/{i}")
        gets += 1
        check(json.loads(body)["status"] == outcome, f"{ch} message {i}: {outcome}")
    status, _ = http("GET", f"{router}/api/v1/communication/000000000000000000000000")
    check(status == 404, f"an unknown id is answered 404 ({status})")
    print(f"  sent {sum(accepted.values())} messages: accepted {accepted}, failing {failed}", flush=True)

    # --- the counters, as Prometheus sees them (after a few more scrapes) ---------------------------------------------
    j = '{job="switchboard"}'
    expected_http = {("POST", "200"): sum(accepted.values()), ("POST", "400"): invalid}
    checks = [
        ("accepted by channel", f"sum by (channel) (switchboard_messages_accepted_total{j})", "channel", accepted),
        ("sent by channel", f'sum by (channel) (switchboard_status_transitions_total{{job="switchboard", status="sent"}})', "channel", sent),
        ("failed by channel", f'sum by (channel) (switchboard_status_transitions_total{{job="switchboard", status="failed"}})', "channel", failed),
    ]
    flaky = sum(n for items in plan.values() for to, n, _ in items if to in ("+15005550003", "flaky@sandbox.test"))
    transient = sum(n for items in plan.values() for to, n, _ in items if to in ("+15005550002", "fail-transient@sandbox.test"))
    permanent = sum(n for items in plan.values() for to, n, _ in items if to in ("+15005550001", "fail-permanent@sandbox.test"))
    calls = {"sent": sum(sent.values()), "permanent": permanent, "retryable": 2 * flaky + 3 * transient}
    checks.append(("sandbox calls by outcome",
                   f'sum by (outcome) (switchboard_provider_calls_total{{job="switchboard", provider="sandbox"}})', "outcome", calls))

    # Every target scraped after the last request (a scrape's timestamp is its start), then the counters read.
    last_request = time.time()
    wait_for("a scrape of every target after the last request",
             lambda: (lambda v: len(v) == len(targets) and min(v.values()) > last_request + 0.05)(
                 prom.vector('timestamp(up{job="switchboard"})', "instance")), 15)

    def nonzero(v):
        return {k: x for k, x in v.items() if x != 0}

    def counters_match():
        return all(nonzero(prom.vector(e, label)) == nonzero({k: float(v) for k, v in exp.items()}) for _, e, label, exp in checks)
    try:
        wait_for("the counters", counters_match, 20)
    except RuntimeError:
        pass
    for what, e, label, exp in checks:
        got = nonzero(prom.vector(e, label))
        check(got == nonzero({k: float(v) for k, v in exp.items()}), f"{what}: {nonzero(exp)}" + ("" if got == nonzero(exp) else f", Prometheus says {got}"))
    post = prom.query('sum by (method, status) (switchboard_http_requests_total{job="switchboard", route="/api/v1/communication"})')["data"]["result"]
    got = {(r["metric"].get("method"), r["metric"].get("status")): float(r["value"][1]) for r in post}
    check(got == {k: float(v) for k, v in expected_http.items()},
          f'HTTP requests, route="/api/v1/communication": {expected_http}' + ("" if got == expected_http else f", Prometheus says {got}"))
    routes = {r["metric"].get("route") for r in prom.query(f"switchboard_http_requests_total{j}")["data"]["result"]}
    template = [r for r in routes if r and r.startswith("/api/v1/communication/")]
    check(template == ["/api/v1/communication/{id}"], f"GETs of one message are counted under its route template: {sorted(routes)}")
    if template:
        got = prom.vector(f'sum by (status) (switchboard_http_requests_total{{job="switchboard", method="GET", route="{template[0]}"}})', "status")
        # all_ended polled the same route: at least `gets` 200s, and the unknown id exactly once.
        check(got.get("200", 0) >= gets and got.get("404") == 1, f"GET {template[0]}: >= {gets} answered 200, 1 answered 404 (got {got})")

    # The gauges sampled at each scrape: every failed message dead-lettered on its stream, the streams drained (an
    # acknowledged entry is deleted), nothing pending or due, every engine up in every process.
    dead = {f"{ch}_stream": float(n) for ch, n in failed.items()}
    wait_for("the backlog gauges settle", lambda: nonzero(prom.vector('max by (stream) (switchboard_queue_dead_letters{job="switchboard"})', "stream")) == dead
             and not nonzero(prom.vector('max by (stream) (switchboard_queue_length{job="switchboard"})', "stream")), 20)
    check(True, f"switchboard_queue_dead_letters by stream: {dead}; switchboard_queue_length 0 on every stream")
    for metric in ("switchboard_queue_pending", "switchboard_queue_oldest_pending_age_seconds", "switchboard_outbox_due_messages"):
        v = prom.query(f'{metric}{j}')["data"]["result"]
        check(v and all(float(r["value"][1]) == 0 for r in v), f"{metric}: 0 in every process that exports it ({len(v)} series)")
    streams = {r["metric"].get("stream") for r in prom.query(f"switchboard_queue_length{j}")["data"]["result"]}
    check(streams == {"email_stream", "sms_stream", "whatsapp_stream", "log_stream"}, f"the queue gauges cover the four streams: {sorted(streams)}")
    # Every engine answered every scrape of the run, in every process: a healthy engine never reads 0 (a check
    # that answers in time always wins over the collector's 2 s timer).
    lowest = {(r["metric"].get("service"), r["metric"].get("role"), r["metric"].get("engine"), r["metric"].get("instance")): float(r["value"][1])
              for r in prom.query(f"min_over_time(switchboard_engine_up{j}[10m])")["data"]["result"]}
    roles = {(role, engine) for _, role, engine, _ in lowest}
    check(lowest and all(v == 1 for v in lowest.values()) and {"router", "worker", "logger"} <= {sv for sv, _, _, _ in lowest}
          and ("queue", "redis") in roles and ("store", "sqlite") in roles,
          f"switchboard_engine_up was 1 at every scrape of the run, for every process and engine: {sorted(roles)}"
          + ("" if all(v == 1 for v in lowest.values()) else f"; 0 seen: {sorted(k for k, v in lowest.items() if v != 1)}"))

    # More than 5 % failed on every channel here: the failure-rate alert is pending (it fires after 5 minutes).
    wait_for("SwitchboardDeliveryFailureRate pending on every channel",
             lambda: prom.vector('ALERTS{alertname="SwitchboardDeliveryFailureRate", alertstate="pending"}', "channel") == {ch: 1.0 for ch in plan}, 15)
    rates = prom.vector(rule_expressions()[0][1].split(">")[0], "channel") if rule_expressions()[0][0] == "SwitchboardDeliveryFailureRate" else {}
    check(True, f"SwitchboardDeliveryFailureRate is pending on {sorted(plan)} (failed share {({k: round(v, 3) for k, v in rates.items()})})")

    # Meta's circuit: open after its retryable failures, calls refused since, the alert pending.
    meta_calls = prom.vector('sum by (outcome) (switchboard_provider_calls_total{job="switchboard", provider="meta"})', "outcome")
    rejected = prom.vector('sum(switchboard_provider_circuit_rejected_total{job="switchboard", provider="meta"})', "")
    wa_attempts = sum(n for _, n, _ in plan["whatsapp"])
    check(meta_calls.get("retryable", 0) >= 5 and not meta_calls.get("sent") and not meta_calls.get("permanent"),
          f"meta (nothing listening): only retryable calls, at least the breaker threshold: {meta_calls}")
    check(rejected.get("", 0) >= 2, f"meta's open circuit refused the last WhatsApp messages ({rejected})")
    check(meta_calls.get("retryable", 0) + rejected.get("", 0) == wa_attempts,
          f"meta calls made + refused by its open circuit = the {wa_attempts} WhatsApp attempts (made {meta_calls}, refused {rejected})")
    check(prom.vector('switchboard_provider_circuit_state{job="switchboard", provider="meta"}', "provider") == {"meta": 2.0},
          "meta's circuit state is 2 (open)")
    wait_for("SwitchboardCircuitOpen pending for meta",
             lambda: prom.vector('ALERTS{alertname="SwitchboardCircuitOpen", alertstate="pending"}', "provider") == {"meta": 1.0}, 15)
    check(True, "SwitchboardCircuitOpen is pending for meta")

    # --- every metric of MetricNames.swift is exported -----------------------------------------------------------------
    present = set(prom.api("label/__name__/values")[1]["data"])
    missing = []
    for n in names:
        series = n + "_bucket" if n in histograms else n
        if series not in present:
            missing.append(series)
    # Only the Elasticsearch indexer counts bulk failures; this run's search is SQLite's.
    allowed_missing = {"switchboard_search_bulk_failures_total"}
    check(not (set(missing) - allowed_missing), f"every metric of MetricNames.swift is exported (missing: {missing})")

    # --- every expression of the rules and the dashboard evaluates, on metrics that exist ---------------------------
    exprs = [("alerts.yml " + a, e) for a, e in rule_expressions()] + [("dashboard: " + t, substitute(e)) for t, e in dashboard_expressions()]
    for what, e in exprs:
        status, doc = prom.api("query", query=e)
        ok = status == 200 and doc.get("status") == "success" and not doc.get("warnings")
        absent = sorted(n for n in metric_names(e) if n not in present)
        check(ok and not (set(absent) - allowed_missing), f"{what}: evaluates" + ("" if ok else f": {doc.get('error')} {doc.get('warnings')}")
              + (f"; selects metrics not exported: {absent}" if absent else ""))
    check(len(exprs) == len(rule_expressions()) + len(dashboard_expressions()), f"{len(exprs)} expressions evaluated")

    # --- the rules are loaded and healthy ----------------------------------------------------------------------------
    def rules_evaluated():
        groups = prom.api("rules")[1]["data"]["groups"]
        return groups and all(r.get("lastEvaluation", "").startswith("20") and r["health"] != "unknown" for g in groups for r in g["rules"])
    wait_for("rules evaluated", rules_evaluated, 20)
    groups = prom.api("rules")[1]["data"]["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    want = [a for a, _ in rule_expressions()]
    check(sorted(loaded) == sorted(want), f"/api/v1/rules holds the {len(want)} rules of alerts.yml")
    bad = {n: r.get("lastError") for n, r in loaded.items() if r["health"] != "ok"}
    check(not bad, "every rule is healthy" + (f": {bad}" if bad else ""))
    firing = [r["name"] for r in loaded.values() if r.get("state") == "firing"]
    check(not firing, f"no alert fires on a healthy run (firing: {firing})")

    # --- a process stopped: up == 0 and the alert pending -------------------------------------------------------------
    system.stop("logger")
    wait_for("up == 0 for the logger", lambda: prom.vector('up{job="switchboard"} == 0', "service") == {"logger": 0.0}, 15)
    check(True, "the logger stopped: up{service=\"logger\"} == 0")
    wait_for("SwitchboardProcessDown pending",
             lambda: prom.vector('ALERTS{alertname="SwitchboardProcessDown", alertstate="pending"}', "service") == {"logger": 1.0}, 15)
    check(True, "SwitchboardProcessDown is pending for the logger")

    # --- Redis stopped: the processes still answer their scrapes, say the queue engine is down, the alert pending ---
    system.stop("redis")

    def queue_down():
        v = prom.query('switchboard_engine_up{job="switchboard", role="queue"}')["data"]["result"]
        return v and {r["metric"]["service"] for r in v} >= {"router", "worker"} and all(float(r["value"][1]) == 0 for r in v)
    wait_for("switchboard_engine_up{role=\"queue\"} == 0", queue_down, 20)
    check(True, "Redis stopped: switchboard_engine_up{role=\"queue\"} is 0 in the router and the workers")
    check(prom.vector('up{job="switchboard", service=~"router|worker"}', "instance")
          == {t: 1.0 for n, t in targets.items() if n != "logger"}, "their scrapes still succeed (within the scrape timeout)")
    wait_for("SwitchboardEngineDown pending",
             lambda: {(r["metric"]["service"], r["metric"]["engine"]) for r in prom.query(
                 'ALERTS{alertname="SwitchboardEngineDown", alertstate="pending"}')["data"]["result"]} >= {("router", "redis"), ("worker", "redis")}, 15)
    check(True, "SwitchboardEngineDown is pending for redis in the router and the workers")


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("static", "live"):
        print(__doc__)
        return 2
    names, histograms = static()
    if sys.argv[1] == "live":
        live(sys.argv[2], names, histograms)
    if failures:
        print(f"\n{len(failures)} check(s) failed:")
        for f in failures:
            print("  - " + f.splitlines()[0])
        return 1
    print("\nall Prometheus checks passed")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
