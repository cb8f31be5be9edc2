#!/usr/bin/env python3
"""Live-status figures (issue 18, point 3), printed; asserts nothing. Called by scripts/bench-events.sh, which
builds the release binary and passes its path. Everything runs on 127.0.0.1 and is stopped at the end.

  latency   router, sms worker and logger as separate processes (SQLite file; then Redis): SMS sent at a steady
            rate while one SSE client follows /api/v1/events; for each event, the time from its change (`at`, set
            just before its commit) to its arrival at the client: p50, p99, max, per engine.
  rss       `serve` with 10,000 SSE subscribers (filtered to WhatsApp: idle) plus 20 following every SMS, while
            SMS flow: the router's RSS before and with them, and whether the 20 got every event.
  accepts   `serve` under wrk POST load with 0 and with 1,000 subscribers (each following SMS of another API key:
            filtered out by the hub's index, as most subscribers of a busy router are), alternating, 3 runs each:
            accepts per second, medians, and the ratio.
"""
import asyncio
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = sys.argv[1]
WHAT = sys.argv[2:] or ["latency", "rss", "accepts"]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def now_ms():
    return time.time() * 1000


def parse_at(text):
    # 2026-12-07T16:58:34.224Z
    import datetime
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp() * 1000


class Procs:
    def __init__(self, env):
        self.env = env
        self.procs = []
        self.work = env["WORK"]

    def spawn(self, name, args):
        log = open(os.path.join(self.work, f"{name}.log"), "ab")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        self.procs.append(p)
        return p

    def wait_http(self, port):
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=1)
                return
            except Exception:
                time.sleep(0.1)
        raise SystemExit("server did not start")

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def base_env(work, port):
    env = dict(os.environ)
    env.update({"WORK": work, "SWITCHBOARD_DATABASE": os.path.join(work, "db.sqlite"), "PORT": str(port), "SWITCHBOARD_LOG_LEVEL": "warning",
                "SWITCHBOARD_KEY_RATE": "1000000", "SWITCHBOARD_KEY_BURST": "1000000", "SWITCHBOARD_MAX_CONNECTIONS": "12000"})
    return env


async def post(port, body, n, rate):
    """Sends `n` requests at `rate` per second over a few keep-alive connections."""
    payload = json.dumps(body).encode()
    req = (f"POST /api/v1/communication HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n").encode() + payload
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
    start = time.monotonic()

    async def one(i):
        r, w = conns[i % len(conns)]
        w.write(req)
        await w.drain()
        head = await r.readuntil(b"\r\n\r\n")
        length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
        await r.readexactly(length)

    locks = [asyncio.Lock() for _ in conns]

    async def paced(i):
        await asyncio.sleep(max(0, start + i / rate - time.monotonic()))
        async with locks[i % len(conns)]:
            await one(i)

    await asyncio.gather(*(paced(i) for i in range(n)))
    for _, w in conns:
        w.close()


