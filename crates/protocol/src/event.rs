//! One file-create event: the `EventRecord` and the `CreateEvent` message.
//!
//! A `CreateEvent` message (kind 1) is the common header followed by one record. It is
//! what the driver sends with `FltSendMessage` in request-reply mode (with
//! [`EVENT_FLAG_REQUEST`] set, a [`crate::Verdict`] is expected) and in plain notify mode.
//! Batches ([`crate::batch`]) carry the same records back to back.
//!
//! Record layout (fixed part 56 bytes, 8-aligned, then the name, then zero padding to 8):
//!
//! | offset | field | type |
//! |---|---|---|
//! | 0 | record_len (total incl. name and padding) | u16 |
//! | 2 | name_len (bytes of UTF-16, even, ≤ [`MAX_NAME_BYTES`]) | u16 |
//! | 4 | flags (`EVENT_FLAG_*`) | u32 |
//! | 8 | sequence | u64 |
//! | 16 | timestamp (100 ns since 1601-01-01 UTC) | u64 |
//! | 24 | process_id | u32 |
//! | 28 | thread_id | u32 |
//! | 32 | desired_access | u32 |
//! | 36 | create_options (low 24 bits) | u32 |
//! | 40 | create_disposition (0..=5) | u8 |
//! | 41 | reserved0 (0) | u8 |
//! | 42 | share_access | u16 |
//! | 44 | file_attributes | u32 |
//! | 48 | volume_name_len (bytes, even, ≤ name_len) | u16 |
//! | 50 | reserved1 (0) | u16 |
//! | 52 | reserved2 (0) | u32 |
//! | 56 | name (UTF-16LE), then padding | … |

use crate::Error;
use crate::header::{HEADER_BYTES, MessageKind, encode_header, expect_header};
use crate::utf16::Utf16Le;
use crate::wire::{
    all_zero, fields_tile, get_u8, get_u16, get_u32, get_u64, need, need_out, put_u8, put_u16,
    put_u32, put_u64, put_units, round_up8, slice, zero,
};

/// Size of the fixed part of a record (the name starts here).
pub const EVENT_FIXED_BYTES: usize = 56;
/// Longest name carried, in bytes (2048 UTF-16 units). Longer names are truncated by
/// the encoder, which then sets [`EVENT_FLAG_NAME_TRUNCATED`]. NT paths can reach 32767
/// units, but real ones are far shorter (the bundled trace: median 85, max 206 units);
/// this bound keeps one event near 4 KiB.
pub const MAX_NAME_BYTES: usize = 4096;
/// [`MAX_NAME_BYTES`] in UTF-16 units.
pub const MAX_NAME_UNITS: usize = MAX_NAME_BYTES / 2;
/// Largest record: fixed part plus the longest name (already a multiple of 8).
pub const MAX_EVENT_BYTES: usize = EVENT_FIXED_BYTES + MAX_NAME_BYTES;
/// Smallest `CreateEvent` message (no name).
pub const CREATE_EVENT_MIN_BYTES: usize = HEADER_BYTES + EVENT_FIXED_BYTES;
/// Largest `CreateEvent` message.
pub const CREATE_EVENT_MAX_BYTES: usize = HEADER_BYTES + MAX_EVENT_BYTES;

/// The target is a directory (`FILE_DIRECTORY_FILE` was asked for).
pub const EVENT_FLAG_DIRECTORY: u32 = 0x0000_0001;
/// The requestor mode is kernel (`RequestorMode == KernelMode`).
pub const EVENT_FLAG_KERNEL_MODE: u32 = 0x0000_0002;
/// Name normalization failed; the opened name was used instead.
pub const EVENT_FLAG_NAME_OPENED: u32 = 0x0000_0004;
/// The name was longer than [`MAX_NAME_UNITS`] and is truncated.
pub const EVENT_FLAG_NAME_TRUNCATED: u32 = 0x0000_0008;
/// No name could be obtained at all; `name_len` is 0.
pub const EVENT_FLAG_NAME_UNAVAILABLE: u32 = 0x0000_0010;
/// Request-reply: the creating thread waits for a [`crate::Verdict`].
pub const EVENT_FLAG_REQUEST: u32 = 0x0000_0020;
/// The create was issued where waiting for user mode could deadlock — the requestor
/// thread has a top-level IRP (it holds file-system resources) or all APCs disabled —
/// so the driver did not wait for any client: the decider was not asked and the
/// configured default verdict applied at once (protocol version 2).
pub const EVENT_FLAG_UNSAFE_CONTEXT: u32 = 0x0000_0040;
/// Every defined flag; other bits are invalid.
pub const EVENT_FLAGS_ALL: u32 = 0x0000_007F;
/// `create_options` carries the low 24 bits of `Parameters.Create.Options`.
pub const CREATE_OPTIONS_MASK: u32 = 0x00FF_FFFF;
/// Largest valid `create_disposition` (`FILE_OVERWRITE_IF`).
pub const MAX_CREATE_DISPOSITION: u8 = 5;

