#!/usr/bin/env bash
# Mutation testing of the driver (`src/`), the protocol and the client with cargo-mutants.
# Not part of CI: a full campaign takes hours. It is sharded so that each shard fits a few
# minutes, and the per-file summary of every shard run so far goes into
# docs/mutation-testing.md (between the generated-summary markers).
#
#   scripts/mutants.sh list    [PACKAGE]            how many mutants, how many shards
#   scripts/mutants.sh run     PACKAGE K [N]        run shard K of N (0-based; N: default)
#   scripts/mutants.sh run     PACKAGE all          run every shard of PACKAGE in turn
#   scripts/mutants.sh file    PACKAGE PATH...      every mutant of these files (after a fix)
#   scripts/mutants.sh again   PACKAGE              the mutants missed or timed out so far
#   scripts/mutants.sh summary                      rewrite the summary in the docs
#
# PACKAGE is `driver` (portfilter), `protocol` (portfilter-protocol) or `client`
# (portfilter-client). Exclusions, each with a reason: .cargo/mutants.toml.
#
# Environment:
#   MUTANTS_PER_SHARD  mutants per shard when N is not given (default 8: a few minutes
#                      on two busy cores, most of it the incremental build)
#   MUTANTS_TIMEOUT    seconds a mutant's tests may run before it counts as a timeout
#                      (default 90; the driver's whole suite takes ~15 s on two cores, so a
#                      mutant that hangs a bounded wait fails fast instead of stalling)
#   MUTANTS_JOBS       parallel mutants (default 1: the machine's cores are shared)
#   MUTANTS_BASELINE   `run` (default: the unmutated tree must pass first) or `skip` (when
#                      it was just checked: saves a build and a test run per shard)
#
# Results stay in target/mutants/<package>/<K>of<N>/ or .../file-<path>/ (cargo-mutants'
# mutants.out plus run.txt: date, commit, figures); `summary` takes each mutant's newest
# result, so shards can be run at different times and files re-run after a fix.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# The dev profile is panic=abort and the root crate is cdylib+rlib: tests need unwinding
# (harmless once the profiles are split). No debug info: the mutant builds are link-bound.
export CARGO_PROFILE_DEV_PANIC=unwind
export CARGO_PROFILE_DEV_DEBUG=0
# One target directory for every shard (cargo-mutants copies the tree for each run): the
# dependencies are built once, not once per shard.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/mutants-build}"
# One run at a time per target directory: cargo gives every copy of the workspace the same
# artifact names (its hashes use paths relative to the workspace root), so two runs
# sharing it link each other's mutated crates — a driver baseline once failed with a
# mutated protocol crate, and protocol mutants were tested against an unmutated one.
# (`list` and `summary` build nothing.)
case "${1:-}" in
list | summary) ;;
*)
    mkdir -p "$CARGO_TARGET_DIR"
    exec 9>"$CARGO_TARGET_DIR/.mutants-sh.lock"
    if ! flock -n 9; then
        echo "mutants.sh: another mutants.sh run is using $CARGO_TARGET_DIR (set CARGO_TARGET_DIR to run beside it)" >&2
        exit 2
    fi
    ;;
esac

# The nextest profile that ends a test after 60 s (.config/nextest.toml): a mutant that
# hangs a test fails it instead of running into the timeout below.
export NEXTEST_PROFILE=mutants

per_shard=${MUTANTS_PER_SHARD:-8}
timeout=${MUTANTS_TIMEOUT:-90}
jobs=${MUTANTS_JOBS:-1}
baseline=${MUTANTS_BASELINE:-run}
out_root="$root/target/mutants"
doc="$root/docs/mutation-testing.md"

die() {
    echo "mutants.sh: $*" >&2
    exit 2
}

crate_of() {
    case "$1" in
    driver) echo portfilter ;;
    protocol) echo portfilter-protocol ;;
    client) echo portfilter-client ;;
    *) die "unknown package '$1' (driver, protocol, client)" ;;
    esac
}

need_tools() {
    cargo mutants --version >/dev/null 2>&1 ||
        die "cargo-mutants is missing: cargo install --locked cargo-mutants"
    cargo nextest --version >/dev/null 2>&1 ||
        die "cargo-nextest is missing: cargo install --locked cargo-nextest"
}

count_mutants() {
    cargo mutants --package "$(crate_of "$1")" --list 2>/dev/null | wc -l
}

