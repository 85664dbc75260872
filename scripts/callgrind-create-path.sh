#!/usr/bin/env bash
# The driver's own instructions per create, per cost scenario of benches/create_path.rs,
# under callgrind (deterministic, unlike timings).
#
#   bash scripts/callgrind-create-path.sh [CREATES]     (default 2000 per scenario)
#
# How: the bench binary runs one scenario (`--scenario NAME --creates N`, after 64
# warm-up creates); callgrind collects only inside the driver's pre-create callback
# (`--toggle-collect`), so setup, clients and the queued worker are not counted. The
# driver's instructions are the callback's inclusive cost minus the inclusive cost of every
# call the driver's code (portfilter::, portfilter_protocol::) makes to a kernel / Filter
# Manager routine (fltsim's model of them: the names declared in
# crates/bindings/src/functions.rs) or to a fltsim function such a routine was inlined into
# (LTO inlines ExAllocatePool2 into fltsim::kernel::pool::allocate, so the routine's name
# is gone from the profile), divided by the creates. What remains is the driver's
# code and what it inlines or calls of core/alloc and the protocol crate.
# Needs valgrind (apt-get install -y valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
CREATES="${1:-2000}"
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install -y valgrind)" >&2; exit 2; }
export CARGO_PROFILE_DEV_PANIC=unwind
BIN=$(cargo bench --no-run -p portfilter --bench create_path --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["name"]=="create_path": print(m["executable"])' | tail -1)
[ -x "$BIN" ] || { echo "bench binary not found" >&2; exit 1; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
ROUTINES=$(grep -oE 'pub (unsafe )?fn [A-Za-z0-9_]+' crates/bindings/src/functions.rs | awk '{print $NF}' | sort -u | tr '\n' ' ')
printf '%-24s %14s %12s   %s\n' scenario "driver Ir/create" "all Ir/create" "target"
for scenario in skipped-no-client skipped-skip-rule skipped-filtered-out reported-queued reported-notify reported-request-reply; do
  valgrind --tool=callgrind --callgrind-out-file="$OUT/$scenario.out" \
    --toggle-collect='portfilter::precreate::pre_create' \
    "$BIN" --scenario "$scenario" --creates "$CREATES" >"$OUT/$scenario.log" 2>&1 || {
      echo "$scenario: valgrind failed, see below" >&2; tail -20 "$OUT/$scenario.log" >&2; exit 1; }
  callgrind_annotate --tree=calling --inclusive=yes --threshold=100 "$OUT/$scenario.out" >"$OUT/$scenario.txt" 2>/dev/null
  python3 - "$OUT/$scenario.txt" "$scenario" "$((CREATES + 64))" "$ROUTINES" <<'PY'
import re, sys
path, scenario, creates, routines = sys.argv[1], sys.argv[2], int(sys.argv[3]), set(sys.argv[4].split())
line_re = re.compile(r'\s*([\d,]+)\s+\([^)]*\)\s+([*<>])\s+(\S.*?)(\s+\(\d[\d,]*x\))?(\s+\[.*\])?$')
def fname(raw):
    return raw.split(':', 1)[1] if raw.startswith(('???:', './', '/')) and ':' in raw else raw
def is_driver(name):
    return name.startswith(('portfilter::', 'portfilter_protocol::', '<portfilter', '<portfilter_protocol'))
def is_outside(name):
    # Kernel / Filter Manager routines (fltsim's model of them) and fltsim's own helpers
    # that the linker inlined them into (e.g. ExAllocatePool2 → fltsim::kernel::pool::allocate).
    return name in routines or name.startswith(('fltsim::', '<fltsim'))
total = 0; outside = 0; caller = None
for line in open(path):
    m = line_re.match(line)
    if not m:
        continue
    ir = int(m.group(1).replace(',', '')); mark = m.group(2); name = fname(m.group(3))
    if mark == '*':
        caller = name
        if name == 'portfilter::precreate::pre_create':
            total = max(total, ir)
    elif mark == '>' and caller is not None and is_driver(caller) and is_outside(name):
        outside += ir
driver = (total - outside) / creates
targets = {'skipped-no-client': 300, 'skipped-skip-rule': 300, 'skipped-filtered-out': 300, 'reported-queued': 1500}
t = targets.get(scenario)
verdict = '—' if t is None else f'≤ {t}: ' + ('met' if driver <= t else 'NOT met')
print(f'{scenario:<24} {driver:>14.0f} {total / creates:>12.0f}   {verdict}')
PY
done
