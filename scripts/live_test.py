#!/usr/bin/env python3
"""Live status with real clients (issue 18, points 1-3 and 6): Server-Sent Events read with `httpx-sse`, the
WebSocket with `websockets`, both from PyPI, against separate processes.

For each engine — the embedded SQLite file shared by separate processes, then a throwaway redis-server for the
streams — it starts, on 127.0.0.1, `switchboard router`, `switchboard worker --channel sms`, `… --channel email`
and `switchboard logger` as separate processes (a bootstrap admin key: keys are required), so every `processing`
and `sent` event a client receives was committed by another process than the router that streams it. Then:

  - `GET /api/v1/events?type=sms`: every change of every SMS sent, in order per message (pending, queued,
    processing, sent), ids strictly increasing, no email; a heartbeat comment on an idle stream;
  - resume: `Last-Event-ID` set to an event in the middle gives exactly the events after it, none missing, none
    twice; the same after the router is killed with SIGKILL and started again while the workers go on;
  - `GET /api/v1/communication/{id}/events`: the history so far, then live changes, ids 1, 2, …; the stream ends
    after `sent`; `Last-Event-ID: 2` resumes after the second;
  - WebSocket `/api/v1/ws`: the key in the first message or in the Authorization header; subscribe by filter and
    by id (answered with the history), events tagged with their subscription, unsubscribe, ping/pong; a bad key is
    closed with 1008; a key without the read scope is refused the upgrade (403); a client that stops reading is
    closed with 1013 once it falls SWITCHBOARD_EVENTS_BUFFER events behind;
  - bad input: an unknown type or a malformed Last-Event-ID is a 400 naming it.

    scripts/live_test.py [path/to/switchboard]     # default .build/debug/switchboard

Exits 1 on any failure.
"""
import asyncio
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

import httpx
import websockets
from httpx_sse import connect_sse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from script_support import check, failures, free_port  # noqa: E402  (scripts/, beside this file)
import script_support


def eventually(what, condition, timeout=30.0):
    # httpx and websockets raise their own errors while a server starts: any counts as not yet.
    return script_support.eventually(what, condition, timeout, poll=0.05, tolerate=Exception)




class System:
    def __init__(self, binary, name, redis):
        self.binary = binary
        self.work = tempfile.mkdtemp(prefix=f"switchboard-live-{name}-")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.procs = {}
        self.admin = subprocess.run([binary, "keys", "generate"], capture_output=True, text=True, check=True).stdout.strip()
        self.env = dict(os.environ)
        self.env.update({
            "SWITCHBOARD_DATABASE": os.path.join(self.work, "db.sqlite"), "SWITCHBOARD_HOST": "127.0.0.1", "PORT": str(self.port),
            "SWITCHBOARD_ADMIN_KEY": self.admin, "SWITCHBOARD_LOG_LEVEL": "warning", "SWITCHBOARD_POLL_MS": "20",
            "SWITCHBOARD_EVENTS_HEARTBEAT_MS": "2000", "SWITCHBOARD_EVENTS_BUFFER": "256", "SWITCHBOARD_KEY_RATE": "10000", "SWITCHBOARD_KEY_BURST": "10000",
        })
        if redis:
            rport = free_port()
            self.spawn("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(rport), "--save", "", "--appendonly", "no", "--dir", self.work])
            eventually("redis-server answers", lambda: subprocess.run(["redis-cli", "-p", str(rport), "ping"], capture_output=True, text=True).stdout.strip() == "PONG", 20)
            self.env["REDIS_URL"] = f"redis://127.0.0.1:{rport}"
        self.start_router()
        for channel in ("sms", "email"):
            self.spawn(f"worker-{channel}", [binary, "worker", "--channel", channel])
        self.spawn("logger", [binary, "logger"])

    def spawn(self, name, args):
        log = open(os.path.join(self.work, f"{name}.log"), "ab")
        self.procs[name] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)

    def start_router(self):
        self.spawn("router", [self.binary, "router"])
        eventually("the router answers", lambda: urllib.request.urlopen(self.base + "/health/live", timeout=1).status == 200, 30)

    def kill_router(self):
        p = self.procs.pop("router")
        p.send_signal(signal.SIGKILL)
        p.wait()

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.work, ignore_errors=True)

    def headers(self, key=None):
        return {"Authorization": f"Bearer {key or self.admin}"}

    def request(self, method, path, body=None, key=None, headers=None):
        data = json.dumps(body).encode() if body is not None else None
        h = {"Content-Type": "application/json", **self.headers(key), **(headers or {})}
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def send(self, channel="sms", i=0):
        to = {"sms": f"+1555000{i % 10000:04d}", "email": f"user{i}@example.com"}[channel]
        frm = {"sms": "+15550009999", "email": "noreply@example.com"}[channel]
        status, body = self.request("POST", "/api/v1/communication", {"type": channel, "data": {"from": frm, "to": to, "msg": f"live test {i}"}})
        check(status == 202 or status == 200 or status == 201, f"POST answered {status}: {body}")
        return body["id"]


