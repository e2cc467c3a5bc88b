#!/usr/bin/python3
"""Turns bench/run.sh's raw results (Google Benchmark JSON, callgrind profiles) into the
markdown tables of docs/performance.md.

usage: report.py OUT_DIR N1 N2 CONFIG_NAME...
  OUT_DIR holds bench.<i>.json and nosys.<i>.json (i = 1..configs), bench.control.json,
  callgrind.<i>.<N1> and callgrind.<i>.<N2>, and machine.txt.
"""
import json
import os
import re
import sys

out, n1, n2, names = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
SCALE = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
SYS = ["BM_write_devnull", "BM_pwrite_devnull", "BM_read_devzero", "BM_fsync_tmpfile",
       "BM_open_close"]


def medians(file, key):
    with open(os.path.join(out, file + ".json")) as f:
        data = json.load(f)
    return {b["run_name"]: b[key] * SCALE[b.get("time_unit", "ns")]
            for b in data["benchmarks"] if b.get("aggregate_name") == "median"}


def total_ir(index, n):
    # callgrind's output file ends with "summary: <Ir>" (older versions: "totals:").
    with open(os.path.join(out, f"callgrind.{index}.{n}")) as f:
        for line in f:
            m = re.match(r"(?:summary|totals):\s+(\d+)", line)
            if m:
                return int(m.group(1))
    sys.exit(f"report.py: no instruction total in callgrind.{index}.{n}")


def signed(x, fmt):
    return ("+" if x >= 0 else "") + format(x, fmt)


instr = [(total_ir(i, n2) - total_ir(i, n1)) / (n2 - n1) for i in range(1, len(names) + 1)]


def table(title, prefix, key, benches, header, with_instr, control):
    rows = [(name, medians(f"{prefix}.{i}", key), instr[i - 1])
            for i, name in enumerate(names, 1)]
    if control:
        rows.append(("native (control: run again last)", medians("bench.control", key), None))
    base = rows[0][1]
    print(title + "\n")
    print("| config | " + " | ".join(header) + " |")
    print("|---|" + "---:|" * len(header))
    for r, (name, m, ir) in enumerate(rows):
        first = benches[0]
        cells = [name, f"{m[first]:.1f}", "—" if r == 0 else signed(m[first] - base[first], ".1f")]
        for b in benches[1:]:
            cells.append(f"{m[b]:.1f}" + ("" if r == 0 else f" ({signed(m[b] - base[b], '.1f')})"))
        if with_instr:
            cells.append("—" if ir is None else f"{ir:.2f}")
            cells.append("—" if ir is None or r == 0 else signed(ir - instr[0], ".2f"))
        print("| " + " | ".join(cells) + " |")
    print()


MAIN = ["write ns (median)", "Δ vs native", "pwrite", "read", "fsync", "open+close",
        "instr/write", "Δ instr"]
table("With system calls: CPU time per call, ns (median of the repetitions; Δ vs native in "
      "parentheses; instructions per write from callgrind):",
      "bench", "cpu_time", SYS, MAIN, True, True)
table("Kernel taken out (bench/nosys.c): CPU time per call, ns, i.e. the wrapper's own cost:",
      "nosys", "cpu_time", SYS[:4], MAIN[:5], False, False)
table("With system calls, wall-clock time per call, ns (same runs as the first table; "
      "inflated whenever the machine has more runnable threads than cores):",
      "bench", "real_time", SYS, MAIN[:6], False, True)
with open(os.path.join(out, "machine.txt")) as f:
    print(f.read().strip())
