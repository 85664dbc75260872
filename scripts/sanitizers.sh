#!/usr/bin/env bash
# The end-to-end suites under ThreadSanitizer and AddressSanitizer (-Zsanitizer, with the
# standard library rebuilt instrumented; not in CI: each sanitizer rebuilds std and the
# dependency tree, tens of minutes on 2 shared cores, several GB of target/).
#
#   scripts/sanitizers.sh [thread|address|all] [--keep]   (default: all)
#
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
for arg in "$@"; do
    case "$arg" in
    address | thread | all) which_ones=$arg ;;
    --keep) keep=1 ;;
    *)
        sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
    esac
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
suites=("-p portfilter --tests" "-p fltsim --tests" "-p portfilter-client --tests")
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
    for suite in "${suites[@]}"; do
        before=$(grep -c "^==[0-9]*==ERROR: AddressSanitizer\|^WARNING: ThreadSanitizer" "$log" || true)
        echo "---- $suite" >>"$log"
        # shellcheck disable=SC2086 # the suite is a word list on purpose
        if cargo +nightly test -Zbuild-std --no-fail-fast --target "$host" \
            --target-dir "$dir" $suite -- --test-threads=2 >>"$log" 2>&1; then
            result=passed
        else
            result=FAILED
            status=1
        fi
        after=$(grep -c "^==[0-9]*==ERROR: AddressSanitizer\|^WARNING: ThreadSanitizer" "$log" || true)
        printf '%-8s %-30s %-6s %s sanitizer reports\n' "$san" "$suite" "$result" $((after - before))
    done
    [ "$keep" = 1 ] || rm -rf "$dir"
done
exit "$status"
