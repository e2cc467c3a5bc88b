#!/usr/bin/env bash
# Instructions per call of the armed, non-matching path (the per-fd verdict cache, see
# docs/performance.md, "The armed, non-matching path"): callgrind counts of bench/call_loop.c
# at N = 20,000 and 2N, (Ir(2N) - Ir(N)) / N, for write, fsync and read armed by one fault that
# never matches (`path = "/nonexistent/*"`), pwrite under the write-only one of these (its
# family armed, the call named by no fault), and write and fsync with nothing armed; each
# minus native. The preload goes to the ELF interpreter (--preload), as in bench/calls.sh.
#
#   bench/quiet.sh [BUILD]   BUILD: a build dir with libfaultline.so and call_loop
#                            (default <repo>/build; -DFAULTLINE_BENCH=ON builds call_loop)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
shim="$build/libfaultline.so"
loop="$(find "$build" -name call_loop -type f -perm -u+x | head -1)"
[ -e "$shim" ] && [ -n "$loop" ] || { echo "bench/quiet.sh: no libfaultline.so or call_loop in $build" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "bench/quiet.sh: valgrind is required" >&2; exit 1; }
interp="$(readelf -l "$loop" | sed -n 's/.*Requesting program interpreter: \(.*\)]$/\1/p')"
out="$(mktemp -d)"
sessions=()
cleanup() {
  local s
  for s in "${sessions[@]}"; do rm -f "/dev/shm/faultline.$s"; done
  rm -rf "$out"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

policy() { printf 'version = 1\nseed = 42\n[[fault]]\n%s\n' "$2" >"$out/$1.toml"; }
policy idle 'name = "idle"
calls = ["write", "fsync"]
path = "/dev/null"
error = "EIO"
enabled = false'
for call in write fsync read; do
  policy "nomatch-$call" "name = \"nomatch\"
calls = [\"$call\"]
path = \"/nonexistent/*\"
error = \"EIO\""
done

n=20000
instructions() {  # POLICY CALL COUNT (POLICY native: no preload)
  local file="$out/cg.$1.$2.$3"
  if [ "$1" = native ]; then
    env -u LD_PRELOAD valgrind --tool=callgrind --callgrind-out-file="$file" "$interp" "$loop" "$2" "$3" \
      >/dev/null 2>"$file.log"
  else
    local session="flquiet-$$-$1-$3"
    sessions+=("$session")
    env -u LD_PRELOAD -u FAULTLINE_SESSION FAULTLINE_POLICY="$out/$1.toml" FAULTLINE_SESSION="$session" \
      valgrind --tool=callgrind --callgrind-out-file="$file" "$interp" --preload "$shim" "$loop" "$2" "$3" \
      >/dev/null 2>"$file.log"
  fi
  sed -n 's/^\(summary\|totals\): \([0-9]*\).*/\2/p' "$file" | head -1
}
per_call() {  # POLICY CALL
  local a b
  a=$(instructions "$1" "$2" "$n")
  b=$(instructions "$1" "$2" $((2 * n)))
  echo $(((b - a + n / 2) / n))
}
printf '| per call | native | preloaded | over native |\n|---|---:|---:|---:|\n'
for row in "write nomatch-write" "fsync nomatch-fsync" "read nomatch-read" "pwrite nomatch-write" \
  "write idle" "fsync idle"; do
  set -- $row
  native=$(per_call native "$1")
  with=$(per_call "$2" "$1")
  case "$2" in
    idle) what="nothing armed" ;;
    "nomatch-$1") what="armed, not matching" ;;
    *) what="family armed, named by no fault" ;;
  esac
  printf '| `%s`, %s | %d | %d | %+d |\n' "$1" "$what" \
    "$native" "$with" $((with - native))
done
