#!/usr/bin/env bash
# Runs the README's test command from a fresh clone inside a private (0700) directory,
# the way it runs for a user whose checkout lives under /root or in a `mktemp -d`
# directory: nothing in the suite may depend on other users reaching the checkout.
#
#   scripts/check-private-clone.sh [DIR]
#
# Clones HEAD of this repository into DIR/portfilter (default: a new `mktemp -d`
# directory, which is 0700) and runs `bash scripts/test.sh` there. It is a full build
# and test run (many minutes), so CI does not run it; scripts/test.sh itself runs the
# tests with target/ made private, which covers the same assumption at no extra cost.
# The steering folder (`shared/`) is linked beside the clone when it exists beside this
# checkout, as CI lays it out.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
base=${1:-$(mktemp -d)}
chmod 0700 "$base"
git clone --quiet "$src" "$base/portfilter"
if [ -d "$src/../shared" ] && [ ! -e "$base/shared" ]; then
    ln -s "$(cd "$src/../shared" && pwd)" "$base/shared"
fi
echo "check-private-clone: running scripts/test.sh in $base/portfilter ($(stat -c %a "$base"))"
cd "$base/portfilter"
bash scripts/test.sh
echo "check-private-clone: passed in $base/portfilter"
