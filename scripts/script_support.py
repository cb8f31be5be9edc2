"""What the test scripts (trace_test.py, live_test.py, callback_test.py) share: failures noted as they come, a free
loopback port, and waiting for a condition."""
import socket
import time

failures = []


def check(ok, what):
    """Notes a failure (printed at once) unless `ok`; returns `ok`."""
    if not ok:
        failures.append(what)
        print(f"FAIL {what}", flush=True)
    return ok


def free_port():
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eventually(what, condition, timeout=60, poll=0.2, tolerate=(OSError, ValueError)):
    """Calls `condition` every `poll` seconds until it is true (an exception in `tolerate` counts as not yet); after
    `timeout` seconds notes a failure. Returns whether it came true."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if condition():
                return True
        except tolerate:
            pass
        time.sleep(poll)
    return check(False, f"timed out waiting for {what}")
