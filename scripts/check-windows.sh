#!/usr/bin/env bash
# Type-checks the whole workspace for x86_64-pc-windows-msvc on Linux, so that every
# Windows-only line (the client's and portctl's fltlib calls through windows-sys, the
# driver's Windows glue, the platform gating of the simulator crates) is compiled on every
# CI run. A type check needs no linker and no Windows SDK.
#
#   scripts/check-windows.sh          (no arguments; installs missing Debian packages first)
#
# Two cargo invocations, with Debian's rustc-web/cargo-web 1.96 and rust-web-src building
# std for the Windows target (-Zbuild-std; RUSTC_BOOTSTRAP=1), warnings denied:
#
#   1. cargo check --workspace          libraries and binaries of every member, features
#                                       unified across the workspace as in a
#                                       `cargo build --workspace` on Windows. portfilter is
#                                       checked without its default `wdk` feature:
#                                       windows-drivers-rs needs the WDK itself.
#   2. cargo check --workspace --exclude portfilter --exclude portfilter-rlib --all-targets
#                                       tests, benches and examples too: the simulator
#                                       crates and the tests that need them compile to
#                                       nothing on Windows, portfilter-sim to a stub. The
#                                       driver's two packages are left out: tests are built
#                                       with unwinding panics, which its no_std cdylib
#                                       cannot have, and a test harness brings std, whose
#                                       panic handler clashes with the driver's (its tests
#                                       are Linux-only, under fltsim).
#                                       -Zpanic-abort-tests builds them with abort instead,
#                                       so that std is built once (a type check does not
#                                       care about the panic strategy).
#
# What this cannot check: the `wdk` feature (wdk, wdk-alloc, wdk-panic, wdk-build need a
# WDK), linking against FltLib.dll and running anything.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=x86_64-pc-windows-msvc

[ "$#" -eq 0 ] || { sed -n '2,/^set -euo pipefail/{/^set -euo/!p}' "$0"; exit 2; }

log() { echo "check-windows: $*" >&2; }
die() { echo "check-windows: error: $*" >&2; exit 1; }

"$root/scripts/install-deps.sh" >/dev/null   # a no-op when everything is installed

cargo_bin=/usr/bin/cargo
rustc_bin=/usr/bin/rustc
[ -x "$cargo_bin" ] && [ -x "$rustc_bin" ] || die "Debian's rustc-web and cargo-web are missing (scripts/install-deps.sh)"
[ -d /usr/lib/rustlib/src/rust/library ] || die "rust-web-src is missing (scripts/install-deps.sh)"
log "toolchain: $("$rustc_bin" -V)"

# RUSTFLAGS replaces .cargo/config.toml's target rustflags, so repeat +crt-static from there.
# Dependencies (and the standard library) are built with --cap-lints, so -D warnings only
# applies to this workspace's crates.
rustflags="-C target-feature=+crt-static -D warnings"

check() {
    (
        cd "$root"
        env -u CARGO_ENCODED_RUSTFLAGS RUSTC="$rustc_bin" RUSTC_BOOTSTRAP=1 RUSTFLAGS="$rustflags" \
            CARGO_TARGET_DIR="$root/target/windows-check" \
            "$cargo_bin" check --locked --target "$target" \
            -Zbuild-std=std,panic_abort -Zpanic-abort-tests --no-default-features "$@"
    )
}

log "1/2 cargo check --workspace (lib + bins, no default features)"
check --workspace --features portfilter-client/async
log "2/2 cargo check --workspace --exclude portfilter --exclude portfilter-rlib --all-targets"
check --workspace --exclude portfilter --exclude portfilter-rlib --all-targets \
    --features portfilter-client/async
log "the workspace type-checks for $target"
