#!/usr/bin/env python3
"""Writes the PE image checksum (IMAGE_OPTIONAL_HEADER.CheckSum) into a PE file in place.

Windows checks this field for drivers; link.exe writes it with /RELEASE, lld-link 14 cannot.
The algorithm is the one CheckSumMappedFile documents: a 16-bit one's-complement style sum of
the file's 16-bit little-endian words, skipping the checksum field itself, folded to 16 bits,
plus the file length.

Usage: pe-checksum.py IMAGE [--check]   (--check: only verify, exit 1 on mismatch)
"""
import struct
import sys


def checksum_offset(data: bytes) -> int:
    if data[:2] != b"MZ":
        raise ValueError("not an MZ image")
    (pe,) = struct.unpack_from("<I", data, 0x3C)
    if data[pe : pe + 4] != b"PE\0\0":
        raise ValueError("no PE signature")
    # COFF file header is 20 bytes; CheckSum sits at offset 64 of the optional header
    # (the same for PE32 and PE32+).
    return pe + 4 + 20 + 64


def pe_checksum(data: bytes, skip: int) -> int:
    padded = data + (b"\0" if len(data) % 2 else b"")
    words = struct.unpack("<%dH" % (len(padded) // 2), padded)
    total = sum(words) - words[skip // 2] - words[skip // 2 + 1]
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (total + len(data)) & 0xFFFFFFFF


def main() -> int:
    path = sys.argv[1]
    check_only = "--check" in sys.argv[2:]
    data = bytearray(open(path, "rb").read())
    off = checksum_offset(bytes(data))
    want = pe_checksum(bytes(data), off)
    (have,) = struct.unpack_from("<I", data, off)
    if check_only:
        if have != want:
            print(f"{path}: checksum {have:#010x}, expected {want:#010x}", file=sys.stderr)
            return 1
        return 0
    struct.pack_into("<I", data, off, want)
    open(path, "wb").write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
