#!/usr/bin/python3
"""Turns bench/programs.sh's raw results into the markdown tables of docs/performance.md
("Whole programs").

usage: programs_report.py OUT_DIR REDIS_ROUNDS
  OUT_DIR holds redis.<config>.<round>.csv (redis-benchmark --csv) and, for the configs under
  faultline, redis.<config>.<round>.summary.json (`faultline run --json-summary`);
  sqlite.json, python.json and startup.json (hyperfine --export-json); control.json
  (ctl_latency.py) and machine.txt.
"""
import csv
import json
import os
import statistics
import sys

out, rounds = sys.argv[1], int(sys.argv[2])


def load(name):
    with open(os.path.join(out, name)) as f:
        return json.load(f)


# ---- redis ----------------------------------------------------------------------------------
def rps(config, r):
    with open(os.path.join(out, f"redis.{config}.{r}.csv")) as f:
        return {row["test"]: float(row["rps"]) for row in csv.DictReader(f)}


CONFIGS = [("native", "native"),
           ("idle", "server under `faultline run`, nothing armed"),
           ("armed", "server under `faultline run`, @net armed, never fires")]
runs = {c: [rps(c, r) for r in range(1, rounds + 1)] for c, _ in CONFIGS}
print("redis-benchmark, 50 clients, requests per second (median of the rounds; every round "
      "in brackets; % of native):\n")
print("| server | SET | GET | SET % | GET % |")
print("|---|---:|---:|---:|---:|")
med = {c: {t: statistics.median(run[t] for run in runs[c]) for t in ("SET", "GET")}
       for c, _ in CONFIGS}
for c, label in CONFIGS:
    cells = []
    for t in ("SET", "GET"):
        each = ", ".join(f"{run[t]:.0f}" for run in runs[c])
        cells.append(f"{med[c][t]:.0f} [{each}]")
    for t in ("SET", "GET"):
        cells.append(f"{100 * med[c][t] / med['native'][t]:.1f}%")
    print(f"| {label} | " + " | ".join(cells) + " |")
print()


def seen(config, r):
    path = os.path.join(out, f"redis.{config}.{r}.summary.json")
    with open(path) as f:
        return sum(fault["seen"] for fault in json.load(f)["faults"])


def injected(config, r):
    with open(os.path.join(out, f"redis.{config}.{r}.summary.json")) as f:
        return json.load(f)["injected_total"]


armed_seen = [seen("armed", r) for r in range(1, rounds + 1)]
print(f"Calls of the server that reached the armed fault's selectors (`seen`, per round): "
      f"{', '.join(str(n) for n in armed_seen)}; injected: {sum(injected('armed', r) for r in range(1, rounds + 1))}.\n")


# ---- hyperfine tables -----------------------------------------------------------------------
def hyperfine_table(file, title, unit):
    scale = {"ms": 1e3, "s": 1.0}[unit]
    results = load(file)["results"]
    base = statistics.median(results[0]["times"])
    print(title + "\n")
    print(f"| command | median {unit} | mean ± σ {unit} | Δ median vs first row |")
    print("|---|---:|---:|---:|")
    for r in results:
        m = statistics.median(r["times"])
        delta = "—" if r is results[0] else f"{(m - base) * scale:+.2f} {unit} ({m / base:.3f}×)"
        print(f"| {r['command']} | {m * scale:.2f} | {r['mean'] * scale:.2f} ± "
              f"{(r['stddev'] or 0) * scale:.2f} | {delta} |")
    print()


runs_of = lambda file: len(load(file)["results"][0]["times"])
hyperfine_table("sqlite.json", f"sqlite3: 100,000 INSERTs in 10 transactions, fresh database "
                f"on disk, wall-clock ({runs_of('sqlite.json')} runs each):", "s")
hyperfine_table("python.json", f"`python3 -c pass`, wall-clock ({runs_of('python.json')} runs "
                "each):", "ms")
hyperfine_table("startup.json", f"Start-up, wall-clock ({runs_of('startup.json')} runs each):",
                "ms")

shim = {}
with open(os.path.join(out, "shim.txt")) as f:
    for line in f:
        key, _, value = line.strip().partition(" ")
        shim[key] = value
size = int(shim["stripped_bytes"])
print(f"The shim: **{size:,} bytes** stripped ({size / 1024:.0f} KiB; target ≤ 500 KiB), "
      f"`DT_NEEDED`: {shim.get('needed', '').strip() or '(none)'}.\n")

# ---- control latency ------------------------------------------------------------------------
c = load("control.json")
print(f"Control latency ({c['trials']} trials): from spawning `faultline enable` to the first "
      f"failed write in the looping target: median **{c['latency_median_ms']:.2f} ms** "
      f"(min {min(c['latency_ms']):.2f}, max {max(c['latency_ms']):.2f}); the command itself "
      f"returned after a median {c['enable_command_median_ms']:.2f} ms.\n")
with open(os.path.join(out, "machine.txt")) as f:
    print(f.read().strip())
