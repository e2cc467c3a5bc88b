#!/usr/bin/env bash
# Measures what libfaultline.so costs a program, next to a native run and to an empty
# passthrough preload (the floor for any LD_PRELOAD shim). See docs/performance.md.
#
#   bench/run.sh                      build (RelWithDebInfo) into build-bench/, measure, print
#
# Environment:
#   FAULTLINE_BENCH_BUILD   build directory            (default: <repo>/build-bench; it is
#                           configured with FAULTLINE_TESTS=OFF, so give it its own)
#   FAULTLINE_BENCH_OUT     where results are kept     (default: <build>/bench-results)
#   BENCH_MIN_TIME          seconds per repetition     (default: 0.2)
#   BENCH_NOSYS_MIN_TIME    the same, syscall-free runs (default: 0.1)
#   BENCH_REPETITIONS       repetitions per benchmark  (default: 9)
#
# For every configuration — native, passthrough preload, faultline idle (loaded, nothing
# armed), faultline armed-not-matching (a write fault whose path never matches), faultline
# probability 0.001 (a write fault on /dev/null that injects EIO once per ~1000 calls):
#   (a) bench/bench_io (Google Benchmark) medians of 9 repetitions, CPU time per call, with
#       the real system calls; then native once more, as a control row whose Δ is the
#       run-to-run noise of the machine;
#   (b) the same write/pwrite/read/fsync benchmarks with the kernel taken out
#       (bench/nosys.c preloaded after the library under test): the wrapper's own ns;
#   (c) instructions per write() under callgrind: write_loop at N=100000 and N=200000,
#       (Ir(200000) - Ir(100000)) / 100000, which cancels start-up and exit exactly.
# Prints markdown tables (CPU-time medians; wall-clock medians last, for reference). Takes
# about 2 minutes on a 2-core machine (plus the build). Every session it creates is removed
# on exit, also on failure or Ctrl-C.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="${FAULTLINE_BENCH_BUILD:-$root/build-bench}"
out="${FAULTLINE_BENCH_OUT:-$build/bench-results}"
min_time="${BENCH_MIN_TIME:-0.2}"
reps="${BENCH_REPETITIONS:-9}"
nosys_min_time="${BENCH_NOSYS_MIN_TIME:-0.1}"
python=/usr/bin/python3
n1=100000
n2=200000

for tool in cmake valgrind "$python"; do
  command -v "$tool" >/dev/null || { echo "bench/run.sh: $tool is required (scripts/deps.sh)" >&2; exit 1; }
done

echo "== building into $build (RelWithDebInfo)" >&2
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFAULTLINE_BENCH=ON \
      -DFAULTLINE_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target faultline_shim passthrough nosys write_loop bench_io >/dev/null

shim="$build/libfaultline.so"
passthrough="$build/libfaultline_passthrough.so"
nosys="$build/libfaultline_nosys.so"
bench_io="$build/bench_io"
write_loop="$build/write_loop"
for f in "$shim" "$passthrough" "$nosys" "$bench_io" "$write_loop"; do
  [ -e "$f" ] || { echo "bench/run.sh: $f was not built (is libbenchmark-dev installed?)" >&2; exit 1; }
done
# The program's own ELF interpreter: under callgrind the preload is given to it with
# --preload instead of LD_PRELOAD, so that only the measured process loads the library (not
# the valgrind launcher script and binary, which would otherwise join the session too).
interp="$(readelf -l "$write_loop" | sed -n 's/.*Requesting program interpreter: \(.*\)]$/\1/p')"
[ -x "$interp" ] || { echo "bench/run.sh: cannot find the ELF interpreter of $write_loop" >&2; exit 1; }