/// Byte offsets of the record fields (relative to the record start).
pub mod offset {
    /// `record_len: u16`.
    pub const RECORD_LEN: usize = 0;
    /// `name_len: u16`.
    pub const NAME_LEN: usize = 2;
    /// `flags: u32`.
    pub const FLAGS: usize = 4;
    /// `sequence: u64`.
    pub const SEQUENCE: usize = 8;
    /// `timestamp: u64`.
    pub const TIMESTAMP: usize = 16;
    /// `process_id: u32`.
    pub const PROCESS_ID: usize = 24;
    /// `thread_id: u32`.
    pub const THREAD_ID: usize = 28;
    /// `desired_access: u32`.
    pub const DESIRED_ACCESS: usize = 32;
    /// `create_options: u32`.
    pub const CREATE_OPTIONS: usize = 36;
    /// `create_disposition: u8`.
    pub const CREATE_DISPOSITION: usize = 40;
    /// `reserved0: u8`.
    pub const RESERVED0: usize = 41;
    /// `share_access: u16`.
    pub const SHARE_ACCESS: usize = 42;
    /// `file_attributes: u32`.
    pub const FILE_ATTRIBUTES: usize = 44;
    /// `volume_name_len: u16`.
    pub const VOLUME_NAME_LEN: usize = 48;
    /// `reserved1: u16`.
    pub const RESERVED1: usize = 50;
    /// `reserved2: u32`.
    pub const RESERVED2: usize = 52;
    /// Start of the UTF-16LE name.
    pub const NAME: usize = 56;
}

const _: () = assert!(fields_tile(
    &[
        (offset::RECORD_LEN, 2),
        (offset::NAME_LEN, 2),
        (offset::FLAGS, 4),
        (offset::SEQUENCE, 8),
        (offset::TIMESTAMP, 8),
        (offset::PROCESS_ID, 4),
        (offset::THREAD_ID, 4),
        (offset::DESIRED_ACCESS, 4),
        (offset::CREATE_OPTIONS, 4),
        (offset::CREATE_DISPOSITION, 1),
        (offset::RESERVED0, 1),
        (offset::SHARE_ACCESS, 2),
        (offset::FILE_ATTRIBUTES, 4),
        (offset::VOLUME_NAME_LEN, 2),
        (offset::RESERVED1, 2),
        (offset::RESERVED2, 4),
    ],
    EVENT_FIXED_BYTES
));
const _: () = assert!(offset::NAME == EVENT_FIXED_BYTES && EVENT_FIXED_BYTES.is_multiple_of(8));
const _: () = assert!(MAX_EVENT_BYTES.is_multiple_of(8) && MAX_EVENT_BYTES <= u16::MAX as usize);
const _: () = assert!(MAX_NAME_BYTES <= u16::MAX as usize && MAX_NAME_BYTES.is_multiple_of(8));

/// Size of a record carrying a name of `name_bytes` bytes (fixed part + name, rounded up
/// to 8).
#[must_use]
pub const fn record_bytes(name_bytes: usize) -> usize {
    round_up8(EVENT_FIXED_BYTES.saturating_add(name_bytes))
}

