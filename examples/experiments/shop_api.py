#!/usr/bin/env python3
"""A small checkout API over redis (python3 standard library only), for the experiments here.

GET /health   200 "ok" once the server listens
GET /checkout  INCR a counter in redis; 200 "ok <n>".
               Each redis call has a 300 ms timeout and is retried once.
               With the circuit breaker (the default), 3 failures in a row open it for 2 s:
               while open, /checkout answers at once from the last known value,
               200 "ok (degraded) <n>", instead of waiting on redis.
               With --no-breaker every request waits out its retries and answers 503.
"""
import argparse
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=8080)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--redis", default="127.0.0.2:7301")
parser.add_argument("--timeout", type=float, default=0.3)
parser.add_argument("--retries", type=int, default=1)
parser.add_argument("--no-breaker", action="store_true")
args = parser.parse_args()
redis_host, redis_port = args.redis.rsplit(":", 1)


def redis_incr(key):
    """One INCR over a fresh connection (RESP by hand), bounded by args.timeout."""
    with socket.create_connection((redis_host, int(redis_port)), timeout=args.timeout) as s:
        s.settimeout(args.timeout)
        s.sendall(b"*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n" % (len(key), key))
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = s.recv(64)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            reply += chunk
        if not reply.startswith(b":"):
            raise ConnectionError("redis: " + reply.decode(errors="replace").strip())
        return int(reply[1:])


class Breaker:
    def __init__(self, threshold=3, cool_down=2.0):
        self.threshold, self.cool_down = threshold, cool_down
        self.failures, self.opened_at = 0, None
        self.lock = threading.Lock()

    def allow(self):
        with self.lock:
            if self.opened_at is None:
                return True
            if time.monotonic() - self.opened_at >= self.cool_down:
                self.opened_at = None  # half-open: let one call try
                self.failures = self.threshold - 1
                return True
            return False

    def record(self, ok):
        with self.lock:
            if ok:
                self.failures = 0
            else:
                self.failures += 1
                if self.failures >= self.threshold and self.opened_at is None:
                    self.opened_at = time.monotonic()
                    print("breaker open", flush=True)


breaker = None if args.no_breaker else Breaker()
last_value = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, status, text):
        body = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        global last_value
        if self.path == "/health":
            return self.reply(200, "ok")
        if self.path != "/checkout":
            return self.reply(404, "not found")
        if breaker is not None and not breaker.allow():
            return self.reply(200, "ok (degraded) %d" % last_value)
        for _ in range(1 + args.retries):
            try:
                last_value = redis_incr(b"orders")
                if breaker is not None:
                    breaker.record(True)
                return self.reply(200, "ok %d" % last_value)
            except (OSError, ConnectionError):
                if breaker is not None:
                    breaker.record(False)
        if breaker is not None:
            return self.reply(200, "ok (degraded) %d" % last_value)
        return self.reply(503, "redis unavailable")

    def log_message(self, *a):
        pass


server = ThreadingHTTPServer((args.host, args.port), Handler)
server.daemon_threads = True
print("listening on %s:%d" % (args.host, args.port), flush=True)
server.serve_forever()
