#!/usr/bin/env bash
# What power-cut tracking ([durability], docs/policy.md) costs, and how long a cut takes.
# See docs/performance.md ("Power cuts").
#
#   bench/durability.sh     measure with an existing build, print a Markdown table
#
# 1. sqlite3 inserts, one transaction each (synchronous=FULL), in WAL mode (appends to the
#    WAL) and in rollback-journal mode (pages overwritten in place): `faultline run` with the
#    database tracked vs the same run without [durability], interleaved, best of $REPS.
# 2. Undo bytes vs bytes written: the undo log's size against the sqlite3 process's wchar.
# 3. A cut with $CUT_MIB MiB written since the last fsync, appended and overwritten in place:
#    the run's wall time with the cut (kill + revert) minus the same run without it.
#
# Environment: FAULTLINE_BENCH_BUILD (default <repo>/build: faultline and libfaultline.so
# already built), ROWS (default 2000), REPS (default 3), CUT_MIB (default 1024), BENCH_DIR
# (default a fresh directory under /var/tmp, on disk: not tmpfs). CUT_MIB=0 skips part 3.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="${FAULTLINE_BENCH_BUILD:-$root/build}"
fl="$build/faultline"
rows="${ROWS:-2000}"
reps="${REPS:-3}"
cut_mib="${CUT_MIB:-1024}"
work="${BENCH_DIR:-$(mktemp -d /var/tmp/fl-bench-durable-XXXXXX)}"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/d"
[[ -x "$fl" ]] || { echo "no $fl: build the faultline target first" >&2; exit 2; }

now_ms() { date +%s%3N; }

cat >"$work/off.toml" <<EOF
version = 1
EOF
cat >"$work/on.toml" <<EOF
version = 1
[durability]
path = "$work/d/*"
EOF

# The insert script: one autocommitted insert per row, then the process's write count.
{
  echo "pragma synchronous=full;"
  for ((i = 0; i < rows; i++)); do echo "insert into t values($i, randomblob(200));"; done
  echo ".shell grep wchar /proc/\$PPID/io"
  echo ".shell stat -c 'undo %s' $work/.faultline-undo.flbench/log 2>/dev/null || true"
} >"$work/inserts.sql"

# One timed run: prints "MS WCHAR UNDO".
sqlite_run() { # MODE POLICY
  rm -f "$work/d/db" "$work/d/db-wal" "$work/d/db-shm" "$work/d/db-journal"
  sqlite3 "$work/d/db" "pragma journal_mode=$1; create table t(x, y);" >/dev/null
  local t0 t1 out
  t0=$(now_ms)
  out=$("$fl" run -q -s flbench -p "$2" -- sqlite3 "$work/d/db" <"$work/inserts.sql" 2>/dev/null)
  t1=$(now_ms)
  local wchar undo
  wchar=$(awk '/wchar/ {print $2}' <<<"$out")
  undo=$(awk '/^undo/ {print $2}' <<<"$out")
  echo "$((t1 - t0)) ${wchar:-0} ${undo:-0}"
}

best() { sort -n | head -1; }

echo "## Power cuts: tracking cost and cut time"
echo
echo "$(uname -r), $(nproc) cores, $(df -T "$work" | awk 'NR==2 {print $2}') at $work, $rows rows, best of $reps"
echo
echo "| workload | tracking off | tracking on | overhead | undo bytes / bytes written |"
echo "|---|---|---|---|---|"
for mode in wal delete; do
  off=() on=() ratio=""
  for ((r = 0; r < reps; r++)); do
    read -r ms _ _ < <(sqlite_run "$mode" "$work/off.toml")
    off+=("$ms")
    read -r ms wchar undo < <(sqlite_run "$mode" "$work/on.toml")
    on+=("$ms")
    ratio=$(awk -v u="$undo" -v w="$wchar" 'BEGIN {printf "%.2f (%d / %d)", (w ? u / w : 0), u, w}')
  done
  o=$(printf '%s\n' "${off[@]}" | best)
  n=$(printf '%s\n' "${on[@]}" | best)
  pct=$(awk -v a="$o" -v b="$n" 'BEGIN {printf "%+.1f%%", (b - a) * 100 / a}')
  label=$([[ $mode == wal ]] && echo "sqlite3 WAL inserts (appends)" || echo "sqlite3 rollback-journal inserts (overwrites)")
  echo "| $label | ${o} ms | ${n} ms | $pct | $ratio |"
done

[[ $cut_mib -gt 0 ]] || exit 0

# 3. The cut. The writer: a durable start (fsync), then CUT_MIB MiB without fsync, then the
# fsync of a marker that the policy turns into a power cut. `run` reports the time from the cut
# to the end of the revert (killing the session included).
cat >"$work/cut.toml" <<EOF
version = 1
[durability]
path = "$work/d/*"
[[fault]]
name = "cut"
calls = ["fsync"]
path = "*/marker"
powercut = true
EOF

cut_run() { # KIND
  rm -f "$work/d/big"
  if [[ $1 == overwrite ]]; then
    dd if=/dev/zero of="$work/d/big" bs=1M count="$cut_mib" conv=fsync status=none
  else
    : >"$work/d/big"
  fi
  sync
  "$fl" run -p "$work/cut.toml" -- sh -c "dd if=/dev/zero of=$work/d/big bs=1M count=$cut_mib conv=notrunc status=none; dd if=/dev/null of=$work/marker conv=fsync status=none" 2>&1 >/dev/null |
    sed -n 's/.*power cut lost \([^ ]*\) .*(reverted \(.*\) after the cut).*/\1 \2/p'
}

echo
echo "| $cut_mib MiB written since the last fsync | lost | cut to end of revert |"
echo "|---|---|---|"
for kind in append overwrite; do
  read -r lost took < <(cut_run "$kind")
  echo "| $kind | $lost | $took |"
done
