#!/usr/bin/env python3
"""An OTLP/HTTP receiver that accepts every export and keeps nothing but counts: what a benchmark with tracing
on exports to (scripts/bench.sh with OTLP_SINK=1). Loopback only. Usage: otlp_sink.py PORT"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Sink(BaseHTTPRequestHandler):
    exports = 0
    bytes = 0

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        Sink.exports += 1
        Sink.bytes += length
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink)
    try:
        server.serve_forever()
    finally:
        print(f"otlp sink: {Sink.exports} exports, {Sink.bytes} bytes", file=sys.stderr)
