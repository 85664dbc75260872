#!/usr/bin/env bash
# The end-to-end suites under AddressSanitizer and ThreadSanitizer (-Zsanitizer; not in CI:
# each sanitizer rebuilds the dependency tree instrumented, minutes on 2 cores).
#
#   scripts/sanitizers.sh [address|thread|all]   (default: all)
#
# Runs, per sanitizer, the driver's end-to-end tests (the real driver under fltsim, every
# delivery mode, unload with clients in flight, fault sweeps), fltsim's port-semantics
# tests and the client library's tests, each instrumented, and prints each suite's
# result. Reports go to target/sanitizers/<sanitizer>.log.
#
# Toolchain: the rustup nightly when installed, else the stable toolchain with
# RUSTC_BOOTSTRAP=1 (rustup's stable ships the sanitizer runtimes). The standard library
# is NOT rebuilt instrumented (no rust-src component here): AddressSanitizer is complete
# for our code without it; ThreadSanitizer cannot see the synchronisation inside the
# uninstrumented std (Mutex, Condvar, thread join, channels), so it may report races on
# data that std's primitives do protect — docs/sanitizers.md says how each report of the
# last run was judged.
set -euo pipefail
cd "$(dirname "$0")/.."

which_ones=${1:-all}
case "$which_ones" in
address | thread) sanitizers=("$which_ones") ;;
all) sanitizers=(address thread) ;;
*)
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac

if rustup run nightly rustc --version >/dev/null 2>&1; then
    toolchain=+nightly
else
    toolchain=+stable
    export RUSTC_BOOTSTRAP=1
fi
host=x86_64-unknown-linux-gnu
status=0
for san in "${sanitizers[@]}"; do
    log="target/sanitizers/$san.log"
    mkdir -p target/sanitizers
    : >"$log"
    echo "== $san sanitizer ($toolchain${RUSTC_BOOTSTRAP:+, RUSTC_BOOTSTRAP=1}); log: $log"
    # --target keeps build scripts and proc macros uninstrumented. Tests are built with
    # unwinding panics whatever the profile says.
    export RUSTFLAGS="-Zsanitizer=$san -Cdebuginfo=1"
    export RUSTDOCFLAGS="$RUSTFLAGS"
    export ASAN_OPTIONS="detect_leaks=1:detect_stack_use_after_return=1"
    # Leaks made on purpose by tests, each explained in scripts/lsan.supp.
    export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp:print_suppressions=1"
    export TSAN_OPTIONS="halt_on_error=0:report_signal_unsafe=0"
    for suite in "-p portfilter --tests" "-p fltsim --tests" "-p portfilter-client --tests"; do
        # shellcheck disable=SC2086 # the suite is a word list on purpose
        if cargo "$toolchain" test --no-fail-fast --target "$host" \
            --target-dir "target/sanitizers/$san" $suite -- --test-threads=2 >>"$log" 2>&1; then
            result=passed
        else
            result=FAILED
            status=1
        fi
        reports=$(grep -c "^==[0-9]*==ERROR: AddressSanitizer\|^WARNING: ThreadSanitizer" "$log" || true)
        printf '%-10s %-34s %s (%s sanitizer reports in the log so far)\n' \
            "$san" "$suite" "$result" "$reports"
    done
done
exit "$status"