/// Every fixed field of an event (everything but the name and the two lengths derived from
/// it). The driver fills one per create; the decoder returns one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct EventFields {
    /// `EVENT_FLAG_*` bits.
    pub flags: u32,
    /// Driver-wide sequence number; a [`crate::Verdict`] echoes it.
    pub sequence: u64,
    /// `KeQuerySystemTimePrecise`: 100 ns units since 1601-01-01 UTC.
    pub timestamp: u64,
    /// Creating process id (low 32 bits of the handle value; ids fit in 32 bits).
    pub process_id: u32,
    /// Creating thread id.
    pub thread_id: u32,
    /// `Parameters.Create.SecurityContext->DesiredAccess`.
    pub desired_access: u32,
    /// Low 24 bits of `Parameters.Create.Options` (≤ [`CREATE_OPTIONS_MASK`]).
    pub create_options: u32,
    /// High 8 bits of `Parameters.Create.Options` (0..=[`MAX_CREATE_DISPOSITION`]).
    pub create_disposition: u8,
    /// `Parameters.Create.ShareAccess`.
    pub share_access: u16,
    /// `Parameters.Create.FileAttributes`.
    pub file_attributes: u32,
    /// Bytes at the start of the name that are the volume (e.g.
    /// `\Device\HarddiskVolume3`); even, ≤ the name's length.
    pub volume_name_len: u16,
}

/// A decoded event: its fields and its name, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventView<'a> {
    /// The fixed fields.
    pub fields: EventFields,
    /// The full name (volume + path in the volume), UTF-16LE.
    pub name: Utf16Le<'a>,
}

impl<'a> EventView<'a> {
    /// The volume part of the name (its first `volume_name_len` bytes).
    #[must_use]
    pub fn volume_name(&self) -> Utf16Le<'a> {
        self.split().0
    }

    /// The path inside the volume (the name after the volume part), e.g. `\Windows\x.dll`.
    #[must_use]
    pub fn path_in_volume(&self) -> Utf16Le<'a> {
        self.split().1
    }

    fn split(&self) -> (Utf16Le<'a>, Utf16Le<'a>) {
        // The decoder checked volume_name_len ≤ name_len and evenness.
        self.name
            .split_at_units(usize::from(self.fields.volume_name_len) / 2)
            .unwrap_or((Utf16Le::default(), self.name))
    }

    /// Size of this event's record on the wire.
    #[must_use]
    pub const fn record_len(&self) -> usize {
        record_bytes(self.name.as_bytes().len())
    }

    /// True when [`EVENT_FLAG_REQUEST`] is set (a verdict is expected).
    #[must_use]
    pub const fn is_request(&self) -> bool {
        self.fields.flags & EVENT_FLAG_REQUEST != 0
    }
}

/// The name as it will be encoded: at most [`MAX_NAME_UNITS`] units, never ending in the
/// first half of a surrogate pair; `true` when something was cut.
#[must_use]
pub fn truncate_name(name: &[u16]) -> (&[u16], bool) {
    if name.len() <= MAX_NAME_UNITS {
        return (name, false);
    }
    let mut kept = name.get(..MAX_NAME_UNITS).unwrap_or_default();
    if let Some((&last, head)) = kept.split_last()
        && (0xD800..=0xDBFF).contains(&last)
    {
        kept = head;
    }
    (kept, true)
}

/// Checks the fields against a name of `name_bytes` bytes (shared by encoder and
/// decoder, so that everything encoded decodes).
fn check_fields(fields: &EventFields, name_bytes: usize) -> Result<(), Error> {
    if fields.flags & !EVENT_FLAGS_ALL != 0 {
        return Err(Error::FieldOutOfRange { field: "flags" });
    }
    if fields.flags & EVENT_FLAG_NAME_UNAVAILABLE != 0 && name_bytes != 0 {
        return Err(Error::BadLength { field: "name_len" });
    }
    if fields.create_options & !CREATE_OPTIONS_MASK != 0 {
        return Err(Error::FieldOutOfRange {
            field: "create_options",
        });
    }
    if fields.create_disposition > MAX_CREATE_DISPOSITION {
        return Err(Error::FieldOutOfRange {
            field: "create_disposition",
        });
    }
    let volume = usize::from(fields.volume_name_len);
    if !volume.is_multiple_of(2) {
        return Err(Error::OddNameLength { len: volume });
    }
    if volume > name_bytes {
        return Err(Error::BadLength {
            field: "volume_name_len",
        });
    }
    Ok(())
}

