#!/usr/bin/env bash
# The README's main job: the whole system on the Filter Manager model, in one command.
#
#   the real driver hosted by portfilter-sim under fltsim (the user-mode Filter Manager),
#   portctl guard (decider, demo/rules.toml) and portctl watch (observer, queued batches)
#   as separate processes through the fltlib shim (crates/fltlib-shim), and a workload of real file creates
#   (a sample of the Sysmon trace in crates/sim-host/data) from several simulated processes.
#
# Phase 1: normal operation: decisions stream, allowed/denied counts, latency percentiles.
# Phase 2: both clients frozen (SIGSTOP, like a service stuck in a debugger): creates wait
#          at most reply-timeout-ms and get the default verdict; batches for the frozen
#          observer are dropped and counted. After SIGCONT, guard's late replies are
#          counted, not fatal, and the next batch tells watch how many events it missed.
# Phase 3: the same rules as an asynchronous decider (portctl guard --mode async): creates
#          are pended in the driver, requests arrive in batches, verdicts go back many per
#          FilterSendMessage; events per message and verdicts per call are printed.
# Then: final statistics, clean unload, pool leak report.
# Phase 4 (Linux, root): real file opens decided by the same driver: a second host guards a
#          temporary tmpfs mount (portfilter-sim serve --guard, fanotify permission
#          events), portctl guard (demo/linux-guard.toml) decides, portctl watch observes,
#          and real commands (cat, cp, tar, ls) run in it: allowed and denied.
#          Skipped, with the reason, where fanotify is unavailable.
#
# Knobs: PORTFILTER_DEMO_CREATES (default 2000), PORTFILTER_DEMO_RATE (creates/s, 1000),
#        PORTFILTER_DEMO_STALLED (phase-2 creates, 200).
set -euo pipefail
cd "$(dirname "$0")/.."

creates=${PORTFILTER_DEMO_CREATES:-2000}
rate=${PORTFILTER_DEMO_RATE:-1000}
stalled=${PORTFILTER_DEMO_STALLED:-200}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Building portfilter-sim and portctl (release)"
cargo build --release --locked -q -p portfilter-sim -p portctl
bin=target/release

work=$(mktemp -d)
export PORTFILTER_SIM_SOCKET="$work/sim.sock"
export NO_COLOR=1
# Shorten the NT volume prefix and long lines for the terminal.
short() { sed -e 's#\\Device\\HarddiskVolume3#C:#' | cut -c1-"${COLUMNS:-160}"; }
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

say "Loading the driver under fltsim (portfilter-sim serve)"
"$bin/portfilter-sim" serve >"$work/host.log" 2>&1 &
host=$!
pids+=("$host")
for _ in $(seq 100); do
    "$bin/portctl" ping >/dev/null 2>&1 && break
    sleep 0.1
done
sed 's/^/  host | /' "$work/host.log"
"$bin/portctl" ping | sed 's/^/  ping | /'

say "Configuring: observers get queued batches; 100 ms reply budget; small queue to show drops"
"$bin/portctl" config set observer-delivery=queued reply-timeout-ms=100 default-verdict=allow \
    queue-capacity=128 batch-max-events=64 | sed 's/^/  config | /'

say "Starting portctl watch (observer) and portctl guard (decider, demo/rules.toml)"
"$bin/portctl" watch >"$work/watch.log" 2>&1 &
watch=$!
pids+=("$watch")
"$bin/portctl" guard --rules demo/rules.toml >"$work/guard.log" 2>&1 &
guard=$!
pids+=("$guard")
sleep 0.5

say "Phase 1: $creates creates from the real trace, 4 simulated processes, $rate/s"
"$bin/portfilter-sim" workload -n "$creates" --rate "$rate" -p 4 | sed 's/^/  workload | /'
echo "  first decisions streamed by guard:"
grep -m 12 -E '^(ALLOW|DENY)' "$work/guard.log" | short | sed 's/^/  guard | /' || true
echo "  denials per rule:"
grep '^DENY' "$work/guard.log" | grep -o '<- rule [0-9]* "[^"]*"' | sort | uniq -c | sed 's/^/  guard | /' || true
echo "  denied creates (first 10):"
grep -m 10 '^DENY' "$work/guard.log" | short | sed 's/^/  guard | /' || true

say "Phase 2: guard and watch frozen (SIGSTOP); $stalled more creates"
kill -STOP "$guard" "$watch"
"$bin/portfilter-sim" workload -n "$stalled" --rate 0 -p 8 | sed 's/^/  workload | /'
kill -CONT "$guard" "$watch"
sleep 1

say "Clients resumed (SIGCONT): 50 more creates; watch learns what it missed from the next batch"
"$bin/portfilter-sim" workload -n 50 --rate 0 -p 2 | sed 's/^/  workload | /'
sleep 0.5
"$bin/portctl" stats | sed 's/^/  stats | /'

say "Stopping the clients (Ctrl-C) — their summaries"
kill -INT "$guard" "$watch"
wait "$guard" "$watch" || true
grep -E '^-- ' "$work/watch.log" | tail -n 4 | sed 's/^/  watch | /'
grep -E '^-- ' "$work/guard.log" | tail -n 4 | sed 's/^/  guard | /'

