//! Path filters and the matching function the driver runs for every create.
//!
//! Semantics (also in docs/protocol.md):
//! - A *prefix* filter matches when the path inside the volume (e.g.
//!   `\Windows\Prefetch\X.pf`, the name after `volume_name_len`) starts with the pattern.
//!   Patterns must start with `\`. `\Windows` also matches `\WindowsApps\…`; end the
//!   pattern with `\` to mean "inside this directory".
//! - An *extension* filter matches when the final path component's extension equals the
//!   pattern. The extension is what follows the last `.` of the final component, after
//!   cutting any stream suffix (`a.txt:Zone.Identifier` has extension `txt`); no `.`
//!   means no extension, which no filter matches. Patterns hold no `.`, `\` or `:`.
//! - Comparison is case-insensitive: each UTF-16 unit is upcased with [`upcase_unit`]
//!   (ASCII, plus the single-unit simple uppercase of other BMP characters; surrogates
//!   unchanged). This approximates, and can differ for a few characters from, the
//!   volume's own `$UpCase` table.
//! - If any include filter exists, an event must match at least one include filter; an
//!   event that matches any exclude filter is dropped. No filters: everything is reported.
//!   An event without a name matches no filter.
//!
//! Everything here is allocation-free and panic-free.

use core::fmt;

use crate::Error;

/// Most filters in a configuration.
pub const MAX_FILTERS: usize = 16;
/// Longest single pattern, in bytes of UTF-16 (256 units).
pub const MAX_FILTER_BYTES: usize = 512;
/// [`MAX_FILTER_BYTES`] in units.
pub const MAX_FILTER_UNITS: usize = MAX_FILTER_BYTES / 2;
/// Most pattern bytes over all filters together (keeps [`crate::Config`] near 2 KiB).
pub const MAX_FILTER_TOTAL_BYTES: usize = 2048;
/// [`MAX_FILTER_TOTAL_BYTES`] in units.
pub const MAX_FILTER_TOTAL_UNITS: usize = MAX_FILTER_TOTAL_BYTES / 2;

/// Wire value of [`FilterKind::IncludePrefix`].
pub const FILTER_INCLUDE_PREFIX: u16 = 1;
/// Wire value of [`FilterKind::ExcludePrefix`].
pub const FILTER_EXCLUDE_PREFIX: u16 = 2;
/// Wire value of [`FilterKind::IncludeExtension`].
pub const FILTER_INCLUDE_EXTENSION: u16 = 3;
/// Wire value of [`FilterKind::ExcludeExtension`].
pub const FILTER_EXCLUDE_EXTENSION: u16 = 4;

const _: () = assert!(MAX_FILTERS <= u8::MAX as usize);
const _: () = assert!(MAX_FILTER_TOTAL_UNITS <= u16::MAX as usize);
const _: () = assert!(MAX_FILTER_UNITS <= MAX_FILTER_TOTAL_UNITS);

const BACKSLASH: u16 = b'\\' as u16;
const DOT: u16 = b'.' as u16;
const COLON: u16 = b':' as u16;

/// What a filter matches and whether it includes or excludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum FilterKind {
    /// Report only paths under one of the include filters.
    IncludePrefix = FILTER_INCLUDE_PREFIX,
    /// Drop paths under this prefix.
    ExcludePrefix = FILTER_EXCLUDE_PREFIX,
    /// Report only files with one of the include extensions.
    IncludeExtension = FILTER_INCLUDE_EXTENSION,
    /// Drop files with this extension.
    ExcludeExtension = FILTER_EXCLUDE_EXTENSION,
}

impl FilterKind {
    /// The kind with wire value `value`, if any.
    #[must_use]
    pub const fn from_u16(value: u16) -> Option<Self> {
        match value {
            FILTER_INCLUDE_PREFIX => Some(Self::IncludePrefix),
            FILTER_EXCLUDE_PREFIX => Some(Self::ExcludePrefix),
            FILTER_INCLUDE_EXTENSION => Some(Self::IncludeExtension),
            FILTER_EXCLUDE_EXTENSION => Some(Self::ExcludeExtension),
            _ => None,
        }
    }

    /// The wire value.
    #[must_use]
    pub const fn as_u16(self) -> u16 {
        self as u16
    }

    /// True for the include kinds.
    #[must_use]
    pub const fn is_include(self) -> bool {
        matches!(self, Self::IncludePrefix | Self::IncludeExtension)
    }

