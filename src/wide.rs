//! Compile-time UTF-16 strings for kernel object names.

/// Encodes an ASCII string as UTF-16 at compile time (no terminator).
///
/// Non-ASCII input fails the build (const panic), never at run time.
pub(crate) const fn ascii_to_utf16<const N: usize>(s: &str) -> [u16; N] {
    let bytes = s.as_bytes();
    assert!(bytes.len() == N, "length mismatch");
    let mut out = [0u16; N];
    let mut i = 0;
    while i < N {
        assert!(bytes[i] < 0x80, "ASCII only");
        out[i] = bytes[i] as u16;
        i += 1;
    }
    out
}
