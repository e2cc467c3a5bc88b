#!/usr/bin/env bash
# Builds faultline with warnings as errors and runs the whole test suite (ctest).
#   scripts/test.sh                 normal build, unit + integration tests
#   FAULTLINE_SANITIZE=address scripts/test.sh   ASan+UBSan build (unit tests)
#   FAULTLINE_SANITIZE=leak    scripts/test.sh   LSan build (unit tests)
#   FAULTLINE_SANITIZE=thread  scripts/test.sh   TSan build (unit tests)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

sanitize="${FAULTLINE_SANITIZE:-}"

if [ -z "$sanitize" ]; then
  # Formatting first: it takes a second and says exactly which file to run clang-format on.
  unformatted=$(git ls-files '*.c' '*.cpp' '*.h' '*.hpp' | xargs clang-format --dry-run 2>&1 |
                grep -o '^[^:]*:[0-9]*:[0-9]*: warning' | cut -d: -f1 | sort -u || true)
  if [ -n "$unformatted" ]; then
    echo "clang-format: these files differ from .clang-format (run clang-format -i on them):" >&2
    echo "$unformatted" >&2
    exit 1
  fi
  # The layering (docs/architecture.md, "Libraries"): every include names its folder, and a
  # folder includes only the libraries below it.
  if ! layering=$(python3 scripts/relayout.py --dry-run 2>&1); then
    echo "layering: includes that break docs/architecture.md's rules:" >&2
    echo "$layering" | grep '!!' >&2
    exit 1
  fi
fi

build="build${sanitize:+-$sanitize}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFAULTLINE_WERROR=ON \
      -DFAULTLINE_SANITIZE="$sanitize" >/dev/null
if [ -n "$sanitize" ]; then
  cmake --build "$build" -j"$(nproc)" --target unit_tests faultline
else
  cmake --build "$build" -j"$(nproc)"
fi

if [ -n "$sanitize" ]; then
  # The integration tests preload the shim into unmodified programs, which a sanitizer
  # runtime cannot follow (docs/reliability.md lists them); the sanitizers check the engine,
  # compiler and control block through the unit tests, and the CLI's compiler path here.
  ctest --test-dir "$build" --output-on-failure -j2 -L unit
  for policy in examples/*.toml tests/fuzz/corpus/policy/*; do
    status=0
    "$build/faultline" validate "$policy" >/dev/null 2>&1 || status=$?
    if [ "$status" -ne 0 ] && [ "$status" -ne 2 ]; then
      echo "sanitized faultline validate $policy: exit $status" >&2
      exit 1
    fi
  done
  echo "sanitized CLI: validated $(ls examples/*.toml tests/fuzz/corpus/policy/* | wc -l) policies"
else
  ctest --test-dir "$build" --output-on-failure -j2 | tee "$build/ctest-summary.log"
fi
