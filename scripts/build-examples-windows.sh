#!/usr/bin/env bash
# Cross-compiles and links the example clients for Windows (x86_64) with mingw-w64, against
# mingw-w64's own <fltuser.h> and libfltlib.a, so that the Windows API names, types and
# signatures they use are checked by someone else's headers and import library:
#
#   examples/c-client/client.c         -> client.exe       (x86_64-w64-mingw32-gcc)
#   examples/cpp-asio/asio_client.cpp  -> asio_client.exe  (x86_64-w64-mingw32-g++-posix,
#                                                           standalone asio from libasio-dev)
#
#   scripts/build-examples-windows.sh          (no arguments; installs missing Debian packages first)
#
# Output: target/windows-examples/ (or $PORTFILTER_EXAMPLES_OUT). Then checks each image's
# import table: PE32+ for x86-64; the fltlib functions come from FLTLIB.DLL; asio_client
# runs its gets on an I/O completion port (CreateIoCompletionPort, GetQueuedCompletionStatus,
# CancelIoEx); no mingw runtime DLL is needed (copy the .exe alone to a test VM).
# Neither program can run here: they need Windows with the driver loaded.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${PORTFILTER_EXAMPLES_OUT:-$root/target/windows-examples}

[ "$#" -eq 0 ] || { sed -n '2,/^set -euo pipefail/{/^set -euo/!p}' "$0"; exit 2; }

log() { echo "build-examples-windows: $*" >&2; }
die() { echo "build-examples-windows: error: $*" >&2; exit 1; }

"$root/scripts/install-deps.sh" >/dev/null   # a no-op when everything is installed

mingw=/usr/x86_64-w64-mingw32
for f in "$mingw/include/fltuser.h" "$mingw/lib/libfltlib.a"; do
    [ -f "$f" ] || die "$f is missing (Debian package mingw-w64-x86-64-dev)"
done
objdump=x86_64-w64-mingw32-objdump
command -v "$objdump" >/dev/null 2>&1 || die "$objdump is missing (binutils-mingw-w64-x86-64)"

mkdir -p "$out"
rm -f "$out/client.exe" "$out/asio_client.exe"
make -s -C "$root/examples/c-client" OUT="$out" windows
make -s -C "$root/examples/cpp-asio" OUT="$out" windows

# The functions an image imports from one DLL (case-insensitive DLL name), one per line.
imports_from() {
    "$objdump" -p "$1" | awk -v dll="$(printf '%s' "$2" | tr '[:lower:]' '[:upper:]')" '
        /^\tDLL Name: / { name = toupper($3); next }
        /^\t[0-9a-f]+\t +[0-9]+  / { if (name == dll) print $3 }
    ' | sort -u
}

check() {
    local exe=$1
    shift
    local name
    name=$(basename "$exe")
    [ -f "$exe" ] || die "$name was not built"
    "$objdump" -f "$exe" | grep -q 'file format pei-x86-64' || die "$name is not a PE32+ x86-64 image"
    local fltlib
    fltlib=$(imports_from "$exe" FLTLIB.DLL | tr '\n' ' ')
    [ "$fltlib" = "FilterConnectCommunicationPort FilterGetMessage FilterReplyMessage FilterSendMessage " ] \
        || die "$name imports from FLTLIB.DLL: '$fltlib'"
    local kernel32
    kernel32=$(imports_from "$exe" KERNEL32.DLL)
    for f in "$@"; do
        grep -qx "$f" <<<"$kernel32" || die "$name does not import $f from KERNEL32.dll"
    done
    local dlls
    dlls=$("$objdump" -p "$exe" | sed -n 's/^\tDLL Name: //p' | tr '\n' ' ')
    if grep -qiE '(^| )lib[^ ]*\.dll' <<<"$dlls"; then
        die "$name needs a mingw runtime DLL: $dlls"
    fi
    log "$name: PE32+ x86-64; FLTLIB.DLL: $fltlib; DLLs: $dlls"
}

check "$out/client.exe" CloseHandle
check "$out/asio_client.exe" CreateIoCompletionPort GetQueuedCompletionStatus CancelIoEx
log "wrote $out/client.exe and $out/asio_client.exe (Windows only: not run here)"