    /// True for the prefix kinds.
    #[must_use]
    pub const fn is_prefix(self) -> bool {
        matches!(self, Self::IncludePrefix | Self::ExcludePrefix)
    }
}

/// Upcases one UTF-16 unit: ASCII `a-z`, and any other BMP character whose Unicode
/// uppercase is exactly one BMP character. Surrogates and characters whose uppercase is
/// several characters (`ß`) are returned unchanged.
#[must_use]
pub fn upcase_unit(unit: u16) -> u16 {
    if unit < 0x80 {
        return if (0x61..=0x7A).contains(&unit) {
            unit - 0x20
        } else {
            unit
        };
    }
    let Some(c) = char::from_u32(u32::from(unit)) else {
        return unit; // a surrogate
    };
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) => u16::try_from(u32::from(u)).unwrap_or(unit),
        _ => unit,
    }
}

/// Case-insensitive equality of two UTF-16 strings (see [`upcase_unit`]).
#[must_use]
#[inline]
pub fn eq_ignore_case(a: &[u16], b: &[u16]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| units_eq_ignore_case(x, y))
}

/// `upcase_unit(x) == upcase_unit(y)`, with the all-ASCII case inline (the filter match
/// runs on every create that has a name).
#[inline]
fn units_eq_ignore_case(x: u16, y: u16) -> bool {
    if x == y {
        true
    } else if x | y < 0x80 {
        // Both ASCII: only a-z and A-Z pair up.
        x ^ y == 0x20 && (0x41..=0x5A).contains(&(x & !0x20))
    } else {
        // A non-ASCII unit may still upcase to ASCII (U+0131 → I, U+017F → S).
        units_eq_ignore_case_slow(x, y)
    }
}

#[cold]
#[inline(never)]
fn units_eq_ignore_case_slow(x: u16, y: u16) -> bool {
    upcase_unit(x) == upcase_unit(y)
}

/// Case-insensitive `starts_with` (see [`upcase_unit`]).
#[must_use]
pub fn starts_with_ignore_case(s: &[u16], prefix: &[u16]) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| eq_ignore_case(head, prefix))
}

/// The path inside the volume: `name` without its first `volume_name_len` bytes (empty
/// when the volume part is longer than the name).
#[must_use]
pub fn path_in_volume(name: &[u16], volume_name_len: usize) -> &[u16] {
    name.get(volume_name_len / 2..).unwrap_or_default()
}

/// The extension of the final component of `path`, without the dot, and without any
/// stream suffix (`\a\b.txt:s` → `txt`); empty when there is none.
#[must_use]
pub fn extension_of(path: &[u16]) -> &[u16] {
    // One pass from the end over the final component only: a ':' ends the name part (the
    // leftmost one counts, and it is met last), and the last '.' before it starts the
    // extension.
    let mut end = path.len();
    let mut dot = None;
    let mut i = path.len();
    while let Some(at) = i.checked_sub(1) {
        match path.get(at).copied() {
            Some(BACKSLASH) | None => break,
            Some(COLON) => {
                end = at;
                dot = None;
            }
            Some(DOT) if dot.is_none() => dot = Some(at),
            Some(_) => {}
        }
        i = at;
    }
    dot.and_then(|at| path.get(at.saturating_add(1)..end))
        .unwrap_or_default()
}

/// Checks a pattern for `kind`.
///
/// # Errors
/// [`Error::FieldOutOfRange`] (`filter.len`) when empty; [`Error::NameTooLong`] above
/// [`MAX_FILTER_BYTES`]; [`Error::FieldOutOfRange`] (`filter.pattern`) when it holds a NUL,
/// a prefix does not start with `\`, or an extension holds `.`, `\` or `:`.
pub fn validate_pattern(kind: FilterKind, pattern: &[u16]) -> Result<(), Error> {
    validate_pattern_units(kind, pattern.len(), &pattern.iter().copied())
}

/// [`validate_pattern`] over `len` units given by an iterator (for wire bytes).
pub(crate) fn validate_pattern_units(
    kind: FilterKind,
    len: usize,
    units: &(impl Iterator<Item = u16> + Clone),
) -> Result<(), Error> {
    if len == 0 {
        return Err(Error::FieldOutOfRange {
            field: "filter.len",
        });
    }
    if len > MAX_FILTER_UNITS {
        return Err(Error::NameTooLong {
            len: len.saturating_mul(2),
        });
    }
    let mut all = units.clone();
    let bad = all.any(|u| u == 0)
        || if kind.is_prefix() {
            units.clone().next() != Some(BACKSLASH)
        } else {
            units
                .clone()
                .any(|u| u == DOT || u == BACKSLASH || u == COLON)
        };
    if bad {
        Err(Error::FieldOutOfRange {
            field: "filter.pattern",
        })
    } else {
        Ok(())
    }
}

