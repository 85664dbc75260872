//! `NTSTATUS` codes of the portfilter contract, how `FltLib` shows them to user mode
//! (`HRESULT`), and how protocol errors map to them.
//!
//! The driver fails a command (`FilterSendMessage` → `MessageNotify`) or a connect with
//! these codes; `FltLib` turns them into `HRESULT`s by its rule
//! (`HRESULT_FROM_WIN32(RtlNtStatusToDosError(s))`, filter-manager facility codes kept as
//! `0x801Fxxxx`, `STATUS_TIMEOUT` → `0x80070102`; see shared/docs/port-semantics.md).
//! Note that `STATUS_ACCESS_VIOLATION` and `STATUS_DATATYPE_MISALIGNMENT_ERROR` both
//! become `ERROR_NOACCESS` (`0x800703E6`): a client cannot tell them apart by the
//! `HRESULT`.

use crate::Error;

const fn nt(value: u32) -> i32 {
    value.cast_signed()
}

/// Success.
pub const STATUS_SUCCESS: i32 = 0;
/// A wait timed out. A *success* code (`NT_SUCCESS` is true): compare results with
/// [`STATUS_SUCCESS`].
pub const STATUS_TIMEOUT: i32 = nt(0x0000_0102);
/// Overlapped operation pending.
pub const STATUS_PENDING: i32 = nt(0x0000_0103);
/// Reply larger than the receiver's buffer: truncated (a warning).
pub const STATUS_BUFFER_OVERFLOW: i32 = nt(0x8000_0005);
/// Command: input size wrong for the command (too short, too long, or inner lengths
/// that disagree with it).
pub const STATUS_INFO_LENGTH_MISMATCH: i32 = nt(0xC000_0004);
/// Command: input or output pointer not readable/writable.
pub const STATUS_ACCESS_VIOLATION: i32 = nt(0xC000_0005);
/// Command/connect: bad magic, reserved field or field value.
pub const STATUS_INVALID_PARAMETER: i32 = nt(0xC000_000D);
/// No `MessageNotify` callback on the port.
pub const STATUS_INVALID_DEVICE_REQUEST: i32 = nt(0xC000_0010);
/// The default status of a denied create; also the port's refusal of a non-admin caller.
pub const STATUS_ACCESS_DENIED: i32 = nt(0xC000_0022);
/// Command: output buffer too small; the needed size is returned in
/// `ReturnOutputBufferLength` (`lpBytesReturned`).
pub const STATUS_BUFFER_TOO_SMALL: i32 = nt(0xC000_0023);
/// The port name does not exist (driver not loaded).
pub const STATUS_OBJECT_NAME_NOT_FOUND: i32 = nt(0xC000_0034);
/// The connection was closed.
pub const STATUS_PORT_DISCONNECTED: i32 = nt(0xC000_0037);
/// Connect: a decider is already connected (at most one at a time).
pub const STATUS_SHARING_VIOLATION: i32 = nt(0xC000_0043);
/// Command/connect: the header's protocol version is not the driver's.
pub const STATUS_REVISION_MISMATCH: i32 = nt(0xC000_0059);
/// Out of pool memory.
pub const STATUS_INSUFFICIENT_RESOURCES: i32 = nt(0xC000_009A);
/// Command: unknown command kind, or a kind that is not a command.
pub const STATUS_NOT_SUPPORTED: i32 = nt(0xC000_00BB);
/// Overlapped operation cancelled.
pub const STATUS_CANCELLED: i32 = nt(0xC000_0120);
/// Connect: the port's `MaxConnections` is reached.
pub const STATUS_CONNECTION_COUNT_LIMIT: i32 = nt(0xC000_0246);
/// Command: input or output buffer not 8-byte aligned.
pub const STATUS_DATATYPE_MISALIGNMENT_ERROR: i32 = nt(0xC000_02C5);
/// The filter is being unloaded.
pub const STATUS_FLT_DELETING_OBJECT: i32 = nt(0xC01C_000B);
/// A reply found no waiting sender (it timed out): benign for a client.
pub const STATUS_FLT_NO_WAITER_FOR_REPLY: i32 = nt(0xC01C_0020);

/// The connect failure for a second decider (see [`STATUS_SHARING_VIOLATION`]).
pub const STATUS_DECIDER_ALREADY_CONNECTED: i32 = STATUS_SHARING_VIOLATION;

/// One status of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusInfo {
    /// The `NTSTATUS`.
    pub status: i32,
    /// Its `ntstatus.h` name.
    pub name: &'static str,
    /// The `HRESULT` a `FltLib` caller sees.
    pub hresult: i32,
    /// What it means in portfilter.
    pub meaning: &'static str,
}

const fn info(status: i32, name: &'static str, hresult: u32, meaning: &'static str) -> StatusInfo {
    StatusInfo {
        status,
        name,
        hresult: hresult.cast_signed(),
        meaning,
    }
}

