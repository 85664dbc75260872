//! The file name of a create: query (normalized, falling back to opened), parse, and
//! release on every path (the name information is released when [`FileName`] drops).

use core::ptr::NonNull;
use portfilter_bindings::{
    FLT_CALLBACK_DATA, FLT_FILE_NAME_INFORMATION, FLT_FILE_NAME_NORMALIZED, FLT_FILE_NAME_OPENED,
    FLT_FILE_NAME_QUERY_DEFAULT, FLTFL_FILE_NAME_PARSED_EXTENSION, FLTFL_FILE_NAME_PARSED_STREAM,
    FltGetFileNameInformation, FltParseFileNameInformation, FltReleaseFileNameInformation,
    STATUS_SUCCESS, UNICODE_STRING,
};
use portfilter_protocol::extension_of;

/// Which name the Filter Manager gave us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NameKind {
    /// `FLT_FILE_NAME_NORMALIZED`: long names, full path.
    Normalized,
    /// `FLT_FILE_NAME_OPENED`: normalization failed; the name as opened (may hold short
    /// names such as `PEDRO~1.GUS`).
    Opened,
}

/// Name information held for the duration of a pre-create; released on drop.
pub(crate) struct FileName {
    info: NonNull<FLT_FILE_NAME_INFORMATION>,
    kind: NameKind,
    parsed: bool,
}

impl FileName {
    /// Queries the normalized name, then the opened name. `None` when neither is available
    /// (the event then carries no name and says so in its flags).
    ///
    /// # Safety
    /// `data` is the callback data of the running pre-create callback.
    #[inline(always)]
    pub(crate) unsafe fn query(data: *mut FLT_CALLBACK_DATA) -> Option<Self> {
        for (format, kind) in [
            (FLT_FILE_NAME_NORMALIZED, NameKind::Normalized),
            (FLT_FILE_NAME_OPENED, NameKind::Opened),
        ] {
            let mut info: *mut FLT_FILE_NAME_INFORMATION = core::ptr::null_mut();
            // SAFETY: `data` is the current callback data; `info` is a valid out pointer.
            let status = unsafe {
                FltGetFileNameInformation(data, format | FLT_FILE_NAME_QUERY_DEFAULT, &raw mut info)
            };
            if status == STATUS_SUCCESS {
                if let Some(info) = NonNull::new(info) {
                    // SAFETY: the name information is ours until released in Drop.
                    let parsed =
                        unsafe { FltParseFileNameInformation(info.as_ptr()) } == STATUS_SUCCESS;
                    return Some(Self { info, kind, parsed });
                }
            } else if let Some(info) = NonNull::new(info) {
                // A failure that still handed out a structure: give it back.
                // SAFETY: the structure came from FltGetFileNameInformation.
                unsafe { FltReleaseFileNameInformation(info.as_ptr()) };
            }
        }
        None
    }

    /// Which name this is.
    pub(crate) fn kind(&self) -> NameKind {
        self.kind
    }

    fn info(&self) -> &FLT_FILE_NAME_INFORMATION {
        // SAFETY: the structure is valid until we release it in Drop.
        unsafe { self.info.as_ref() }
    }

    /// The full name, e.g. `\Device\HarddiskVolume3\Users\a\b.txt`.
    pub(crate) fn full(&self) -> &[u16] {
        units(&self.info().Name)
    }

    /// The parsed parts of the name, for the event and the filters.
    #[inline(always)]
    pub(crate) fn parts(&self) -> NameParts<'_> {
        let full = self.full();
        let volume_units = if self.parsed {
            (self.info().Volume.Length as usize / 2).min(full.len())
        } else {
            volume_prefix_units(full)
        };
        NameParts {
            volume_units,
            path: full.get(volume_units..).unwrap_or(&[]),
        }
    }

    /// The final component's extension of `path` (this name's [`NameParts::path`]) as the
    /// protocol's filters define it ([`extension_of`]): taken from the Filter Manager's
    /// parse when that is certainly the same, else scanned. Asked for only when an
    /// extension filter needs it.
    pub(crate) fn extension<'a>(&self, path: &'a [u16]) -> &'a [u16] {
        let parsed = if self.parsed {
            parsed_extension(self.info(), path)
        } else {
            None
        };
        parsed.unwrap_or_else(|| extension_of(path))
    }
}

impl Drop for FileName {
    fn drop(&mut self) {
        // SAFETY: obtained from FltGetFileNameInformation and released exactly once.
        unsafe { FltReleaseFileNameInformation(self.info.as_ptr()) };
    }
}

