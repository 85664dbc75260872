#!/usr/bin/env bash
# Cross-builds the driver image portfilter.sys for x86_64-pc-windows-msvc on Linux, without
# the WDK (DESIGN.md, decision 2: "Windows target on any OS without the WDK").
#
#   scripts/build-sys.sh [--dev] [--sign] [--no-deps]
#
#   --dev      build with the dev profile (debug: opt-level 0, debug assertions, overflow
#              checks) instead of release, into out/dev/ unless PORTFILTER_OUT is set. This
#              is what `cargo make` (debug, its default) and `cargo wdk build` compile on
#              Windows; CI builds both profiles.
#   --sign     test-sign the image with osslsigncode and a throwaway self-signed
#              certificate made by openssl for this build (its private key is deleted at
#              the end; nothing secret is written under out/). Such a driver loads only on
#              a machine with test signing on (bcdedit /set testsigning on).
#   --no-deps  do not run scripts/install-deps.sh first.
#
# Output (folder out/, or out/dev/ with --dev, or $PORTFILTER_OUT):
#   portfilter.sys         the driver image (PE32+, subsystem NATIVE, entry DriverEntry)
#   portfilter.map         lld-link's map file (tests/pe_image.rs reads DriverEntry's RVA)
#   portfilter.pdb         symbols for WinDbg
#   portfilter.inf         driver.inf stamped for amd64 (what stampinf does in the WDK flow)
#   portfilter-test.cer    with --sign: the throwaway certificate (public part only)
#   build-info.txt         key=value facts about this build, read by tests/pe_image.rs
# There is no portfilter.cat: a driver catalog needs inf2cat on Windows (see
# docs/windows-install.md for how to make one there, or use `cargo make` on Windows).
#
# Toolchain: rustup's stable when it has the x86_64-pc-windows-msvc target and rust-src
# (linker rust-lld); otherwise Debian's rustc-web/cargo-web 1.96 with rust-web-src (linker
# lld-link from Debian's lld). Both build core+alloc with -Zbuild-std (RUSTC_BOOTSTRAP=1):
# compiler_builtins must provide memcpy & co. (there is no C runtime in a driver).
# The C helper src/glue/usercopy.c (SEH user-buffer copies) is compiled with clang-14 and
# linked in; its kernel imports (ProbeForRead, ProbeForWrite, __C_specific_handler) come
# from a tiny ntoskrnl.exe import library generated here with llvm-dlltool.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=x86_64-pc-windows-msvc
target_dir=$root/target/cross

sign=0
deps=1
profile=release
for arg in "$@"; do
    case "$arg" in
        --dev) profile=dev ;;
        --sign) sign=1 ;;
        --no-deps) deps=0 ;;
        -h|--help) sed -n '2,/^set -euo pipefail/{/^set -euo/!p}' "$0"; exit 0 ;;
        *) echo "build-sys: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

# cargo's output folder for the profile; the dev profile's is called debug.
if [ "$profile" = dev ]; then
    profile_dir=debug
    out=${PORTFILTER_OUT:-$root/out/dev}
else
    profile_dir=release
    out=${PORTFILTER_OUT:-$root/out}
fi
work=$target_dir/portfilter-sys-work-$profile

log() { echo "build-sys: $*" >&2; }
die() { echo "build-sys: error: $*" >&2; exit 1; }

if [ "$deps" = 1 ]; then
    "$root/scripts/install-deps.sh"
fi

# ---- toolchain -------------------------------------------------------------------------
toolchain=""
if command -v rustup >/dev/null 2>&1 \
    && (cd "$root" && rustup target list --installed 2>/dev/null) | grep -qx "$target" \
    && [ -d "$(cd "$root" && rustc --print sysroot)/lib/rustlib/src/rust/library" ]; then
    toolchain=rustup
    cargo_bin=$(cd "$root" && rustup which cargo)
    rustc_bin=$(cd "$root" && rustup which rustc)
    linker=rust-lld
else
    toolchain=debian
    cargo_bin=/usr/bin/cargo
    rustc_bin=/usr/bin/rustc
    linker=lld-link
    [ -x "$cargo_bin" ] && [ -x "$rustc_bin" ] \
        || die "no Windows-capable Rust toolchain: install Debian's rustc-web cargo-web rust-web-src (scripts/install-deps.sh) or 'rustup target add $target' + 'rustup component add rust-src'"
    [ -d /usr/lib/rustlib/src/rust/library ] || die "rust-web-src is missing (scripts/install-deps.sh)"
    command -v lld-link >/dev/null 2>&1 || die "lld-link is missing: apt-get install lld"
