#!/usr/bin/env bash
# Static checks of scripts/windows/*.ps1 on Linux (no PowerShell here; Debian has no pwsh
# package): syntax, and how PowerShell binds each call of the scripts' own functions
# (scripts/check_powershell.py). Installs tree-sitter's PowerShell grammar from PyPI into a
# virtual environment under target/ on first use.
#
#   scripts/check-powershell.sh
#
# What this cannot check: the behaviour of cmdlets and Windows tools (pnputil, fltmc,
# bcdedit, Get-WindowsDriver), or running anything. Read the scripts' comments for that.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$root/target/powershell-check-venv
# Pinned: the checker reads this grammar's node names.
packages=(tree-sitter==0.26.1 tree-sitter-powershell==0.26.4)

if ! "$venv/bin/python" -c 'import tree_sitter, tree_sitter_powershell' >/dev/null 2>&1; then
    echo "check-powershell: installing ${packages[*]} into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}"
fi
"$venv/bin/python" "$root/scripts/check_powershell.py" "$root"/scripts/windows/*.ps1