/// A name split for reporting and matching.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NameParts<'a> {
    /// Length in UTF-16 units of the volume prefix (`\Device\HarddiskVolume3`).
    pub volume_units: usize,
    /// The path inside the volume (`\Users\a\b.txt:stream`).
    pub path: &'a [u16],
}

/// The extension `FltParseFileNameInformation` found, when it is certainly the protocol's
/// [`extension_of`] `path` — the common case, a name without a stream whose final
/// component has an extension — so that the create path need not scan the final
/// component: the Filter Manager reported no stream, and its extension is a non-empty
/// suffix of the path right after a `.`, holding no `.`, `\` or `:` (so it is what follows
/// the component's last dot). `None` otherwise (the caller scans).
fn parsed_extension<'a>(info: &FLT_FILE_NAME_INFORMATION, path: &'a [u16]) -> Option<&'a [u16]> {
    const NEEDED: u16 = FLTFL_FILE_NAME_PARSED_EXTENSION | FLTFL_FILE_NAME_PARSED_STREAM;
    if info.NamesParsed & NEEDED != NEEDED || info.Stream.Length != 0 {
        return None;
    }
    let units = usize::from(info.Extension.Length / 2);
    // The extension must be the path's tail: same end address, within the path.
    let start = path.len().checked_sub(units)?;
    let dot = start.checked_sub(1)?;
    let tail = path.get(start..)?;
    let ends_together = core::ptr::eq(
        tail.as_ptr_range().end,
        info.Extension.Buffer.cast_const().wrapping_add(units),
    );
    let clean = !tail.is_empty()
        && ends_together
        && path.get(dot) == Some(&DOT)
        && !tail
            .iter()
            .any(|&u| u == DOT || u == BACKSLASH || u == COLON);
    clean.then_some(tail)
}

/// The UTF-16 units of a kernel `UNICODE_STRING` (empty for a null buffer).
fn units(s: &UNICODE_STRING) -> &[u16] {
    if s.Buffer.is_null() || s.Length < 2 {
        return &[];
    }
    // SAFETY: the Filter Manager's name strings are kernel memory holding `Length` bytes,
    // valid while the name information is referenced (we hold it).
    unsafe { core::slice::from_raw_parts(s.Buffer, s.Length as usize / 2) }
}

const BACKSLASH: u16 = b'\\' as u16;
const DOT: u16 = b'.' as u16;
const COLON: u16 = b':' as u16;

