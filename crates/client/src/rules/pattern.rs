//! Path patterns of guard rules, and how they meet the NT names that events carry.
//!
//! Events name files in NT form (`\Device\HarddiskVolume3\Users\ann\a.exe`) with the
//! length of the volume prefix (`\Device\HarddiskVolume3`). A pattern takes one of four
//! forms:
//!
//! | pattern | matched against |
//! |---|---|
//! | `\Device\HarddiskVolume3\Users\*\a.exe` (NT form) | the whole NT name |
//! | `C:\Users\*\Downloads\*.exe` (DOS form) | the path inside the volume (`\Users\…`); the drive letter is ignored unless the rule set maps it to a volume (`[volumes]`), then the event's volume must be that one |
//! | `\Users\*\Downloads\*.exe` (volume-relative) | the path inside the volume, any volume |
//! | `*.exe` (no `\` at all) | the final component (the file name), in any directory |
//!
//! Glob syntax (globset): `*` and `?` stay inside one path component, `**` as a whole
//! component spans directories, `[abc]` and `{a,b}` as usual; `\` is always a path
//! separator, never an escape. Matching is case-insensitive (full Unicode case folding).

use globset::{GlobBuilder, GlobMatcher};

/// Where a pattern applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The whole NT name.
    NtName,
    /// The path inside the volume; `Some(drive)` for DOS-form patterns (upper-case letter).
    InVolume(Option<char>),
    /// The final path component.
    FileName,
}

/// A compiled path pattern.
#[derive(Clone, Debug)]
pub struct PathPattern {
    text: String,
    scope: Scope,
    matcher: GlobMatcher,
}

/// The parts of an event's file name that patterns look at.
#[derive(Clone, Copy, Debug)]
pub struct NameParts<'a> {
    /// The full NT name (`\Device\HarddiskVolume3\dir\file`).
    pub full: &'a str,
    /// The volume prefix (`\Device\HarddiskVolume3`), possibly empty.
    pub volume: &'a str,
    /// The path inside the volume (`\dir\file`), possibly empty.
    pub in_volume: &'a str,
    /// The final component (`file`), possibly empty.
    pub file_name: &'a str,
}

impl<'a> NameParts<'a> {
    /// Splits an NT name whose first `volume_bytes` bytes are the volume. A length past
    /// the end or inside a character is treated as "no volume known".
    #[must_use]
    pub fn split(full: &'a str, volume_bytes: usize) -> Self {
        let (volume, in_volume) = match full.split_at_checked(volume_bytes) {
            Some(parts) if volume_bytes > 0 => parts,
            _ => ("", full),
        };
        let file_name = full.rsplit('\\').next().unwrap_or("");
        Self {
            full,
            volume,
            in_volume,
            file_name,
        }
    }
}

/// Why a pattern was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Empty pattern.
    #[error("empty path pattern")]
    Empty,
    /// A pattern with a directory part that is not absolute.
    #[error(
        "path pattern `{0}` must be absolute (`C:\\dir\\*`, `\\dir\\*` or `\\Device\\HarddiskVolume1\\dir\\*`) or a bare file name (`*.exe`)"
    )]
    NotAbsolute(String),
    /// A glob syntax error.
    #[error("bad glob `{pattern}`: {reason}")]
    Glob {
        /// The pattern.
        pattern: String,
        /// What globset said.
        reason: String,
    },
}

