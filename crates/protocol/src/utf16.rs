//! Borrowed UTF-16LE text inside a message (file names, filter patterns).
//!
//! The wire carries names as little-endian UTF-16 bytes at even but not necessarily
//! 2-aligned addresses, so a view never reinterprets them as `&[u16]`; it reads units
//! with `u16::from_le_bytes`. Names are not guaranteed to be valid UTF-16 (Windows file
//! names may hold unpaired surrogates); conversions to text are lossy.

use core::fmt;
use core::slice::ChunksExact;

use crate::Error;

/// UTF-16LE text borrowed from a message: an even number of bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Utf16Le<'a> {
    bytes: &'a [u8],
}

impl<'a> Utf16Le<'a> {
    /// Wraps `bytes`, which must be whole UTF-16 units.
    ///
    /// # Errors
    /// [`Error::OddNameLength`] when `bytes.len()` is odd.
    pub const fn new(bytes: &'a [u8]) -> Result<Self, Error> {
        if bytes.len().is_multiple_of(2) {
            Ok(Self { bytes })
        } else {
            Err(Error::OddNameLength { len: bytes.len() })
        }
    }

    /// The raw little-endian bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Length in UTF-16 units.
    #[must_use]
    pub const fn len_units(&self) -> usize {
        self.bytes.len() / 2
    }

    /// True when there are no units.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The UTF-16 units, in order.
    #[must_use]
    pub fn units(&self) -> Units<'a> {
        Units {
            pairs: self.bytes.chunks_exact(2),
        }
    }

    /// The characters, with unpaired surrogates as errors (see [`char::decode_utf16`]).
    #[must_use]
    pub fn chars(&self) -> core::char::DecodeUtf16<Units<'a>> {
        char::decode_utf16(self.units())
    }

    /// The first `units` units and the rest, or `None` when `units` is past the end.
    #[must_use]
    pub fn split_at_units(&self, units: usize) -> Option<(Self, Self)> {
        let mid = units.checked_mul(2)?;
        if mid > self.bytes.len() {
            return None;
        }
        let (head, tail) = self.bytes.split_at(mid);
        Some((Self { bytes: head }, Self { bytes: tail }))
    }

    /// True when the units equal `other` exactly.
    #[must_use]
    pub fn eq_units(&self, other: &[u16]) -> bool {
        self.len_units() == other.len() && self.units().eq(other.iter().copied())
    }

    /// Copies the units into `out` and returns how many were copied.
    ///
    /// # Errors
    /// [`Error::OutputTooSmall`] (counted in units) when `out` is too short.
    pub fn copy_to(&self, out: &mut [u16]) -> Result<usize, Error> {
        let n = self.len_units();
        let got = out.len();
        let dst = out
            .get_mut(..n)
            .ok_or(Error::OutputTooSmall { need: n, got })?;
        for (d, s) in dst.iter_mut().zip(self.units()) {
            *d = s;
        }
        Ok(n)
    }

    /// The text, with U+FFFD for unpaired surrogates.
    #[cfg(feature = "std")]
    #[must_use]
    pub fn to_string_lossy(&self) -> alloc::string::String {
        self.chars()
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    }
}

/// Formats the text lossily (U+FFFD for unpaired surrogates); works without `std`.
impl fmt::Display for Utf16Le<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.chars() {
            fmt::Write::write_char(f, c.unwrap_or(char::REPLACEMENT_CHARACTER))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Utf16Le<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Utf16Le({:?} units: \"{self}\")", self.len_units())
    }
}

/// Iterator over the units of a [`Utf16Le`].
#[derive(Clone, Debug)]
pub struct Units<'a> {
    pairs: ChunksExact<'a, u8>,
}

impl Iterator for Units<'_> {
    type Item = u16;

    fn next(&mut self) -> Option<u16> {
        match self.pairs.next()? {
            &[lo, hi] => Some(u16::from_le_bytes([lo, hi])),
            _ => None,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.pairs.size_hint()
    }
}

impl DoubleEndedIterator for Units<'_> {
    fn next_back(&mut self) -> Option<u16> {
        match self.pairs.next_back()? {
            &[lo, hi] => Some(u16::from_le_bytes([lo, hi])),
            _ => None,
        }
    }
}