mkdir -p "$out"
rm -f "$out"/*.json "$out"/callgrind.* "$out"/*.toml "$out"/*.log "$out"/results.md "$out"/machine.txt
{
  echo "cpus: $(nproc), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
  echo "kernel: $(uname -r)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/machine.txt"

sessions=()
cleanup() {
  local s
  for s in "${sessions[@]}"; do rm -f "/dev/shm/faultline.$s"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- policies ---------------------------------------------------------------------------
cat >"$out/idle.toml" <<'EOF'
# Shim loaded, nothing armed: the only fault is disabled.
version = 1
seed = 42
[[fault]]
name = "idle"
calls = ["write"]
path = "/dev/null"
error = "EIO"
enabled = false
EOF
cat >"$out/nomatch.toml" <<'EOF'
# @write armed, but the path selector never matches: every write takes the slow path,
# decides, and passes through.
version = 1
seed = 42
[[fault]]
name = "nomatch"
calls = ["write"]
path = "/nonexistent/*"
error = "EIO"
EOF
cat >"$out/prob.toml" <<'EOF'
# Matches every write to /dev/null and injects EIO into about one in a thousand.
version = 1
seed = 42
[[fault]]
name = "rare"
calls = ["write"]
path = "/dev/null"
error = "EIO"
probability = 0.001
EOF

# config name | preload | policy (empty: none)
configs=(
  "native||"
  "passthrough|$passthrough|"
  "faultline idle|$shim|$out/idle.toml"
  "faultline armed, not matching|$shim|$out/nomatch.toml"
  "faultline p=0.001|$shim|$out/prob.toml"
)

# Sets $envs: an `env` command line that clears any inherited preload/faultline settings
# and, for a config with a policy, names a fresh session (removed again by cleanup).
make_env() {
  local tag="$1" policy="$2"
  envs=(env -u LD_PRELOAD -u FAULTLINE_POLICY -u FAULTLINE_SESSION -u FAULTLINE_SEED
        -u FAULTLINE_LOG -u FAULTLINE_DISABLE)
  if [ -n "$policy" ]; then
    local session="flbench-$$-$tag"
    sessions+=("$session")
    rm -f "/dev/shm/faultline.$session"
    envs+=(FAULTLINE_POLICY="$policy" FAULTLINE_SESSION="$session")
  fi
}

bench() {  # bench TAG POLICY PRELOAD OUTFILE [bench_io args...]
  local tag="$1" policy="$2" preload="$3" file="$4"
  shift 4
  make_env "$tag" "$policy"
  "${envs[@]}" ${preload:+LD_PRELOAD="$preload"} "$bench_io" \
    --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
    --benchmark_out="$out/$file.json" --benchmark_out_format=json "$@" \
    >"$out/$file.log" 2>&1 ||
    { echo "bench/run.sh: bench_io failed (see $out/$file.log)" >&2; exit 1; }
}

index=0
for entry in "${configs[@]}"; do
  IFS='|' read -r name preload policy <<<"$entry"
  index=$((index + 1))
  echo "== [$index/${#configs[@]}] $name" >&2

  # (a) with the real system calls
  bench "b$index" "$policy" "$preload" "bench.$index" --benchmark_min_time="$min_time"

  # (b) the kernel taken out: nosys comes after the library under test in the search order
  bench "n$index" "$policy" "${preload:+$preload }$nosys" "nosys.$index" \
    --benchmark_min_time="$nosys_min_time" --benchmark_filter='write|read|fsync'

  # (c) instructions per write
  for n in "$n1" "$n2"; do
    make_env "c$index-$n" "$policy"
    "${envs[@]}" valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.$index.$n" \
      "$interp" ${preload:+--preload "$preload"} "$write_loop" "$n" \
      >"$out/callgrind.$index.$n.log" 2>&1 ||
      { echo "bench/run.sh: callgrind failed under '$name' (see $out/callgrind.$index.$n.log)" >&2; exit 1; }
  done
  cleanup
  sessions=()
done

echo "== control: native again" >&2
bench control "" "" "bench.control" --benchmark_min_time="$min_time"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"

# ---- table -------------------------------------------------------------------------------
names=()
for entry in "${configs[@]}"; do names+=("${entry%%|*}"); done

"$python" "$root/bench/report.py" "$out" "$n1" "$n2" "${names[@]}" | tee "$out/results.md"
echo "results, JSON and callgrind profiles: $out" >&2