default_shards() {
    local n
    n=$(count_mutants "$1")
    echo $(((n + per_shard - 1) / per_shard))
}

# write_run_info DIR PACKAGE WHAT START COMMIT EXIT
write_run_info() {
    local end
    end=$(date -u +%s)
    {
        echo "package=$2"
        echo "what=$3"
        echo "start=$4"
        echo "date=$(date -u -d "@$4" '+%F %T') UTC"
        echo "commit=$5"
        echo "seconds=$((end - $4))"
        echo "exit=$6"
    } >"$1/run.txt"
}

# run_one PACKAGE LABEL DESCRIPTION CARGO-MUTANTS-ARGS...
run_one() {
    local pkg=$1 label=$2 what=$3 crate dir start end
    shift 3
    crate=$(crate_of "$pkg")
    dir="$out_root/$pkg/$label"
    rm -rf "$dir"
    mkdir -p "$dir"
    start=$(date -u +%s)
    echo "== $pkg ($crate): $what, timeout ${timeout}s, started $(date -u '+%F %T') UTC"
    # Written before the run too: an interrupted run's results (cargo-mutants appends each
    # outcome as it goes) still count in the summary.
    # The tree cargo-mutants copies now: the commit, and whether it had local changes.
    local commit
    commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src crates tests .cargo || echo +changes)"
    write_run_info "$dir" "$pkg" "$what" "$start" "$commit" running
    # The protocol's `std` feature (string conversions for clients) has tests of its own:
    # without it, its code is not even built and its mutants pass as missed.
    local features=()
    if [ "$pkg" = protocol ]; then features=(--features std); fi
    # Exit status: 0 all caught, 2 some missed, 3 some timed out, 4 baseline failed.
    set +e
    cargo mutants --package "$crate" --test-tool nextest \
        --timeout "$timeout" --jobs "$jobs" --baseline "$baseline" \
        --output "$dir" --no-shuffle --colors never "${features[@]}" "$@"
    local rc=$?
    set -e
    write_run_info "$dir" "$pkg" "$what" "$start" "$commit" "$rc"
    [ "$rc" -eq 4 ] && die "baseline failed: the unmutated tree does not pass its tests"
    [ "$rc" -eq 0 ] || [ "$rc" -eq 2 ] || [ "$rc" -eq 3 ] ||
        die "cargo mutants exited with $rc"
    return 0
}

