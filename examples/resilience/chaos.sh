#!/usr/bin/env bash
# Chaos tests from a shell, for suites that are not C++: the resilience patterns of a Python
# client (client.py), proven under faults injected by `faultline run`, steered live with
# `faultline status` / `faultline disable`, and asserted on exit codes and faultline's counters.
#
#   FAULTLINE=/path/to/faultline RESILIENCE_SERVER=/path/to/resilience_server ./chaos.sh
#
# Both default to the names in PATH. Exit status 0 when every check passed; each failed check
# prints what it expected and what it got. Everything it starts is stopped on exit.
set -uo pipefail

FAULTLINE=${FAULTLINE:-faultline}
SERVER=${RESILIENCE_SERVER:-resilience_server}
here=$(cd "$(dirname "$0")" && pwd)
client=(python3 "$here/client.py")
work=$(mktemp -d /tmp/fl-chaos-XXXXXX)
failures=0
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

# Waits (at most $3 seconds) until file $1 has a line containing $2.
wait_for_line() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# The injected count of fault $2 in a `faultline run --json-summary` file $1.
injected() {
  python3 -c 'import json,sys
faults = json.load(open(sys.argv[1]))["faults"]
print(next(f["injected"] for f in faults if f["name"] == sys.argv[2]))' "$1" "$2"
}

# ---- the service ---------------------------------------------------------------------------
"$SERVER" --max-seconds 170 >"$work/server.out" 2>&1 &
pids+=($!)
wait_for_line "$work/server.out" "listening on port" 10 || { echo "server did not start" >&2; exit 1; }
port=$(sed -n 's/^listening on port \([0-9]*\)$/\1/p' "$work/server.out")
addr="127.0.0.1:$port"

# ---- 1. retry: 30% of connects reset, every call still answered ----------------------------
cat >"$work/retry.toml" <<EOF
version = 1
seed = 42
[[fault]]
name = "flaky"
calls = ["connect"]
addr = "$addr"
error = "ECONNRESET"
probability = 0.3
EOF
timeout 60 "$FAULTLINE" run -q --json-summary "$work/retry.json" -p "$work/retry.toml" -- \
  "${client[@]}" --port "$port" --calls 20 --attempts 6 --breaker-threshold 0 >"$work/retry.out"
status=$?
resets=$(sed -n 's/^summary .* resets=\([0-9]*\) .*/\1/p' "$work/retry.out")
if [ "$status" -ne 0 ]; then
  fail "retry: expected exit 0 (every call answered), got $status"
elif [ "$(injected "$work/retry.json" flaky)" -lt 1 ]; then
  fail "retry: the fault never fired"
elif [ "$(injected "$work/retry.json" flaky)" -ne "$resets" ]; then
  fail "retry: faultline injected $(injected "$work/retry.json" flaky) resets, the client saw $resets"
else
  pass "retry survives 30% ECONNRESET ($resets resets, every call answered)"
fi

# ---- 2. timeout: a partition ends with the client's timeout (exit 3), not a hang -----------
cat >"$work/partition.toml" <<EOF
version = 1
[[fault]]
name = "partition"
calls = ["connect"]
addr = "$addr"
blackhole = true
EOF
timeout 60 "$FAULTLINE" run -q --json-summary "$work/partition.json" -p "$work/partition.toml" -- \
  "${client[@]}" --port "$port" --calls 1 --attempts 1 --timeout 0.3 >"$work/partition.out"
status=$?
if [ "$status" -ne 3 ]; then
  fail "timeout: expected exit 3 (timed out), got $status: $(cat "$work/partition.out")"
elif [ "$(injected "$work/partition.json" partition)" -ne 1 ]; then
  fail "timeout: expected 1 partitioned connect, faultline injected $(injected "$work/partition.json" partition)"
else
  pass "timeout fires under a partition"
fi

# ---- 3. circuit breaker: opens on refused connects, closes after a live disable -------------
session="chaos-breaker-$$"
cat >"$work/breaker.toml" <<EOF
version = 1
[[fault]]
name = "refuse"
calls = ["connect"]
addr = "$addr"
error = "ECONNREFUSED"
EOF
timeout 60 "$FAULTLINE" run -q -s "$session" -p "$work/breaker.toml" -- \
  "${client[@]}" --port "$port" --calls 400 --interval 0.02 --attempts 1 \
  --breaker-threshold 3 --breaker-cooldown 0.2 --until-recovered >"$work/breaker.out" \
  2>"$work/breaker.err" &
run_pid=$!
pids+=("$run_pid")
if ! wait_for_line "$work/breaker.out" "breaker half_open->open" 20; then
  fail "breaker: the circuit never opened and re-opened: $(cat "$work/breaker.out" "$work/breaker.err")"
else
  "$FAULTLINE" status "$session" >"$work/status.out" ||
    fail "breaker: faultline status exited $?"
  grep -q "^refuse " "$work/status.out" || fail "breaker: status does not list the fault"
  "$FAULTLINE" disable "$session" refuse >/dev/null || fail "breaker: faultline disable exited $?"
fi
wait "$run_pid"
status=$?
if [ "$status" -ne 0 ]; then
  fail "breaker: expected exit 0 (recovered), got $status: $(cat "$work/breaker.err")"
elif ! grep -q "breaker half_open->closed" "$work/breaker.out"; then
  fail "breaker: the circuit never closed"
elif ! grep -q "failure=circuit_open" "$work/breaker.out"; then
  fail "breaker: no call was short-circuited while it was open"
else
  pass "circuit opens on refused connects and closes after the fault is disabled live"
fi
# The session ended with its program: asking for it finds nothing (exit 1).
"$FAULTLINE" status "$session" >/dev/null 2>&1
[ $? -eq 1 ] || fail "breaker: the session outlived its program"

# ---- 4. fallback: the name does not resolve, the default answer is used --------------------
cat >"$work/dns.toml" <<EOF
version = 1
[[fault]]
name = "dns"
calls = ["getaddrinfo"]
host = "localhost"
error = "EAI_AGAIN"
EOF
timeout 60 "$FAULTLINE" run -q --json-summary "$work/dns.json" -p "$work/dns.toml" -- \
  "${client[@]}" --host localhost --port "$port" --calls 2 --attempts 2 --breaker-threshold 0 \
  --fallback default >"$work/dns.out"
status=$?
if [ "$status" -ne 0 ]; then
  fail "fallback: expected exit 0 (answered from the fallback), got $status"
elif [ "$(grep -c 'source=fallback value=default' "$work/dns.out")" -ne 2 ]; then
  fail "fallback: expected 2 fallback answers: $(cat "$work/dns.out")"
elif [ "$(injected "$work/dns.json" dns)" -ne 4 ]; then
  fail "fallback: expected 4 failed lookups (2 calls x 2 attempts), faultline injected $(injected "$work/dns.json" dns)"
else
  pass "fallback answers when DNS fails"
fi
# ...and without the fallback the failure is reported as a DNS failure (exit 6).
timeout 60 "$FAULTLINE" run -q -p "$work/dns.toml" -- \
  "${client[@]}" --host localhost --port "$port" --calls 1 --attempts 1 >/dev/null
status=$?
[ "$status" -eq 6 ] && pass "no fallback: exit 6 (dns)" || fail "no fallback: expected exit 6, got $status"

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "all chaos checks passed"
