#!/usr/bin/env bash
# Builds (once) the minimal Debian root that the container-layer test copies faultline's
# installed prefix into and runs under chroot: what a container image is, without Docker.
#
#   make_root.sh ROOT
#
# First choice: `debootstrap --variant=minbase --include=libunwind8 bookworm` from the Debian mirror apt uses
# (FAULTLINE_DEBIAN_MIRROR overrides it), trimmed of docs, manuals, locales and apt caches.
# If no mirror can be reached, the root is assembled from this host's own binaries instead
# (sh, env, sleep, cat and the shared libraries they and faultline need, found with ldd).
# A finished root is marked with ROOT/.faultline-root and reused: CI builds it once. Needs
# root; without it the script says so and exits 0 (the test then skips).
set -euo pipefail

root=${1:?usage: make_root.sh ROOT}
marker="$root/.faultline-root"

# libunwind8: what the faultline package Depends on besides the C and C++ runtimes (the
# package test installs it with dpkg -i). New roots get it from debootstrap --include; a root
# cached before that gets it here, once, from the same mirror (apt-get download on the host).
add_libunwind() {
  [ -x "$root/usr/bin/dpkg" ] || return 0
  chroot "$root" dpkg -s libunwind8 >/dev/null 2>&1 && return 0
  local dir
  dir=$(mktemp -d)
  if (cd "$dir" && timeout 120 apt-get download -q libunwind8 >/dev/null 2>&1); then
    cp "$dir"/libunwind8_*.deb "$root/tmp/"
    chroot "$root" sh -c 'dpkg -i /tmp/libunwind8_*.deb && rm -f /tmp/libunwind8_*.deb' >&2 ||
      echo "make_root.sh: could not install libunwind8 in $root" >&2
  else
    echo "make_root.sh: cannot download libunwind8 (the package test will skip)" >&2
  fi
  rm -rf "$dir"
}

if [ -e "$marker" ]; then
  if [ "$(id -u)" -eq 0 ]; then
    exec 9>"$root.lock"
    flock 9
    add_libunwind
  fi
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "make_root.sh: not root: cannot build a chroot (the container test will skip)" >&2
  exit 0
fi

mkdir -p "$(dirname "$root")"
# One builder at a time (ctest -j): the others wait, then find the marker.
exec 9>"$root.lock"
flock 9
if [ -e "$marker" ]; then
  add_libunwind
  exit 0
fi

tmp="$root.tmp"
rm -rf "$tmp"

mirror=${FAULTLINE_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  # The mirror apt uses (deb822 sources, then the one-line format).
  mirror=$(sed -n 's/^URIs: *\([^ ]*\/debian\)\/\{0,1\} *$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
  [ -n "$mirror" ] || mirror=$(sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\/debian\)\/\{0,1\} .*/\2/p' /etc/apt/sources.list 2>/dev/null | head -1)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
fi

built=""
if command -v debootstrap >/dev/null 2>&1; then
  echo "make_root.sh: debootstrap --variant=minbase --include=libunwind8 bookworm from $mirror" >&2
  if timeout 900 debootstrap --variant=minbase --include=libunwind8 bookworm "$tmp" "$mirror" >"$root.debootstrap.log" 2>&1; then
    rm -rf "$tmp/usr/share/doc" "$tmp/usr/share/man" "$tmp/usr/share/info" \
           "$tmp/usr/share/locale" "$tmp/var/cache/apt/"*.bin "$tmp/var/lib/apt/lists/"*
    find "$tmp/var/cache/apt/archives" -name '*.deb' -delete 2>/dev/null || true
    built="debootstrap (bookworm minbase, $mirror)"
  else
    echo "make_root.sh: debootstrap failed (see $root.debootstrap.log); using host binaries" >&2
    rm -rf "$tmp"
  fi
else
  echo "make_root.sh: debootstrap is not installed (scripts/deps.sh); using host binaries" >&2
fi

if [ -z "$built" ]; then
  mkdir -p "$tmp"/{bin,usr/bin,etc,tmp,dev/shm,proc,lib64,usr/lib}
  chmod 1777 "$tmp/tmp" "$tmp/dev/shm"
  # The programs the test runs, and the C++ runtime an image with faultline needs anyway.
  programs=(/bin/sh /usr/bin/env /bin/sleep /bin/cat)
  libs=(/lib/x86_64-linux-gnu/libstdc++.so.6 /lib/x86_64-linux-gnu/libgcc_s.so.1
        /lib/x86_64-linux-gnu/libm.so.6)
  for p in "${programs[@]}"; do
    cp -L "$p" "$tmp$p"
    for lib in $(ldd "$p" | grep -o '/[^ ]*'); do libs+=("$lib"); done
  done
  for lib in "${libs[@]}"; do
    [ -e "$lib" ] || continue
    mkdir -p "$tmp$(dirname "$lib")"
    cp -L "$lib" "$tmp$lib"
  done
  mknod -m 666 "$tmp/dev/null" c 1 3
  echo "root:x:0:0:root:/root:/bin/sh" >"$tmp/etc/passwd"
  built="host binaries"
fi

mkdir -p "$tmp/dev/shm" "$tmp/proc" "$tmp/tmp"
chmod 1777 "$tmp/dev/shm" "$tmp/tmp"
echo "$built" >"$tmp/.faultline-root"
rm -rf "$root"
mv "$tmp" "$root"
echo "make_root.sh: $root built from $built ($(du -sh "$root" | cut -f1))" >&2
