#!/usr/bin/env bash
# How close `latency` on @net comes to the latency asked for (docs/network.md, "latency":
# accuracy). 50 request/reply rounds per setting against a loopback echo server
# (fl_latency_client, whose server answers each request in two halves 30 ms apart), once
# unfaulted and once under latency = 20ms, 200ms and 2s, waiting with poll and with
# edge-triggered epoll. The added delay of a round is its time minus the unfaulted median;
# printed as p50/p99 per setting.
#
#   bench/latency.sh        uses build/ (faultline, libfaultline.so, fl_latency_client)
#
# Environment: FAULTLINE_BUILD (default <repo>/build), ROUNDS (default 50).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=${FAULTLINE_BUILD:-$repo/build}
rounds=${ROUNDS:-50}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

rtts() {  # policy-or-empty mode -> one round time (us) per line
  local policy=$1 mode=$2
  if [[ -z $policy ]]; then
    LATENCY_CLIENT_TRACE=1 "$build/fl_latency_client" "$port" "$mode" "$rounds"
  else
    LATENCY_CLIENT_TRACE=1 "$build/faultline" run -p "$policy" -- \
      "$build/fl_latency_client" "$port" "$mode" "$rounds" 2>/dev/null
  fi | sed -n 's/^rt_us=//p'
}

printf '| latency | waiter | p50 added | p99 added | max added |\n|---|---|---|---|---|\n'
for mode in poll epoll-et; do
  rtts "" "$mode" >"$work/base"
  for latency in 20ms 200ms 2s; do
    cat >"$work/p.toml" <<TOML
version = 1
[[fault]]
name = "slow"
calls = ["connect", "recv", "recvfrom", "recvmsg", "read"]
addr = "127.0.0.1:$port"
latency = "$latency"
TOML
    rtts "$work/p.toml" "$mode" >"$work/run"
    python3 - "$work/base" "$work/run" "$latency" "$mode" <<'PY'
import sys
base = sorted(int(x) for x in open(sys.argv[1]))
run = sorted(int(x) for x in open(sys.argv[2]))
median = base[len(base) // 2]
added = [x - median for x in run]
pct = lambda p: added[min(len(added) - 1, int(p * len(added)))]
ms = lambda us: "%.1f ms" % (us / 1000)
print("| %s | %s | %s | %s | %s |" % (sys.argv[3], sys.argv[4], ms(pct(0.5)), ms(pct(0.99)), ms(added[-1])))
PY
  done
done
