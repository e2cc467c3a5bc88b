#!/usr/bin/python3
"""Control latency: from starting `faultline enable` to the first injected failure that a
running target sees. See docs/performance.md ("Whole programs") and bench/programs.sh.

usage: ctl_latency.py FAULTLINE CTL_TARGET WORKDIR [TRIALS]

Starts CTL_TARGET (bench/ctl_target.c: loops write() of one byte to a file) under
`faultline run` with a policy whose only fault, an EIO on writes to that file, is disabled.
Then, TRIALS times (default 20):
  t0 = CLOCK_MONOTONIC, taken just before spawning `faultline enable SESSION lat`;
  the target prints CLOCK_MONOTONIC right after its first failed write;
  latency = that - t0. Also kept: when `faultline enable` returned (t_ret - t0).
  `faultline disable` and waiting for the target's next successful write end the trial.
Prints one JSON object: every latency, their median, and the same for the command's own
run time. Every process it starts is ended before it exits; `faultline run` removes the
session. Bounded: each wait has a timeout, the target a lifetime.
"""
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import time

TIMEOUT_S = 10.0


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    faultline, target, workdir = sys.argv[1:4]
    trials = int(sys.argv[4]) if len(sys.argv) == 5 else 20
    os.makedirs(workdir, exist_ok=True)
    data = os.path.join(workdir, "ctl_target.dat")
    policy = os.path.join(workdir, "ctl_latency.toml")
    with open(policy, "w") as f:
        f.write('version = 1\nseed = 42\n[[fault]]\nname = "lat"\ncalls = ["write"]\n'
                f'path = "{data}"\nerror = "EIO"\nenabled = false\n')
    session = f"flbench-lat-{os.getpid()}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("FAULTLINE_") and k != "LD_PRELOAD"}
    # The target's lifetime bound: generous, the driver ends it long before.
    proc = subprocess.Popen([faultline, "run", "-q", "-p", policy, "-s", session, "--",
                             target, data, str(int(TIMEOUT_S * (trials + 2)))],
                            stdout=subprocess.PIPE, env=env, start_new_session=True)
    buf = b""

    def line():
        nonlocal buf
        deadline = time.monotonic() + TIMEOUT_S
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
                raise RuntimeError("ctl_latency: the target did not answer in time")
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError("ctl_latency: the target exited")
            buf += chunk
        first, buf = buf.split(b"\n", 1)
        return first.decode()

    def control(verb):
        subprocess.run([faultline, verb, session, "lat"], env=env, check=True,
                       stdout=subprocess.DEVNULL, timeout=TIMEOUT_S)

    latencies, command = [], []
    try:
        if line() != "ready":
            raise RuntimeError("ctl_latency: the target did not start")
        for _ in range(trials):
            t0 = time.monotonic_ns()
            control("enable")
            t_ret = time.monotonic_ns()
            word, _, stamp = line().partition(" ")
            if word != "fail":
                raise RuntimeError(f"ctl_latency: expected a failure, got '{word}'")
            latencies.append(int(stamp) - t0)
            command.append(t_ret - t0)
            control("disable")
            if line() != "ok":
                raise RuntimeError("ctl_latency: the target did not recover")
    finally:
        # `faultline run` forwards SIGTERM to the target, then removes the session.
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=TIMEOUT_S)
        if os.path.exists(data):
            os.unlink(data)
    ms = lambda ns: [round(x / 1e6, 3) for x in ns]
    print(json.dumps({
        "trials": trials,
        "latency_ms": ms(latencies),
        "latency_median_ms": round(statistics.median(latencies) / 1e6, 3),
        "enable_command_ms": ms(command),
        "enable_command_median_ms": round(statistics.median(command) / 1e6, 3),
    }))


if __name__ == "__main__":
    main()
