#!/usr/bin/env bash
# Installs the Debian packages that portfilter's tests, the layout cross-check and the
# cross build of portfilter.sys need. Idempotent: when every package is already installed
# it does nothing (no apt-get at all); otherwise it runs `apt-get update` once and
# `apt-get install -y` for the missing ones.
#
#   rustc-web cargo-web rust-web-src  Debian's Rust 1.96 with the library sources, used with
#                                     -Zbuild-std to build core+alloc for
#                                     x86_64-pc-windows-msvc (rustup here has no such target)
#   lld                               lld-link, the PE/COFF linker for the cross build
#   clang-14                          compiles src/glue/usercopy.c (SEH) for the MSVC target
#   llvm                              llvm-readobj / llvm-objdump to inspect the image by hand
#   gcc-mingw-w64-x86-64              x86_64-w64-mingw32-gcc + the mingw-w64 DDK headers for
#                                     the struct layout cross-check; with mingw-w64's
#                                     <fltuser.h> and libfltlib.a it cross-builds the C
#                                     example for Windows (scripts/build-examples-windows.sh)
#   g++-mingw-w64-x86-64 libasio-dev  x86_64-w64-mingw32-g++(-posix) and standalone asio: the
#                                     C++ example (examples/cpp-asio) for Windows
#   make                              the examples' Makefiles
#   osslsigncode openssl              optional test-signing of the cross-built image
#   python3                           scripts/pe-checksum.py, the INF stamping step
#
# Usage: scripts/install-deps.sh            (as root, or with sudo available)
#        scripts/install-deps.sh --check    (only report what is missing; exit 1 if any)
set -euo pipefail

packages=(
    rustc-web
    cargo-web
    rust-web-src
    lld
    clang-14
    llvm
    gcc-mingw-w64-x86-64
    g++-mingw-w64-x86-64
    libasio-dev
    make
    osslsigncode
    openssl
    python3
)

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing=()
for p in "${packages[@]}"; do
    is_installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-deps: all Debian prerequisites present (${packages[*]})"
    exit 0
fi

if [ "${1:-}" = "--check" ]; then
    echo "install-deps: missing Debian packages: ${missing[*]}" >&2
    exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    fi
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"

still=()
for p in "${missing[@]}"; do
    is_installed "$p" || still+=("$p")
done
if [ "${#still[@]}" -ne 0 ]; then
    echo "install-deps: still missing after apt-get: ${still[*]}" >&2
    exit 1
fi
echo "install-deps: done"
