#!/usr/bin/env bash
# Installs the Debian 12 packages faultline needs to build, test and demo; a no-op when they
# are all present. Needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang-format git
  libtomlplusplus-dev libspdlog-dev libfmt-dev libunwind-dev libcli11-dev nlohmann-json3-dev
  libgtest-dev libbenchmark-dev
  python3 sqlite3 coreutils binutils valgrind
  clang libclang-rt-14-dev
  tmux
  libjemalloc2 redis-server redis-tools
  curl
  debootstrap
  lintian man-db groff-base python3-yaml
  fiu-utils hyperfine
  # [target] io_uring: tests/programs/hostile/uring_or_write.c is a liburing user.
  liburing-dev
  # The client test bed (tests/programs/clients): real HTTP clients in four runtimes and a
  # proxy. The JDK, not just the JRE: `java Client.java` compiles the source in memory.
  default-jdk-headless nodejs nginx-light
  # `faultline experiment`: the journal (nlohmann-json) and the report checked in a real
  # headless browser (tests/integration/hostile/experiment_test.cpp).
  nlohmann-json3-dev chromium
  # The seccomp backend's tests (tests/integration/seccomp_test.cpp): Go programs built with
  # `go build`, and static C programs (glibc's libc.a comes with build-essential; musl-gcc).
  golang-go musl-tools
  # The @net armed path's system-call count (tests/integration/hostile/event_facts_test.cpp).
  strace
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "faultline: installing ${missing[*]}" >&2
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
