#!/usr/bin/env bash
# Every benchmark of docs/performance.md, in one go: about 7.5 minutes on a 2-core machine,
# plus the first build.
#
#   bench/all.sh            build (RelWithDebInfo) into build-bench/, run the four parts, print
#
#   bench/run.sh        write/pwrite/read/fsync/open+close: native, passthrough, faultline idle,
#                       armed-not-matching, p=0.001; with the kernel and without; callgrind
#   bench/alloc.sh      malloc+free (64 B and 4 KiB): native, idle, @memory armed, p=0.001
#   bench/calls.sh      write, fsync, malloc+free, open+close, connect, write on a socket,
#                       getaddrinfo: the same configs plus libfiu, side by side
#   bench/programs.sh   redis-benchmark, sqlite3, python3 and `faultline run` start-up,
#                       control latency
#
# Each part's raw data stays in build-bench/bench-results/ (the parts' own subdirectories);
# the tables of all four go to build-bench/bench-results/all.md, headed by the machine, the
# tool versions and the load average before and after. The parts take the environment
# variables their headers list (FAULTLINE_BENCH_BUILD for all of them). Each part removes the
# sessions, servers and files it created, also when it fails or is interrupted.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
export FAULTLINE_BENCH_BUILD="${FAULTLINE_BENCH_BUILD:-$root/build-bench}"
results="$FAULTLINE_BENCH_BUILD/bench-results"
unset FAULTLINE_BENCH_OUT  # each part keeps its own default directory under $results

"$root/scripts/deps.sh"
mkdir -p "$results"
started=$(date +%s)

version() { "$@" 2>&1 | head -1 || true; }
{
  echo "Machine: $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)," \
       "kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "Tools: $(version g++ --version | sed 's/^g++ (.*) /g++ /'), glibc $(ldd --version | head -1 | awk '{print $NF}')," \
       "Google Benchmark $(dpkg-query -W -f='${Version}' libbenchmark-dev 2>/dev/null)," \
       "$(version valgrind --version), libfiu $(dpkg-query -W -f='${Version}' libfiu0 2>/dev/null)," \
       "$(version redis-server --version | awk '{print $1, $3}'), sqlite3 $(version sqlite3 --version | awk '{print $1}')," \
       "$(version /usr/bin/python3 --version), $(version hyperfine --version)"
  echo "Load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$results/all-machine.txt"

part() {  # part NAME: runs bench/NAME.sh, its tables to $results/all.NAME.md
  echo "==== bench/$1.sh" >&2
  local t0=$(date +%s)
  "$root/bench/$1.sh" >"$results/all.$1.md"
  echo "==== bench/$1.sh: $(( $(date +%s) - t0 )) s" >&2
}
part run
part alloc
part calls
part programs

{
  cat "$results/all-machine.txt"
  echo "Load average at end: $(cut -d' ' -f1-3 /proc/loadavg); total $(( $(date +%s) - started )) s"
  for name in run alloc calls programs; do
    printf '\n## bench/%s.sh\n\n' "$name"
    cat "$results/all.$name.md"
  done
} >"$results/all.md"
cat "$results/all.md"
echo "all results: $results/all.md (raw data beside it)" >&2