/// One filter, borrowed from a [`FilterList`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filter<'a> {
    /// What it matches and whether it includes or excludes.
    pub kind: FilterKind,
    /// The pattern (UTF-16 units, validated).
    pub pattern: &'a [u16],
}

impl Filter<'_> {
    /// True when this filter matches a path inside the volume / its extension.
    #[must_use]
    pub fn matches(&self, path_in_volume: &[u16], extension: &[u16]) -> bool {
        if self.kind.is_prefix() {
            starts_with_ignore_case(path_in_volume, self.pattern)
        } else {
            eq_ignore_case(extension, self.pattern)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    kind: FilterKind,
    start: u16,
    len: u16,
}

const EMPTY_SLOT: Slot = Slot {
    kind: FilterKind::IncludePrefix,
    start: 0,
    len: 0,
};

/// Up to [`MAX_FILTERS`] validated filters whose patterns share
/// [`MAX_FILTER_TOTAL_UNITS`] units of inline storage (no allocation; about 2 KiB, so
/// keep it in pool or static memory rather than on a kernel stack).
#[derive(Clone)]
pub struct FilterList {
    slots: [Slot; MAX_FILTERS],
    count: u8,
    used: u16,
    units: [u16; MAX_FILTER_TOTAL_UNITS],
}

impl Default for FilterList {
    fn default() -> Self {
        Self::new()
    }
}

impl FilterList {
    /// An empty list.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            slots: [EMPTY_SLOT; MAX_FILTERS],
            count: 0,
            used: 0,
            units: [0; MAX_FILTER_TOTAL_UNITS],
        }
    }

    /// Removes every filter.
    pub fn clear(&mut self) {
        self.slots = [EMPTY_SLOT; MAX_FILTERS];
        self.count = 0;
        self.used = 0;
        self.units.fill(0);
    }

    /// Number of filters.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.count as usize
    }

    /// True when there is no filter.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Pattern units stored over all filters.
    #[must_use]
    pub const fn total_units(&self) -> usize {
        self.used as usize
    }

    /// Adds a filter whose pattern is `len` units written by `fill` into spare storage;
    /// nothing changes unless the pattern is valid and fits.
    fn push_with(
        &mut self,
        kind: FilterKind,
        len: usize,
        fill: impl FnOnce(&mut [u16]),
    ) -> Result<(), Error> {
        if self.len() >= MAX_FILTERS {
            return Err(Error::TooManyFilters);
        }
        if len > MAX_FILTER_UNITS {
            return Err(Error::NameTooLong {
                len: len.saturating_mul(2),
            });
        }
        let start = self.used as usize;
        let end = start.saturating_add(len);
        let spare = self
            .units
            .get_mut(start..end)
            .ok_or(Error::FilterSpaceExhausted)?;
        fill(spare);
        let written = self.units.get(start..end).unwrap_or_default();
        if let Err(e) = validate_pattern(kind, written) {
            if let Some(spare) = self.units.get_mut(start..end) {
                spare.fill(0);
            }
            return Err(e);
        }
        let slot = self
            .slots
            .get_mut(self.count as usize)
            .ok_or(Error::TooManyFilters)?;
        *slot = Slot {
            kind,
            start: u16::try_from(start).map_err(|_| Error::FilterSpaceExhausted)?,
            len: u16::try_from(len).map_err(|_| Error::FilterSpaceExhausted)?,
        };
        self.count = self.count.saturating_add(1);
        self.used = u16::try_from(end).map_err(|_| Error::FilterSpaceExhausted)?;
        Ok(())
    }

    /// Adds a filter.
    ///
    /// # Errors
    /// [`Error::TooManyFilters`], [`Error::FilterSpaceExhausted`], or a
    /// [`validate_pattern`] error. The list is unchanged on error.
    pub fn push(&mut self, kind: FilterKind, pattern: &[u16]) -> Result<(), Error> {
        self.push_with(kind, pattern.len(), |dst| dst.copy_from_slice(pattern))
    }

    /// Adds a filter given as text (for clients and tests; works without `std`).
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn push_str(&mut self, kind: FilterKind, pattern: &str) -> Result<(), Error> {
        let len = pattern.encode_utf16().count();
        self.push_with(kind, len, |dst| {
            for (d, s) in dst.iter_mut().zip(pattern.encode_utf16()) {
                *d = s;
            }
        })
    }

    /// Adds a filter whose pattern is UTF-16LE bytes (the wire form).
    pub(crate) fn push_le_bytes(&mut self, kind: FilterKind, bytes: &[u8]) -> Result<(), Error> {
        if !bytes.len().is_multiple_of(2) {
            return Err(Error::OddNameLength { len: bytes.len() });
        }
        self.push_with(kind, bytes.len() / 2, |dst| {
            for (d, pair) in dst.iter_mut().zip(bytes.chunks_exact(2)) {
                if let &[lo, hi] = pair {
                    *d = u16::from_le_bytes([lo, hi]);
                }
            }
        })
    }

    /// The `index`-th filter.
    #[must_use]
    pub fn get(&self, index: usize) -> Option<Filter<'_>> {
        if index >= self.len() {
            return None;
        }
        let slot = self.slots.get(index)?;
        let start = slot.start as usize;
        let pattern = self
            .units
            .get(start..start.saturating_add(slot.len as usize))?;
        Some(Filter {
            kind: slot.kind,
            pattern,
        })
    }

    /// The filters in order.
    #[must_use]
    pub const fn iter(&self) -> FilterIter<'_> {
        FilterIter {
            list: self,
            next: 0,
        }
    }

    /// True when at least one include filter exists.
    #[must_use]
    pub fn has_include(&self) -> bool {
        self.iter().any(|f| f.kind.is_include())
    }

    /// The matching decision: should an event with this path inside the volume and this
    /// extension be reported? (See the module docs for the rules.)
    #[must_use]
    pub fn should_report(&self, path_in_volume: &[u16], extension: &[u16]) -> bool {
        self.should_report_lazy(path_in_volume, || extension)
    }

    /// [`should_report`](Self::should_report) with the extension computed only if an
    /// extension filter is consulted (at most once): a list of prefix filters, or one
    /// that an exclude prefix decides first, never looks at it.
    #[must_use]
    pub fn should_report_lazy<'e>(
        &self,
        path_in_volume: &[u16],
        extension: impl FnOnce() -> &'e [u16],
    ) -> bool {
        let mut extension = Some(extension);
        let mut known: &[u16] = &[];
        let mut has_include = false;
        let mut included = false;
        let count = self.len();
        for slot in self.slots.get(..count).unwrap_or_default() {
            let start = usize::from(slot.start);
            let Some(pattern) = self
                .units
                .get(start..start.saturating_add(usize::from(slot.len)))
            else {
                continue;
            };
            let is_include = slot.kind.is_include();
            if is_include && included {
                continue; // already included: only an exclude can still change the answer
            }
            let hit = if slot.kind.is_prefix() {
                starts_with_ignore_case(path_in_volume, pattern)
            } else {
                if let Some(compute) = extension.take() {
                    known = compute();
                }
                eq_ignore_case(known, pattern)
            };
            if is_include {
                has_include = true;
                included |= hit;
            } else if hit {
                return false;
            }
        }
        !has_include || included
    }

    /// [`should_report`](Self::should_report) for a whole name: splits off the volume
    /// (`volume_name_len` bytes) and takes the extension with [`extension_of`].
    #[must_use]
    pub fn should_report_name(&self, name: &[u16], volume_name_len: usize) -> bool {
        let path = path_in_volume(name, volume_name_len);
        self.should_report(path, extension_of(path))
    }
}

