//! `HRESULT` values returned by the fltlib functions, with a plain-words meaning for each
//! code a portfilter client meets.

use std::fmt;

/// An `HRESULT` as returned by `FilterConnectCommunicationPort`, `FilterGetMessage`,
/// `FilterReplyMessage` and `FilterSendMessage`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hresult(pub i32);

/// Builds an `i32` HRESULT from its conventional unsigned hex spelling.
const fn hr(value: u32) -> Hresult {
    Hresult(value.cast_signed())
}

impl Hresult {
    /// `S_OK`.
    pub const S_OK: Self = hr(0);
    /// The port name does not exist: the driver is not loaded (`ERROR_FILE_NOT_FOUND`).
    pub const FILE_NOT_FOUND: Self = hr(0x8007_0002);
    /// `E_ACCESSDENIED`: the port admits Administrators and SYSTEM only.
    pub const ACCESS_DENIED: Self = hr(0x8007_0005);
    /// `ERROR_INVALID_HANDLE`: the connection was closed (driver unloading or port closed).
    pub const INVALID_HANDLE: Self = hr(0x8007_0006);
    /// `ERROR_INVALID_FUNCTION`: the driver does not accept commands.
    pub const INVALID_FUNCTION: Self = hr(0x8007_0001);
    /// `E_INVALIDARG`.
    pub const INVALID_ARG: Self = hr(0x8007_0057);
    /// `ERROR_INSUFFICIENT_BUFFER`.
    pub const INSUFFICIENT_BUFFER: Self = hr(0x8007_007A);
    /// `ERROR_NOT_SUPPORTED` (the driver's `STATUS_NOT_SUPPORTED`: unknown command).
    pub const NOT_SUPPORTED: Self = hr(0x8007_0032);
    /// `ERROR_BAD_LENGTH` (the driver's `STATUS_INFO_LENGTH_MISMATCH`).
    pub const BAD_LENGTH: Self = hr(0x8007_0018);
    /// `ERROR_NOACCESS` (the driver's `STATUS_ACCESS_VIOLATION` or
    /// `STATUS_DATATYPE_MISALIGNMENT_ERROR`: a bad or misaligned buffer).
    pub const NOACCESS: Self = hr(0x8007_03E6);
    /// `ERROR_REVISION_MISMATCH` (the driver's `STATUS_REVISION_MISMATCH`).
    pub const REVISION_MISMATCH: Self = hr(0x8007_051A);
    /// `ERROR_SHARING_VIOLATION` (the driver's `STATUS_SHARING_VIOLATION`: a decider is
    /// already connected).
    pub const SHARING_VIOLATION: Self = hr(0x8007_0020);
    /// `ERROR_MORE_DATA` (reply truncated: `STATUS_BUFFER_OVERFLOW`).
    pub const MORE_DATA: Self = hr(0x8007_00EA);
    /// `ERROR_NO_MORE_ITEMS`.
    pub const NO_MORE_ITEMS: Self = hr(0x8007_0103);
    /// `ERROR_TIMEOUT`.
    pub const TIMEOUT: Self = hr(0x8007_0102);
    /// `ERROR_CONNECTION_COUNT_LIMIT`: the port already has its maximum of clients.
    pub const CONNECTION_COUNT_LIMIT: Self = hr(0x8007_04D6);
    /// `ERROR_NO_SYSTEM_RESOURCES`.
    pub const NO_SYSTEM_RESOURCES: Self = hr(0x8007_05AA);
    /// `ERROR_OPERATION_ABORTED`: an overlapped request was cancelled (`CancelIoEx`).
    pub const OPERATION_ABORTED: Self = hr(0x8007_03E3);
    /// `ERROR_IO_PENDING`: an overlapped request was queued and completes later.
    pub const IO_PENDING: Self = hr(0x8007_03E5);
    /// `ERROR_FLT_NO_WAITER_FOR_REPLY`: a reply arrived after the driver stopped waiting.
    pub const FLT_NO_WAITER_FOR_REPLY: Self = hr(0x801F_0020);
    /// `ERROR_FLT_DELETING_OBJECT`: the filter is being unloaded.
    pub const FLT_DELETING_OBJECT: Self = hr(0x801F_000B);

    /// The value as the conventional unsigned hex number.
    #[must_use]
    pub const fn as_u32(self) -> u32 {
        self.0.cast_unsigned()
    }

    /// `true` for success codes (severity bit clear).
    #[must_use]
    pub const fn is_ok(self) -> bool {
        self.0 >= 0
    }

    /// `HRESULT_FROM_WIN32(code)`.
    #[must_use]
    pub const fn from_win32(code: u32) -> Self {
        if code == 0 {
            Self::S_OK
        } else {
            hr((code & 0xFFFF) | 0x8007_0000)
        }
    }

    /// The Win32 error code inside a `FACILITY_WIN32` HRESULT, if it is one.
    #[must_use]
    pub const fn win32_code(self) -> Option<u32> {
        if self.as_u32() & 0xFFFF_0000 == 0x8007_0000 {
            Some(self.as_u32() & 0xFFFF)
        } else {
            None
        }
    }

