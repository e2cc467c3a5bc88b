#!/usr/bin/env python3
"""Appends a record to DIR/data.log every 20 ms and prints, every half second, how many
writes succeeded and how many failed (with which errno). A stand-in for a service whose
storage you are about to break live with `faultline enable`/`set`/`disable`/`panic`.

usage: write_loop.py DIR SECONDS
"""
import errno
import os
import sys
import time

directory, seconds = sys.argv[1], float(sys.argv[2])
fd = os.open(os.path.join(directory, "data.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
deadline = time.monotonic() + seconds
ok = failed = 0
last_errno = None
next_report = time.monotonic() + 0.5
while time.monotonic() < deadline:
    try:
        os.write(fd, b"record\n")
        ok += 1
    except OSError as e:
        failed += 1
        last_errno = errno.errorcode.get(e.errno, str(e.errno))
    if time.monotonic() >= next_report:
        detail = f" (last error {last_errno})" if failed else ""
        print(f"  [app] last 0.5 s: {ok:3d} writes ok, {failed:3d} failed{detail}", flush=True)
        ok = failed = 0
        last_errno = None
        next_report += 0.5
    time.sleep(0.02)
os.close(fd)
