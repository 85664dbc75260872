//! The 8-byte common header at offset 0 of every protocol payload.
//!
//! | offset | field | type | value |
//! |---|---|---|---|
//! | 0 | magic | u16 | [`MAGIC`] (bytes `'P'`, `'F'`) |
//! | 2 | version | u16 | [`PROTOCOL_VERSION`] |
//! | 4 | kind | u16 | [`MessageKind`] |
//! | 6 | reserved | u16 | 0 |
//!
//! Decoding checks, in this order: length, magic, version, kind, reserved.

use crate::Error;
use crate::wire::{fields_tile, get_u16, need, need_out, put_u16};

/// `"PF"` read as a little-endian u16: the first two bytes of every message are `'P'`, `'F'`.
pub const MAGIC: u16 = 0x4650;
/// The protocol version this crate speaks. Any change of a layout or of the meaning of a
/// field bumps it; both sides refuse other versions. Version 2 added
/// `EVENT_FLAG_UNSAFE_CONTEXT` (and the `unsafe_context` counter in a reserved stats slot).
pub const PROTOCOL_VERSION: u16 = 2;
/// Size of the common header.
pub const HEADER_BYTES: usize = 8;

/// Byte offsets of the header fields.
pub mod offset {
    /// `magic: u16`.
    pub const MAGIC: usize = 0;
    /// `version: u16`.
    pub const VERSION: usize = 2;
    /// `kind: u16`.
    pub const KIND: usize = 4;
    /// `reserved: u16`, zero.
    pub const RESERVED: usize = 6;
}

const _: () = assert!(fields_tile(
    &[
        (offset::MAGIC, 2),
        (offset::VERSION, 2),
        (offset::KIND, 2),
        (offset::RESERVED, 2),
    ],
    HEADER_BYTES
));
const _: () = assert!(u16::from_le_bytes(*b"PF") == MAGIC);

/// What a message is. The numeric values are the wire values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum MessageKind {
    /// Kernel → user: one create event ([`crate::event`]).
    CreateEvent = 1,
    /// Kernel → user: a batch of create events ([`crate::batch`]).
    EventBatch = 2,
    /// User → kernel reply to a `CreateEvent` that carries [`crate::EVENT_FLAG_REQUEST`].
    Verdict = 3,
    /// Connection context passed to `FilterConnectCommunicationPort`.
    Connect = 4,
    /// Command: protocol handshake ([`crate::command`]).
    Hello = 16,
    /// Command: read the driver's counters ([`crate::stats`]).
    GetStats = 17,
    /// Command: read the configuration ([`crate::config`]).
    GetConfig = 18,
    /// Command: replace the configuration.
    SetConfig = 19,
}

impl MessageKind {
    /// Every kind, in wire-value order.
    pub const ALL: [Self; 8] = [
        Self::CreateEvent,
        Self::EventBatch,
        Self::Verdict,
        Self::Connect,
        Self::Hello,
        Self::GetStats,
        Self::GetConfig,
        Self::SetConfig,
    ];

    /// The kind with wire value `value`, if any.
    #[must_use]
    pub const fn from_u16(value: u16) -> Option<Self> {
        Some(match value {
            1 => Self::CreateEvent,
            2 => Self::EventBatch,
            3 => Self::Verdict,
            4 => Self::Connect,
            16 => Self::Hello,
            17 => Self::GetStats,
            18 => Self::GetConfig,
            19 => Self::SetConfig,
            _ => return None,
        })
    }

    /// The wire value.
    #[must_use]
    pub const fn as_u16(self) -> u16 {
        self as u16
    }
}

/// Writes a header of `kind` (current magic and version) into `out[..8]`.
///
/// # Errors
/// [`Error::OutputTooSmall`] when `out` is shorter than [`HEADER_BYTES`].
pub fn encode_header(kind: MessageKind, out: &mut [u8]) -> Result<usize, Error> {
    need_out(out, HEADER_BYTES)?;
    put_u16(out, offset::MAGIC, MAGIC)?;
    put_u16(out, offset::VERSION, PROTOCOL_VERSION)?;
    put_u16(out, offset::KIND, kind.as_u16())?;
    put_u16(out, offset::RESERVED, 0)?;
    Ok(HEADER_BYTES)
}

/// Reads and checks the header at the start of `buf`; returns its kind. Bytes after the
/// header are not looked at.
///
/// # Errors
/// [`Error::TooShort`], [`Error::BadMagic`], [`Error::VersionMismatch`],
/// [`Error::UnknownKind`], [`Error::BadReserved`] — checked in that order.
pub fn decode_header(buf: &[u8]) -> Result<MessageKind, Error> {
    need(buf, HEADER_BYTES)?;
    let magic = get_u16(buf, offset::MAGIC)?;
    if magic != MAGIC {
        return Err(Error::BadMagic { got: magic });
    }
    let version = get_u16(buf, offset::VERSION)?;
    if version != PROTOCOL_VERSION {
        return Err(Error::VersionMismatch { got: version });
    }
    let raw_kind = get_u16(buf, offset::KIND)?;
    let kind = MessageKind::from_u16(raw_kind).ok_or(Error::UnknownKind(raw_kind))?;
    if get_u16(buf, offset::RESERVED)? != 0 {
        return Err(Error::BadReserved {
            field: "header.reserved",
        });
    }
    Ok(kind)
}

/// [`decode_header`], then [`Error::UnexpectedKind`] unless the kind is `expected`.
pub(crate) fn expect_header(buf: &[u8], expected: MessageKind) -> Result<(), Error> {
    let kind = decode_header(buf)?;
    if kind == expected {
        Ok(())
    } else {
        Err(Error::UnexpectedKind { got: kind.as_u16() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_for_every_kind() {
        for kind in MessageKind::ALL {
            let mut buf = [0xAAu8; 8];
            assert_eq!(encode_header(kind, &mut buf), Ok(8));
            assert_eq!(&buf[..2], b"PF");
            assert_eq!(decode_header(&buf), Ok(kind));
            assert_eq!(MessageKind::from_u16(kind.as_u16()), Some(kind));
        }
    }

    #[test]
    fn header_checks_in_order() {
        let mut buf = [0u8; 8];
        encode_header(MessageKind::Hello, &mut buf).unwrap();
        assert_eq!(
            decode_header(&buf[..7]),
            Err(Error::TooShort { need: 8, got: 7 })
        );

        let mut bad = buf;
        bad[0] = b'X';
        bad[2] = 9; // also a bad version: magic is reported first
        assert_eq!(decode_header(&bad), Err(Error::BadMagic { got: 0x4658 }));

        let mut bad = buf;
        bad[2] = 9;
        bad[4] = 0xFF; // also a bad kind: version is reported first
        assert_eq!(decode_header(&bad), Err(Error::VersionMismatch { got: 9 }));

        let mut bad = buf;
        bad[4] = 5;
        bad[6] = 1; // also bad reserved: kind is reported first
        assert_eq!(decode_header(&bad), Err(Error::UnknownKind(5)));

        let mut bad = buf;
        bad[7] = 1;
        assert_eq!(
            decode_header(&bad),
            Err(Error::BadReserved {
                field: "header.reserved"
            })
        );
        assert_eq!(
            expect_header(&buf, MessageKind::Verdict),
            Err(Error::UnexpectedKind { got: 16 })
        );
    }
}