    /// What this code means, in words a user can act on.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::S_OK => "success",
            Self::FILE_NOT_FOUND => {
                "port not found: the portfilter driver is not loaded; load it with `fltmc load portfilter` (Windows) or start `portfilter-sim` (simulator)"
            }
            Self::ACCESS_DENIED => {
                "access denied: the port admits Administrators and SYSTEM only; run from an elevated (Administrator) prompt"
            }
            Self::INVALID_HANDLE => {
                "the connection is closed (the driver is unloading or closed the port)"
            }
            Self::INVALID_FUNCTION => "the driver does not accept commands on this port",
            Self::INVALID_ARG => "invalid parameter (the driver rejected a field of the request)",
            Self::INSUFFICIENT_BUFFER => "buffer too small for the message",
            Self::NOT_SUPPORTED => {
                "the driver does not know this command (driver older than portctl?)"
            }
            Self::BAD_LENGTH => {
                "the request has the wrong size for its command (driver and portctl versions differ?)"
            }
            Self::NOACCESS => "the driver could not read or write the request buffer",
            Self::REVISION_MISMATCH => {
                "protocol version mismatch: the driver and this client speak different protocol versions; install matching versions"
            }
            Self::SHARING_VIOLATION => {
                "another client is already connected as the decider; stop it first (one `portctl guard` at a time), or observe with `portctl watch`"
            }
            Self::MORE_DATA => "the reply was larger than the driver's buffer and was truncated",
            Self::NO_MORE_ITEMS => "no more entries",
            Self::TIMEOUT => "the operation timed out",
            Self::CONNECTION_COUNT_LIMIT => {
                "connection limit reached: the port already has its maximum number of clients; stop one of them"
            }
            Self::NO_SYSTEM_RESOURCES => "insufficient system resources",
            Self::OPERATION_ABORTED => "the request was cancelled",
            Self::IO_PENDING => "the request is pending and completes later",
            Self::FLT_NO_WAITER_FOR_REPLY => {
                "late reply: the driver had stopped waiting (its reply timeout passed) and applied its default verdict"
            }
            Self::FLT_DELETING_OBJECT => "the filter is being unloaded",
            _ => portfilter_protocol::status::KNOWN_STATUSES
                .iter()
                .find(|known| known.hresult == self.0)
                .map_or("unrecognised error code", |known| known.meaning),
        }
    }
}

impl fmt::Debug for Hresult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hresult(0x{:08X})", self.as_u32())
    }
}

impl fmt::Display for Hresult {
    /// `0x80070002 (port not found: …)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08X} ({})", self.as_u32(), self.describe())
    }
}

impl From<i32> for Hresult {
    fn from(value: i32) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_win32_builds_facility_win32_codes() {
        assert_eq!(Hresult::from_win32(2), Hresult::FILE_NOT_FOUND);
        assert_eq!(Hresult::from_win32(995), Hresult::OPERATION_ABORTED);
        assert_eq!(Hresult::from_win32(0), Hresult::S_OK);
        assert_eq!(Hresult::FILE_NOT_FOUND.win32_code(), Some(2));
        assert_eq!(Hresult::FLT_NO_WAITER_FOR_REPLY.win32_code(), None);
    }

    #[test]
    fn display_has_hex_and_meaning() {
        let text = Hresult::CONNECTION_COUNT_LIMIT.to_string();
        assert!(text.starts_with("0x800704D6 ("), "{text}");
        assert!(text.contains("connection limit"), "{text}");
        assert_eq!(Hresult(0x1234).describe(), "unrecognised error code");
    }

    #[test]
    fn every_named_code_is_described_in_the_clients_own_words() {
        // Each code the client names gets its own meaning (and, where there is one, what
        // to do), not the protocol table's generic phrase or "unrecognised error code".
        let cases = [
            (
                Hresult::FILE_NOT_FOUND,
                "the portfilter driver is not loaded",
            ),
            (
                Hresult::ACCESS_DENIED,
                "run from an elevated (Administrator) prompt",
            ),
            (
                Hresult::INVALID_HANDLE,
                "the driver is unloading or closed the port",
            ),
            (
                Hresult::INVALID_FUNCTION,
                "does not accept commands on this port",
            ),
            (Hresult::INVALID_ARG, "invalid parameter"),
            (
                Hresult::INSUFFICIENT_BUFFER,
                "buffer too small for the message",
            ),
            (Hresult::NOT_SUPPORTED, "does not know this command"),
            (Hresult::BAD_LENGTH, "wrong size for its command"),
            (
                Hresult::NOACCESS,
                "could not read or write the request buffer",
            ),
            (Hresult::REVISION_MISMATCH, "install matching versions"),
            (
                Hresult::SHARING_VIOLATION,
                "already connected as the decider",
            ),
            (Hresult::MORE_DATA, "was truncated"),
            (Hresult::NO_MORE_ITEMS, "no more entries"),
            (Hresult::TIMEOUT, "the operation timed out"),
            (Hresult::CONNECTION_COUNT_LIMIT, "stop one of them"),
            (
                Hresult::NO_SYSTEM_RESOURCES,
                "insufficient system resources",
            ),
            (Hresult::OPERATION_ABORTED, "the request was cancelled"),
            (Hresult::IO_PENDING, "completes later"),
            (Hresult::FLT_NO_WAITER_FOR_REPLY, "late reply"),
            (Hresult::FLT_DELETING_OBJECT, "being unloaded"),
        ];
        for (code, meaning) in cases {
            let text = code.describe();
            assert!(text.contains(meaning), "{code:?}: {text}");
        }
        let mut texts: Vec<&str> = cases.iter().map(|(code, _)| code.describe()).collect();
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), cases.len(), "one meaning per code");
    }

    #[test]
    fn debug_shows_the_code_in_conventional_hex() {
        assert_eq!(
            format!("{:?}", Hresult::ACCESS_DENIED),
            "Hresult(0x80070005)"
        );
        assert_eq!(format!("{:?}", Hresult::S_OK), "Hresult(0x00000000)");
        assert_eq!(
            format!("{:?}", Some(Hresult::FLT_NO_WAITER_FOR_REPLY)),
            "Some(Hresult(0x801F0020))"
        );
    }

    #[test]
    fn success_and_failure_are_told_apart() {
        assert!(Hresult::S_OK.is_ok());
        assert!(!Hresult::ACCESS_DENIED.is_ok());
    }
}