impl PathPattern {
    /// Compiles a pattern (see the module documentation for the forms).
    ///
    /// # Errors
    /// [`PatternError`] for an empty, relative-with-directories or malformed pattern.
    pub fn new(text: &str) -> Result<Self, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        let bytes = text.as_bytes();
        let (scope, glob_text) = if starts_with_ignore_case(text, "\\Device\\") {
            (Scope::NtName, text)
        } else if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
            let rest = &text[2..];
            if !rest.starts_with('\\') {
                return Err(PatternError::NotAbsolute(text.to_owned()));
            }
            (
                Scope::InVolume(Some(char::from(bytes[0].to_ascii_uppercase()))),
                rest,
            )
        } else if text.starts_with('\\') {
            (Scope::InVolume(None), text)
        } else if text.contains('\\') {
            return Err(PatternError::NotAbsolute(text.to_owned()));
        } else {
            (Scope::FileName, text)
        };
        let slashed = glob_text.replace('\\', "/");
        let glob = GlobBuilder::new(&slashed)
            .case_insensitive(true)
            .literal_separator(true)
            .backslash_escape(false)
            .build()
            .map_err(|error| PatternError::Glob {
                pattern: text.to_owned(),
                reason: error.kind().to_string(),
            })?;
        Ok(Self {
            text: text.to_owned(),
            scope,
            matcher: glob.compile_matcher(),
        })
    }

    /// The pattern as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Where the pattern applies.
    #[must_use]
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Whether the name matches. `volume_of_drive` maps a DOS drive letter to its NT
    /// volume name when the rule set has a `[volumes]` entry for it.
    #[must_use]
    pub fn matches(
        &self,
        name: &NameParts<'_>,
        volume_of_drive: impl Fn(char) -> Option<String>,
    ) -> bool {
        let candidate = match &self.scope {
            Scope::NtName => name.full,
            Scope::InVolume(drive) => {
                if name.volume.is_empty() {
                    return false;
                }
                if let Some(expected) = drive.and_then(volume_of_drive)
                    && !expected.eq_ignore_ascii_case(name.volume)
                {
                    return false;
                }
                name.in_volume
            }
            Scope::FileName => name.file_name,
        };
        if candidate.is_empty() {
            return false;
        }
        self.matcher.is_match(candidate.replace('\\', "/"))
    }
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.is_char_boundary(prefix.len())
        && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VOLUME: &str = "\\Device\\HarddiskVolume3";

    fn parts(full: &str) -> NameParts<'_> {
        NameParts::split(full, VOLUME.len())
    }

    fn matches(pattern: &str, name: &str) -> bool {
        PathPattern::new(pattern)
            .unwrap()
            .matches(&parts(name), |_| None)
    }

    #[test]
    fn split_finds_volume_path_and_file_name() {
        let p = parts("\\Device\\HarddiskVolume3\\Users\\ann\\a.exe");
        assert_eq!(p.volume, VOLUME);
        assert_eq!(p.in_volume, "\\Users\\ann\\a.exe");
        assert_eq!(p.file_name, "a.exe");
        let none = NameParts::split("\\x", 99);
        assert_eq!(none.volume, "");
        assert_eq!(none.in_volume, "\\x");
        let exact = NameParts::split(VOLUME, VOLUME.len());
        assert_eq!(exact.volume, VOLUME);
        assert_eq!(exact.in_volume, "");
    }

    #[test]
    fn dos_pattern_matches_path_inside_volume_ignoring_drive() {
        let name = "\\Device\\HarddiskVolume3\\Users\\Ann\\Downloads\\setup.EXE";
        assert!(matches("C:\\Users\\*\\Downloads\\*.exe", name));
        assert!(matches("d:\\users\\*\\downloads\\*.exe", name));
        assert!(
            !matches("C:\\Users\\*\\*.exe", name),
            "* must not cross a separator"
        );
        assert!(matches("C:\\Users\\**\\*.exe", name));
        assert!(!matches("C:\\Users\\*\\Downloads\\*.dll", name));
    }

    #[test]
    fn smoke_test_pattern_form_is_supported() {
        assert!(matches(
            "C:\\portfilter-smoke\\denied*",
            "\\Device\\HarddiskVolume3\\portfilter-smoke\\denied-1.txt"
        ));
        assert!(!matches(
            "C:\\portfilter-smoke\\denied*",
            "\\Device\\HarddiskVolume3\\portfilter-smoke\\allowed.txt"
        ));
    }

    #[test]
    fn volume_map_restricts_dos_patterns() {
        let pattern = PathPattern::new("C:\\a\\*").unwrap();
        let name = parts("\\Device\\HarddiskVolume3\\a\\b");
        assert!(pattern.matches(&name, |d| (d == 'C').then(|| VOLUME.to_owned())));
        assert!(!pattern.matches(&name, |d| {
            (d == 'C').then(|| "\\Device\\HarddiskVolume9".to_owned())
        }));
    }

    #[test]
    fn nt_relative_and_file_name_forms() {
        let name = "\\Device\\HarddiskVolume3\\Temp\\x.tmp";
        assert!(matches("\\Device\\HarddiskVolume3\\Temp\\*", name));
        assert!(!matches("\\Device\\HarddiskVolume4\\Temp\\*", name));
        assert!(matches("\\temp\\*.TMP", name));
        assert!(matches("x.*", name));
        assert!(!matches("y.*", name));
    }

    #[test]
    fn bad_patterns_are_rejected() {
        assert_eq!(PathPattern::new("").unwrap_err(), PatternError::Empty);
        assert!(matches!(
            PathPattern::new("dir\\*.exe"),
            Err(PatternError::NotAbsolute(_))
        ));
        assert!(matches!(
            PathPattern::new("C:dir"),
            Err(PatternError::NotAbsolute(_))
        ));
        assert!(matches!(
            PathPattern::new("\\a\\[b"),
            Err(PatternError::Glob { .. })
        ));
    }

    #[test]
    fn names_without_volume_only_match_nt_and_file_name_patterns() {
        let name = NameParts::split("\\weird", 0);
        assert!(
            !PathPattern::new("\\weird")
                .unwrap()
                .matches(&name, |_| None)
        );
        assert!(PathPattern::new("weird").unwrap().matches(&name, |_| None));
    }
}
