#!/usr/bin/env bash
# Coverage-guided fuzzing of every input the driver and the clients take (fuzz/, cargo-fuzz
# + libFuzzer with AddressSanitizer). Targets:
#   message_notify   FilterSendMessage → the driver's MessageNotify: any bytes, any sizes,
#                    NULL and faulting buffers, on connections of every role (fltsim)
#   connect_context  FilterConnectCommunicationPort with any context bytes and sizes
#   sequence         a script of connects, closes, gets, replies, cancels, commands,
#                    SetConfig and creates, then unload; invariants checked at the end
#   verdict_batch    VerdictBatch bytes from the asynchronous decider with pended creates
#                    outstanding (known, unknown, duplicate, late sequences); each pended
#                    create completed exactly once
#   client_messages  the client's decoders (events, batches, command answers) + rules
#   rules_file       portctl's TOML rules files
#   wire_frames      portfilter-sim's socket frames, decoded as both directions
#
#   scripts/fuzz.sh smoke [TOTAL_SECONDS]      every target from the committed corpus for
#                                              TOTAL_SECONDS in all (default 60); what CI
#                                              runs; the corpus in the tree is not changed
#   scripts/fuzz.sh campaign [--runs N] SECONDS [TARGET…]
#                                              each target for SECONDS on one core (or
#                                              until N executions, whichever comes first),
#                                              new inputs merged (minimised) into
#                                              fuzz/corpus; prints runs, runs/s and
#                                              coverage (cov edges, ft features) per target;
#                                              each run's log: target/fuzz-logs/
#
# A crash stops the run with the fuzzer's report; the input is kept in
# fuzz/artifacts/TARGET/ (reproduce: scripts/fuzz.sh repro TARGET FILE).
#
# Toolchain: the rustup nightly when it is installed, else the stable toolchain with
# RUSTC_BOOTSTRAP=1 (cargo-fuzz passes -Z flags; the stable toolchain ships the sanitizer
# runtimes). cargo-fuzz is installed from crates.io when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

targets=(message_notify connect_context sequence verdict_batch client_messages rules_file wire_frames)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz (crates.io)"
    cargo install --locked cargo-fuzz
fi
if rustup run nightly rustc --version >/dev/null 2>&1; then
    toolchain=(+nightly)
else
    toolchain=(+stable)
    export RUSTC_BOOTSTRAP=1
fi
# Its own target directory: the instrumented build shares nothing with the workspace's.
fuzz_target_dir="$root/target/fuzz"

fuzz() { (cd fuzz && cargo "${toolchain[@]}" fuzz "$@"); }

build() {
    echo "fuzz: building the targets (${toolchain[*]}${RUSTC_BOOTSTRAP:+, RUSTC_BOOTSTRAP=1})"
    fuzz build -O --target-dir "$fuzz_target_dir"
}

# run TARGET SECONDS CORPUS_DIR… : fuzz, print a one-line summary (max_runs: at most that
# many executions, 0 = no limit)
max_runs=0
run() {
    local target=$1 seconds=$2
    shift 2
    local log start
    mkdir -p "$root/target/fuzz-logs"
    log="$root/target/fuzz-logs/$target-$(date -u +%Y%m%dT%H%M%S).log"
    start=$SECONDS
    local limit=()
    [ "$max_runs" -gt 0 ] && limit=(-runs="$max_runs")
    if ! fuzz run -O --target-dir "$fuzz_target_dir" "$target" "$@" -- \
        -max_total_time="$seconds" "${limit[@]}" -rss_limit_mb=4096 -print_final_stats=1 \
        >"$log" 2>&1; then
        tail -60 "$log" >&2
        echo "fuzz: $target FAILED (input kept in fuzz/artifacts/$target/; log $log)" >&2
        return 1
    fi
    local runs per_s cov ft
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    per_s=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+')
    ft=$(grep -Eo 'ft: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+')
    printf '%-16s %6ss %12s runs %8s runs/s  cov %s edges, ft %s  0 crashes\n' \
        "$target" "$((SECONDS - start))" "${runs:-?}" "${per_s:-?}" "${cov:-?}" "${ft:-?}"
}

case "${1:-}" in
smoke)
    total=${2:-60}
    each=$(( total / ${#targets[@]} ))
    [ "$each" -ge 1 ] || each=1
    build
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    for t in "${targets[@]}"; do
        # New inputs go to a scratch copy; the committed corpus is only read.
        mkdir -p "$work/$t"
        if [ -d "fuzz/corpus/$t" ]; then cp -r "fuzz/corpus/$t/." "$work/$t/"; fi
        run "$t" "$each" "$work/$t"
    done
    ;;
campaign)
    shift
    if [ "${1:-}" = --runs ]; then
        max_runs=${2:?usage: scripts/fuzz.sh campaign [--runs N] SECONDS [TARGET…]}
        shift 2
    fi
    seconds=${1:?usage: scripts/fuzz.sh campaign [--runs N] SECONDS [TARGET…]}
    shift
    [ "$#" -gt 0 ] && targets=("$@")
    build
    echo "fuzz campaign $(date -u '+%Y-%m-%d %H:%M UTC'), ${seconds}s per target$([ "$max_runs" -gt 0 ] && echo " (at most $max_runs runs)"), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
    for t in "${targets[@]}"; do
        new=$(mktemp -d)
        mkdir -p "$root/fuzz/corpus/$t"
        run "$t" "$seconds" "$new" "$root/fuzz/corpus/$t"
        # Keep only inputs that add coverage.
        fuzz run -O --target-dir "$fuzz_target_dir" "$t" "$root/fuzz/corpus/$t" "$new" -- \
            -merge=1 >/dev/null 2>&1
        rm -rf "$new"
    done
    ;;
repro)
    target=${2:?usage: scripts/fuzz.sh repro TARGET FILE}
    file=${3:?usage: scripts/fuzz.sh repro TARGET FILE}
    build
    fuzz run -O --target-dir "$fuzz_target_dir" "$target" "$(realpath "$file")"
    ;;
*)
    sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