/// Iterator over the filters of a [`FilterList`].
#[derive(Debug, Clone)]
pub struct FilterIter<'a> {
    list: &'a FilterList,
    next: usize,
}

impl<'a> Iterator for FilterIter<'a> {
    type Item = Filter<'a>;

    fn next(&mut self) -> Option<Filter<'a>> {
        let filter = self.list.get(self.next)?;
        self.next = self.next.saturating_add(1);
        Some(filter)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.list.len().saturating_sub(self.next);
        (left, Some(left))
    }
}

impl ExactSizeIterator for FilterIter<'_> {}

impl<'a> IntoIterator for &'a FilterList {
    type Item = Filter<'a>;
    type IntoIter = FilterIter<'a>;

    fn into_iter(self) -> FilterIter<'a> {
        self.iter()
    }
}

impl PartialEq for FilterList {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for FilterList {}

impl fmt::Debug for FilterList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn u(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    fn list(filters: &[(FilterKind, &str)]) -> FilterList {
        let mut l = FilterList::new();
        for (k, p) in filters {
            l.push_str(*k, p).unwrap();
        }
        l
    }

    #[test]
    fn upcase_covers_ascii_and_bmp() {
        assert_eq!(upcase_unit(u16::from(b'a')), u16::from(b'A'));
        assert_eq!(upcase_unit(u16::from(b'Z')), u16::from(b'Z'));
        assert_eq!(upcase_unit(u16::from(b'\\')), u16::from(b'\\'));
        assert_eq!(upcase_unit(0x00E9), 0x00C9); // é
        assert_eq!(upcase_unit(0x0436), 0x0416); // ж
        assert_eq!(upcase_unit(0x03C9), 0x03A9); // ω
        assert_eq!(upcase_unit(0x00DF), 0x00DF); // ß: uppercase is "SS", unchanged
        assert_eq!(upcase_unit(0xD83D), 0xD83D); // surrogate unchanged
        assert!(eq_ignore_case(&u("ÉCOLE.Txt"), &u("école.tXT")));
        assert!(!eq_ignore_case(&u("a"), &u("ab")));
    }

    #[test]
    fn ascii_and_the_non_ascii_units_that_upcase_to_ascii_compare_as_upcased() {
        for x in 0..0x80u16 {
            for y in 0..0x80u16 {
                assert_eq!(
                    eq_ignore_case(&[x], &[y]),
                    upcase_unit(x) == upcase_unit(y),
                    "{x:#x} {y:#x}"
                );
            }
        }
        assert!(eq_ignore_case(&[0x0131], &[u16::from(b'I')]), "dotless i");
        assert!(eq_ignore_case(&[u16::from(b's')], &[0x017F]), "long s");
    }

    #[test]
    fn extension_rules() {
        let ext = |p: &str| std::string::String::from_utf16(extension_of(&u(p))).unwrap();
        assert_eq!(ext(r"\Windows\Prefetch\A.pf"), "pf");
        assert_eq!(ext(r"\a\b.tar.gz"), "gz");
        assert_eq!(ext(r"\Users\x\Downloads\f.exe:Zone.Identifier"), "exe");
        assert_eq!(ext(r"\a.d\file"), "");
        assert_eq!(ext(r"\a\file."), "");
        assert_eq!(ext(r"\a\.gitignore"), "gitignore");
        assert_eq!(ext(r"\dir\"), "");
        assert_eq!(ext(""), "");
        assert_eq!(ext("noslash.txt"), "txt");
    }

    #[test]
    fn include_and_exclude_rules() {
        let none = FilterList::new();
        assert!(none.should_report(&u(r"\x"), &u("")));

        let l = list(&[
            (FilterKind::IncludePrefix, r"\Users\"),
            (FilterKind::IncludeExtension, "pf"),
            (FilterKind::ExcludePrefix, r"\Users\Public\"),
            (FilterKind::ExcludeExtension, "TMP"),
        ]);
        let report = |p: &str| l.should_report_name(&u(p), 0);
        assert!(report(r"\users\bob\a.txt"), "include prefix, any case");
        assert!(report(r"\Windows\Prefetch\X.PF"), "include extension");
        assert!(!report(r"\Windows\x.dll"), "no include matches");
        assert!(!report(r"\Users\Public\a.txt"), "exclude prefix wins");
        assert!(!report(r"\Users\bob\a.tmp"), "exclude extension wins");
        assert!(!report(r"\Users"), "shorter than the prefix");
        assert!(!report(""), "no name matches no include");

        let name = u(r"\Device\HarddiskVolume3\Users\bob\a.txt");
        assert!(l.should_report_name(&name, 46));
        assert!(!l.should_report_name(&name, 0), "volume part not stripped");
        assert!(path_in_volume(&name, 1000).is_empty());
    }

    #[test]
    fn list_bounds_and_validation() {
        let mut l = FilterList::new();
        assert_eq!(
            l.push_str(FilterKind::IncludePrefix, "Windows"),
            Err(Error::FieldOutOfRange {
                field: "filter.pattern"
            })
        );
        assert_eq!(
            l.push_str(FilterKind::IncludeExtension, ".txt"),
            Err(Error::FieldOutOfRange {
                field: "filter.pattern"
            })
        );
        assert_eq!(
            l.push_str(FilterKind::IncludeExtension, ""),
            Err(Error::FieldOutOfRange {
                field: "filter.len"
            })
        );
        assert_eq!(
            l.push(FilterKind::ExcludeExtension, &[u16::from(b'a'), 0]),
            Err(Error::FieldOutOfRange {
                field: "filter.pattern"
            })
        );
        let long: std::string::String = core::iter::once('\\')
            .chain(core::iter::repeat_n('x', MAX_FILTER_UNITS))
            .collect();
        assert_eq!(
            l.push_str(FilterKind::ExcludePrefix, &long),
            Err(Error::NameTooLong {
                len: MAX_FILTER_BYTES + 2
            })
        );
        assert!(l.is_empty());
        assert_eq!(l.total_units(), 0);
        assert!(
            l.units.iter().all(|&x| x == 0),
            "failed pushes leave no trace"
        );

        let max = &long[..MAX_FILTER_UNITS];
        for _ in 0..4 {
            l.push_str(FilterKind::ExcludePrefix, max).unwrap();
        }
        assert_eq!(l.total_units(), MAX_FILTER_TOTAL_UNITS);
        assert_eq!(
            l.push_str(FilterKind::ExcludeExtension, "x"),
            Err(Error::FilterSpaceExhausted)
        );
        l.clear();
        for i in 0..MAX_FILTERS {
            l.push_str(FilterKind::IncludeExtension, "e").unwrap();
            assert_eq!(l.len(), i + 1);
        }
        assert_eq!(
            l.push_str(FilterKind::IncludeExtension, "e"),
            Err(Error::TooManyFilters)
        );
        assert_eq!(l.iter().len(), MAX_FILTERS);
        assert!(l.get(MAX_FILTERS).is_none());
    }

    #[test]
    fn extension_patterns_refuse_each_separator() {
        // "an extension holds no `.`, `\` or `:`", wherever it stands.
        for bad in [".", r"\", ":", "a.b", r"a\b", "a:b", "ab.", r"ab\", "ab:"] {
            for kind in [FilterKind::IncludeExtension, FilterKind::ExcludeExtension] {
                assert_eq!(
                    validate_pattern(kind, &u(bad)),
                    Err(Error::FieldOutOfRange {
                        field: "filter.pattern"
                    }),
                    "{kind:?} {bad:?}"
                );
            }
        }
        assert_eq!(
            validate_pattern(FilterKind::IncludeExtension, &u("a_b")),
            Ok(())
        );
        // A prefix may hold all three (a stream name, a dotted directory).
        assert_eq!(
            validate_pattern(FilterKind::ExcludePrefix, &u(r"\a.b\c:d")),
            Ok(())
        );
    }

    #[test]
    fn a_list_is_empty_only_without_filters() {
        let mut l = FilterList::new();
        assert!(l.is_empty());
        l.push_str(FilterKind::ExcludeExtension, "tmp").unwrap();
        assert!(!l.is_empty());
        l.clear();
        assert!(l.is_empty());
    }

    #[test]
    fn lists_are_equal_when_their_filters_are() {
        let a = list(&[(FilterKind::IncludePrefix, r"\Users\")]);
        assert_eq!(a, list(&[(FilterKind::IncludePrefix, r"\Users\")]));
        // Same number of filters, another pattern or kind: not equal.
        assert_ne!(a, list(&[(FilterKind::IncludePrefix, r"\Windows\")]));
        assert_ne!(a, list(&[(FilterKind::ExcludePrefix, r"\Users\")]));
        // A prefix of the other list: not equal either way.
        let longer = list(&[
            (FilterKind::IncludePrefix, r"\Users\"),
            (FilterKind::ExcludeExtension, "tmp"),
        ]);
        assert_ne!(a, longer);
        assert_ne!(longer, a);
        assert_ne!(a, FilterList::new());
        assert_eq!(FilterList::new(), FilterList::new());
        // Equality is of the filters, not of leftovers in the unused storage.
        let mut reused = longer.clone();
        reused.clear();
        reused
            .push_str(FilterKind::IncludePrefix, r"\Users\")
            .unwrap();
        assert_eq!(reused, a);
    }

    #[test]
    fn a_list_debugs_as_its_filters() {
        let l = list(&[
            (FilterKind::IncludePrefix, r"\U"),
            (FilterKind::ExcludeExtension, "t"),
        ]);
        let text = std::format!("{l:?}");
        // Each filter with its kind and its pattern's units ('\\' = 92, 'U' = 85, 't' = 116).
        assert!(text.contains("IncludePrefix"), "{text}");
        assert!(text.contains("[92, 85]"), "{text}");
        assert!(text.contains("ExcludeExtension"), "{text}");
        assert!(text.contains("[116]"), "{text}");
        assert_eq!(std::format!("{:?}", FilterList::new()), "[]");
    }
}
