#!/usr/bin/env bash
# Real-workload benchmark of `portfilter-sim serve --guard` (issue #14): the same file
# workload on two tmpfs mounts, one plain and one guarded (every open waits for the hosted
# driver through a fanotify permission event), measured in one run:
#
#   untar   unpack a tarball of this repository's tracked files (`git archive HEAD`)
#   read    `find -exec cat` over the unpacked tree (opens every directory and file)
#
# in three set-ups: no guard; guard with no client (the driver sees each open, nobody
# decides); guard with `portctl guard` deciding every open (one round trip per open over
# the host's socket). Prints opens per second and the added latency per open against the
# unguarded run. Opens are counted by the guard itself (its `events` counter, over all
# guarded rounds).
#
# Needs root (fanotify, mount). Knobs: PORTFILTER_BENCH_ROUNDS (default 3; the best round
# of each set-up is reported).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${PORTFILTER_BENCH_ROUNDS:-3}

cargo build --release --locked -q -p portfilter-sim -p portctl
bin=$PWD/target/release

work=$(mktemp -d /tmp/portfilter-bench.XXXXXX)
mkdir "$work/plain" "$work/guarded"
tarball="$work/src.tar"
git archive --format=tar HEAD >"$tarball"
export PORTFILTER_SIM_SOCKET="$work/sim.sock"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    umount "$work/guarded" 2>/dev/null || true
    umount "$work/plain" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
mount -t tmpfs -o size=512m tmpfs "$work/plain"
mount -t tmpfs -o size=512m tmpfs "$work/guarded"

now() { date +%s%N; }
# One round in DIR: untar, then read everything; prints "untar_ns read_ns".
round() {
    local dir=$1 t0 t1 t2
    rm -rf "${dir:?}/tree"
    mkdir "$dir/tree"
    t0=$(now)
    timeout 120 tar -xf "$tarball" -C "$dir/tree"
    t1=$(now)
    timeout 120 find "$dir/tree" -type f -exec cat {} + >/dev/null
    t2=$(now)
    echo "$((t1 - t0)) $((t2 - t1))"
}
# Best (smallest) of N rounds for each phase: prints "untar_ns read_ns".
best() {
    local dir=$1 bu=0 br=0 u r
    for _ in $(seq "$rounds"); do
        read -r u r < <(round "$dir")
        if [ "$bu" -eq 0 ] || [ "$u" -lt "$bu" ]; then bu=$u; fi
        if [ "$br" -eq 0 ] || [ "$r" -lt "$br" ]; then br=$r; fi
    done
    echo "$bu $br"
}
"$bin/portfilter-sim" serve --guard "$work/guarded" >"$work/host.log" 2>&1 &
host=$!
pids+=("$host")
for _ in $(seq 100); do grep -q 'guard live' "$work/host.log" && break; sleep 0.1; done
grep 'guard' "$work/host.log" | sed 's/^/  host | /'

read -r plain_u plain_r < <(best "$work/plain")
files=$(tar -tf "$tarball" | wc -l)
read -r bare_u bare_r < <(best "$work/guarded")

"$bin/portctl" guard --quiet --deny-ext evil >"$work/guard.log" 2>&1 &
decider=$!
pids+=("$decider")
for _ in $(seq 100); do
    "$bin/portctl" stats --json 2>/dev/null | grep -q '"deciders":1' && break
    sleep 0.1
done
read -r dec_u dec_r < <(best "$work/guarded")

kill -INT "$decider" 2>/dev/null || true
"$bin/portfilter-sim" stop >/dev/null
wait "$host" || true
summary=$(grep 'portfilter-sim: guard /' "$work/host.log")
grep 'portfilter-sim: guard /' -A1 "$work/host.log" | sed 's/^/  host | /'
# Every guarded open of the 2 x rounds guarded rounds was one event; `own` is the host's
# start-up self-open.
events=$(grep -o ' events=[0-9]*' <<<"$summary" | cut -d= -f2)
own=$(grep -o ' own=[0-9]*' <<<"$summary" | cut -d= -f2 || echo 0)
opens=$(( (events - ${own:-0}) / (2 * rounds) ))

python3 - "$files" "$opens" "$plain_u" "$plain_r" "$bare_u" "$bare_r" "$dec_u" "$dec_r" <<'PY'
import sys
files, opens = int(sys.argv[1]), int(sys.argv[2])
pu, pr, bu, br, du, dr = (int(x) for x in sys.argv[3:9])
print(f"workload: {files} tar entries; {opens} guarded opens per round (untar + read); best of the rounds")
print(f"{'set-up':34} {'untar ms':>9} {'read ms':>8} {'opens/s':>9} {'added us/open':>14}")
plain = pu + pr
for name, u, r in (("no guard (plain tmpfs)", pu, pr),
                   ("guard, no client", bu, br),
                   ("guard + portctl guard decider", du, dr)):
    total = u + r
    added = (total - plain) / opens / 1000 if opens else float("nan")
    print(f"{name:34} {u/1e6:9.1f} {r/1e6:8.1f} {opens/(total/1e9):9.0f} {added:14.1f}")
PY
