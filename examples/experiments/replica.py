#!/usr/bin/env python3
"""One replica of a tiny service (python3 standard library): GET / answers 200 "ok NAME"."""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = ("ok %s\n" % name).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


server = ThreadingHTTPServer((host, port), Handler)
server.daemon_threads = True
print("listening on %s:%d" % (host, port), flush=True)
server.serve_forever()