# Per-file table of every shard result under target/mutants, in markdown.
summarize() {
    local files
    files=$(find "$out_root" -name run.txt 2>/dev/null | sort)
    [ -n "$files" ] || die "no shard results under $out_root"
    # The mutants as of now (exclusions applied): results of mutants no longer listed do
    # not count, and listed mutants without a result are what remains to run.
    local pkg
    for pkg in driver protocol client; do
        cargo mutants --package "$(crate_of "$pkg")" --list >"$out_root/$pkg.list" 2>/dev/null ||
            die "cargo mutants --list failed for $pkg"
    done
    python3 - "$out_root" <<'PY'
import collections, os, sys, time
root = sys.argv[1]
outcomes = ("caught", "missed", "timeout", "unviable")
prefix = {"driver": "", "protocol": "crates/protocol/", "client": "crates/client/"}
listed = {}
for pkg in prefix:
    for line in open(os.path.join(root, pkg + ".list")):
        if line.strip():
            name = line.strip()
            listed[name if name.startswith(prefix[pkg]) else prefix[pkg] + name] = pkg
runs = []
for pkg in sorted(p for p in os.listdir(root) if p in prefix):
    for label in sorted(os.listdir(os.path.join(root, pkg))):
        d = os.path.join(root, pkg, label)
        info = os.path.join(d, "run.txt")
        if not os.path.exists(info):
            continue
        meta = dict(l.strip().split("=", 1) for l in open(info) if "=" in l)
        meta["dir"] = d
        meta["pkg"] = pkg
        runs.append(meta)
runs.sort(key=lambda m: int(m.get("start", "0")))
result = {}  # mutant name -> outcome, the newest run wins
for m in runs:
    for o in outcomes:
        p = os.path.join(m["dir"], "mutants.out", o + ".txt")
        if not os.path.exists(p):
            continue
        for line in open(p):
            line = line.strip()
            if line:
                name = line if line.startswith(prefix[m["pkg"]]) else prefix[m["pkg"]] + line
                result[name] = o
per_file = collections.defaultdict(collections.Counter)
listed_pkg = {name.split(":", 1)[0]: pkg for name, pkg in listed.items()}
missed = collections.defaultdict(list)
for name in listed:
    f = name.split(":", 1)[0]
    o = result.get(name, "not run")
    per_file[f][o] += 1
    per_file[f]["listed"] += 1
    if o in ("missed", "timeout"):
        missed[f].append(f"{o}: {name}")
print("| file | mutants | caught | missed | timeout | unviable | not run yet | caught / viable |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
def row(label, c, digits):
    viable = c["caught"] + c["missed"] + c["timeout"]
    pct = f"{100 * (c['caught'] + c['timeout']) / viable:.{digits}f} %" if viable else "–"
    print(f"| {label} | {c['listed']} | {c['caught']} | {c['missed']} | {c['timeout']} | "
          f"{c['unviable']} | {c['not run']} | {pct} |")
tot = collections.Counter()
for pkg in ("driver", "protocol", "client"):
    sub = collections.Counter()
    for f in sorted(per_file):
        if listed_pkg.get(f) == pkg:
            sub.update(per_file[f])
            row(f"`{f}`", per_file[f], 0)
    row(f"**{pkg}**", sub, 1)
    tot.update(sub)
row("**total**", tot, 1)
print()
print("Runs (each mutant counts once, with its newest result):")
print()
for m in runs:
    state = "" if m["exit"] in ("0", "2", "3") else " (interrupted)"
    if m["exit"] == "running":
        state = " (running, or interrupted)"
        m["seconds"] = str(int(time.time()) - int(m["start"]))
    print(f"- {m['pkg']}: {m['what']}{state} — {m['date']}, commit {m['commit']}, "
          f"{int(m['seconds']) // 60} min {int(m['seconds']) % 60} s")
print()
if missed:
    print("Not caught (a timeout counts as caught above, but its test should be bounded):")
    print()
    for f in sorted(missed):
        for line in sorted(missed[f]):
            print(f"- `{line}`")
PY
}

write_summary() {
    [ -f "$doc" ] || die "$doc is missing"
    local table
    table=$(summarize)
    python3 - "$doc" "$table" <<'PY'
import sys
doc, table = sys.argv[1], sys.argv[2]
text = open(doc).read()
begin, end = "<!-- BEGIN generated summary -->", "<!-- END generated summary -->"
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
open(doc, "w").write(f"{head}{begin}\n{table}\n{end}{tail}")
PY
    echo "summary written to docs/mutation-testing.md"
}

cmd=${1:-}
case "$cmd" in
list)
    need_tools
    for pkg in ${2:-driver protocol client}; do
        n=$(count_mutants "$pkg")
        echo "$pkg: $n mutants, $(((n + per_shard - 1) / per_shard)) shards of $per_shard"
    done
    ;;
run)
    need_tools
    pkg=${2:?package}
    k=${3:?shard number or all}
    n=${4:-$(default_shards "$pkg")}
    if [ "$k" = all ]; then
        for ((i = 0; i < n; i++)); do
            run_one "$pkg" "${i}of$n" "shard $i of $n" --shard "$i/$n"
        done
    else
        [ "$k" -lt "$n" ] || die "shard $k is not below $n"
        run_one "$pkg" "${k}of$n" "shard $k of $n" --shard "$k/$n"
    fi
    write_summary
    ;;
file)
    need_tools
    pkg=${2:?package}
    shift 2
    [ $# -gt 0 ] || die "file: which files?"
    args=()
    for f in "$@"; do args+=(--file "$f"); done
    run_one "$pkg" "file-$(echo "$*" | tr '/ ' '_+')" "files $*" "${args[@]}"
    write_summary
    ;;
again)
    need_tools
    pkg=${2:?package}
    crate_of "$pkg" >/dev/null
    # Every mutant some run of PACKAGE missed or timed out (names as cargo-mutants lists
    # them, escaped into one regular expression).
    re=$(cat "$out_root/$pkg"/*/mutants.out/{missed,timeout}.txt 2>/dev/null | sort -u |
        python3 -c 'import re, sys; print("|".join("^" + re.escape(l.strip()) + "$" for l in sys.stdin if l.strip()))')
    [ -n "$re" ] || die "nothing missed or timed out in $pkg"
    run_one "$pkg" "again-$(date -u +%Y%m%dT%H%M%S)" "again: what was missed or timed out" --re "$re"
    write_summary
    ;;
summary)
    write_summary
    ;;
*)
    sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
