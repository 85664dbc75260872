#!/usr/bin/env bash
# The end-to-end suites under ThreadSanitizer and AddressSanitizer (-Zsanitizer, with the
# standard library rebuilt instrumented; not in CI: each sanitizer rebuilds std and the
# dependency tree, tens of minutes on 2 shared cores, several GB of target/).
#
#   scripts/sanitizers.sh [thread|address|all] [driver|fltsim|client]... [--keep] [-- FILTER...]
#
# (default: both sanitizers, all three suites; FILTER... goes to the test binaries, e.g.
# `scripts/sanitizers.sh thread client --keep -- a_panicking` reruns two client tests).
# Runs, per sanitizer, the driver's end-to-end tests (the real driver under fltsim, every
# delivery mode, unload with clients in flight, fault sweeps), fltsim's tests (port
# semantics, pended I/O, kernel services) and the client library's tests, each
# instrumented, and prints each suite's result and the count of sanitizer reports.
# Logs: target/sanitizers/<sanitizer>.log. The instrumented target directory
# (target/sanitizers/<sanitizer>/) is deleted after the run unless --keep is given.
#
# FLTSIM_IMAGE must not be set: with it fltsim calls the cross-built driver image through
# the Windows x64 shim, whose machine code no sanitizer sees.
#
# Needs the rustup nightly with rust-src (-Zbuild-std, so that std's Mutex, Condvar,
# channels and thread join are instrumented too: without them ThreadSanitizer reports
# races on data std's primitives protect). Installed here when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

which_ones=all
keep=0
suites=()
filters=()
while [ $# -gt 0 ]; do
    case "$1" in
    address | thread | all) which_ones=$1 ;;
    driver) suites+=("-p portfilter --tests") ;;
    fltsim) suites+=("-p fltsim --tests") ;;
    client) suites+=("-p portfilter-client --tests") ;;
    --keep) keep=1 ;;
    --)
        shift
        filters=("$@")
        break
        ;;
    *)
        sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
    esac
    shift
done
case "$which_ones" in
all) sanitizers=(thread address) ;;
*) sanitizers=("$which_ones") ;;
esac

if [ -n "${FLTSIM_IMAGE:-}" ]; then
    echo "sanitizers: unset FLTSIM_IMAGE (the image's code is not instrumented)" >&2
    exit 2
fi
if ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
    echo "sanitizers: installing the rustup nightly with rust-src"
    rustup toolchain install nightly --profile minimal --component rust-src
fi

host=x86_64-unknown-linux-gnu
# The driver's end-to-end tests, fltsim's, the client's. Not the image tests (they need the
# cross-built .sys and FLTSIM_IMAGE) — they skip themselves without it.
if [ ${#suites[@]} -eq 0 ]; then
    suites=("-p portfilter --tests" "-p fltsim --tests" "-p portfilter-client --tests")
fi
status=0
mkdir -p target/sanitizers
for san in "${sanitizers[@]}"; do
    log="target/sanitizers/$san.log"
    dir="target/sanitizers/$san"
    : >"$log"
    echo "== $san sanitizer ($(rustc +nightly --version), -Zbuild-std); log: $log"
    # --target keeps build scripts and proc macros uninstrumented; -Zbuild-std rebuilds
    # core/alloc/std with the sanitizer (tests are built with unwinding panics whatever the
    # profile says).
    export RUSTFLAGS="-Zsanitizer=$san -Cdebuginfo=1 -Cforce-frame-pointers=yes"
    export RUSTDOCFLAGS="$RUSTFLAGS"
    # Unwinding panics for everything: with the workspace's panic = "abort", -Zbuild-std
    # builds std twice (abort for the libraries, unwind for the test harness) and rustc
    # then finds two `core`s (duplicate lang item; rust-lang/cargo#7359).
    export CARGO_PROFILE_DEV_PANIC=unwind
    # fltsim's SEH model and usercopy take SIGSEGV/SIGBUS for faulting user buffers:
    # ASan must leave those signals to them (allow_user_segv_handler).
    export ASAN_OPTIONS="detect_leaks=1:detect_stack_use_after_return=1:allow_user_segv_handler=1:handle_segv=0:handle_sigbus=0"
    # Leaks made on purpose by tests, each explained in scripts/lsan.supp.
    export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp:print_suppressions=1"
    export TSAN_OPTIONS="halt_on_error=0:report_signal_unsafe=0:second_deadlock_stack=1"
    # No panic backtraces. With RUST_BACKTRACE=1 (set in many shells) every panic makes the
    # panicking thread symbolize its stack from the test binary's DWARF with the
    # instrumented std's symbolizer: 20-25 s per first panic of a binary under TSan on
    # this machine, during which the thread is inside the panic hook, i.e. still inside the
    # `catch_unwind` that will catch it. Tests whose handler panics on purpose (the client
    # engine's panic containment) then saw their next event time out (docs/fuzzing.md,
    # finding 3). The sanitizers' own reports carry their stacks.
    export RUST_BACKTRACE=0
    for suite in "${suites[@]}"; do
        before=$(grep -c "^==[0-9]*==ERROR: \(Address\|Leak\)Sanitizer\|^WARNING: ThreadSanitizer" "$log" || true)
        echo "---- $suite" >>"$log"
        start=$(date +%s)
        # shellcheck disable=SC2086 # the suite is a word list on purpose
        if cargo +nightly test -Zbuild-std --no-fail-fast --target "$host" \
            --target-dir "$dir" $suite -- --test-threads=2 ${filters[@]+"${filters[@]}"} >>"$log" 2>&1; then
            result=passed
        else
            result=FAILED
            status=1
        fi
        after=$(grep -c "^==[0-9]*==ERROR: \(Address\|Leak\)Sanitizer\|^WARNING: ThreadSanitizer" "$log" || true)
        # Test counts of this suite's part of the log (every binary's "test result:" line).
        counts=$(sed -n "/^---- $suite\$/,\$p" "$log" | grep '^test result:' |
            awk '{p += $4; f += $6} END {printf "%d passed, %d failed", p, f}')
        printf '%-8s %-30s %-6s %s; %s sanitizer reports; %s s\n' "$san" "$suite" "$result" \
            "$counts" $((after - before)) $(($(date +%s) - start))
    done
    [ "$keep" = 1 ] || rm -rf "$dir"
done
exit "$status"
