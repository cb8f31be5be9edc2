#!/usr/bin/env python3
"""Status callbacks verified by the Standard Webhooks reference library, across a router killed with SIGKILL.

Starts, all on 127.0.0.1: a callback receiver (Python's HTTP server) that verifies every request with
`standardwebhooks.Webhook(secret).verify(body, headers)` (PyPI `standardwebhooks`, the specification's own
library, not our code), then `switchboard serve` on a fresh SQLite file with a bootstrap admin key and
SWITCHBOARD_CALLBACK_ALLOW_PRIVATE=true (the receiver is on loopback).

Through the API: creates a send key, registers an endpoint for every message and a default endpoint for that key
(whose secret signs the per-message `data.callbackUrl`), and sends messages, half of them with a callbackUrl. The
receiver answers its first requests 500 and 503, then 429 with `Retry-After: 1`, then 200. Once some callbacks
have arrived, the server is killed with SIGKILL, restarted on the same file, and more messages are sent.

Then every status change of every message (its history, read back from the API) must have reached the endpoint
for all messages, the key's default endpoint, and the message's own callbackUrl when it had one, each verified by
the library with the right secret; no request fails verification; every attempt of one delivery has the same
`webhook-id`, and the library refuses a tampered body (the check can fail).

    scripts/callback_test.py [path/to/switchboard]     # default .build/debug/switchboard

Exits 1 on any failure.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from script_support import check, eventually, failures, free_port  # noqa: E402  (scripts/, beside this file)


# --- the receiver ------------------------------------------------------------------------------------------------

lock = threading.Lock()
secrets_by_path = {}        # path -> whsec_ secret that must verify requests to it
received = {}               # path -> {(communication id, type)}
attempts_by_id = {}         # webhook-id -> number of requests
bad = []                    # requests that did not verify
script = ["500", "503", "500", "429", "500"]   # the first answers, then 200
served = []


class Receiver(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        with lock:
            secret = secrets_by_path.get(self.path)
            answer = script.pop(0) if script else "200"
            served.append(answer)
        event = None
        if secret is None:
            bad.append(f"callback to an unregistered path {self.path}")
        else:
            try:
                payload = Webhook(secret).verify(body, headers)
                event = (payload["data"]["id"], payload["type"])
                if payload["type"] != "communication." + payload["data"]["status"]:
                    bad.append(f"type {payload['type']} for status {payload['data']['status']}")
                if headers.get("content-type") != "application/json" or "switchboard" not in headers.get("user-agent", ""):
                    bad.append(f"headers {headers}")
            except (WebhookVerificationError, KeyError, ValueError) as e:
                bad.append(f"{self.path}: {e!r} {headers}")
        with lock:
            wid = headers.get("webhook-id", "")
            attempts_by_id[wid] = attempts_by_id.get(wid, 0) + 1
            if event and answer == "200":
                received.setdefault(self.path, set()).add(event)
        code = int(answer)
        time.sleep(0.05)  # a receiver that takes a moment: deliveries are in flight when the server is killed
        self.send_response(code)
        if code == 429:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Length", "0")
        self.end_headers()


# --- the server --------------------------------------------------------------------------------------------------

def http(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    h = dict(headers or {})
    if data is not None:
        h["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            text = r.read()
            return r.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, text




def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".build", "debug", "switchboard")
    work = tempfile.mkdtemp(prefix="switchboard-callbacks-")
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    receiver.daemon_threads = True
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{receiver.server_address[1]}"

    admin = subprocess.run([binary, "keys", "generate"], capture_output=True, text=True, check=True).stdout.strip()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SWITCHBOARD_", "REDIS_", "MONGODB_", "ELASTICSEARCH_"))}
    env.update({
        "PORT": str(port), "SWITCHBOARD_HOST": "127.0.0.1", "SWITCHBOARD_DATABASE": os.path.join(work, "switchboard.sqlite"),
        "SWITCHBOARD_ADMIN_KEY": admin, "SWITCHBOARD_CALLBACK_ALLOW_PRIVATE": "true",
        "SWITCHBOARD_CALLBACK_RETRY_BASE_MS": "200", "SWITCHBOARD_CALLBACK_RETRY_MAX_MS": "1500", "SWITCHBOARD_CALLBACK_TIMEOUT_MS": "2000",
        "SWITCHBOARD_LOG_LEVEL": "info",
    })
    processes = []

    def start(n):
        p = subprocess.Popen([binary, "serve"], stdout=open(os.path.join(work, f"serve-{n}.log"), "wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
        processes.append(p)
        eventually(f"serve #{n} answers", lambda: http("GET", base + "/health/ready")[0] == 200, 60)
        return p

    admin_headers = {"Authorization": f"Bearer {admin}"}
    try:
        server = start(1)
        status, key = http("POST", base + "/api/v1/keys", {"name": "callbacks", "scopes": ["send", "read"]}, admin_headers)
        if not check(status == 201, f"key created: {status} {key}"):
            return
        sender = {"Authorization": f"Bearer {key['key']}"}
        status, everything = http("POST", base + "/api/v1/webhooks", {"url": hook + "/all", "description": "every message"}, admin_headers)
        check(status == 201 and everything["secret"].startswith("whsec_"), f"endpoint registered: {status} {everything}")
        status, default = http("POST", base + "/api/v1/webhooks", {"url": hook + "/default", "keyId": key["id"], "default": True}, admin_headers)
        check(status == 201, f"default endpoint registered: {status} {default}")
        with lock:
            secrets_by_path["/all"] = everything["secret"]
            secrets_by_path["/default"] = default["secret"]
            secrets_by_path["/mine"] = default["secret"]
        status, shown = http("GET", base + f"/api/v1/webhooks/{everything['id']}", None, admin_headers)
        check(status == 200 and "secret" not in shown, f"the secret is shown once only: {shown}")

        sent = {}  # id -> whether it had a callbackUrl

        def send(i):
            data = {"from": "+15550000000", "to": f"+1555{i:07d}", "msg": f"callback {i}"}
            if i % 2 == 0:
                data["callbackUrl"] = hook + "/mine"
            status, answer = http("POST", base + "/api/v1/communication", {"type": "sms", "data": data}, sender)
            if check(status == 200, f"message {i} accepted: {status} {answer}"):
                sent[answer["id"]] = i % 2 == 0

        for i in range(10):
            send(i)
        # Mid-way: some callbacks have arrived, others are pending or being retried.
        deadline = time.time() + 60
        while len(received.get("/all", ())) < 3 and time.time() < deadline:
            time.sleep(0.01)
        check(len(received.get("/all", ())) >= 3, "the first callbacks arrived")
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        before = sum(len(v) for v in received.values())
        print(f"killed serve with SIGKILL after {before} verified callbacks", flush=True)
        server = start(2)
        for i in range(10, 20):
            send(i)

        def histories():
            out = {}
            for cid in sent:
                status, c = http("GET", base + f"/api/v1/communication/{cid}", None, sender)
                if status != 200 or c["status"] != "sent":
                    return None
                out[cid] = {(cid, "communication." + h["status"]) for h in c["history"]}
            return out

        eventually("every message sent", lambda: histories() is not None, 90)
        want = histories() or {}
        all_changes = set().union(*want.values()) if want else set()
        mine = set().union(*(v for cid, v in want.items() if sent[cid])) if want else set()

        def complete():
            with lock:
                return (received.get("/all", set()) >= all_changes and received.get("/default", set()) >= all_changes
                        and received.get("/mine", set()) >= mine)

        eventually("every status change called back, verified, to every endpoint", complete, 120)
        with lock:
            for path, expected in [("/all", all_changes), ("/default", all_changes), ("/mine", mine)]:
                missing = expected - received.get(path, set())
                check(not missing, f"{path}: {len(missing)} changes never arrived verified: {sorted(missing)[:5]}")
                extra = {e for e in received.get(path, set()) if e[0] not in sent or (path == "/mine" and not sent[e[0]])}
                check(not extra, f"{path}: callbacks for messages it should not get: {sorted(extra)[:5]}")
            check(not bad, f"{len(bad)} callbacks failed verification: {bad[:3]}")
            check(served[:5] == ["500", "503", "500", "429", "500"], f"the receiver failed first: {served[:6]}")
            check(any(n > 1 for n in attempts_by_id.values()), "some delivery was retried under the same webhook-id")
        check(len(all_changes) == 20 * 4, f"4 changes per message: {len(all_changes)}")
        check(before < 40 + 40 + 20, f"the kill came mid-way (before every callback of the first ten messages): {before}")
        # The deliveries are listed with their attempts; all end delivered (one the killed server had sent but not
        # recorded is sent again once its lease runs out: at least once, same webhook-id).
        def all_delivered():
            status, page = http("GET", base + f"/api/v1/webhooks/{everything['id']}/deliveries?limit=1000", None, admin_headers)
            return status == 200 and page["count"] >= len(all_changes) and all(d["status"] == "delivered" and d["lastStatusCode"] == 200 for d in page["items"])
        eventually("every delivery listed as delivered", all_delivered, 60)
        # The library is not a rubber stamp: a tampered body fails.
        try:
            Webhook(everything["secret"]).verify(b'{"type":"communication.sent"}', {"webhook-id": "x", "webhook-timestamp": str(int(time.time())), "webhook-signature": "v1,AAAA"})
            check(False, "the library accepted a forged signature")
        except WebhookVerificationError:
            pass
    finally:
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
        receiver.shutdown()
        if failures:
            print(f"logs kept in {work}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
    if failures:
        print(f"callback test: {len(failures)} failure(s)", flush=True)
        sys.exit(1)
    print("callback test: every status change arrived, verified by standardwebhooks, across a SIGKILL", flush=True)
