#!/usr/bin/env bash
# Builds the Debian packages faultline and faultline-dev in one command:
#
#   scripts/package.sh            -> build-package/packages/faultline{,-dev}_VERSION-1_ARCH.deb
#
# A tree of its own (build-package/, no tests, no benchmarks) configured for /usr, so that
# the API's compiled-in default shim is the packaged /usr/lib/faultline/libfaultline.so; then
# only the packaged targets are built and cpack (cmake/cpack.cmake) makes both packages,
# binaries stripped, Depends from dpkg-shlibdeps plus libunwind8. With lintian installed the
# packages are checked too (errors fail the script).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${FAULTLINE_PACKAGE_BUILD:-build-package}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
      -DFAULTLINE_TESTS=OFF -DFAULTLINE_BENCH=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target faultline faultline_shim faultline_api faultline_man
(cd "$build" && cpack --config CPackConfig.cmake)
ls -l "$build"/packages/*.deb
if command -v lintian >/dev/null 2>&1; then
  lintian --fail-on error "$build"/packages/*.deb
fi
