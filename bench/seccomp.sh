#!/usr/bin/env bash
# What a system call costs under the seccomp backend (docs/performance.md, "The seccomp
# backend"): a statically linked loop of one-byte write(2)s to /dev/null (bench/seccomp_loop.c),
# timed per call, run
#   1. alone (no faultline),
#   2. under `faultline run` with a filter that does not trap write (an @fsync fault):
#      the cost of an untrapped call under the filter,
#   3. with write trapped (a @write fault whose path matches nothing): each call goes to the
#      supervisor, is decided by the engine and continues (not injected),
#   4. as 3, with the fault disabled (the engine finds no enabled fault at once).
# Prints a markdown table of the median and p99 of ROUNDS runs' medians (each of CALLS calls).
#
# Environment: FAULTLINE_BUILD (default <repo>/build), CALLS (default 20000), ROUNDS (default 5),
# CC (default cc).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=${FAULTLINE_BUILD:-$repo/build}
calls=${CALLS:-20000}
rounds=${ROUNDS:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"${CC:-cc}" -O2 -static -o "$work/loop" "$repo/bench/seccomp_loop.c"

cat > "$work/untrapped.toml" <<'TOML'
version = 1
[[fault]]
name = "other"
calls = ["@fsync"]
error = "EIO"
TOML
cat > "$work/trapped.toml" <<'TOML'
version = 1
[[fault]]
name = "miss"
calls = ["write"]
path = "*/no-such-file"
error = "EIO"
TOML
sed 's/^error = "EIO"/error = "EIO"\nenabled = false/' "$work/trapped.toml" > "$work/disabled.toml"

measure() {  # label, command... -> one table row (median of the runs' medians and p99s)
  local label=$1
  shift
  local medians=() p99s=()
  for ((i = 0; i < rounds; i++)); do
    local line
    line=$("$@" "$work/loop" "$calls" 2>/dev/null)
    medians+=("$(sed -n 's/.*median_ns=\([0-9]*\).*/\1/p' <<<"$line")")
    p99s+=("$(sed -n 's/.*p99_ns=\([0-9]*\).*/\1/p' <<<"$line")")
  done
  local m p
  m=$(printf '%s\n' "${medians[@]}" | sort -n | sed -n "$(((rounds + 1) / 2))p")
  p=$(printf '%s\n' "${p99s[@]}" | sort -n | sed -n "$(((rounds + 1) / 2))p")
  printf '| %s | %s | %s |\n' "$label" "$m" "$p"
}

printf '| write(2) to /dev/null | median ns | p99 ns |\n|---|---|---|\n'
measure "no faultline" env
measure "seccomp, write not trapped" "$build/faultline" run -q -p "$work/untrapped.toml" --
measure "seccomp, write trapped, not injected" "$build/faultline" run -q -p "$work/trapped.toml" --
measure "seccomp, write trapped, fault disabled" "$build/faultline" run -q -p "$work/disabled.toml" --
