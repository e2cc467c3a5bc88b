#!/usr/bin/python3
"""Turns bench/calls.sh's raw results into the markdown tables of docs/performance.md
("Every family side by side").

usage: calls_report.py OUT_DIR CONFIG_NAME...
  OUT_DIR holds bench.<i>.<family>.json (i = 1..configs), bench.control.<family>.json and
  callgrind.<i>.<call>.<N> at two values of N per call.
"""
import glob
import json
import os
import re
import sys

out, names = sys.argv[1], sys.argv[2:]
SCALE = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}

# column label, family (which JSON), Google Benchmark name, call_loop mode
COLUMNS = [
    ("write", "write", "BM_write_devnull", "write"),
    ("fsync", "fsync", "BM_fsync_tmpfile", "fsync"),
    ("malloc+free 64 B", "malloc", "BM_malloc_free/64", "malloc"),
    ("open+close", "open", "BM_open_close", "open-close"),
    ("connect (UDP)", "net", "BM_connect_udp", "connect-udp"),
    ("write, UDP socket", "net", "BM_write_udp", "write-udp"),
    ("TCP connection", "net", "BM_connect_tcp", "connect-tcp"),
    ("getaddrinfo numeric", "getaddrinfo", "BM_getaddrinfo_numeric", "gai-numeric"),
    ("getaddrinfo localhost", "getaddrinfo", "BM_getaddrinfo_localhost", "gai-localhost"),
]


def medians(tag):
    path = os.path.join(out, f"bench.{tag}.json")
    with open(path) as f:
        data = json.load(f)
    return {b["run_name"]: b["cpu_time"] * SCALE[b.get("time_unit", "ns")]
            for b in data["benchmarks"] if b.get("aggregate_name") == "median"}


def total_ir(path):
    # callgrind's output file ends with "summary: <Ir>" (older versions: "totals:").
    with open(path) as f:
        for line in f:
            m = re.match(r"(?:summary|totals):\s+(\d+)", line)
            if m:
                return int(m.group(1))
    sys.exit(f"calls_report.py: no instruction total in {path}")


def per_call(index, call):
    files = glob.glob(os.path.join(out, f"callgrind.{index}.{call}.*"))
    runs = sorted((int(p.rsplit(".", 1)[1]), total_ir(p)) for p in files
                  if p.rsplit(".", 1)[1].isdigit())
    if len(runs) != 2:
        sys.exit(f"calls_report.py: expected two callgrind runs of {call} under config {index}")
    (n1, ir1), (n2, ir2) = runs
    return (ir2 - ir1) / (n2 - n1)


def signed(x, fmt):
    return ("+" if x >= 0 else "") + format(x, fmt)


ns = {}  # (row, column label) -> ns
ir = {}
for i, name in enumerate(names, 1):
    for label, family, bench, call in COLUMNS:
        ns[(i, label)] = medians(f"{i}.{family}").get(bench)
        ir[(i, label)] = per_call(i, call)
for label, family, bench, call in COLUMNS:
    ns[("control", label)] = medians(f"control.{family}").get(bench)

labels = [c[0] for c in COLUMNS]
print("CPU time per call, ns: median of the repetitions (Δ vs native); instructions per call "
      "from callgrind (Δ vs native):\n")
print("| call | config | ns | Δ ns | instructions | Δ instructions |")
print("|---|---|---:|---:|---:|---:|")
for label in labels:
    base_ns, base_ir = ns[(1, label)], ir[(1, label)]
    rows = [(i, name) for i, name in enumerate(names, 1)] + [("control", "native (control: run again last)")]
    for row, name in rows:
        t = ns[(row, label)]
        cells = [label, name, f"{t:.1f}", "—" if row == 1 else signed(t - base_ns, ".1f")]
        if row == "control":
            cells += ["", ""]
        else:
            n = ir[(row, label)]
            cells += [f"{n:.1f}", "—" if row == 1 else signed(n - base_ir, ".1f")]
        print("| " + " | ".join(cells) + " |")
print()
print("Over native, per call: Δ ns / Δ instructions\n")
print("| config | " + " | ".join(labels) + " |")
print("|---|" + "---:|" * len(labels))
for i, name in enumerate(names, 1):
    if i == 1:
        continue
    cells = [f"{signed(ns[(i, l)] - ns[(1, l)], '.1f')} / {signed(ir[(i, l)] - ir[(1, l)], '.0f')}"
             for l in labels]
    print(f"| {name} | " + " | ".join(cells) + " |")
cells = [signed(ns[("control", l)] - ns[(1, l)], ".1f") for l in labels]
print("| native (control: run again last) | " + " | ".join(cells) + " |")
print()
