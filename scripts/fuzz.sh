#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) and runs each for a bounded time.
#   scripts/fuzz.sh            60 s per target (what CI runs)
#   FUZZ_SECONDS=1800 scripts/fuzz.sh   a long run
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
seconds="${FUZZ_SECONDS:-60}"
build=build-fuzz
CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFAULTLINE_SANITIZE=fuzzer -DFAULTLINE_FUZZ=ON -DFAULTLINE_TESTS=OFF -DFAULTLINE_BENCH=OFF \
  >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz_policy fuzz_block
for target in policy block; do
  corpus="$build/corpus-$target"
  mkdir -p "$corpus" "tests/fuzz/corpus/$target"
  echo "fuzz_$target: ${seconds}s"
  "$build/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "$corpus" "tests/fuzz/corpus/$target" 2>&1 | tail -12
done