async def sse(port, path, on_event, ready=None):
    """A raw SSE client: calls on_event(id, event, data, arrival_ms) for each event."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
    await w.drain()
    await r.readuntil(b"\r\n\r\n")
    if ready:
        ready.set()
    buf = b""
    try:
        while True:
            chunk = await r.read(65536)
            if not chunk:
                return
            arrival = now_ms()
            buf += chunk
            # Chunked transfer encoding: the chunk-size lines sit between frames; frames are found by their fields.
            while b"\n\n" in buf:
                frame, buf = buf.split(b"\n\n", 1)
                fields = {}
                for line in frame.split(b"\n"):
                    if b": " in line and not line.startswith(b":"):
                        k, v = line.split(b": ", 1)
                        fields[k.decode().split("\r\n")[-1].strip()] = v.decode()
                if "data" in fields:
                    on_event(fields.get("id"), fields.get("event"), fields["data"], arrival)
    finally:
        w.close()


def latency(name, redis):
    work = tempfile.mkdtemp(prefix="switchboard-events-bench-")
    port = free_port()
    env = base_env(work, port)
    procs = Procs(env)
    try:
        if redis:
            rport = free_port()
            procs.spawn("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(rport), "--save", "", "--appendonly", "no", "--dir", work])
            time.sleep(0.5)
            env["REDIS_URL"] = f"redis://127.0.0.1:{rport}"
        procs.spawn("router", [BIN, "router"])
        procs.wait_http(port)
        procs.spawn("worker", [BIN, "worker", "--channel", "sms"])
        procs.spawn("logger", [BIN, "logger"])
        time.sleep(1)
        samples = {}

        def on_event(_id, event, data, arrival):
            d = json.loads(data)
            samples.setdefault(event, []).append(arrival - parse_at(d["at"]))

        async def run():
            ready = asyncio.Event()
            follower = asyncio.create_task(sse(port, "/api/v1/events?type=sms", on_event, ready))
            await ready.wait()
            await post(port, {"type": "sms", "data": {"from": "+15550000000", "to": "+15551112222", "msg": "latency"}}, 3000, 300)
            await asyncio.sleep(2)
            follower.cancel()

        asyncio.run(run())
        every = sorted(x for v in samples.values() for x in v)
        q = statistics.quantiles(every, n=100)
        print(f"latency {name}: {len(every)} events of 3000 SMS at 300/s, change→client p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms, max {every[-1]:.1f} ms")
        for status in ("pending", "processing", "sent"):
            v = sorted(samples.get(status, []))
            if v:
                print(f"    {status:10s} p50 {statistics.median(v):.1f} ms, p99 {statistics.quantiles(v, n=100)[98]:.1f} ms ({len(v)} events, {'router' if status == 'pending' else 'worker process'})")
    finally:
        procs.stop()
        shutil.rmtree(work, ignore_errors=True)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


def rss():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = tempfile.mkdtemp(prefix="switchboard-events-bench-")
    port = free_port()
    env = base_env(work, port)
    procs = Procs(env)
    try:
        server = procs.spawn("serve", [BIN, "serve"])
        procs.wait_http(port)
        time.sleep(1)
        before = rss_kb(server.pid)
        got = {}

        async def run():
            idle = []
            opened = 0
            for batch in range(100):
                readies = [asyncio.Event() for _ in range(100)]
                idle += [asyncio.create_task(sse(port, "/api/v1/events?type=whatsapp", lambda *a: None, ready)) for ready in readies]
                await asyncio.gather(*(r.wait() for r in readies))
                opened += 100
            with_idle = rss_kb(server.pid)
            readies = [asyncio.Event() for _ in range(20)]

            def counter(i):
                def on(_id, event, data, arrival):
                    got[i] = got.get(i, 0) + 1
                return on
            active = [asyncio.create_task(sse(port, "/api/v1/events?type=sms", counter(i), readies[i])) for i in range(20)]
            await asyncio.gather(*(r.wait() for r in readies))
            await post(port, {"type": "sms", "data": {"from": "+15550000000", "to": "+15551112222", "msg": "rss"}}, 2000, 400)
            await asyncio.sleep(3)
            during = rss_kb(server.pid)
            print(f"rss: serve {before / 1024:.0f} MiB before; {with_idle / 1024:.0f} MiB with {opened} idle subscribers "
                  f"({(with_idle - before) / opened:.1f} KiB each); {during / 1024:.0f} MiB with 10,020 while 2,000 SMS went through "
                  f"(20 followers: {min(got.values(), default=0)}–{max(got.values(), default=0)} events each of {2000 * 4} expected)")
            for t in idle + active:
                t.cancel()

        asyncio.run(run())
    finally:
        procs.stop()
        shutil.rmtree(work, ignore_errors=True)


def wrk_post(port, duration="10s"):
    out = subprocess.run(["wrk", "-t2", "-c64", f"-d{duration}", "-s", os.path.join(ROOT, "scripts/bench/post.lua"), f"http://127.0.0.1:{port}/api/v1/communication"],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("Requests/sec"):
            return float(line.split()[1])
    return 0.0


def accepts():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results = {0: [], 1000: []}
    for run in range(int(os.environ.get("RUNS", "5"))):
        for subscribers in (0, 1000):
            work = tempfile.mkdtemp(prefix="switchboard-events-bench-")
            port = free_port()
            procs = Procs(base_env(work, port))
            try:
                procs.spawn("serve", [BIN, "serve"])
                procs.wait_http(port)

                async def run_load():
                    readies = [asyncio.Event() for _ in range(subscribers)]
                    tasks = [asyncio.create_task(sse(port, "/api/v1/events?key=key_someoneelse", lambda *a: None, r)) for r in readies]
                    await asyncio.gather(*(r.wait() for r in readies))
                    rps = await asyncio.to_thread(wrk_post, port)
                    for t in tasks:
                        t.cancel()
                    return rps

                rps = asyncio.run(run_load())
                results[subscribers].append(rps)
                print(f"accepts: run {run + 1}, {subscribers:4d} subscribers: {rps:.0f}/s", flush=True)
            finally:
                procs.stop()
                shutil.rmtree(work, ignore_errors=True)
    m0, m1 = statistics.median(results[0]), statistics.median(results[1000])
    print(f"accepts: median {m0:.0f}/s with none, {m1:.0f}/s with 1,000 subscribers: {m1 / m0:.3f} ({(1 - m1 / m0) * 100:+.1f} % cost)")


if "latency" in WHAT:
    latency("SQLite (router, worker, logger as processes)", False)
    latency("Redis (router, worker, logger as processes)", True)
if "rss" in WHAT:
    rss()
if "accepts" in WHAT:
    accepts()