class Collector:
    """Reads an SSE stream in a thread with httpx-sse, keeping every event."""

    def __init__(self, system, path, last_event_id=None):
        self.events = []
        self.lock = threading.Lock()
        self.error = None
        self.closed = False
        self.stop = False
        headers = system.headers()
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.thread = threading.Thread(target=self.run, args=(system.base + path, headers), daemon=True)
        self.thread.start()

    def run(self, url, headers):
        try:
            with httpx.Client(timeout=httpx.Timeout(10.0, read=None)) as client:
                with connect_sse(client, "GET", url, headers=headers) as source:
                    for sse in source.iter_sse():
                        # httpx-sse yields the blank line after a comment (the heartbeat) as an empty event once an
                        # id was seen (the spec dispatches nothing then): not an event.
                        if not sse.data:
                            continue
                        with self.lock:
                            self.events.append((sse.id, sse.event, json.loads(sse.data)))
                        if self.stop:
                            return
            self.closed = True
        except Exception as e:  # noqa: BLE001
            self.error = e

    def snapshot(self):
        with self.lock:
            return list(self.events)


def statuses_by_message(events):
    seen = {}
    for _, status, data in events:
        seen.setdefault(data["id"], []).append(status)
    return seen


def sse_checks(s, name):
    # The filtered stream, opened before the messages are sent (from now).
    stream = Collector(s, "/api/v1/events?type=sms")
    time.sleep(0.5)
    sms = [s.send("sms", i) for i in range(30)]
    emails = [s.send("email", i) for i in range(5)]
    eventually(f"{name}: every SMS's sent event on /api/v1/events", lambda: all("sent" in statuses_by_message(stream.snapshot()).get(i, []) for i in sms), 60)
    events = stream.snapshot()
    by = statuses_by_message(events)
    for i in sms:
        check(by.get(i) == ["pending", "queued", "processing", "sent"], f"{name}: {i} changes in order, once each: {by.get(i)}")
    check(not any(d["id"] in emails for _, _, d in events), f"{name}: type=sms lets no email through")
    check(all(d["type"] == "sms" for _, _, d in events), f"{name}: every event is an SMS")
    positions = [tuple(int(x) for x in eid.split("-")) for eid, _, _ in events]
    check(positions == sorted(set(positions)), f"{name}: event ids strictly increasing")
    check(all(d["eventId"] == eid for eid, _, d in events), f"{name}: data.eventId is the SSE id")
    stream.stop = True

    # Resume from the middle: exactly the rest.
    k = len(events) // 2
    resumed = Collector(s, "/api/v1/events?type=sms", last_event_id=events[k][0])
    eventually(f"{name}: resumed stream catches up", lambda: len(resumed.snapshot()) >= len(events) - k - 1, 30)
    time.sleep(0.3)
    check([e[0] for e in resumed.snapshot()] == [e[0] for e in events[k + 1:]], f"{name}: Last-Event-ID resumes without a gap or a duplicate")
    resumed.stop = True

    # A heartbeat comment on an idle stream (raw lines: clients hide comments).
    with httpx.Client(timeout=httpx.Timeout(10.0, read=10.0)) as client:
        with client.stream("GET", s.base + "/api/v1/events?type=whatsapp", headers=s.headers()) as r:
            check(r.headers.get("content-type", "").startswith("text/event-stream"), f"{name}: text/event-stream")
            got = False
            deadline = time.time() + 8
            for line in r.iter_lines():
                if line.startswith(":"):
                    got = True
                    break
                if time.time() > deadline:
                    break
            check(got, f"{name}: a heartbeat comment within the heartbeat interval")

    # One message: history so far, then live, then the stream ends after sent.
    one = s.send("sms", 99)
    single = Collector(s, f"/api/v1/communication/{one}/events")
    eventually(f"{name}: the message stream ends after sent", lambda: single.closed, 30)
    got = single.snapshot()
    check([e[1] for e in got] == ["pending", "queued", "processing", "sent"], f"{name}: per-message events {[e[1] for e in got]}")
    check([e[0] for e in got] == ["1", "2", "3", "4"], f"{name}: per-message ids 1..4: {[e[0] for e in got]}")
    again = Collector(s, f"/api/v1/communication/{one}/events", last_event_id="2")
    eventually(f"{name}: resumed message stream ends", lambda: again.closed, 30)
    check([e[1] for e in again.snapshot()] == ["processing", "sent"], f"{name}: Last-Event-ID 2 resumes after queued: {[e[1] for e in again.snapshot()]}")

    # Bad input.
    status, body = s.request("GET", "/api/v1/events?type=fax")
    check(status == 400 and body["error"]["field"] == "type", f"{name}: type=fax is a 400 naming type: {status} {body}")
    status, body = s.request("GET", "/api/v1/events", headers={"Last-Event-ID": "yesterday"})
    check(status == 400 and body["error"]["code"] == "invalid_last_event_id", f"{name}: a malformed Last-Event-ID is a 400: {status} {body}")
    status, body = s.request("GET", "/api/v1/communication/nope/events")
    check(status == 404, f"{name}: events of an unknown message: 404 ({status})")

    # Resume across a router killed with SIGKILL: the workers' changes committed meanwhile are in the feed.
    tail = Collector(s, "/api/v1/events?type=sms")
    time.sleep(0.3)
    more = [s.send("sms", 200 + i) for i in range(20)]
    eventually(f"{name}: first events of the batch", lambda: len(tail.snapshot()) >= 5, 30)
    before = tail.snapshot()
    last_seen = before[-1][0]
    s.kill_router()
    tail.stop = True
    time.sleep(1.0)  # the workers go on while no router runs
    s.start_router()
    after = Collector(s, "/api/v1/events?type=sms", last_event_id=last_seen)
    eventually(f"{name}: after the restart, every message of the batch reaches sent", lambda: all("sent" in statuses_by_message(before + after.snapshot()).get(i, []) for i in more), 60)
    whole = before + after.snapshot()
    by = statuses_by_message(whole)
    check(all(by.get(i) == ["pending", "queued", "processing", "sent"] for i in more), f"{name}: across the restart every change once, in order")
    ids = [e[0] for e in whole]
    check(len(ids) == len(set(ids)), f"{name}: no event twice across the restart")
    after.stop = True


