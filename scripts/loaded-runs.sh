#!/usr/bin/env bash
# The whole test suite N times in a row under CPU load: the reliability check for timing
# assumptions in the tests (a test that waits by sleeping, or assumes how long something
# takes, fails here first).
#
#   scripts/loaded-runs.sh N [HOGS] [-- NEXTEST ARGS…]   (HOGS default 2)
#
# Builds the workspace's tests once (cargo nextest run --no-run), then starts HOGS busy
# loops at normal priority (one per core is the harsh case) and runs
# `cargo nextest run --workspace --no-fail-fast` N times, reusing that build. Prints per
# run green/red with the failing tests' names, then the totals; the hogs are killed on exit
# (also on Ctrl-C). Each run's output: target/loaded-runs/run-K.log. Exit status 0 when
# every run was green. The image tests skip themselves (no FLTSIM_IMAGE, no
# PORTFILTER_REQUIRE_SYS): that is scripts/test.sh's second pass.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-}
case "$runs" in
'' | *[!0-9]*)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
shift
hogs=2
if [ "$#" -gt 0 ] && [ "$1" != "--" ]; then
    hogs=$1
    shift
fi
[ "${1:-}" = "--" ] && shift
extra=("$@")

unset FLTSIM_IMAGE PORTFILTER_REQUIRE_SYS
logs=target/loaded-runs
mkdir -p "$logs"

echo "loaded-runs: building the tests once"
cargo nextest run --workspace --locked --no-run "${extra[@]}" >"$logs/build.log" 2>&1 || {
    tail -40 "$logs/build.log" >&2
    exit 1
}

hog_pids=()
stop_hogs() {
    for pid in "${hog_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${hog_pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    hog_pids=()
}
trap stop_hogs EXIT
trap 'exit 130' INT TERM
for _ in $(seq "$hogs"); do
    bash -c 'while :; do :; done' &
    hog_pids+=("$!")
done
echo "loaded-runs: $(date -u '+%Y-%m-%d %H:%M UTC'), $hogs CPU hogs (pids ${hog_pids[*]}), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

green=0
red=0
for k in $(seq "$runs"); do
    log="$logs/run-$k.log"
    start=$SECONDS
    if cargo nextest run --workspace --locked --no-fail-fast "${extra[@]}" >"$log" 2>&1; then
        green=$((green + 1))
        verdict=green
    else
        red=$((red + 1))
        verdict=RED
    fi
    summary=$(grep -E '^ *Summary ' "$log" | tail -1 | sed 's/^ *//')
    printf 'run %3d/%d %-5s %4ds  load %s  %s\n' "$k" "$runs" "$verdict" $((SECONDS - start)) \
        "$(cut -d' ' -f1 /proc/loadavg)" "${summary:-(no summary; see $log)}"
    if [ "$verdict" = RED ]; then
        # nextest's status lines of the tests that did not pass.
        grep -E '^ *(FAIL|TIMEOUT|SIGSEGV|SIGABRT|SIGKILL|ABORT|LEAK-FAIL)' "$log" | sort -u | sed 's/^ */    /' || true
    fi
done
echo "loaded-runs: $runs runs, $green green, $red red ($hogs hogs)"
[ "$red" -eq 0 ]
