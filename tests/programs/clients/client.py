#!/usr/bin/env python3
"""One HTTP GET with a 1 s timeout through http.client (whose timeout=1.0 is
socket.settimeout(1.0): connect and every receive bounded), reported as one line, so a test
can tell apart a client that got its answer, one whose own timeout fired, and one whose
response was cut short — and how long each took, timed inside the program.

    client.py URL [--repeat N] [--hold SECONDS]

Single request:  client=python outcome=ok|timeout|error kind=K status=S bytes=B elapsed=E
  kind: none, timeout, IncompleteRead (bytes = body bytes read before the cut), or the
  exception's class name.
--repeat N: one warm-up request, then N more on the same kept-alive connection, each timed;
  client=python outcome=ok requests=N median=SECONDS min=SECONDS max=SECONDS
  (or the single-request line of the first request that failed).
--hold S: after the outcome line, keep the connection open (a dup of its fd) for S seconds
  before exiting, so the server can tell a close made by faultline from the process's exit.
Exit status 0 whenever the line was printed.
"""
import argparse
import http.client
import os
import socket
import statistics
import sys
import time
import urllib.parse

TIMEOUT = 1.0


def report(**fields):
    sys.stdout.write("client=python " + " ".join("%s=%s" % kv for kv in fields.items()) + "\n")
    sys.stdout.flush()


def get(conn, path, start):
    """One request on conn; returns None on success, else the fields of a failure line."""
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        return None, response.status, len(body)
    except http.client.IncompleteRead as e:
        return ("error", "IncompleteRead", len(e.partial)), 0, len(e.partial)
    except (socket.timeout, TimeoutError):
        return ("timeout", "timeout", 0), 0, 0
    except Exception as e:  # any other way the request failed, named by its class
        return ("error", type(e).__name__, 0), 0, 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--repeat", type=int, default=0)
    parser.add_argument("--hold", type=float, default=0.0)
    args = parser.parse_args()
    url = urllib.parse.urlsplit(args.url)
    path = url.path or "/"

    start = time.monotonic()
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=TIMEOUT)
    held = []
    if args.hold > 0:
        conn.connect()
        held.append(os.dup(conn.sock.fileno()))
    failure, status, size = get(conn, path, start)
    elapsed = time.monotonic() - start
    if failure or args.repeat <= 0:
        outcome, kind = (failure[0], failure[1]) if failure else ("ok", "none")
        report(outcome=outcome, kind=kind, status=status, bytes=size, elapsed="%.3f" % elapsed)
    else:
        times = []
        for _ in range(args.repeat):
            t0 = time.monotonic()
            failure, status, size = get(conn, path, t0)
            if failure:
                report(outcome=failure[0], kind=failure[1], status=status, bytes=size,
                       elapsed="%.3f" % (time.monotonic() - t0))
                break
            times.append(time.monotonic() - t0)
        else:
            report(outcome="ok", requests=len(times), median="%.4f" % statistics.median(times),
                   min="%.4f" % min(times), max="%.4f" % max(times))
    if held:
        time.sleep(args.hold)
    conn.close()


if __name__ == "__main__":
    main()
