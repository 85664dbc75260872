#!/usr/bin/env bash
# The README's test command: everything CI checks, on a fresh Debian machine.
#
#   1. Debian prerequisites (scripts/install-deps.sh; apt only when something is missing)
#   2. cargo fmt --check, cargo clippy -D warnings (all targets)
#   3. every test of the workspace under cargo-nextest (falls back to `cargo test`, loudly,
#      when nextest is not installed) — includes the protocol property tests, the fltsim
#      port-semantics tests, the driver end-to-end tests, the client tests and the mingw
#      layout cross-check
#   4. the cross build of portfilter.sys (scripts/build-sys.sh) and the PE image check
#   5. the driver's end-to-end suites (and the client and cross-process ones) once more,
#      against the shipped image loaded by fltsim's PE loader (FLTSIM_IMAGE)
#   (as root the tests run with target/ private, as in a checkout under /root)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==== %s\n' "$*"; }

step "Debian prerequisites"
bash scripts/install-deps.sh

step "rustfmt"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cross build of portfilter.sys (x86_64-pc-windows-msvc, no WDK)"
bash scripts/build-sys.sh --sign

step "tests"
export PORTFILTER_REQUIRE_SYS=1
# Run the tests as they run from a checkout that other users cannot enter (one under
# /root, or in a `mktemp -d` directory): as root, target/ is made private (0700) for the
# run and its mode restored afterwards, so a test that lets another uid load or run
# something from the build tree fails here, not only on such a machine.
# (scripts/check-private-clone.sh does the full thing: a clone inside a 0700 directory.)
if [ "$(id -u)" -eq 0 ] && [ -d target ]; then
    target_mode=$(stat -c %a target)
    trap 'chmod "$target_mode" target' EXIT
    chmod 0700 target
    echo "target/ is private (0700) for the tests (was $target_mode)"
fi
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
else
    echo "cargo-nextest is not installed: running the same tests with cargo test" >&2
    cargo test --workspace --locked --no-fail-fast
fi

# The same end-to-end suites again, with the shipped image instead of the driver's source:
# fltsim's PE loader maps out/portfilter.sys and every harness (driver tests, client
# tests, portfilter-sim and the cross-process portctl / C client tests, whose hosts
# inherit FLTSIM_IMAGE) loads it.
step "end-to-end suites against the shipped image (FLTSIM_IMAGE=out/portfilter.sys)"
export FLTSIM_IMAGE="$PWD/out/portfilter.sys"
if cargo nextest --version >/dev/null 2>&1; then
    # --workspace with a package filter: the same build as above, nothing recompiles.
    cargo nextest run --workspace --locked --no-fail-fast -E \
        '(package(portfilter) | package(portfilter-client) | package(portfilter-sim) | package(portctl)) and not (binary(pe_image) | binary(inf))'
else
    cargo test -p portfilter -p portfilter-client -p portfilter-sim -p portctl --locked --no-fail-fast
fi
unset FLTSIM_IMAGE