/// Encodes one record (no header) into `out`; returns its size.
///
/// A name longer than [`MAX_NAME_UNITS`] is truncated ([`truncate_name`]),
/// [`EVENT_FLAG_NAME_TRUNCATED`] is set, and `volume_name_len` is clamped to the kept
/// name. Padding is zeroed.
///
/// # Errors
/// [`Error::OutputTooSmall`] with the size needed; [`Error::FieldOutOfRange`],
/// [`Error::OddNameLength`] or [`Error::BadLength`] for invalid fields (unknown flags,
/// options above 24 bits, disposition > 5, odd or too long volume length,
/// `NAME_UNAVAILABLE` with a name). `out` may be partly written on error.
pub fn encode_record(fields: &EventFields, name: &[u16], out: &mut [u8]) -> Result<usize, Error> {
    let (name, truncated) = truncate_name(name);
    let name_bytes = name.len().saturating_mul(2);
    let mut fields = *fields;
    if truncated {
        fields.flags |= EVENT_FLAG_NAME_TRUNCATED;
        let kept = u16::try_from(name_bytes).unwrap_or(u16::MAX);
        fields.volume_name_len = fields.volume_name_len.min(kept);
    }
    check_fields(&fields, name_bytes)?;
    let total = record_bytes(name_bytes);
    need_out(out, total)?;
    let record_len = u16::try_from(total).map_err(|_| Error::NameTooLong { len: name_bytes })?;
    let name_len = u16::try_from(name_bytes).map_err(|_| Error::NameTooLong { len: name_bytes })?;
    put_u16(out, offset::RECORD_LEN, record_len)?;
    put_u16(out, offset::NAME_LEN, name_len)?;
    put_u32(out, offset::FLAGS, fields.flags)?;
    put_u64(out, offset::SEQUENCE, fields.sequence)?;
    put_u64(out, offset::TIMESTAMP, fields.timestamp)?;
    put_u32(out, offset::PROCESS_ID, fields.process_id)?;
    put_u32(out, offset::THREAD_ID, fields.thread_id)?;
    put_u32(out, offset::DESIRED_ACCESS, fields.desired_access)?;
    put_u32(out, offset::CREATE_OPTIONS, fields.create_options)?;
    put_u8(out, offset::CREATE_DISPOSITION, fields.create_disposition)?;
    put_u8(out, offset::RESERVED0, 0)?;
    put_u16(out, offset::SHARE_ACCESS, fields.share_access)?;
    put_u32(out, offset::FILE_ATTRIBUTES, fields.file_attributes)?;
    put_u16(out, offset::VOLUME_NAME_LEN, fields.volume_name_len)?;
    put_u16(out, offset::RESERVED1, 0)?;
    put_u32(out, offset::RESERVED2, 0)?;
    put_units(out, offset::NAME, name)?;
    let name_end = offset::NAME.saturating_add(name_bytes);
    zero(out, name_end, total.saturating_sub(name_end))?;
    Ok(total)
}

/// Decodes the record at the start of `buf`; bytes after it are not looked at.
/// Returns the view and the record's size (where the next record of a batch starts).
///
/// # Errors
/// [`Error::TooShort`]; [`Error::OddNameLength`] / [`Error::NameTooLong`] for `name_len`;
/// [`Error::BadLength`] when `record_len` is not exactly `record_bytes(name_len)` or
/// `volume_name_len` exceeds the name; [`Error::FieldOutOfRange`]; [`Error::BadReserved`]
/// for non-zero reserved fields or padding.
pub fn decode_record(buf: &[u8]) -> Result<(EventView<'_>, usize), Error> {
    need(buf, EVENT_FIXED_BYTES)?;
    let record_len = usize::from(get_u16(buf, offset::RECORD_LEN)?);
    let name_len = usize::from(get_u16(buf, offset::NAME_LEN)?);
    if !name_len.is_multiple_of(2) {
        return Err(Error::OddNameLength { len: name_len });
    }
    if name_len > MAX_NAME_BYTES {
        return Err(Error::NameTooLong { len: name_len });
    }
    if record_len != record_bytes(name_len) {
        return Err(Error::BadLength {
            field: "record_len",
        });
    }
    need(buf, record_len)?;
    let fields = EventFields {
        flags: get_u32(buf, offset::FLAGS)?,
        sequence: get_u64(buf, offset::SEQUENCE)?,
        timestamp: get_u64(buf, offset::TIMESTAMP)?,
        process_id: get_u32(buf, offset::PROCESS_ID)?,
        thread_id: get_u32(buf, offset::THREAD_ID)?,
        desired_access: get_u32(buf, offset::DESIRED_ACCESS)?,
        create_options: get_u32(buf, offset::CREATE_OPTIONS)?,
        create_disposition: get_u8(buf, offset::CREATE_DISPOSITION)?,
        share_access: get_u16(buf, offset::SHARE_ACCESS)?,
        file_attributes: get_u32(buf, offset::FILE_ATTRIBUTES)?,
        volume_name_len: get_u16(buf, offset::VOLUME_NAME_LEN)?,
    };
    check_fields(&fields, name_len)?;
    if get_u8(buf, offset::RESERVED0)? != 0
        || get_u16(buf, offset::RESERVED1)? != 0
        || get_u32(buf, offset::RESERVED2)? != 0
    {
        return Err(Error::BadReserved {
            field: "event.reserved",
        });
    }
    let name_end = offset::NAME.saturating_add(name_len);
    if !all_zero(buf, name_end, record_len.saturating_sub(name_end)) {
        return Err(Error::BadReserved {
            field: "event.padding",
        });
    }
    let name = Utf16Le::new(slice(buf, offset::NAME, name_len)?)?;
    Ok((EventView { fields, name }, record_len))
}

