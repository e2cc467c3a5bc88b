#!/usr/bin/env python3
"""The resilience patterns of the example C++ client, in Python, for chaos.sh.

Talks to resilience_server ("GET <key>" -> "VALUE <key> <value>") with:
  a timeout on every attempt (connect, send, receive),
  retries with exponential backoff for transient failures (timeout, refused, reset, EAI_AGAIN),
  a circuit breaker (closed -> open after N failed calls, half-open probe after a cooldown),
  a fallback: the last good answer, else --fallback VALUE.

Prints one line per call and a summary, like resilient_client. Exit status: 0 every call was
answered (with --until-recovered: the client recovered after a failure); otherwise the kind of
the last failure: 3 timeout, 4 refused, 5 reset, 6 dns, 1 other; 2 bad usage.
"""
import argparse
import errno
import socket
import sys
import time

EXIT_FOR = {"timeout": 3, "refused": 4, "reset": 5, "dns": 6}


def attempt(host, port, key, timeout):
    """One request on a fresh connection. Returns (failure or None, value)."""
    deadline = time.monotonic() + timeout
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror as e:
        return ("dns", e.errno), None
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(max(0.001, deadline - time.monotonic()))
            s.connect(infos[0][4])
            s.sendall(f"GET {key}\n".encode())
            reply = b""
            while b"\n" not in reply:
                s.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = s.recv(512)
                if not chunk:
                    return ("reset", 0), None
                reply += chunk
    except socket.timeout:
        return ("timeout", 0), None
    except ConnectionRefusedError:
        return ("refused", errno.ECONNREFUSED), None
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as e:
        return ("reset", e.errno), None
    except OSError as e:
        return ("other", e.errno), None
    line = reply.split(b"\n", 1)[0].decode()
    prefix = f"VALUE {key} "
    if not line.startswith(prefix):
        return ("other", 0), None
    return None, line[len(prefix):]


class Breaker:
    def __init__(self, threshold, cooldown):
        self.threshold, self.cooldown = threshold, cooldown
        self.state, self.failures, self.opened_at, self.opened = "closed", 0, 0.0, 0

    def move(self, state):
        print(f"breaker {self.state}->{state}", flush=True)
        self.state = state

    def allow(self):
        if self.state == "closed":
            return True
        if self.state == "half_open" or time.monotonic() - self.opened_at < self.cooldown:
            return False
        self.move("half_open")
        return True

    def success(self):
        self.failures = 0
        if self.state != "closed":
            self.move("closed")

    def failure(self):
        self.failures += 1
        if self.state == "half_open" or (self.threshold and self.failures >= self.threshold):
            self.failures, self.opened_at, self.opened = 0, time.monotonic(), self.opened + 1
            self.move("open")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--key", default="k")
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--interval", type=float, default=0.0)
    p.add_argument("--timeout", type=float, default=0.5)
    p.add_argument("--attempts", type=int, default=3)
    p.add_argument("--backoff", type=float, default=0.01)
    p.add_argument("--breaker-threshold", type=int, default=3)
    p.add_argument("--breaker-cooldown", type=float, default=0.2)
    p.add_argument("--fallback")
    p.add_argument("--until-recovered", action="store_true")
    a = p.parse_args()

    breaker = Breaker(a.breaker_threshold, a.breaker_cooldown)
    stats = dict(calls=0, ok=0, failed=0, cached=0, fallback=0, attempts=0, timeouts=0,
                 refused=0, resets=0, dns=0, other=0, short_circuited=0)
    counter = {"timeout": "timeouts", "refused": "refused", "reset": "resets", "dns": "dns",
               "other": "other"}
    last_good, troubled, recovered, all_answered, last_failure = None, False, False, True, None
    for call in range(1, a.calls + 1):
        if recovered:
            break
        if call > 1 and a.interval:
            time.sleep(a.interval)
        stats["calls"] += 1
        failure, value, tries = None, None, 0
        if not breaker.allow():
            stats["short_circuited"] += 1
            failure = ("circuit_open", 0)
        else:
            backoff = a.backoff
            while tries < max(1, a.attempts):
                if tries:
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 0.2)
                tries += 1
                stats["attempts"] += 1
                failure, value = attempt(a.host, a.port, a.key, a.timeout)
                if failure is None:
                    break
                stats[counter[failure[0]]] += 1
                transient = failure[0] in ("timeout", "refused", "reset") or (
                    failure[0] == "dns" and failure[1] == socket.EAI_AGAIN)
                if not transient:
                    break
            if failure is None:
                breaker.success()
            else:
                breaker.failure()
        if failure is None:
            source, last_good = "server", value
            stats["ok"] += 1
        elif last_good is not None:
            source, value = "cached", last_good
            stats["cached"] += 1
        elif a.fallback is not None:
            source, value = "fallback", a.fallback
            stats["fallback"] += 1
        else:
            source = "none"
            stats["failed"] += 1
            all_answered = False
        if failure is not None:
            last_failure = failure[0]
        print(f"call={call} outcome={'ok' if value is not None else 'failed'} source={source} "
              f"value={value if value is not None else '-'} attempts={tries} "
              f"failure={failure[0] if failure else 'none'} breaker={breaker.state}", flush=True)
        troubled = troubled or source != "server" or tries > 1
        recovered = a.until_recovered and troubled and source == "server"
    print("summary " + " ".join(f"{k}={v}" for k, v in stats.items()) +
          f" opened={breaker.opened}", flush=True)
    if (recovered if a.until_recovered else all_answered):
        return 0
    return EXIT_FOR.get(last_failure, 1)


if __name__ == "__main__":
    sys.exit(main())