say "Phase 3: the same rules, asynchronous: portctl guard --mode async; $creates creates"
"$bin/portctl" config set reply-timeout-ms=1000 | grep reply-timeout | sed 's/^/  config | /'
"$bin/portctl" guard --mode async --quiet --rules demo/rules.toml >"$work/guard-async.log" 2>&1 &
guard_async=$!
pids+=("$guard_async")
for _ in $(seq 100); do
    "$bin/portctl" stats --json 2>/dev/null | grep -q '"deciders":1' && break
    sleep 0.1
done
"$bin/portfilter-sim" workload -n "$creates" --rate 0 -p 8 | sed 's/^/  workload | /'
kill -INT "$guard_async"
wait "$guard_async" || true
grep -E '^-- ' "$work/guard-async.log" | tail -n 4 | sed 's/^/  guard --mode async | /'
"$bin/portctl" stats --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
m = max(s["async_request_messages"], 1)
v = max(s["verdict_messages"], 1)
print("  driver | %d creates pended, %.1f events per request message, %.1f verdicts per FilterSendMessage, %d deadline defaults, %d late" % (
    s["async_pended"], s["async_request_events"] / m, s["verdicts_applied"] / v,
    s["async_deadline_defaults"], s["verdicts_late"]))
'

say "Unloading the driver (portfilter-sim stop): final statistics and leak report"
before=$(wc -l <"$work/host.log")
"$bin/portfilter-sim" stop >/dev/null
status=0
wait "$host" || status=$?
tail -n +"$((before + 1))" "$work/host.log" | grep -v 'connected as\|gone (socket closed)' | sed 's/^/  host | /'
pids=()
if [ "$status" -ne 0 ]; then
    echo "portfilter-sim exited with status $status (leaks or verifier findings above)" >&2
    exit "$status"
fi

say "Phase 4: real file opens on Linux, decided by the driver (portfilter-sim serve --guard)"
guarded="$work/guarded"
mkdir "$guarded"
if [ "$(id -u)" -ne 0 ] || ! mount -t tmpfs -o size=64m tmpfs "$guarded" 2>/dev/null; then
    echo "  SKIPPED: needs root (fanotify permission events and a tmpfs mount)"
else
    trap 'cleanup; umount "$guarded" 2>/dev/null || true' EXIT
    echo "safe to read" >"$guarded/readme.txt"
    echo "payload" >"$guarded/x.evil"
    export PORTFILTER_SIM_SOCKET="$work/guard.sock"
    "$bin/portfilter-sim" serve --guard "$guarded" -v >"$work/ghost.log" 2>&1 &
    ghost=$!
    pids+=("$ghost")
    for _ in $(seq 100); do
        grep -q 'guard live\|cannot guard' "$work/ghost.log" && break
        sleep 0.1
    done
    if ! grep -q 'guard live' "$work/ghost.log"; then
        echo "  SKIPPED: $(grep -m1 'cannot guard' "$work/ghost.log" || echo 'the guard did not start')"
    else
        grep 'guard' "$work/ghost.log" | sed 's/^/  host | /'
        "$bin/portctl" watch >"$work/gwatch.log" 2>&1 &
        gwatch=$!
        pids+=("$gwatch")
        "$bin/portctl" guard --rules demo/linux-guard.toml >"$work/gguard.log" 2>&1 &
        gguard=$!
        pids+=("$gguard")
        for _ in $(seq 100); do
            "$bin/portctl" stats --json 2>/dev/null | grep -q '"deciders":1' && break
            sleep 0.1
        done
        run() {
            local out rc=0
            out=$(cd "$guarded" && timeout 10 sh -c "$1" 2>&1) || rc=$?
            printf '  $ %-44s -> exit %d %s\n' "$1" "$rc" "$(head -c 100 <<<"$out" | tr '\n' ' ')"
        }
        run "cat readme.txt"
        run "cat x.evil"
        run "echo hello > notes.txt && cat notes.txt"
        run "cp /bin/true tool.evil"
        run "mkdir -p secrets && echo key > secrets/id_rsa"
        run "ls"
        run "tar -cf /tmp/portfilter-demo.tar readme.txt notes.txt && tar -xf /tmp/portfilter-demo.tar -C secrets"
        rm -f /tmp/portfilter-demo.tar
        sleep 0.5
        kill -INT "$gguard" "$gwatch" 2>/dev/null || true
        sleep 0.5
        echo "  what the decider (portctl guard) saw:"
        grep -E '^(ALLOW|DENY)' "$work/gguard.log" | sed -e 's#\\Device\\HarddiskVolume9#G:#' | cut -c1-"${COLUMNS:-160}" | sed 's/^/  guard | /' | head -n 20
        echo "  what the observer (portctl watch) saw:"
        grep -i 'Volume9' "$work/gwatch.log" | sed -e 's#\\Device\\HarddiskVolume9#G:#' | cut -c1-"${COLUMNS:-160}" | sed 's/^/  watch | /' | head -n 20
        "$bin/portfilter-sim" stop >/dev/null
        wait "$ghost" || true
        grep -E 'portfilter-sim: guard /' -A1 "$work/ghost.log" | sed 's/^/  host | /'
        grep -E 'replies_(allow|deny)' "$work/ghost.log" | sed 's/^/  host | /'
    fi
    umount "$guarded" 2>/dev/null || true
fi
say "Done"
