#!/usr/bin/env bash
# Builds faultline with warnings as errors and runs the whole test suite (ctest).
#   scripts/test.sh                 normal build, unit + integration tests
#   FAULTLINE_SANITIZE=address scripts/test.sh   ASan+UBSan build (unit tests)
#   FAULTLINE_SANITIZE=thread  scripts/test.sh   TSan build (unit tests)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

sanitize="${FAULTLINE_SANITIZE:-}"
build="build${sanitize:+-$sanitize}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFAULTLINE_WERROR=ON \
      -DFAULTLINE_SANITIZE="$sanitize" >/dev/null
if [ -n "$sanitize" ]; then
  cmake --build "$build" -j"$(nproc)" --target unit_tests
else
  cmake --build "$build" -j"$(nproc)"
fi

if [ -n "$sanitize" ]; then
  # The integration tests preload the shim into unmodified programs, which a sanitizer
  # runtime cannot follow; the sanitizers check the engine, fd table and control block.
  ctest --test-dir "$build" --output-on-failure -j2 -L unit
else
  ctest --test-dir "$build" --output-on-failure -j2
fi