/// The volume prefix of an NT name when the Filter Manager could not parse it: the first
/// three components of `\Device\<volume>\...` (0 when the name has another shape).
pub(crate) fn volume_prefix_units(full: &[u16]) -> usize {
    let mut seen = 0;
    for (i, &u) in full.iter().enumerate() {
        if u == BACKSLASH {
            seen += 1;
            if seen == 3 {
                return i;
            }
        }
    }
    if seen == 2 && full.first() == Some(&BACKSLASH) {
        full.len()
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn w(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn volume_prefix_is_the_first_two_components() {
        let n = w(r"\Device\HarddiskVolume3\Windows\x.pf");
        let v = volume_prefix_units(&n);
        assert_eq!(&n[..v], &w(r"\Device\HarddiskVolume3")[..]);
        assert_eq!(volume_prefix_units(&w(r"\Device\HarddiskVolume3")), 23);
        assert_eq!(volume_prefix_units(&w("relative.txt")), 0);
    }

    #[test]
    fn names_of_other_shapes_have_no_volume_prefix() {
        // Fewer than two components, or not rooted: no volume to cut off.
        assert_eq!(volume_prefix_units(&w(r"\Device")), 0);
        assert_eq!(volume_prefix_units(&w(r"Device\Vol\x")), 0, "not rooted");
        assert_eq!(volume_prefix_units(&w(r"Device\Vol")), 0, "not rooted");
        assert_eq!(volume_prefix_units(&w("")), 0);
        // Exactly `\Device\<volume>`: the whole name is the volume.
        assert_eq!(volume_prefix_units(&w(r"\D\V")), 4);
        assert_eq!(volume_prefix_units(&w(r"\D\V\")), 4);
    }

    #[test]
    fn a_kernel_string_shorter_than_one_unit_is_empty() {
        let mut buf = w("ab");
        let s = |len: u16, buffer: *mut u16| UNICODE_STRING {
            Length: len,
            MaximumLength: 4,
            Buffer: buffer,
        };
        assert_eq!(units(&s(4, buf.as_mut_ptr())), &w("ab")[..]);
        assert_eq!(units(&s(2, buf.as_mut_ptr())), &w("a")[..], "one unit");
        assert_eq!(
            units(&s(3, buf.as_mut_ptr())),
            &w("a")[..],
            "an odd byte is dropped"
        );
        assert!(units(&s(1, buf.as_mut_ptr())).is_empty(), "half a unit");
        assert!(units(&s(0, buf.as_mut_ptr())).is_empty());
        assert!(units(&s(4, core::ptr::null_mut())).is_empty(), "no buffer");
    }

    /// Name information over `name`, parsed as the Filter Manager does: `ext` and
    /// `stream` are (start, units) inside `name`.
    fn parsed_info(
        name: &mut [u16],
        ext: (usize, usize),
        stream: (usize, usize),
        flags: u16,
    ) -> FLT_FILE_NAME_INFORMATION {
        let at = |name: &mut [u16], (start, len): (usize, usize)| UNICODE_STRING {
            Length: u16::try_from(len * 2).unwrap(),
            MaximumLength: u16::try_from(len * 2).unwrap(),
            Buffer: name[start..].as_mut_ptr(),
        };
        // SAFETY: plain data; all-zero is a valid (empty) value.
        let mut info: FLT_FILE_NAME_INFORMATION = unsafe { core::mem::zeroed() };
        info.NamesParsed = flags;
        info.Extension = at(name, ext);
        info.Stream = at(name, stream);
        info.Name = at(name, (0, name.len()));
        info
    }

    const PARSED: u16 = FLTFL_FILE_NAME_PARSED_EXTENSION | FLTFL_FILE_NAME_PARSED_STREAM;

    #[test]
    fn the_parsed_extension_is_used_only_when_it_is_certainly_the_protocols() {
        let mut name = w(r"\a\b.txt");
        let len = name.len();
        let path: &[u16] = &name.clone();
        let info = parsed_info(&mut name, (len - 3, 3), (len, 0), PARSED);
        // Compare by content, over a path that shares the name's buffer.
        let full = units(&info.Name);
        assert_eq!(parsed_extension(&info, full), Some(&w("txt")[..]));
        assert_eq!(extension_of(path), &w("txt")[..]);
        // Not parsed for extension and stream: scan.
        let info = parsed_info(
            &mut name,
            (len - 3, 3),
            (len, 0),
            FLTFL_FILE_NAME_PARSED_EXTENSION,
        );
        assert_eq!(parsed_extension(&info, units(&info.Name)), None);
        // A stream: scan.
        let info = parsed_info(&mut name, (len - 3, 3), (len - 1, 1), PARSED);
        assert_eq!(parsed_extension(&info, units(&info.Name)), None);
        // Not the tail of the path, or not after a dot, or holding a separator: scan.
        let info = parsed_info(&mut name, (len - 4, 3), (len, 0), PARSED);
        assert_eq!(
            parsed_extension(&info, units(&info.Name)),
            None,
            "not the tail"
        );
        let info = parsed_info(&mut name, (len - 2, 2), (len, 0), PARSED);
        assert_eq!(
            parsed_extension(&info, units(&info.Name)),
            None,
            "no dot before"
        );
        let info = parsed_info(&mut name, (len - 4, 4), (len, 0), PARSED);
        assert_eq!(
            parsed_extension(&info, units(&info.Name)),
            None,
            "holds the dot"
        );
        let info = parsed_info(&mut name, (len, 0), (len, 0), PARSED);
        assert_eq!(
            parsed_extension(&info, units(&info.Name)),
            None,
            "empty: scan"
        );
        // The same units elsewhere in memory are not the path's tail.
        let mut other = w(r"\a\b.txt");
        let info = parsed_info(&mut other, (len - 3, 3), (len, 0), PARSED);
        assert_eq!(parsed_extension(&info, path), None, "another buffer");
        // After a dot but holding a dot, a backslash or a colon: not a final component's
        // extension (the Filter Manager should never report one; the guard still refuses).
        for text in [r"\a.b.c", r"\a.b\c", r"\a.b:c"] {
            let mut name = w(text);
            let len = name.len();
            let info = parsed_info(&mut name, (len - 3, 3), (len, 0), PARSED);
            assert_eq!(parsed_extension(&info, units(&info.Name)), None, "{text}");
        }
    }
}
