//! Little-endian field access on byte slices, all bounds-checked (no panics), and the
//! const layout check used by every message module.

use crate::Error;

/// Rounds `n` up to a multiple of 8 (records and filter entries are 8-aligned).
#[must_use]
pub const fn round_up8(n: usize) -> usize {
    n.saturating_add(7) & !7
}

/// True when `fields` (offset, size) tile `0..size` exactly: each field starts where the
/// previous one ended (no gap = no implicit padding, no overlap), each offset is a
/// multiple of the field's size (natural alignment, so a C compiler lays the same struct
/// out identically without packing), and the last field ends at `size`.
#[allow(clippy::indexing_slicing)] // const evaluation only: an out-of-bounds index fails the build
pub(crate) const fn fields_tile(fields: &[(usize, usize)], size: usize) -> bool {
    let mut i = 0;
    let mut end = 0;
    while i < fields.len() {
        let (offset, len) = fields[i];
        if offset != end || len == 0 || !offset.is_multiple_of(len) {
            return false;
        }
        end = offset + len;
        i += 1;
    }
    end == size
}

/// Fails with [`Error::TooShort`] unless `buf` holds at least `need` bytes.
pub(crate) const fn need(buf: &[u8], need: usize) -> Result<(), Error> {
    if buf.len() < need {
        Err(Error::TooShort {
            need,
            got: buf.len(),
        })
    } else {
        Ok(())
    }
}

/// Fails with [`Error::OutputTooSmall`] unless `out` holds at least `need` bytes.
pub(crate) const fn need_out(out: &[u8], need: usize) -> Result<(), Error> {
    if out.len() < need {
        Err(Error::OutputTooSmall {
            need,
            got: out.len(),
        })
    } else {
        Ok(())
    }
}

/// Input of exactly `size` bytes: shorter is [`Error::TooShort`], longer is
/// [`Error::BadLength`] naming `what`.
pub(crate) const fn exact(buf: &[u8], size: usize, what: &'static str) -> Result<(), Error> {
    if buf.len() < size {
        Err(Error::TooShort {
            need: size,
            got: buf.len(),
        })
    } else if buf.len() > size {
        Err(Error::BadLength { field: what })
    } else {
        Ok(())
    }
}

fn get_array<const N: usize>(buf: &[u8], offset: usize) -> Result<[u8; N], Error> {
    let end = offset.saturating_add(N);
    buf.get(offset..end)
        .and_then(|bytes| <[u8; N]>::try_from(bytes).ok())
        .ok_or(Error::TooShort {
            need: end,
            got: buf.len(),
        })
}

fn put_array<const N: usize>(out: &mut [u8], offset: usize, bytes: [u8; N]) -> Result<(), Error> {
    let end = offset.saturating_add(N);
    let got = out.len();
    match out.get_mut(offset..end) {
        Some(dst) => {
            dst.copy_from_slice(&bytes);
            Ok(())
        }
        None => Err(Error::OutputTooSmall { need: end, got }),
    }
}

pub(crate) fn get_u8(buf: &[u8], offset: usize) -> Result<u8, Error> {
    get_array::<1>(buf, offset).map(|[b]| b)
}

pub(crate) fn get_u16(buf: &[u8], offset: usize) -> Result<u16, Error> {
    get_array(buf, offset).map(u16::from_le_bytes)
}

pub(crate) fn get_u32(buf: &[u8], offset: usize) -> Result<u32, Error> {
    get_array(buf, offset).map(u32::from_le_bytes)
}

pub(crate) fn get_i32(buf: &[u8], offset: usize) -> Result<i32, Error> {
    get_array(buf, offset).map(i32::from_le_bytes)
}

pub(crate) fn get_u64(buf: &[u8], offset: usize) -> Result<u64, Error> {
    get_array(buf, offset).map(u64::from_le_bytes)
}

pub(crate) fn put_u8(out: &mut [u8], offset: usize, value: u8) -> Result<(), Error> {
    put_array(out, offset, [value])
}

pub(crate) fn put_u16(out: &mut [u8], offset: usize, value: u16) -> Result<(), Error> {
    put_array(out, offset, value.to_le_bytes())
}

pub(crate) fn put_u32(out: &mut [u8], offset: usize, value: u32) -> Result<(), Error> {
    put_array(out, offset, value.to_le_bytes())
}

pub(crate) fn put_i32(out: &mut [u8], offset: usize, value: i32) -> Result<(), Error> {
    put_array(out, offset, value.to_le_bytes())
}

pub(crate) fn put_u64(out: &mut [u8], offset: usize, value: u64) -> Result<(), Error> {
    put_array(out, offset, value.to_le_bytes())
}

/// Sub-slice `start..start+len` of `buf`, or [`Error::TooShort`].
pub(crate) fn slice(buf: &[u8], start: usize, len: usize) -> Result<&[u8], Error> {
    let end = start.saturating_add(len);
    buf.get(start..end).ok_or(Error::TooShort {
        need: end,
        got: buf.len(),
    })
}

/// Mutable sub-slice `start..start+len` of `out`, or [`Error::OutputTooSmall`].
pub(crate) fn slice_mut(out: &mut [u8], start: usize, len: usize) -> Result<&mut [u8], Error> {
    let end = start.saturating_add(len);
    let got = out.len();
    out.get_mut(start..end)
        .ok_or(Error::OutputTooSmall { need: end, got })
}

/// Zeroes `out[start..start+len]`.
pub(crate) fn zero(out: &mut [u8], start: usize, len: usize) -> Result<(), Error> {
    slice_mut(out, start, len)?.fill(0);
    Ok(())
}

/// True when every byte of `buf[start..start+len]` is zero (false when out of range).
pub(crate) fn all_zero(buf: &[u8], start: usize, len: usize) -> bool {
    slice(buf, start, len).is_ok_and(|bytes| bytes.iter().all(|&b| b == 0))
}

/// Writes UTF-16 `units` little-endian at `out[start..]`.
pub(crate) fn put_units(out: &mut [u8], start: usize, units: &[u16]) -> Result<(), Error> {
    let dst = slice_mut(out, start, units.len().saturating_mul(2))?;
    for (pair, unit) in dst.chunks_exact_mut(2).zip(units) {
        pair.copy_from_slice(&unit.to_le_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_tile_detects_gaps_overlaps_and_misalignment() {
        assert!(fields_tile(&[(0, 2), (2, 2), (4, 4)], 8));
        assert!(!fields_tile(&[(0, 2), (4, 4)], 8), "gap");
        assert!(!fields_tile(&[(0, 4), (2, 2)], 4), "overlap");
        assert!(!fields_tile(&[(0, 2), (2, 4)], 6), "misaligned u32");
        assert!(!fields_tile(&[(0, 2), (2, 2)], 8), "short of size");
    }

    #[test]
    fn getters_fail_instead_of_panicking() {
        let buf = [1u8, 2, 3];
        assert_eq!(get_u16(&buf, 0), Ok(0x0201));
        assert_eq!(get_u16(&buf, 2), Err(Error::TooShort { need: 4, got: 3 }));
        assert!(get_u64(&buf, usize::MAX).is_err());
        let mut out = [0u8; 3];
        assert_eq!(
            put_u32(&mut out, 0, 1),
            Err(Error::OutputTooSmall { need: 4, got: 3 })
        );
        assert_eq!(round_up8(0), 0);
        assert_eq!(round_up8(1), 8);
        assert_eq!(round_up8(8), 8);
    }
}
