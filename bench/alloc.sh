#!/usr/bin/env bash
# What libfaultline.so costs a program's malloc+free, next to a native run.
# See docs/performance.md ("Allocation").
#
#   bench/alloc.sh          build (RelWithDebInfo) into build-bench/, measure, print tables
#
# Environment: FAULTLINE_BENCH_BUILD (default <repo>/build-bench), FAULTLINE_BENCH_OUT
# (default <build>/bench-results/alloc), BENCH_MIN_TIME (0.2 s), BENCH_REPETITIONS (9).
#
# Configurations: native; faultline idle (a disabled @memory fault: nothing armed);
# @memory armed, not matching (size = "1MiB..": a 64-byte or 4 KiB block pays the size-floor
# compare only); @memory p=0.001 (every malloc matches, about 1 in 1000 fails with ENOMEM).
#   (a) bench_alloc (Google Benchmark): median CPU ns per malloc+free pair of 64 B and 4 KiB;
#       native runs again last as a control row (its delta is the machine's noise);
#   (b) instructions per malloc+free pair (64 B) under callgrind: malloc_loop at N=100000 and
#       N=200000, (Ir(200000) - Ir(100000)) / 100000.
# Every session it creates is removed on exit.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="${FAULTLINE_BENCH_BUILD:-$root/build-bench}"
out="${FAULTLINE_BENCH_OUT:-$build/bench-results/alloc}"
min_time="${BENCH_MIN_TIME:-0.2}"
reps="${BENCH_REPETITIONS:-9}"
n1=100000
n2=200000

for tool in cmake valgrind python3; do
  command -v "$tool" >/dev/null || { echo "bench/alloc.sh: $tool is required (scripts/deps.sh)" >&2; exit 1; }
done
echo "== building into $build (RelWithDebInfo)" >&2
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFAULTLINE_BENCH=ON \
      -DFAULTLINE_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target faultline_shim bench_alloc malloc_loop >/dev/null
shim="$build/libfaultline.so"
interp="$(readelf -l "$build/malloc_loop" | sed -n 's/.*Requesting program interpreter: \(.*\)]$/\1/p')"

mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.log "$out"/*.toml "$out"/callgrind.*
sessions=()
cleanup() { local s; for s in "${sessions[@]}"; do rm -f "/dev/shm/faultline.$s"; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$out/idle.toml" <<'TOML'
version = 1
seed = 42
[[fault]]
name = "idle"
calls = ["@memory"]
error = "ENOMEM"
enabled = false
TOML
cat >"$out/nomatch.toml" <<'TOML'
version = 1
seed = 42
[[fault]]
name = "huge"
calls = ["@memory"]
size = "1MiB.."
error = "ENOMEM"
TOML
cat >"$out/prob.toml" <<'TOML'
version = 1
seed = 42
[[fault]]
name = "rare"
calls = ["malloc"]
error = "ENOMEM"
probability = 0.001
TOML

configs=("native|" "faultline idle|$out/idle.toml" "@memory armed, not matching|$out/nomatch.toml"
         "@memory p=0.001|$out/prob.toml")

run_env() {  # run_env TAG POLICY CMD...: clean environment, preload + fresh session if POLICY
  local tag="$1" policy="$2"
  shift 2
  local envs=(env -u LD_PRELOAD -u FAULTLINE_POLICY -u FAULTLINE_SESSION -u FAULTLINE_SEED
              -u FAULTLINE_LOG -u FAULTLINE_DISABLE)
  if [ -n "$policy" ]; then
    local session="flalloc-$$-$tag"
    sessions+=("$session")
    envs+=(FAULTLINE_POLICY="$policy" FAULTLINE_SESSION="$session")
  fi
  "${envs[@]}" "$@"
}

index=0
for entry in "${configs[@]}"; do
  IFS='|' read -r name policy <<<"$entry"
  index=$((index + 1))
  echo "== [$index/${#configs[@]}] $name" >&2
  preload=()
  [ -n "$policy" ] && preload=(LD_PRELOAD="$shim")
  run_env "b$index" "$policy" "${preload[@]}" "$build/bench_alloc" \
    --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
    --benchmark_min_time="$min_time" --benchmark_out="$out/bench.$index.json" \
    --benchmark_out_format=json >"$out/bench.$index.log" 2>&1
  for n in "$n1" "$n2"; do
    run_env "c$index-$n" "$policy" valgrind --tool=callgrind \
      --callgrind-out-file="$out/callgrind.$index.$n" \
      "$interp" ${policy:+--preload "$shim"} "$build/malloc_loop" "$n" 64 \
      >"$out/callgrind.$index.$n.log" 2>&1
  done
  cleanup
  sessions=()
done
echo "== control: native again" >&2
run_env control "" "$build/bench_alloc" --benchmark_repetitions="$reps" \
  --benchmark_report_aggregates_only=true --benchmark_min_time="$min_time" \
  --benchmark_out="$out/bench.control.json" --benchmark_out_format=json >"$out/bench.control.log" 2>&1

names=()
for entry in "${configs[@]}"; do names+=("${entry%%|*}"); done
python3 - "$out" "$n1" "$n2" "${names[@]}" <<'PY'
import json, os, re, sys
out, n1, n2, names = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
def med(tag):
    with open(os.path.join(out, f"bench.{tag}.json")) as f:
        data = json.load(f)
    return {b["run_name"]: b["cpu_time"] for b in data["benchmarks"]
            if b.get("aggregate_name") == "median"}
def ir(i, n):
    with open(os.path.join(out, f"callgrind.{i}.{n}")) as f:
        for line in f:
            m = re.match(r"(?:summary|totals):\s+(\d+)", line)
            if m:
                return int(m.group(1))
base = med(1)
keys = ["BM_malloc_free/64", "BM_malloc_free/4096"]
base_ir = (ir(1, n2) - ir(1, n1)) / (n2 - n1)
print("| config | malloc+free 64 B, ns (Δ) | 4 KiB, ns (Δ) | instructions per pair (Δ) |")
print("|---|---:|---:|---:|")
rows = [(name, str(i + 1)) for i, name in enumerate(names)] + [("native (control, run again last)", "control")]
for name, tag in rows:
    m = med(tag)
    cells = [f"{m[k]:.1f} ({m[k] - base[k]:+.1f})" for k in keys]
    if tag == "control":
        cells.append("")
    else:
        per = (ir(int(tag), n2) - ir(int(tag), n1)) / (n2 - n1)
        cells.append(f"{per:.1f} ({per - base_ir:+.1f})")
    print(f"| {name} | " + " | ".join(cells) + " |")
PY
