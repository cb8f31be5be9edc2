#!/usr/bin/env python3
"""Sends COUNT SMS through POST /api/v1/communications/batch (batches of 1,000, WORKERS connections).

    batch_load.py PORT COUNT SEND_AT [WORKERS]

SEND_AT is an RFC 3339 time (each message scheduled then), or `-` for none (sent at once). The bodies are built
before the clock starts. Prints the seconds it took and the messages per second. Exits 1 when an item was not
accepted (as `scheduled` with a SEND_AT). Standard library only: scripts/bench-scheduled.sh and
scripts/bench-batch.sh run it on loopback."""
import http.client
import json
import sys
import threading
import time


def main() -> int:
    port, count, send_at = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    workers = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    batches = (count + 999) // 1000
    lock = threading.Lock()
    state = {"next": 0, "failed": 0}

    def body(b: int) -> bytes:
        n = min(1000, count - b * 1000)
        items = [{"type": "sms", "data": {"from": "+1234567890", "to": "+1555%07d" % ((b * 1000 + i) % 10_000_000), "msg": "Message %d" % (b * 1000 + i)}} for i in range(n)]
        if send_at != "-":
            for item in items:
                item["data"]["sendAt"] = send_at
        return json.dumps({"items": items}).encode()

    def work() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                b = state["next"]
                state["next"] += 1
            if b >= batches:
                return
            conn.request("POST", "/api/v1/communications/batch", bodies[b], {"Content-Type": "application/json"})
            answer = conn.getresponse()
            data = json.loads(answer.read())
            wanted = min(1000, count - b * 1000)
            status = "queued" if send_at == "-" else "scheduled"
            if answer.status != 200 or data.get("accepted") != wanted or any(i.get("status") != status for i in data["items"]):
                with lock:
                    state["failed"] += 1
                print("batch %d: %d %s" % (b, answer.status, json.dumps(data)[:300]), file=sys.stderr)

    # Built up front (a million messages' bodies take a few hundred MiB): the clock times the server, not Python.
    bodies = [body(b) for b in range(batches)]
    t0 = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    print("%d accepted in %.1f s: %.0f messages/s" % (count, elapsed, count / elapsed))
    return 1 if state["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
