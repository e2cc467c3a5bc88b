#!/usr/bin/env bash
# faultline in two minutes: builds it, then injects I/O faults into unmodified sqlite3 and
# python3 programs, slows a network down under a client's own timeout, steers a running
# program live from the command line, and cuts the power under sqlite3.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target faultline faultline_shim >/dev/null
fl="$root/build/faultline"
py=/usr/bin/python3

work=$(mktemp -d /tmp/faultline-demo.XXXXXX)
loop_pid=""
server_pid=""
cleanup() {
  [ -n "$loop_pid" ] && kill "$loop_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '$ %s\n' "$*"; }

step "1. sqlite3 loses its disk in its 4th transaction (examples/sqlite-fsync-eio.toml)"
cat "$root/examples/sqlite-fsync-eio.toml" | sed 's/^/   | /'
say "faultline run -p sqlite-fsync-eio.toml -- sqlite3 -bail shop.db <5 transactions>"
"$fl" run -p "$root/examples/sqlite-fsync-eio.toml" -- sqlite3 -bail shop.db \
  "CREATE TABLE orders(id INTEGER PRIMARY KEY, item TEXT);" \
  "INSERT INTO orders(item) VALUES ('apples');" \
  "INSERT INTO orders(item) VALUES ('pears');" \
  "INSERT INTO orders(item) VALUES ('plums');" \
  "INSERT INTO orders(item) VALUES ('figs');" || echo "   (sqlite3 exited with status $?)"
say "tail -1 faultline-events.jsonl"
tail -1 faultline-events.jsonl
say "sqlite3 shop.db 'PRAGMA integrity_check; SELECT item FROM orders'   # no faults now"
sqlite3 shop.db "PRAGMA integrity_check; SELECT group_concat(item) FROM orders;"

step "2. python3: one log file fails with EIO, the other is written (examples/app-log-eio.toml)"
mkdir -p logs
cat > app.py <<'PY'
import sys
for name in ("logs/a.log", "logs/b.log"):
    try:
        with open(name, "w") as f:
            f.write("hello\n" * 100)
        print(f"  [app] {name}: written")
    except OSError as e:
        print(f"  [app] {name}: OSError errno {e.errno} ({e.strerror})")
PY
say "faultline run -p app-log-eio.toml -- python3 app.py"
"$fl" run -p "$root/examples/app-log-eio.toml" -- "$py" app.py
say "wc -c logs/*.log"
wc -c logs/a.log logs/b.log

step "3. A slow network the client's own timeout sees (examples/slow-network.toml)"
sed -n '/^\[\[fault\]\]/,$p' "$root/examples/slow-network.toml" | sed 's/^/   | /'
cat > server.py <<'PY'
import http.server, sys
class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "3"); self.end_headers()
        self.wfile.write(b"ok\n")
    def log_message(self, *args): pass
http.server.HTTPServer(("127.0.0.1", 8765), Answer).serve_forever()
PY
cat > client.py <<'PY'
import http.client, time
start = time.monotonic()
try:
    c = http.client.HTTPConnection("127.0.0.1", 8765, timeout=1.0)
    c.request("GET", "/")
    body = c.getresponse().read().decode().strip()
    print(f"  [client] answer {body!r} after {time.monotonic() - start:.2f} s")
except OSError as e:
    print(f"  [client] gave up after {time.monotonic() - start:.2f} s: {e}")
PY
"$py" server.py &
server_pid=$!
for _ in $(seq 50); do "$py" -c 'import socket; socket.create_connection(("127.0.0.1", 8765), 0.2)' 2>/dev/null && break; sleep 0.1; done
say "python3 client.py                                        # no faults: the server is instant"
"$py" client.py
say "faultline run -p slow-network.toml -- python3 client.py  # latency 3s, the client's timeout 1s"
"$fl" run -q -p "$root/examples/slow-network.toml" -- "$py" client.py
sed 's/latency = "3s"/latency = "200ms"/' "$root/examples/slow-network.toml" > slow-200ms.toml
say "faultline run -p slow-200ms.toml -- python3 client.py    # latency 200ms: slower, and it works"
"$fl" run -q -p slow-200ms.toml -- "$py" client.py
kill "$server_pid" 2>/dev/null || true
wait "$server_pid" 2>/dev/null || true

step "4. Live control: break a running program's storage, then heal it"
say "faultline run -s demo-live -p flaky-writes.toml -- python3 write_loop.py . 9 &"
"$fl" run -q -s demo-live -p "$root/examples/flaky-writes.toml" -- \
  "$py" "$root/examples/write_loop.py" . 9 &
loop_pid=$!
sleep 1.5
say "faultline enable demo-live flaky-writes"; "$fl" enable demo-live flaky-writes
sleep 1.5
say "faultline set demo-live flaky-writes probability=0.5"
"$fl" set demo-live flaky-writes probability=0.5
sleep 1.5
say "faultline status demo-live"; "$fl" status demo-live
say "faultline panic demo-live      # the kill switch"; "$fl" panic demo-live
sleep 1.5
say "faultline resume demo-live"; "$fl" resume demo-live
sleep 1.0
say "faultline disable demo-live flaky-writes"; "$fl" disable demo-live flaky-writes
wait "$loop_pid" || true
loop_pid=""

step "5. A power cut after sqlite3 committed: an honest disk, then a lying one (examples/power-cut.toml)"
mkdir -p shop
sed "s|/var/lib/shop|$work/shop|" "$root/examples/power-cut.toml" > power-cut.toml
sed 's/enabled = false/enabled = true/' power-cut.toml > power-cut-lying.toml
sed -n '/^\[durability\]/,$p' power-cut.toml | sed 's/^/   | /'
orders="PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS orders(item TEXT); INSERT INTO orders VALUES ('apples'); INSERT INTO orders VALUES ('pears'); INSERT INTO orders VALUES ('plums');"
for disk in honest lying; do
  policy=power-cut.toml
  [ "$disk" = lying ] && policy=power-cut-lying.toml
  rm -f shop/*
  say "faultline run -p $policy -- sh -c 'sqlite3 shop/shop.db \"<WAL mode, 3 committed inserts>\" && touch cut-the-power'"
  "$fl" run -p "$policy" -- sh -c "sqlite3 shop/shop.db \"$orders\" >/dev/null && touch cut-the-power" ||
    echo "   (exit status $?: the power went out)"
  say "sqlite3 shop/shop.db 'SELECT count(*) FROM orders'   # after the cut, $disk disk"
  sqlite3 shop/shop.db "SELECT count(*) || ' orders survived' FROM orders;" 2>&1 | sed 's/^/   /' || true
done

step "Done. Every injection above is reproducible with the same seed; see docs/ for more."
