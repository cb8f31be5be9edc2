"""What the test scripts (trace_test.py, live_test.py, callback_test.py) share: failures noted as they come, and a
free loopback port."""
import socket

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