fi
command -v clang-14 >/dev/null 2>&1 || die "clang-14 is missing: apt-get install clang-14"
command -v llvm-dlltool >/dev/null 2>&1 || die "llvm-dlltool is missing: apt-get install llvm"
log "toolchain: $toolchain ($("$rustc_bin" -V)); linker: $linker"

mkdir -p "$work" "$out"

# ---- C helper and its imports ---------------------------------------------------------
usercopy_obj=$work/usercopy.obj
# -fasynchronous-unwind-tables: Windows x64 needs .pdata for every function that moves
# RSP (exception dispatch unwinds through it); -ffreestanding turns clang-14's default off.
clang-14 --target="$target" -fms-extensions -ffreestanding -fno-stack-protector \
    -fasynchronous-unwind-tables -O2 -Wall -Wextra -Werror -c "$root/src/glue/usercopy.c" \
    -o "$usercopy_obj"

# Only what the C object needs; the Rust side imports its own functions (raw-dylib).
# lld-link merges both into one import descriptor for ntoskrnl.exe.
cat >"$work/ntoskrnl-c.def" <<'DEF'
LIBRARY ntoskrnl.exe
EXPORTS
    ProbeForRead
    ProbeForWrite
    __C_specific_handler
DEF
ntoskrnl_lib=$work/ntoskrnl-c.lib
llvm-dlltool -m i386:x86-64 -d "$work/ntoskrnl-c.def" -l "$ntoskrnl_lib"

# ---- Rust build ------------------------------------------------------------------------
map=$work/portfilter.map
link_args=(
    /DRIVER
    /SUBSYSTEM:NATIVE
    /ENTRY:DriverEntry
    /NODEFAULTLIB
    /INTEGRITYCHECK
    /NXCOMPAT
    /DYNAMICBASE
    /OPT:REF
    /OPT:ICF
    /DEBUG
    "/PDBALTPATH:%_PDB%"
    "/MAP:$map"
    "$usercopy_obj"
    "$ntoskrnl_lib"
)
rustflags=(-C "linker=$linker" -C debuginfo=line-tables-only)
for a in "${link_args[@]}"; do
    rustflags+=(-C "link-arg=$a")
done
# CARGO_ENCODED_RUSTFLAGS (0x1f-separated) keeps paths with spaces intact; like RUSTFLAGS
# it overrides the rustflags of .cargo/config.toml.
encoded_rustflags=$(IFS=$'\x1f'; printf '%s' "${rustflags[*]}")

# Build from a snapshot of the work tree (sources, manifests, lockfile) under target/cross:
# the Debian cargo may be newer than the one that wrote Cargo.lock and would rewrite it,
# and the shared work tree's Cargo.lock must never change behind other builds' backs.
# tar keeps modification times, so cargo's fingerprints stay valid between runs.
tree=$target_dir/tree
rm -rf "$tree"
mkdir -p "$tree"
tar -C "$root" --exclude=./target --exclude=./out --exclude=./.git -cf - . | tar -C "$tree" -xf -

# The standard library crates rebuilt by -Zbuild-std follow the selected profile; in the dev
# profile that would make them unoptimised, unlike the precompiled ones that the WDK build on
# Windows links (rustup ships core/alloc/compiler_builtins built in release, without debug
# assertions). Unoptimised compiler_builtins keeps references to the C library's fma/fmaf,
# which no kernel module exports. So build them as rustup does, in both profiles; the
# driver's own crates (portfilter, its protocol and bindings) keep the profile's settings.
std_profile=()
for krate in core alloc compiler_builtins; do
    std_profile+=(--config "profile.$profile.package.$krate.opt-level=3"
        --config "profile.$profile.package.$krate.debug-assertions=false"
        --config "profile.$profile.package.$krate.overflow-checks=false")
done

