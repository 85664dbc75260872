#!/usr/bin/env bash
# The README's test command: everything CI checks, on a fresh Debian machine.
#
#   1. Debian prerequisites (scripts/install-deps.sh; apt only when something is missing)
#   2. cargo fmt --check, cargo clippy -D warnings (all targets)
#   3. every test of the workspace under cargo-nextest (falls back to `cargo test`, loudly,
#      when nextest is not installed) — includes the protocol property tests, the fltsim
#      port-semantics tests, the driver end-to-end tests, the client tests and the mingw
#      layout cross-check
#   4. the cross build of portfilter.sys (scripts/build-sys.sh), release and dev profile;
#      the PE image check of both (the release one with the other tests)
#   5. the workspace type-checked for x86_64-pc-windows-msvc (scripts/check-windows.sh)
#   6. the C and C++ example clients cross-compiled and linked for Windows with mingw-w64
#      (scripts/build-examples-windows.sh)
#   7. the PowerShell scripts parsed and their calls bound as PowerShell would
#      (scripts/check-powershell.sh)
#   8. a fuzz smoke: every fuzz target from its committed corpus (scripts/fuzz.sh smoke)
#   9. the end-to-end suites (driver, client, cross-process) once more against the shipped
#      release image, loaded by fltsim's PE loader (FLTSIM_IMAGE=out/portfilter.sys)
#   (as root the tests run with target/ private, as in a checkout under /root)
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step's wall time is printed when the next one starts (and at the end).
step_name=""
step_start=$SECONDS
step_done() {
    if [ -n "$step_name" ]; then
        printf '==== %s: %d s\n' "$step_name" $((SECONDS - step_start))
    fi
}
step() {
    step_done
    step_name="$*"
    step_start=$SECONDS
    printf '\n==== %s\n' "$*"
}
target_mode=""
on_exit() {
    step_done
    if [ -n "$target_mode" ]; then
        chmod "$target_mode" target
    fi
}
trap on_exit EXIT

step "Debian prerequisites"
bash scripts/install-deps.sh

step "rustfmt"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cross build of portfilter.sys (x86_64-pc-windows-msvc, no WDK), release profile"
bash scripts/build-sys.sh --sign --no-deps

# The dev profile is what `cargo make` (its default) and `cargo wdk build` compile on Windows.
step "cross build of portfilter.sys, dev profile, and its PE image check"
bash scripts/build-sys.sh --dev --sign --no-deps
PORTFILTER_OUT="$PWD/out/dev" PORTFILTER_REQUIRE_SYS=1 \
    cargo test -p portfilter --locked --test pe_image --test inf -q

step "type check of the workspace for x86_64-pc-windows-msvc"
bash scripts/check-windows.sh

step "C and C++ example clients cross-built for Windows (mingw-w64)"
bash scripts/build-examples-windows.sh

step "static check of the Windows PowerShell scripts"
bash scripts/check-powershell.sh

step "tests"
export PORTFILTER_REQUIRE_SYS=1
# Run the tests as they run from a checkout that other users cannot enter (one under
# /root, or in a `mktemp -d` directory): as root, target/ is made private (0700) for the
# run and its mode restored afterwards (on_exit), so a test that lets another uid load or
# run something from the build tree fails here, not only on such a machine.
# (scripts/check-private-clone.sh does the full thing: a clone inside a 0700 directory.)
if [ "$(id -u)" -eq 0 ] && [ -d target ]; then
    target_mode=$(stat -c %a target)
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

step "fuzz smoke (every fuzz target from its committed corpus, a minute in all)"
# Builds the fuzz targets instrumented (cargo-fuzz, installed when missing) and runs each
# from fuzz/corpus, so a crash found once stays fixed. Campaigns: scripts/fuzz.sh campaign.
bash scripts/fuzz.sh smoke 60