impl ExactSizeIterator for Units<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_display() {
        let bytes = [b'a', 0, 0x3D, 0xD8, 0x00, 0xDE, b'z', 0, 0x00, 0xD8];
        let text = Utf16Le::new(&bytes).unwrap();
        assert_eq!(text.len_units(), 5);
        let units: [u16; 5] = [0x61, 0xD83D, 0xDE00, 0x7A, 0xD800];
        assert!(text.units().eq(units));
        assert!(text.eq_units(&units));
        assert!(!text.eq_units(&units[..4]));
        let mut s = [0u8; 64];
        let mut w = Writer(&mut s, 0);
        fmt::write(&mut w, format_args!("{text}")).unwrap();
        let len = w.1;
        assert_eq!(
            core::str::from_utf8(&s[..len]).unwrap(),
            "a\u{1F600}z\u{FFFD}"
        );
        let (head, tail) = text.split_at_units(1).unwrap();
        assert!(head.eq_units(&[0x61]));
        assert_eq!(tail.len_units(), 4);
        assert!(text.split_at_units(6).is_none());
        assert_eq!(
            Utf16Le::new(&bytes[..3]),
            Err(Error::OddNameLength { len: 3 })
        );
        let mut out = [0u16; 4];
        assert!(text.copy_to(&mut out).is_err());
        let mut out = [0u16; 5];
        assert_eq!(text.copy_to(&mut out), Ok(5));
        assert_eq!(out, units);
    }

    #[test]
    fn emptiness_and_the_split_bounds() {
        let empty = Utf16Le::new(&[]).unwrap();
        assert!(empty.is_empty());
        let bytes = [b'a', 0, b'b', 0];
        let text = Utf16Le::new(&bytes).unwrap();
        assert!(!text.is_empty());
        // Splitting at the very end is not past it: all of it, then nothing.
        let (head, tail) = text.split_at_units(2).unwrap();
        assert_eq!(head, text);
        assert!(tail.is_empty());
        let (head, tail) = text.split_at_units(0).unwrap();
        assert!(head.is_empty());
        assert_eq!(tail, text);
        assert!(text.split_at_units(3).is_none());
        assert!(text.split_at_units(usize::MAX).is_none());
        assert_eq!(empty.split_at_units(0), Some((empty, empty)));
    }

    #[test]
    fn eq_units_compares_every_unit() {
        let bytes = [b'a', 0, b'b', 0, b'c', 0];
        let text = Utf16Le::new(&bytes).unwrap();
        assert!(text.eq_units(&[0x61, 0x62, 0x63]));
        // Same length, one unit differs (first, middle, last, high byte): not equal.
        assert!(!text.eq_units(&[0x41, 0x62, 0x63]));
        assert!(!text.eq_units(&[0x61, 0x162, 0x63]));
        assert!(!text.eq_units(&[0x61, 0x62, 0x64]));
        assert!(!text.eq_units(&[0x61, 0x62, 0x63, 0x64]));
        assert!(!text.eq_units(&[]));
        assert!(Utf16Le::new(&[]).unwrap().eq_units(&[]));
    }

    #[test]
    fn units_iterate_both_ways_with_an_exact_length() {
        let bytes = [b'a', 0, 0x3D, 0xD8, b'z', 0];
        let text = Utf16Le::new(&bytes).unwrap();
        let mut units = text.units();
        for left in (0..=3).rev() {
            assert_eq!(units.size_hint(), (left, Some(left)));
            assert_eq!(units.len(), left);
            if left > 0 {
                units.next().unwrap();
            }
        }
        assert_eq!(units.next(), None);
        let mut back = text.units();
        assert_eq!(back.next_back(), Some(0x7A));
        assert_eq!(back.len(), 2);
        assert_eq!(back.next_back(), Some(0xD83D));
        assert_eq!(back.next_back(), Some(0x61));
        assert_eq!(back.next_back(), None);
        // Mixed: the front and the back meet in the middle.
        let mut both = text.units();
        assert_eq!(both.next(), Some(0x61));
        assert_eq!(both.next_back(), Some(0x7A));
        assert_eq!(both.next(), Some(0xD83D));
        assert_eq!((both.next(), both.next_back()), (None, None));
    }

    #[test]
    fn debug_shows_the_length_and_the_text() {
        let bytes = [b'h', 0, b'i', 0, 0x00, 0xDC];
        let mut s = [0u8; 64];
        let mut w = Writer(&mut s, 0);
        let text = Utf16Le::new(&bytes).unwrap();
        fmt::write(&mut w, format_args!("{text:?}")).unwrap();
        let len = w.1;
        assert_eq!(
            core::str::from_utf8(&s[..len]).unwrap(),
            "Utf16Le(3 units: \"hi\u{FFFD}\")"
        );
    }

    struct Writer<'b>(&'b mut [u8], usize);

    impl fmt::Write for Writer<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.1 + s.len();
            self.0
                .get_mut(self.1..end)
                .ok_or(fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.1 = end;
            Ok(())
        }
    }

    #[cfg(feature = "std")]
    #[test]
    fn to_string_lossy() {
        let bytes = [b'h', 0, b'i', 0, 0x00, 0xDC];
        assert_eq!(
            Utf16Le::new(&bytes).unwrap().to_string_lossy(),
            "hi\u{FFFD}"
        );
    }
}
