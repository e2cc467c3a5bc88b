#!/usr/bin/env bash
# faultline in two minutes: builds it, then injects I/O faults into unmodified sqlite3 and
# python3 programs, and steers a running program live from the command line.
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
cleanup() {
  [ -n "$loop_pid" ] && kill "$loop_pid" 2>/dev/null || true
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

step "3. Live control: break a running program's storage, then heal it"
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

step "Done. Every injection above is reproducible with the same seed; see docs/ for more."
