#!/usr/bin/env bash
# The throughput of an HTTP server under each backend with a @net fault armed that matches
# nothing (docs/performance.md, "HTTP throughput under the two backends"): every socket call
# the fault's family covers is decided and let through, which is the whole cost a run pays
# while no fault fires.
#   - a Go net/http server (tests/programs/go/httpserve, static): alone, then under the
#     seccomp backend, where each accept, read and write on a socket is a round trip to
#     `faultline run`;
#   - nginx (a dynamically linked C server): alone, then under the preload backend, where the
#     same calls go through the shim's wrappers in the server's own thread.
# The load is tests/programs/go/httpload: REQUESTS GETs over CONNS keep-alive connections.
# Prints a markdown table of the median requests/s of ROUNDS runs (and the slowest and
# fastest run), and the ratio to the server alone.
#
# Environment: FAULTLINE_BUILD (default <repo>/build), REQUESTS (default 20000), CONNS
# (default 4), ROUNDS (default 5), NGINX (default nginx from PATH or /usr/sbin).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=${FAULTLINE_BUILD:-$repo/build}
requests=${REQUESTS:-20000}
conns=${CONNS:-4}
rounds=${ROUNDS:-5}
nginx=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
work=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

gobuild() {  # program -> $work/program
  env GOCACHE="$build/go/cache" GOPATH="$build/go/path" GO111MODULE=off CGO_ENABLED=0 GOFLAGS= \
    go build -o "$work/$1" "$repo/tests/programs/go/$1/main.go"
}
gobuild httpserve
gobuild httpload

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/miss.toml" <<'TOML'
version = 1
[[fault]]
name = "miss"
calls = ["@net"]
addr = "10.255.255.1:*"
error = "ECONNREFUSED"
TOML
mkdir -p "$work/nginx/logs" "$work/nginx/tmp"
cat > "$work/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $work/nginx/tmp/body;
  proxy_temp_path $work/nginx/tmp/proxy;
  fastcgi_temp_path $work/nginx/tmp/fastcgi;
  uwsgi_temp_path $work/nginx/tmp/uwsgi;
  scgi_temp_path $work/nginx/tmp/scgi;
  server {
    listen 127.0.0.1:$port;
    location / { return 200 "hello"; }
  }
}
CONF

wait_port() {  # until something accepts on $port (at most 10 s)
  for ((t = 0; t < 100; t++)); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$port" >&2
  return 1
}

# label, server command... -> one table row; sets $median for the ratio of later rows.
measure() {
  local label=$1
  shift
  local runs=()
  for ((i = 0; i < rounds; i++)); do
    "$@" >"$work/server.out" 2>"$work/server.err" &
    server_pid=$!
    wait_port
    local line
    line=$("$work/httpload" -url "http://127.0.0.1:$port/" -n "$requests" -c "$conns")
    runs+=("$(sed -n 's/.* rps \([0-9]*\).*/\1/p' <<<"$line")")
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  done
  local sorted
  sorted=$(printf '%s\n' "${runs[@]}" | sort -n)
  median=$(sed -n "$(((rounds + 1) / 2))p" <<<"$sorted")
  printf '| %s | %s | %s–%s |' "$label" "$median" "$(head -1 <<<"$sorted")" "$(tail -1 <<<"$sorted")"
}

printf '| server | requests/s (median) | range | vs alone |\n|---|---|---|---|\n'
measure "Go net/http, no faultline" "$work/httpserve" -addr "127.0.0.1:$port"
alone=$median
printf ' 1.00 |\n'
measure "Go net/http, seccomp backend, @net fault armed (no match)" \
  "$build/faultline" run -q -p "$work/miss.toml" -- "$work/httpserve" -addr "127.0.0.1:$port"
awk -v a="$median" -v b="$alone" 'BEGIN { printf " %.2f |\n", a / b }'
measure "nginx, no faultline" "$nginx" -p "$work/nginx" -c "$work/nginx/nginx.conf"
alone=$median
printf ' 1.00 |\n'
measure "nginx, preload backend, @net fault armed (no match)" \
  "$build/faultline" run -q -p "$work/miss.toml" -- "$nginx" -p "$work/nginx" -c "$work/nginx/nginx.conf"
awk -v a="$median" -v b="$alone" 'BEGIN { printf " %.2f |\n", a / b }'