log "cargo build ($profile profile, -Zbuild-std) for $target"
(
    cd "$tree"
    env -u RUSTFLAGS RUSTC="$rustc_bin" RUSTC_BOOTSTRAP=1 \
        CARGO_ENCODED_RUSTFLAGS="$encoded_rustflags" \
        CARGO_TARGET_DIR="$target_dir" \
        "$cargo_bin" build --profile "$profile" --target "$target" -p portfilter --no-default-features \
        --lib -Zbuild-std=core,alloc,compiler_builtins \
        -Zbuild-std-features=compiler-builtins-mem "${std_profile[@]}"
)

built=$target_dir/$target/$profile_dir/portfilter.dll
[ -f "$built" ] || die "the build produced no $built"

# ---- collect the outputs ----------------------------------------------------------------
sys=$out/portfilter.sys
rm -f "$out/portfilter.sys" "$out/portfilter-test.cer"
cp "$built" "$sys"
# The kernel requires a valid image checksum for drivers (what link.exe /RELEASE writes;
# Debian's lld-link 14 has no /RELEASE), so compute it here.
python3 "$root/scripts/pe-checksum.py" "$sys"
cp "$map" "$out/portfilter.map"
if [ -f "$target_dir/$target/$profile_dir/portfilter.pdb" ]; then
    cp "$target_dir/$target/$profile_dir/portfilter.pdb" "$out/portfilter.pdb"
fi

# What stampinf does in the WDK flow: $ARCH$ -> amd64, DriverVer = today, crate version.
version=$(sed -n 's/^version = "\([0-9.]*\)".*/\1/p' "$root/Cargo.toml" | head -n 1)
IFS=. read -r v_major v_minor v_patch <<<"$version"
driver_ver="$(date -u +%m/%d/%Y),${v_major:-0}.${v_minor:-0}.${v_patch:-0}.0"
python3 - "$root/driver.inf" "$out/portfilter.inf" "$driver_ver" <<'PY'
import sys, re
src, dst, ver = sys.argv[1:4]
raw = open(src, "rb").read()
if raw.startswith(b"\xff\xfe"):
    text, enc = raw[2:].decode("utf-16-le"), "utf-16-le"
else:
    text, enc = raw.decode("ascii"), "ascii"
text = text.replace("$ARCH$", "amd64")
text, n = re.subn(r"(?im)^(\s*DriverVer\s*=\s*)[^;\r\n]*", lambda m: m.group(1) + ver, text)
if n != 1:
    sys.exit("build-sys: driver.inf must have exactly one DriverVer line")
data = text.encode(enc)
open(dst, "wb").write((b"\xff\xfe" if enc == "utf-16-le" else b"") + data)
PY

# ---- optional test signing ---------------------------------------------------------------
signed=no
if [ "$sign" = 1 ]; then
    command -v osslsigncode >/dev/null 2>&1 || die "osslsigncode is missing: apt-get install osslsigncode"
    command -v openssl >/dev/null 2>&1 || die "openssl is missing: apt-get install openssl"
    keydir=$(mktemp -d "$work/sign.XXXXXX")
    trap 'rm -rf "$keydir"' EXIT
    openssl req -x509 -newkey rsa:3072 -sha256 -nodes -days 30 \
        -subj "/CN=portfilter throwaway test signing" \
        -addext "keyUsage=critical,digitalSignature" \
        -addext "extendedKeyUsage=codeSigning" \
        -keyout "$keydir/key.pem" -out "$keydir/cert.pem" 2>/dev/null
    osslsigncode sign -certs "$keydir/cert.pem" -key "$keydir/key.pem" -h sha256 \
        -n "portfilter (test-signed)" -in "$sys" -out "$keydir/portfilter.sys" >/dev/null
    osslsigncode verify -CAfile "$keydir/cert.pem" -in "$keydir/portfilter.sys" >/dev/null \
        || die "osslsigncode could not verify the signature it just made"
    mv "$keydir/portfilter.sys" "$sys"
    openssl x509 -in "$keydir/cert.pem" -outform DER -out "$out/portfilter-test.cer"
    rm -rf "$keydir"
    trap - EXIT
    signed=yes
fi

cat >"$out/build-info.txt" <<INFO
image=portfilter.sys
target=$target
profile=$profile
toolchain=$toolchain
rustc=$("$rustc_bin" -V)
linker=$linker
signed=$signed
built_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)
INFO

log "wrote $sys ($(stat -c %s "$sys") bytes, signed=$signed)"
log "inspect: llvm-readobj --file-headers --coff-imports $sys"