/// Every status of the contract, with its `HRESULT` and meaning.
pub const KNOWN_STATUSES: [StatusInfo; 21] = [
    info(STATUS_SUCCESS, "STATUS_SUCCESS", 0, "success"),
    info(STATUS_TIMEOUT, "STATUS_TIMEOUT", 0x8007_0102, "timed out"),
    info(
        STATUS_PENDING,
        "STATUS_PENDING",
        0x8007_03E5,
        "I/O pending (overlapped)",
    ),
    info(
        STATUS_BUFFER_OVERFLOW,
        "STATUS_BUFFER_OVERFLOW",
        0x8007_00EA,
        "reply larger than the receiving buffer: truncated",
    ),
    info(
        STATUS_INFO_LENGTH_MISMATCH,
        "STATUS_INFO_LENGTH_MISMATCH",
        0x8007_0018,
        "input size wrong for the command",
    ),
    info(
        STATUS_ACCESS_VIOLATION,
        "STATUS_ACCESS_VIOLATION",
        0x8007_03E6,
        "a buffer pointer is not valid",
    ),
    info(
        STATUS_INVALID_PARAMETER,
        "STATUS_INVALID_PARAMETER",
        0x8007_0057,
        "bad magic, reserved field or field value",
    ),
    info(
        STATUS_INVALID_DEVICE_REQUEST,
        "STATUS_INVALID_DEVICE_REQUEST",
        0x8007_0001,
        "the port takes no commands",
    ),
    info(
        STATUS_ACCESS_DENIED,
        "STATUS_ACCESS_DENIED",
        0x8007_0005,
        "access denied (not an administrator, the create was denied, or a VerdictBatch from a connection that is not the asynchronous decider)",
    ),
    info(
        STATUS_BUFFER_TOO_SMALL,
        "STATUS_BUFFER_TOO_SMALL",
        0x8007_007A,
        "output buffer too small; the needed size is in bytes returned",
    ),
    info(
        STATUS_OBJECT_NAME_NOT_FOUND,
        "STATUS_OBJECT_NAME_NOT_FOUND",
        0x8007_0002,
        "port not found: is the driver loaded?",
    ),
    info(
        STATUS_PORT_DISCONNECTED,
        "STATUS_PORT_DISCONNECTED",
        0x8007_0006,
        "the connection was closed",
    ),
    info(
        STATUS_SHARING_VIOLATION,
        "STATUS_SHARING_VIOLATION",
        0x8007_0020,
        "another decider is already connected",
    ),
    info(
        STATUS_REVISION_MISMATCH,
        "STATUS_REVISION_MISMATCH",
        0x8007_051A,
        "protocol version mismatch between client and driver",
    ),
    info(
        STATUS_INSUFFICIENT_RESOURCES,
        "STATUS_INSUFFICIENT_RESOURCES",
        0x8007_05AA,
        "the driver is out of memory",
    ),
    info(
        STATUS_NOT_SUPPORTED,
        "STATUS_NOT_SUPPORTED",
        0x8007_0032,
        "unknown command",
    ),
    info(
        STATUS_CANCELLED,
        "STATUS_CANCELLED",
        0x8007_03E3,
        "operation cancelled",
    ),
    info(
        STATUS_CONNECTION_COUNT_LIMIT,
        "STATUS_CONNECTION_COUNT_LIMIT",
        0x8007_04D6,
        "too many clients connected",
    ),
    info(
        STATUS_DATATYPE_MISALIGNMENT_ERROR,
        "STATUS_DATATYPE_MISALIGNMENT_ERROR",
        0x8007_03E6,
        "a buffer is not 8-byte aligned",
    ),
    info(
        STATUS_FLT_DELETING_OBJECT,
        "STATUS_FLT_DELETING_OBJECT",
        0x801F_000B,
        "the filter is being unloaded",
    ),
    info(
        STATUS_FLT_NO_WAITER_FOR_REPLY,
        "STATUS_FLT_NO_WAITER_FOR_REPLY",
        0x801F_0020,
        "no one waits for this reply any more (it came too late): harmless",
    ),
];

fn lookup(status: i32) -> Option<&'static StatusInfo> {
    KNOWN_STATUSES.iter().find(|i| i.status == status)
}

/// What `status` means in portfilter terms (a fixed phrase; "unknown status" when the
/// code is not part of the contract).
#[must_use]
pub fn describe_status(status: i32) -> &'static str {
    lookup(status).map_or("unknown status", |i| i.meaning)
}

/// The `ntstatus.h` name of a contract status.
#[must_use]
pub fn status_name(status: i32) -> Option<&'static str> {
    lookup(status).map(|i| i.name)
}

/// The `HRESULT` `FltLib` reports for `status`: from the table for contract statuses, and
/// by `FltLib`'s facility rule for any filter-manager code (`0xC01Cxxxx` →
/// `0x801Fxxxx`). `None` for other codes (that would need `RtlNtStatusToDosError`).
#[must_use]
pub fn hresult_from_status(status: i32) -> Option<i32> {
    if let Some(i) = lookup(status) {
        return Some(i.hresult);
    }
    let raw = status.cast_unsigned();
    if raw >> 30 == 3 && (raw >> 16) & 0x0FFF == 0x01C {
        return Some(((raw & 0x8000_FFFF) | 0x001F_0000).cast_signed());
    }
    None
}

