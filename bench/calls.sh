#!/usr/bin/env bash
# Per-call cost of write, fsync, malloc+free, open+close, connect, write on a socket and
# getaddrinfo, side by side under every interposer: native, the empty passthrough preload,
# libfiu's POSIX preload (Debian fiu-utils, `fiu-run -x`, nothing enabled), libfaultline.so
# idle, the call's family armed by a fault that never matches (path / size / addr / host
# selector), and a fault that injects with probability 0.001.
# See docs/performance.md ("Every family side by side").
#
#   bench/calls.sh          build (RelWithDebInfo) into build-bench/, measure, print tables
#
# Environment: FAULTLINE_BENCH_BUILD (default <repo>/build-bench), FAULTLINE_BENCH_OUT
# (default <build>/bench-results/calls), BENCH_MIN_TIME (0.1 s), BENCH_REPETITIONS (9).
#
# For every configuration and call:
#   (a) Google Benchmark (bench_io, bench_alloc, bench_net) medians of the repetitions, CPU
#       time per call; native runs once more at the end as a control row (its Δ is the noise);
#   (b) instructions per call under callgrind: call_loop CALL at N and 2N,
#       (Ir(2N) - Ir(N)) / N, which cancels start-up and exit exactly.
# The family's fault is the only one in each armed policy, and each family runs in its own
# process, so an armed row shows what arming that family costs its own calls.
# Takes about 2.5 minutes on a 2-core machine (plus the build). Every session and libfiu
# control FIFO it creates is removed on exit, also on failure or Ctrl-C.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="${FAULTLINE_BENCH_BUILD:-$root/build-bench}"
out="${FAULTLINE_BENCH_OUT:-$build/bench-results/calls}"
min_time="${BENCH_MIN_TIME:-0.1}"
reps="${BENCH_REPETITIONS:-9}"
fiu_lib=/usr/lib/fiu

for tool in cmake valgrind python3 fiu-run; do
  command -v "$tool" >/dev/null || { echo "bench/calls.sh: $tool is required (scripts/deps.sh)" >&2; exit 1; }
done
echo "== building into $build (RelWithDebInfo)" >&2
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFAULTLINE_BENCH=ON \
      -DFAULTLINE_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target faultline_shim passthrough bench_io bench_alloc bench_net \
      call_loop >/dev/null
shim="$build/libfaultline.so"
passthrough="$build/libfaultline_passthrough.so"
for f in "$shim" "$passthrough" "$build/bench_io" "$build/bench_alloc" "$build/bench_net" \
         "$build/call_loop"; do
  [ -e "$f" ] || { echo "bench/calls.sh: $f was not built (is libbenchmark-dev installed?)" >&2; exit 1; }
done
interp="$(readelf -l "$build/call_loop" | sed -n 's/.*Requesting program interpreter: \(.*\)]$/\1/p')"
[ -x "$interp" ] || { echo "bench/calls.sh: cannot find the ELF interpreter of call_loop" >&2; exit 1; }

mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.log "$out"/*.toml "$out"/callgrind.* "$out"/results.md
sessions=()
cleanup() {
  local s
  for s in "${sessions[@]}"; do rm -f "/dev/shm/faultline.$s"; done
  # fiu-run's control FIFOs are removed by the process at exit; not so after a kill.
  rm -f "${TMPDIR:-/tmp}"/flcalls-fiu-$$-*
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- policies: one idle policy, and per family a non-matching and a p=0.001 fault --------
policy() { printf 'version = 1\nseed = 42\n[[fault]]\n%s\n' "$2" >"$out/$1.toml"; }
policy idle 'name = "idle"
calls = ["write"]
path = "/dev/null"
error = "EIO"
enabled = false'
policy nomatch-write 'name = "nomatch"
calls = ["write"]
path = "/nonexistent/*"
error = "EIO"'
policy prob-write 'name = "rare"
calls = ["write"]
path = "/dev/null"
error = "EIO"
probability = 0.001'
policy nomatch-fsync 'name = "nomatch"
calls = ["fsync"]
path = "/nonexistent/*"
error = "EIO"'
policy prob-fsync 'name = "rare"
calls = ["fsync"]
error = "EIO"
probability = 0.001'
policy nomatch-malloc 'name = "nomatch"
calls = ["@memory"]
size = "1MiB.."
error = "ENOMEM"'
policy prob-malloc 'name = "rare"
calls = ["malloc"]
error = "ENOMEM"
probability = 0.001'
policy nomatch-open 'name = "nomatch"
calls = ["@open"]
path = "/nonexistent/*"
error = "EMFILE"'
policy prob-open 'name = "rare"
calls = ["@open"]
path = "/dev/null"
error = "EMFILE"
probability = 0.001'
# Every @net call decides and is refused by the addr selector (a port nothing uses).
policy nomatch-net 'name = "nomatch"
calls = ["@net"]
addr = "127.0.0.1:1"
error = "ECONNREFUSED"'
policy prob-net 'name = "rare"
calls = ["connect", "write"]
addr = "127.0.0.1:*"
error = "ECONNREFUSED"
probability = 0.001'
policy nomatch-getaddrinfo 'name = "nomatch"
calls = ["@dns"]
host = "nomatch.invalid"
error = "EAI_AGAIN"'
policy prob-getaddrinfo 'name = "rare"
calls = ["getaddrinfo"]
error = "EAI_AGAIN"
probability = 0.001'

# family ; Google Benchmark binary ; filter ; call_loop modes with N (the run is N and 2N)
families=(
  "write;bench_io;^BM_write_devnull$;write:100000"
  "fsync;bench_io;^BM_fsync_tmpfile$;fsync:100000"
  "malloc;bench_alloc;^BM_malloc_free/64$;malloc:100000"
  "open;bench_io;^BM_open_close$;open-close:50000"
  "net;bench_net;^BM_(connect_|write_udp);connect-udp:20000 write-udp:20000 connect-tcp:10000"
  "getaddrinfo;bench_net;^BM_getaddrinfo_;gai-numeric:20000 gai-localhost:5000"
)
# config name | how (native, passthrough, fiu, faultline) | policy prefix (faultline only)
configs=(
  "native|native|"
  "passthrough|passthrough|"
  "libfiu (fiu-run -x, nothing enabled)|fiu|"
  "faultline idle|faultline|idle"
  "faultline armed, not matching|faultline|nomatch"
  "faultline p=0.001|faultline|prob"
)

# run_in CONFIG_HOW POLICY TAG CMD...: CMD in a clean environment under that configuration.
# A faultline config gets a fresh session (removed by cleanup). With CALLGRIND_OUT=FILE, CMD
# runs under callgrind (profile in FILE), and the preload
# goes to the program's ELF interpreter (--preload) instead of LD_PRELOAD, so that only the
# measured process loads it, not the valgrind launcher.
run_in() {
  local how="$1" policy="$2" tag="$3"
  shift 3
  local envs=(env -u LD_PRELOAD -u FAULTLINE_POLICY -u FAULTLINE_SESSION -u FAULTLINE_SEED
              -u FAULTLINE_LOG -u FAULTLINE_DISABLE -u FIU_ENABLE -u FIU_CTRL_FIFO)
  local preload=""
  case "$how" in
    passthrough) preload="$passthrough" ;;
    fiu) preload="$fiu_lib/fiu_run_preload.so $fiu_lib/fiu_posix_preload.so" ;;
    faultline)
      local session="flcalls-$$-$tag"
      sessions+=("$session")
      rm -f "/dev/shm/faultline.$session"
      preload="$shim"
      envs+=(FAULTLINE_POLICY="$out/$policy.toml" FAULTLINE_SESSION="$session")
      ;;
  esac
  if [ -n "${CALLGRIND_OUT:-}" ]; then
    # libfiu without its remote-control thread and FIFOs: nothing to clean up under valgrind.
    [ "$how" = fiu ] && envs+=(FIU_ENABLE= FIU_CTRL_FIFO=)
    local program="$1"
    shift
    "${envs[@]}" valgrind --tool=callgrind --callgrind-out-file="$CALLGRIND_OUT" \
      "$interp" ${preload:+--preload "$preload"} "$program" "$@"
  elif [ "$how" = fiu ]; then
    # As the issue measures it: fiu-run -x (control FIFOs under a name cleanup knows).
    "${envs[@]}" fiu-run -x -f "${TMPDIR:-/tmp}/flcalls-fiu-$$-$tag" "$@"
  else
    "${envs[@]}" ${preload:+LD_PRELOAD="$preload"} "$@"
  fi
}

gbench() {  # gbench HOW POLICY TAG BINARY FILTER
  local how="$1" policy="$2" tag="$3" binary="$4" filter="$5"
  run_in "$how" "$policy" "$tag" "$build/$binary" --benchmark_filter="$filter" \
    --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
    --benchmark_min_time="$min_time" --benchmark_out="$out/bench.$tag.json" \
    --benchmark_out_format=json >"$out/bench.$tag.log" 2>&1 ||
    { echo "bench/calls.sh: $binary failed (see $out/bench.$tag.log)" >&2; exit 1; }
}

index=0
for centry in "${configs[@]}"; do
  IFS='|' read -r name how prefix <<<"$centry"
  index=$((index + 1))
  echo "== [$index/${#configs[@]}] $name" >&2
  for fentry in "${families[@]}"; do
    IFS=';' read -r family binary filter modes <<<"$fentry"
    policy="${prefix:+$prefix-$family}"
    [ "$prefix" = idle ] && policy=idle
    gbench "$how" "$policy" "$index.$family" "$binary" "$filter"
    for mode in $modes; do
      call="${mode%%:*}"
      n="${mode##*:}"
      for k in "$n" "$((2 * n))"; do
        CALLGRIND_OUT="$out/callgrind.$index.$call.$k" run_in "$how" "$policy" "c$index.$call.$k" "$build/call_loop" "$call" "$k" \
          >"$out/callgrind.$index.$call.$k.log" 2>&1 ||
          { echo "bench/calls.sh: callgrind failed: $name, $call (see $out/callgrind.$index.$call.$k.log)" >&2; exit 1; }
      done
    done
  done
  cleanup
  sessions=()
done
echo "== control: native again" >&2
for fentry in "${families[@]}"; do
  IFS=';' read -r family binary filter modes <<<"$fentry"
  gbench native "" "control.$family" "$binary" "$filter"
done

names=()
for centry in "${configs[@]}"; do names+=("${centry%%|*}"); done
python3 "$root/bench/calls_report.py" "$out" "${names[@]}" | tee "$out/results.md"
echo "results, JSON and callgrind profiles: $out" >&2
