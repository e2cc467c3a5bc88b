#!/usr/bin/env bash
# Whole programs under faultline: what a real program pays, next to a native run.
# See docs/performance.md ("Whole programs").
#
#   bench/programs.sh       build (RelWithDebInfo) into build-bench/, measure, print tables
#
#   redis         redis-benchmark (SET and GET, 50 clients) against a redis-server on
#                 127.0.0.1 and a free port: native; the server under `faultline run` with
#                 nothing armed; and with an armed @net fault that never fires (addr on another
#                 port, so every socket call of the server takes the armed path and decides).
#                 REDIS_ROUNDS interleaved rounds, median requests per second.
#   sqlite3       100,000 INSERTs in 10 transactions into a fresh database on disk: native,
#                 shim idle, @write/@fsync/@read (path) and @memory (size) armed, not matching.
#   python3       `python3 -c pass` start-up: native, shim idle, under `faultline run`.
#   start-up      `faultline run -q -- true` and the shim alone (LD_PRELOAD) against `true`:
#                 loaded with no policy, and with an idle one (compiled, its session made);
#                 the shim's stripped size and DT_NEEDED list.
#   control       from spawning `faultline enable` to the first injected failure seen by a
#                 looping target (bench/ctl_latency.py), median of CTL_TRIALS.
# The start-up rows use hyperfine (Debian package hyperfine): median wall-clock time. Every
# row runs through `env` (the native rows too), so each pays the same extra exec.
#
# Environment: FAULTLINE_BENCH_BUILD (default <repo>/build-bench), FAULTLINE_BENCH_OUT
# (default <build>/bench-results/programs), REDIS_REQUESTS (150000 per test), REDIS_ROUNDS (5),
# SQLITE_RUNS (10), STARTUP_RUNS (200), PYTHON_RUNS (60), CTL_TRIALS (20).
# Takes about 2.5 minutes. Servers, sessions and the database are removed on exit, also on
# failure or Ctrl-C.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="${FAULTLINE_BENCH_BUILD:-$root/build-bench}"
out="${FAULTLINE_BENCH_OUT:-$build/bench-results/programs}"
redis_requests="${REDIS_REQUESTS:-150000}"
redis_rounds="${REDIS_ROUNDS:-5}"
sqlite_runs="${SQLITE_RUNS:-10}"
startup_runs="${STARTUP_RUNS:-200}"
python_runs="${PYTHON_RUNS:-60}"
ctl_trials="${CTL_TRIALS:-20}"
python=/usr/bin/python3  # the real interpreter, not a version manager's wrapper script

for tool in cmake hyperfine redis-server redis-benchmark redis-cli sqlite3 "$python"; do
  command -v "$tool" >/dev/null || { echo "bench/programs.sh: $tool is required (scripts/deps.sh)" >&2; exit 1; }
done
echo "== building into $build (RelWithDebInfo)" >&2
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFAULTLINE_BENCH=ON \
      -DFAULTLINE_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target faultline faultline_shim ctl_target >/dev/null
faultline="$build/faultline"
shim="$build/libfaultline.so"
true_bin="$(command -v true)"
[ "$true_bin" = true ] && true_bin=/usr/bin/true  # the builtin: hyperfine -N needs a file

mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.csv "$out"/*.log "$out"/*.toml "$out"/*.sql "$out"/results.md
work="$(mktemp -d "${TMPDIR:-/tmp}/flprograms.XXXXXX")"
sessions=()
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  local s
  for s in "${sessions[@]}"; do rm -f "/dev/shm/faultline.$s"; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

policy() { printf 'version = 1\nseed = 42\n%s\n' "$2" >"$out/$1.toml"; }
policy idle '[[fault]]
name = "idle"
calls = ["write"]
path = "/dev/null"
error = "EIO"
enabled = false'
# Every socket call of the server reaches decide() and is refused by the addr selector.
policy net-elsewhere '[[fault]]
name = "elsewhere"
calls = ["@net"]
addr = "127.0.0.1:1"
error = "ECONNRESET"'
# Every file call takes the armed path (path selector); allocations pay the size floor.
policy files-nomatch '[[fault]]
name = "files"
calls = ["@write", "@fsync", "@read"]
path = "/nonexistent/*"
error = "EIO"
[[fault]]
name = "huge"
calls = ["@memory"]
size = "1GiB.."
error = "ENOMEM"'

clean_env=(env -u LD_PRELOAD -u FAULTLINE_POLICY -u FAULTLINE_SESSION -u FAULTLINE_SEED
           -u FAULTLINE_LOG -u FAULTLINE_DISABLE -u FAULTLINE_SHIM)
# shim_env TAG POLICY: sets $shim_env to an `env` command line (for hyperfine) that preloads the
# shim with POLICY in a session named after TAG (removed by cleanup).
shim_env() {
  local session="flprog-$$-$1"
  sessions+=("$session")
  shim_env="env LD_PRELOAD=$shim FAULTLINE_POLICY=$out/$2.toml FAULTLINE_SESSION=$session"
}

# ---- redis ----------------------------------------------------------------------------------
free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

redis_once() {  # redis_once CONFIG ROUND
  local config="$1" round="$2" port
  port="$(free_port)"
  local server=(redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no
                --daemonize no --dir "$work" --logfile "$out/redis-server.$config.$round.log")
  case "$config" in
    native) "${clean_env[@]}" "${server[@]}" & ;;
    # --json-summary: the fault's `seen` count shows that the server's calls took the armed path.
    idle | armed)
      local policy=idle
      [ "$config" = armed ] && policy=net-elsewhere
      "${clean_env[@]}" "$faultline" run -q -p "$out/$policy.toml" -s "flprog-$$-redis" \
        --json-summary "$out/redis.$config.$round.summary.json" -- "${server[@]}" &
      ;;
  esac
  server_pid=$!
  sessions+=("flprog-$$-redis")
  local tries=0
  until [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; do
    tries=$((tries + 1))
    [ "$tries" -lt 100 ] || { echo "bench/programs.sh: redis-server ($config) did not start" >&2; exit 1; }
    sleep 0.05
  done
  redis-benchmark -h 127.0.0.1 -p "$port" -c 50 -n "$redis_requests" -t set,get --csv \
    >"$out/redis.$config.$round.csv" 2>"$out/redis.$config.$round.log"
  redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

echo "== redis: $redis_rounds rounds of native / idle / armed, $redis_requests requests per test" >&2
for round in $(seq 1 "$redis_rounds"); do
  for config in native idle armed; do redis_once "$config" "$round"; done
done

# ---- sqlite3 --------------------------------------------------------------------------------
echo "== sqlite3: 100,000 inserts in 10 transactions, $sqlite_runs runs per config" >&2
"$python" - "$out/inserts.sql" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, value REAL);\n")
    for t in range(10):
        f.write("BEGIN;\n")
        for i in range(t * 10000, (t + 1) * 10000):
            f.write(f"INSERT INTO t(name, value) VALUES ('row-{i}', {i * 0.5});\n")
        f.write("COMMIT;\n")
PY
db="$work/bench.db"
# hyperfine -N splits a command line into words the way a shell would: quote the .read.
sqlite="sqlite3 $db '.read $out/inserts.sql'"
shim_env sqlite-idle idle
sqlite_idle="$shim_env $sqlite"
shim_env sqlite-armed files-nomatch
sqlite_armed="$shim_env $sqlite"
"${clean_env[@]}" hyperfine -N --style basic --warmup 1 --runs "$sqlite_runs" \
  --prepare "rm -f $db $db-journal" --export-json "$out/sqlite.json" \
  -n native "env $sqlite" -n "shim idle" "$sqlite_idle" -n "armed, not matching" "$sqlite_armed" \
  >"$out/sqlite.log" 2>&1 || { echo "bench/programs.sh: sqlite3 run failed (see $out/sqlite.log)" >&2; exit 1; }
rows="$(sqlite3 "$db" 'SELECT count(*) FROM t')"
[ "$rows" = 100000 ] || { echo "bench/programs.sh: sqlite3 wrote $rows rows, not 100000" >&2; exit 1; }

# ---- start-up -------------------------------------------------------------------------------
echo "== python3 -c pass, $python_runs runs per config" >&2
shim_env python-idle idle
"${clean_env[@]}" hyperfine -N --style basic --warmup 5 --runs "$python_runs" \
  --export-json "$out/python.json" \
  -n native "env $python -c pass" \
  -n "shim idle (LD_PRELOAD)" "$shim_env $python -c pass" \
  -n "faultline run" "env $faultline run -q -- $python -c pass" \
  >"$out/python.log" 2>&1 || { echo "bench/programs.sh: python3 run failed (see $out/python.log)" >&2; exit 1; }

echo "== faultline run -- true, $startup_runs runs per config" >&2
shim_env true-idle idle
"${clean_env[@]}" hyperfine -N --style basic --warmup 20 --runs "$startup_runs" \
  --export-json "$out/startup.json" \
  -n true "env $true_bin" \
  -n "shim loaded, no policy (LD_PRELOAD)" "env LD_PRELOAD=$shim $true_bin" \
  -n "shim idle (LD_PRELOAD)" "$shim_env $true_bin" \
  -n "faultline run -q -- true" "env $faultline run -q -- $true_bin" \
  >"$out/startup.log" 2>&1 || { echo "bench/programs.sh: start-up run failed (see $out/startup.log)" >&2; exit 1; }

# The shim's stripped size and DT_NEEDED list (issue 12: at most 500 KiB; libc and ld.so only).
# A report line, not a test: the size differs with the compiler and linker.
strip -o "$out/libfaultline.stripped.so" "$shim"
{
  echo "stripped_bytes $(stat -c %s "$out/libfaultline.stripped.so")"
  echo "needed $(readelf -d "$shim" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')"
} >"$out/shim.txt"
rm -f "$out/libfaultline.stripped.so"

# ---- control latency ------------------------------------------------------------------------
echo "== control latency, $ctl_trials trials" >&2
"${clean_env[@]}" "$python" "$root/bench/ctl_latency.py" "$faultline" "$build/ctl_target" \
  "$work" "$ctl_trials" >"$out/control.json"

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >"$out/machine.txt"
"$python" "$root/bench/programs_report.py" "$out" "$redis_rounds" | tee "$out/results.md"
echo "results: $out" >&2