/// What an `HRESULT` from `FltLib` means in portfilter terms ("unknown HRESULT" otherwise).
#[must_use]
pub fn describe_hresult(hresult: i32) -> &'static str {
    if hresult.cast_unsigned() == 0x8007_03E6 {
        return "a buffer pointer is not valid, or a buffer is not 8-byte aligned";
    }
    KNOWN_STATUSES
        .iter()
        .find(|i| i.hresult == hresult)
        .map_or("unknown HRESULT", |i| i.meaning)
}

/// The status the driver returns when decoding a command input or a connection context
/// fails with `error`:
///
/// | error | status |
/// |---|---|
/// | `TooShort`, `BadLength` | [`STATUS_INFO_LENGTH_MISMATCH`] |
/// | `OutputTooSmall` | [`STATUS_BUFFER_TOO_SMALL`] |
/// | `VersionMismatch` | [`STATUS_REVISION_MISMATCH`] |
/// | `UnknownKind`, `UnexpectedKind` | [`STATUS_NOT_SUPPORTED`] |
/// | anything else | [`STATUS_INVALID_PARAMETER`] |
#[must_use]
pub const fn status_for_error(error: &Error) -> i32 {
    match error {
        Error::TooShort { .. } | Error::BadLength { .. } => STATUS_INFO_LENGTH_MISMATCH,
        Error::OutputTooSmall { .. } => STATUS_BUFFER_TOO_SMALL,
        Error::VersionMismatch { .. } => STATUS_REVISION_MISMATCH,
        Error::UnknownKind(_) | Error::UnexpectedKind { .. } => STATUS_NOT_SUPPORTED,
        Error::BadMagic { .. }
        | Error::BadReserved { .. }
        | Error::FieldOutOfRange { .. }
        | Error::NameTooLong { .. }
        | Error::OddNameLength { .. }
        | Error::BatchFull
        | Error::TooManyFilters
        | Error::FilterSpaceExhausted => STATUS_INVALID_PARAMETER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for (i, a) in KNOWN_STATUSES.iter().enumerate() {
            for b in &KNOWN_STATUSES[i + 1..] {
                assert_ne!(a.status, b.status, "{} listed twice", a.name);
            }
            assert_eq!(describe_status(a.status), a.meaning);
            assert_eq!(hresult_from_status(a.status), Some(a.hresult));
            // HRESULT_FROM_WIN32 shape, or the filter-manager facility, or S_OK.
            let hr = a.hresult.cast_unsigned();
            assert!(
                hr == 0 || hr >> 16 == 0x8007 || hr >> 16 == 0x801F,
                "{}",
                a.name
            );
        }
        assert_eq!(describe_status(1234), "unknown status");
        assert_eq!(
            status_name(STATUS_NOT_SUPPORTED),
            Some("STATUS_NOT_SUPPORTED")
        );
    }

    #[test]
    fn hresults_match_the_port_semantics_table() {
        // From shared/docs/port-semantics.md ("NTSTATUS → HRESULT (FltLib)").
        let expected: [(u32, u32); 11] = [
            (0xC000_000D, 0x8007_0057),
            (0xC000_0022, 0x8007_0005),
            (0xC000_0034, 0x8007_0002),
            (0xC000_0246, 0x8007_04D6),
            (0xC000_0037, 0x8007_0006),
            (0xC000_0023, 0x8007_007A),
            (0x8000_0005, 0x8007_00EA),
            (0xC000_0010, 0x8007_0001),
            (0xC000_009A, 0x8007_05AA),
            (0xC000_0120, 0x8007_03E3),
            (0xC01C_0020, 0x801F_0020),
        ];
        for (status, hr) in expected {
            assert_eq!(
                hresult_from_status(status.cast_signed()),
                Some(hr.cast_signed()),
                "{status:#x}"
            );
        }
        // Facility rule for a filter-manager code not in the table.
        assert_eq!(
            hresult_from_status(0xC01C_000F_u32.cast_signed()),
            Some(0x801F_000F_u32.cast_signed())
        );
        assert_eq!(hresult_from_status(0xC000_0001_u32.cast_signed()), None);
        assert_eq!(
            describe_hresult(0x8007_0020_u32.cast_signed()),
            "another decider is already connected"
        );
        assert!(describe_hresult(0x8007_03E6_u32.cast_signed()).contains("aligned"));
    }

    #[test]
    fn error_mapping() {
        assert_eq!(
            status_for_error(&Error::TooShort { need: 8, got: 0 }),
            STATUS_INFO_LENGTH_MISMATCH
        );
        assert_eq!(
            status_for_error(&Error::VersionMismatch { got: 9 }),
            STATUS_REVISION_MISMATCH
        );
        assert_eq!(
            status_for_error(&Error::UnknownKind(99)),
            STATUS_NOT_SUPPORTED
        );
        assert_eq!(
            status_for_error(&Error::BadMagic { got: 0 }),
            STATUS_INVALID_PARAMETER
        );
        assert_eq!(
            status_for_error(&Error::OutputTooSmall { need: 1, got: 0 }),
            STATUS_BUFFER_TOO_SMALL
        );
    }
}