async def ws_checks(s, name):
    url = f"ws://127.0.0.1:{s.port}/api/v1/ws"
    # Key in the first message; a filter subscription and one by id.
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "auth", "key": s.admin}))
        check(json.loads(await ws.recv())["type"] == "authenticated", f"{name}: ws auth by message")
        await ws.send(json.dumps({"type": "ping"}))
        check(json.loads(await ws.recv()) == {"type": "pong"}, f"{name}: ws ping/pong")
        await ws.send(json.dumps({"type": "subscribe", "filter": {"type": "email"}}))
        sub_email = json.loads(await ws.recv())
        check(sub_email["type"] == "subscribed", f"{name}: ws subscribed by filter: {sub_email}")
        email = await asyncio.to_thread(s.send, "email", 500)
        got = []
        while not any(m["event"]["status"] == "sent" for m in got):
            m = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if m["type"] == "event":
                got.append(m)
        check([m["event"]["status"] for m in got] == ["pending", "queued", "processing", "sent"], f"{name}: ws filter events {[m['event']['status'] for m in got]}")
        check(all(m["subscription"] == sub_email["subscription"] and m["event"]["id"] == email for m in got), f"{name}: ws events tagged with their subscription")
        await ws.send(json.dumps({"type": "unsubscribe", "subscription": sub_email["subscription"]}))
        check(json.loads(await ws.recv())["type"] == "unsubscribed", f"{name}: ws unsubscribed")
        # By id: the reply holds the history so far.
        sms = await asyncio.to_thread(s.send, "sms", 501)
        await ws.send(json.dumps({"type": "subscribe", "id": sms}))
        sub = json.loads(await ws.recv())
        check(sub["type"] == "subscribed" and sub["history"][0]["status"] == "pending", f"{name}: ws subscribe by id answers the history: {sub}")
        statuses = [h["status"] for h in sub["history"]]
        while "sent" not in statuses:
            m = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if m["type"] == "event":
                check(m["event"]["id"] == sms, f"{name}: ws id subscription gets only its message")
                statuses.append(m["event"]["status"])
        check(statuses[:2] == ["pending", "queued"] and statuses[-1] == "sent", f"{name}: ws by id reaches sent: {statuses}")
        # No events after the email subscription ended.
        await asyncio.to_thread(s.send, "email", 502)
        await ws.send("not json")
        # Until the answer to the bad message: whatever else comes meanwhile must not be an email's event.
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if m["type"] == "error":
                check(m["code"] == "invalid_message", f"{name}: ws invalid message answered: {m}")
                break
            check(m["type"] != "event" or m["event"]["type"] != "email", f"{name}: no email after unsubscribe: {m}")
        try:
            while True:
                m = json.loads(await asyncio.wait_for(ws.recv(), 1.5))
                check(m["type"] != "event" or m["event"]["type"] != "email", f"{name}: no email after unsubscribe: {m}")
        except asyncio.TimeoutError:
            pass

    # Key in the header.
    async with websockets.connect(url, additional_headers=s.headers()) as ws:
        await ws.send(json.dumps({"type": "subscribe", "filter": {"status": ["sent"], "type": "sms"}}))
        check(json.loads(await ws.recv())["type"] == "subscribed", f"{name}: ws header auth")

    # A bad key in the first message: closed with 1008.
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "auth", "key": "sb_live_" + "A" * 43}))
        try:
            await asyncio.wait_for(ws.recv(), 10)
            check(False, f"{name}: ws with a bad key should close")
        except websockets.ConnectionClosed as e:
            check(e.rcvd is not None and e.rcvd.code == 1008, f"{name}: bad key closed with 1008 ({e.rcvd})")

    # A key without the read scope, in the header: closed with 1008 naming the scope.
    status, created = s.request("POST", "/api/v1/keys", {"name": "send only", "scopes": ["send"]})
    check(status == 201, f"{name}: key created ({status} {created})")
    async with websockets.connect(url, additional_headers=s.headers(created["key"])) as ws:
        try:
            await asyncio.wait_for(ws.recv(), 10)
            check(False, f"{name}: ws with a send-only key should close")
        except websockets.ConnectionClosed as e:
            check(e.rcvd is not None and e.rcvd.code == 1008 and "read" in e.rcvd.reason, f"{name}: send-only key closed with 1008 naming the scope ({e.rcvd})")

    # A client that falls behind: dropped with 1013 once SWITCHBOARD_EVENTS_BUFFER deliveries wait for it. A hundred
    # subscriptions to every change on one connection get each event a hundred times: its buffer fills at once.
    # Its receive buffer is small and it stops reading, so the server's socket fills and the deliveries pile up.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", s.port))
    async with websockets.connect(url, sock=sock, additional_headers=s.headers(), max_queue=1) as ws:
        for _ in range(100):
            await ws.send(json.dumps({"type": "subscribe"}))
        await asyncio.to_thread(lambda: [s.send("sms", 600 + i) for i in range(60)])
        await asyncio.sleep(2)
        code = None
        try:
            for _ in range(100000):
                await asyncio.wait_for(ws.recv(), 20)
        except websockets.ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd else None
        except asyncio.TimeoutError:
            pass
        check(code == 1013, f"{name}: a client that fell behind is closed with 1013 (got {code})")


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".build/debug/switchboard")
    for name, redis in (("sqlite processes", False), ("redis", True)):
        print(f"== live status: {name}", flush=True)
        s = System(binary, name.replace(" ", "-"), redis)
        try:
            sse_checks(s, name)
            asyncio.run(ws_checks(s, name))
        finally:
            s.stop()
    if failures:
        print(f"live_test: {len(failures)} failure(s)")
        sys.exit(1)
    print("live_test: SSE (httpx-sse) and WebSocket (websockets) checks passed on SQLite processes and on Redis")


if __name__ == "__main__":
    main()
