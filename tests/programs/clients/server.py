#!/usr/bin/env python3
"""A loopback HTTP/1.1 server for the client test bed, with knobs that make the server itself
slow or short, so a test can first show what each client reports when the *server* misbehaves
(calibration) and then expect the same report when faultline makes the *network* misbehave.

    server.py [--bind 127.0.0.1] [--port 0] [--delay SECONDS] [--bytes N] [--cut-at N]

--delay   waits this long after reading a request before answering it (every request)
--bytes   body size of each response (default 100), bytes of b"x"
--cut-at  closes the connection once this many bytes (status line and headers included) have
          been written on it: a response cut off cleanly in the middle

Stdout, one line each, flushed: "port P" once listening, then per connection when it ends
    closed conn=C requests=R head=H sent=S peer=closed|reset|cut|timeout after=SECONDS
head: header bytes of the last response; sent: bytes written on the connection; peer: how it
ended (the client closed or reset it, the server cut it, or 30 s passed); after: seconds since
accept. While sending, the server also watches for the peer's close, so a client that stops
reading and shuts its socket down is seen at once rather than when the send buffers fill.
"""
import argparse
import select
import socket
import sys
import threading
import time

IDLE_LIMIT = 30.0  # bounds every connection: nothing outlives a test by much


def log(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Conn:
    def __init__(self, sock, number, args):
        self.sock, self.number, self.args = sock, number, args
        self.start = time.monotonic()
        self.sent = 0
        self.head = 0
        self.requests = 0
        self.pending = b""

    def read_request(self):
        """Returns the request head (bytes) or the reason the connection ended."""
        while b"\r\n\r\n" not in self.pending:
            ready, _, _ = select.select([self.sock], [], [], IDLE_LIMIT)
            if not ready:
                return "timeout"
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, OSError):
                return "reset"
            if not chunk:
                return "closed"
            self.pending += chunk
        head, self.pending = self.pending.split(b"\r\n\r\n", 1)
        return head

    def send_all(self, data):
        """Writes data, watching for the peer's close; returns None or how it ended."""
        view = memoryview(data)
        while view:
            limit = self.args.cut_at - self.sent if self.args.cut_at else len(view)
            if limit <= 0:
                return "cut"
            readable, writable, _ = select.select([self.sock], [self.sock], [], IDLE_LIMIT)
            if not readable and not writable:
                return "timeout"
            if readable:
                try:
                    chunk = self.sock.recv(65536)
                except (ConnectionResetError, OSError):
                    return "reset"
                if not chunk:
                    return "closed"
                self.pending += chunk  # a pipelined request: kept for later
            if writable:
                try:
                    n = self.sock.send(view[: min(limit, 16384)])
                except (BrokenPipeError, ConnectionResetError, OSError):
                    return "reset"
                self.sent += n
                view = view[n:]
        if self.args.cut_at and self.sent >= self.args.cut_at:
            return "cut"
        return None

    def serve(self):
        ended = None
        try:
            while ended is None:
                request = self.read_request()
                if isinstance(request, str):
                    ended = request
                    break
                self.requests += 1
                lines = request.decode("latin-1").split("\r\n")
                closing = lines[0].endswith("HTTP/1.0") or any(
                    h.lower().replace(" ", "") == "connection:close" for h in lines[1:])
                if self.args.delay > 0:
                    time.sleep(self.args.delay)
                head = ("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                        "Content-Length: %d\r\n%s\r\n" %
                        (self.args.bytes, "Connection: close\r\n" if closing else "")).encode()
                self.head = len(head)
                ended = self.send_all(head + b"x" * self.args.bytes)
                if ended is None and closing:
                    # Let the client read it all: shut our side, then wait for its close.
                    self.sock.shutdown(socket.SHUT_WR)
                    while ended is None:
                        request = self.read_request()
                        ended = request if isinstance(request, str) else None
        finally:
            try:
                self.sock.close()
            except OSError:
                pass
            log("closed conn=%d requests=%d head=%d sent=%d peer=%s after=%.3f" %
                (self.number, self.requests, self.head, self.sent, ended,
                 time.monotonic() - self.start))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--bytes", type=int, default=100)
    parser.add_argument("--cut-at", type=int, default=0)
    args = parser.parse_args()

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.bind, args.port))
    listener.listen(64)
    log("port %d" % listener.getsockname()[1])
    number = 0
    while True:
        sock, _ = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        number += 1
        threading.Thread(target=Conn(sock, number, args).serve, daemon=True).start()


if __name__ == "__main__":
    main()