/// Encodes a `CreateEvent` message (header + one record) into `out`; returns its size.
/// Same rules as [`encode_record`].
///
/// # Errors
/// As [`encode_record`].
pub fn encode_event(fields: &EventFields, name: &[u16], out: &mut [u8]) -> Result<usize, Error> {
    let (kept, _) = truncate_name(name);
    need_out(
        out,
        HEADER_BYTES.saturating_add(record_bytes(kept.len().saturating_mul(2))),
    )?;
    encode_header(MessageKind::CreateEvent, out)?;
    let record = out.get_mut(HEADER_BYTES..).unwrap_or_default();
    let len = encode_record(fields, name, record)?;
    Ok(HEADER_BYTES.saturating_add(len))
}

/// Decodes a `CreateEvent` message at the start of `buf`. Trailing bytes are ignored:
/// a synchronous `FilterGetMessage` does not say how many bytes it wrote, so a client may
/// pass its whole buffer (after the 16-byte `FILTER_MESSAGE_HEADER`).
///
/// # Errors
/// Header errors ([`crate::decode_header`]), [`Error::UnexpectedKind`], and the record
/// errors of [`decode_record`].
pub fn decode_event(buf: &[u8]) -> Result<EventView<'_>, Error> {
    expect_header(buf, MessageKind::CreateEvent)?;
    let record = buf.get(HEADER_BYTES..).unwrap_or_default();
    decode_record(record)
        .map(|(view, _)| view)
        .map_err(|e| e.shifted(HEADER_BYTES))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(s: &str) -> std::vec::Vec<u16> {
        s.encode_utf16().collect()
    }

    fn sample() -> EventFields {
        EventFields {
            flags: EVENT_FLAG_REQUEST | EVENT_FLAG_DIRECTORY,
            sequence: 0x0102_0304_0506_0708,
            timestamp: 133_000_000_000_000_000,
            process_id: 4242,
            thread_id: 77,
            desired_access: 0x0012_0089,
            create_options: 0x0000_0060,
            create_disposition: 1,
            share_access: 3,
            file_attributes: 0x80,
            volume_name_len: 46,
        }
    }

    #[test]
    fn event_round_trips_and_splits_volume() {
        let name = units(r"\Device\HarddiskVolume3\Windows\Prefetch\A.pf");
        let mut buf = [0xEEu8; 256];
        let len = encode_event(&sample(), &name, &mut buf).unwrap();
        assert_eq!(len, 8 + record_bytes(name.len() * 2));
        assert_eq!(len % 8, 0);
        let view = decode_event(&buf).unwrap(); // trailing 0xEE bytes ignored
        assert_eq!(view.fields, sample());
        assert!(view.name.eq_units(&name));
        assert!(
            view.volume_name()
                .eq_units(&units(r"\Device\HarddiskVolume3"))
        );
        assert!(
            view.path_in_volume()
                .eq_units(&units(r"\Windows\Prefetch\A.pf"))
        );
        assert!(view.is_request());
        assert_eq!(view.record_len() + 8, len);
        // Fixed offsets, read back independently.
        assert_eq!(&buf[..2], b"PF");
        assert_eq!(
            u64::from_le_bytes(buf[16..24].try_into().unwrap()),
            sample().sequence
        );
        assert_eq!(buf[8 + 40], 1);
        assert_eq!(
            u16::from_le_bytes([buf[8 + 56], buf[8 + 57]]),
            u16::from(b'\\')
        );
    }

    #[test]
    fn encoder_reports_needed_size() {
        let name = units(r"\a");
        let mut small = [0u8; 63];
        assert_eq!(
            encode_event(&sample(), &name, &mut small),
            Err(Error::OutputTooSmall { need: 72, got: 63 })
        );
    }

    #[test]
    fn long_names_are_truncated_without_splitting_a_pair() {
        let mut name = std::vec![u16::from(b'x'); MAX_NAME_UNITS - 1];
        name.extend([0xD83D, 0xDE00, u16::from(b'y')]);
        let mut fields = sample();
        fields.volume_name_len = u16::MAX - 1;
        fields.flags = 0;
        let mut buf = std::vec![0u8; CREATE_EVENT_MAX_BYTES];
        let len = encode_event(&fields, &name, &mut buf).unwrap();
        let view = decode_event(&buf[..len]).unwrap();
        assert_eq!(
            view.name.len_units(),
            MAX_NAME_UNITS - 1,
            "high surrogate dropped"
        );
        assert_ne!(view.fields.flags & EVENT_FLAG_NAME_TRUNCATED, 0);
        assert_eq!(
            usize::from(view.fields.volume_name_len),
            (MAX_NAME_UNITS - 1) * 2
        );
        assert!(len <= CREATE_EVENT_MAX_BYTES);
    }

    #[test]
    fn encoder_rejects_invalid_fields() {
        let name = units(r"\v\x");
        let mut buf = [0u8; 128];
        type Case = (fn(&mut EventFields), Error);
        let cases: [Case; 6] = [
            (
                |f| f.flags = 0x80,
                Error::FieldOutOfRange { field: "flags" },
            ),
            (
                |f| f.create_options = 0x0100_0000,
                Error::FieldOutOfRange {
                    field: "create_options",
                },
            ),
            (
                |f| f.create_disposition = 6,
                Error::FieldOutOfRange {
                    field: "create_disposition",
                },
            ),
            (|f| f.volume_name_len = 3, Error::OddNameLength { len: 3 }),
            (
                |f| f.volume_name_len = 10,
                Error::BadLength {
                    field: "volume_name_len",
                },
            ),
            (
                |f| f.flags = EVENT_FLAG_NAME_UNAVAILABLE,
                Error::BadLength { field: "name_len" },
            ),
        ];
        for (mutate, expected) in cases {
            let mut fields = sample();
            fields.volume_name_len = 4;
            mutate(&mut fields);
            assert_eq!(encode_event(&fields, &name, &mut buf), Err(expected));
        }
        let mut unavailable = sample();
        unavailable.flags = EVENT_FLAG_NAME_UNAVAILABLE;
        unavailable.volume_name_len = 0;
        assert_eq!(encode_event(&unavailable, &[], &mut buf), Ok(64));
    }

    #[test]
    fn decoder_rejects_corruptions() {
        let name = units(r"\v\abc"); // 6 units = 12 bytes -> record 72
        let mut good = [0u8; 80];
        let mut f = sample();
        f.volume_name_len = 4;
        assert_eq!(encode_event(&f, &name, &mut good), Ok(80));
        let check = |patch: &dyn Fn(&mut [u8; 80]), expected: Error| {
            let mut buf = good;
            patch(&mut buf);
            assert_eq!(decode_event(&buf), Err(expected));
        };
        check(
            &|b| b[8] = 80,
            Error::BadLength {
                field: "record_len",
            },
        );
        check(&|b| b[10] = 13, Error::OddNameLength { len: 13 });
        check(&|b| b[11] = 0x20, Error::NameTooLong { len: 0x200C });
        check(
            &|b| b[8 + 41] = 1,
            Error::BadReserved {
                field: "event.reserved",
            },
        );
        check(
            &|b| b[8 + 50] = 1,
            Error::BadReserved {
                field: "event.reserved",
            },
        );
        check(
            &|b| b[8 + 55] = 1,
            Error::BadReserved {
                field: "event.reserved",
            },
        );
        check(
            &|b| b[79] = 1,
            Error::BadReserved {
                field: "event.padding",
            },
        );
        check(
            &|b| b[8 + 7] = 0x80,
            Error::FieldOutOfRange { field: "flags" },
        );
        check(
            &|b| b[8 + 48] = 14,
            Error::BadLength {
                field: "volume_name_len",
            },
        );
        check(&|b| b[4] = 3, Error::UnexpectedKind { got: 3 });
        assert_eq!(
            decode_event(&good[..79]),
            Err(Error::TooShort { need: 80, got: 79 })
        );
    }
}
