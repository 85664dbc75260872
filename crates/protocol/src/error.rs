//! The one error type of the protocol crate.
//!
//! Every decoder returns one of these instead of panicking, whatever the input.
//! [`crate::status::status_for_error`] maps each to the `NTSTATUS` the driver returns.

use core::fmt;

/// Why a message could not be encoded or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The input ends before the message does: `need` bytes were required, `got` given.
    TooShort {
        /// Bytes the message needs.
        need: usize,
        /// Bytes the input has.
        got: usize,
    },
    /// The caller's output buffer cannot hold the encoded message.
    OutputTooSmall {
        /// Bytes the encoded message needs.
        need: usize,
        /// Bytes the output buffer has.
        got: usize,
    },
    /// The header does not start with [`crate::MAGIC`].
    BadMagic {
        /// The magic found.
        got: u16,
    },
    /// The header's protocol version is not [`crate::PROTOCOL_VERSION`].
    VersionMismatch {
        /// The version found.
        got: u16,
    },
    /// The header's kind is not a [`crate::MessageKind`] at all.
    UnknownKind(u16),
    /// The header's kind is a known kind, but not the one expected here.
    UnexpectedKind {
        /// The kind found.
        got: u16,
    },
    /// A reserved field or padding byte is not zero.
    BadReserved {
        /// Which reserved field.
        field: &'static str,
    },
    /// A length field disagrees with the buffer or with another length, or the input is
    /// longer than a fixed-size message.
    BadLength {
        /// Which length.
        field: &'static str,
    },
    /// A field holds a value outside its documented range or set.
    FieldOutOfRange {
        /// Which field.
        field: &'static str,
    },
    /// A UTF-16 name is longer than its bound (in bytes).
    NameTooLong {
        /// The length found, in bytes.
        len: usize,
    },
    /// A UTF-16 length in bytes is odd.
    OddNameLength {
        /// The length found, in bytes.
        len: usize,
    },
    /// The batch has no room for this event (or holds its maximum number of events).
    BatchFull,
    /// The filter list already holds [`crate::MAX_FILTERS`] filters.
    TooManyFilters,
    /// The filter patterns together would exceed [`crate::MAX_FILTER_TOTAL_BYTES`].
    FilterSpaceExhausted,
}

impl Error {
    /// The same error with byte counts moved by `by` (a part decoded at offset `by` of a
    /// larger message reports sizes relative to the whole message).
    #[must_use]
    pub(crate) const fn shifted(self, by: usize) -> Self {
        match self {
            Self::TooShort { need, got } => Self::TooShort {
                need: need.saturating_add(by),
                got: got.saturating_add(by),
            },
            Self::OutputTooSmall { need, got } => Self::OutputTooSmall {
                need: need.saturating_add(by),
                got: got.saturating_add(by),
            },
            other => other,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooShort { need, got } => {
                write!(f, "message too short: need {need} bytes, got {got}")
            }
            Self::OutputTooSmall { need, got } => {
                write!(f, "output buffer too small: need {need} bytes, got {got}")
            }
            Self::BadMagic { got } => write!(f, "bad magic {got:#06x} (expected 0x4650, \"PF\")"),
            Self::VersionMismatch { got } => write!(
                f,
                "protocol version mismatch: got {got}, this side speaks {}",
                crate::PROTOCOL_VERSION
            ),
            Self::UnknownKind(kind) => write!(f, "unknown message kind {kind}"),
            Self::UnexpectedKind { got } => write!(f, "unexpected message kind {got} here"),
            Self::BadReserved { field } => write!(f, "reserved field `{field}` is not zero"),
            Self::BadLength { field } => write!(f, "inconsistent length `{field}`"),
            Self::FieldOutOfRange { field } => write!(f, "field `{field}` is out of range"),
            Self::NameTooLong { len } => write!(f, "name of {len} bytes is too long"),
            Self::OddNameLength { len } => {
                write!(f, "UTF-16 length {len} is odd (must be whole units)")
            }
            Self::BatchFull => f.write_str("the batch is full"),
            Self::TooManyFilters => write!(f, "more than {} filters", crate::MAX_FILTERS),
            Self::FilterSpaceExhausted => write!(
                f,
                "filter patterns exceed {} bytes in total",
                crate::MAX_FILTER_TOTAL_BYTES
            ),
        }
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn every_error_displays_what_went_wrong_with_its_values() {
        // portctl prints these: each message must say what failed and carry its numbers
        // or the field's name.
        let cases: [(Error, &[&str]); 14] = [
            (
                Error::TooShort { need: 40, got: 12 },
                &["short", "40", "12"],
            ),
            (
                Error::OutputTooSmall {
                    need: 2248,
                    got: 100,
                },
                &["output", "2248", "100"],
            ),
            (Error::BadMagic { got: 0x1234 }, &["magic", "0x1234"]),
            (Error::VersionMismatch { got: 9 }, &["version", "got 9"]),
            (Error::UnknownKind(77), &["unknown", "77"]),
            (Error::UnexpectedKind { got: 19 }, &["unexpected", "19"]),
            (
                Error::BadReserved {
                    field: "hello.reserved",
                },
                &["reserved", "hello.reserved"],
            ),
            (
                Error::BadLength { field: "name_len" },
                &["length", "name_len"],
            ),
            (
                Error::FieldOutOfRange {
                    field: "skip_flags",
                },
                &["range", "skip_flags"],
            ),
            (Error::NameTooLong { len: 4098 }, &["long", "4098"]),
            (Error::OddNameLength { len: 15 }, &["odd", "15"]),
            (Error::BatchFull, &["batch", "full"]),
            (Error::TooManyFilters, &["filters", "16"]),
            (Error::FilterSpaceExhausted, &["filter", "2048"]),
        ];
        for (error, words) in cases {
            let text = error.to_string();
            for word in words {
                assert!(text.contains(word), "{error:?} displays {text:?}");
            }
        }
    }
}
