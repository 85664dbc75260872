//! Commands: what a client sends with `FilterSendMessage` (the driver's `MessageNotify`
//! answers on the caller's thread). Input = header (kind = the command) + body; output =
//! header (same kind) + answer body.
//!
//! | command | kind | input | output |
//! |---|---|---|---|
//! | Hello | 16 | header only (8) | [`HelloReply`] (40) |
//! | `GetStats` | 17 | header only (8) | [`crate::Stats`] (264) |
//! | `GetConfig` | 18 | header only (8) | [`crate::Config`] (40..=2248) |
//! | `SetConfig` | 19 | [`crate::Config`] (40..=2248) | the applied [`crate::Config`] |
//!
//! `HelloReply` layout: header @0, `driver_version` u32 @8 ([`DriverVersion`] packed),
//! `protocol_version` u16 @12, reserved u16 @14, role u32 @16 (the caller's connection
//! role), `connection_id` u32 @20, `observer_delivery` u32 @24 (current delivery mode),
//! reserved u32 @28, reserved u64 @32.

use crate::Error;
use crate::config::{CONFIG_MAX_BYTES, CONFIG_MIN_BYTES, Delivery};
use crate::connect::Role;
use crate::header::{
    HEADER_BYTES, MessageKind, PROTOCOL_VERSION, decode_header, encode_header, expect_header,
};
use crate::stats::STATS_BYTES;
use crate::wire::{
    exact, fields_tile, get_u16, get_u32, get_u64, need_out, put_u16, put_u32, put_u64,
};

/// Input size of the header-only commands (Hello, `GetStats`, `GetConfig`).
pub const COMMAND_REQUEST_BYTES: usize = HEADER_BYTES;
/// Exact size of a `HelloReply`.
pub const HELLO_REPLY_BYTES: usize = 40;

/// Byte offsets of the `HelloReply` fields.
pub mod hello_offset {
    /// `driver_version: u32`.
    pub const DRIVER_VERSION: usize = 8;
    /// `protocol_version: u16`.
    pub const PROTOCOL_VERSION: usize = 12;
    /// `reserved0: u16`.
    pub const RESERVED0: usize = 14;
    /// `role: u32`.
    pub const ROLE: usize = 16;
    /// `connection_id: u32`.
    pub const CONNECTION_ID: usize = 20;
    /// `observer_delivery: u32`.
    pub const OBSERVER_DELIVERY: usize = 24;
    /// `reserved1: u32`.
    pub const RESERVED1: usize = 28;
    /// `reserved2: u64`.
    pub const RESERVED2: usize = 32;
}

const _: () = assert!(fields_tile(
    &[
        (0, HEADER_BYTES),
        (hello_offset::DRIVER_VERSION, 4),
        (hello_offset::PROTOCOL_VERSION, 2),
        (hello_offset::RESERVED0, 2),
        (hello_offset::ROLE, 4),
        (hello_offset::CONNECTION_ID, 4),
        (hello_offset::OBSERVER_DELIVERY, 4),
        (hello_offset::RESERVED1, 4),
        (hello_offset::RESERVED2, 8),
    ],
    HELLO_REPLY_BYTES
));

/// A command a client can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Handshake: versions, role, connection id.
    Hello,
    /// Read the counters.
    GetStats,
    /// Read the configuration.
    GetConfig,
    /// Replace the configuration; answers with the applied one.
    SetConfig,
}

impl Command {
    /// Every command.
    pub const ALL: [Self; 4] = [
        Self::Hello,
        Self::GetStats,
        Self::GetConfig,
        Self::SetConfig,
    ];

    /// The header kind of the command (and of its answer).
    #[must_use]
    pub const fn kind(self) -> MessageKind {
        match self {
            Self::Hello => MessageKind::Hello,
            Self::GetStats => MessageKind::GetStats,
            Self::GetConfig => MessageKind::GetConfig,
            Self::SetConfig => MessageKind::SetConfig,
        }
    }

    /// The command of a header kind, if it is one.
    #[must_use]
    pub const fn from_kind(kind: MessageKind) -> Option<Self> {
        match kind {
            MessageKind::Hello => Some(Self::Hello),
            MessageKind::GetStats => Some(Self::GetStats),
            MessageKind::GetConfig => Some(Self::GetConfig),
            MessageKind::SetConfig => Some(Self::SetConfig),
            MessageKind::CreateEvent
            | MessageKind::EventBatch
            | MessageKind::Verdict
            | MessageKind::Connect
            | MessageKind::VerdictBatch => None,
        }
    }

    /// Smallest valid input.
    #[must_use]
    pub const fn min_input_bytes(self) -> usize {
        match self {
            Self::SetConfig => CONFIG_MIN_BYTES,
            Self::Hello | Self::GetStats | Self::GetConfig => COMMAND_REQUEST_BYTES,
        }
    }

    /// Largest valid input.
    #[must_use]
    pub const fn max_input_bytes(self) -> usize {
        match self {
            Self::SetConfig => CONFIG_MAX_BYTES,
            Self::Hello | Self::GetStats | Self::GetConfig => COMMAND_REQUEST_BYTES,
        }
    }

    /// An output buffer this large always suffices (the answer of `GetConfig` and
    /// `SetConfig` may be shorter: `lpBytesReturned` tells).
    #[must_use]
    pub const fn max_output_bytes(self) -> usize {
        match self {
            Self::Hello => HELLO_REPLY_BYTES,
            Self::GetStats => STATS_BYTES,
            Self::GetConfig | Self::SetConfig => CONFIG_MAX_BYTES,
        }
    }
}

/// Encodes the input of a header-only command (Hello, `GetStats`, `GetConfig`); returns 8.
/// `SetConfig`'s input is a config message: [`crate::Config::encode`].
///
/// # Errors
/// [`Error::UnexpectedKind`] for `SetConfig`; [`Error::OutputTooSmall`].
pub fn encode_request(command: Command, out: &mut [u8]) -> Result<usize, Error> {
    if command == Command::SetConfig {
        return Err(Error::UnexpectedKind {
            got: command.kind().as_u16(),
        });
    }
    encode_header(command.kind(), out)
}

/// A command input as the driver sees it after [`decode_request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// Which command.
    pub command: Command,
    /// The whole input (header included); for `SetConfig` pass it to
    /// [`crate::Config::decode_into`], which validates the body.
    pub input: &'a [u8],
}

/// First step of `MessageNotify`: checks the header and that the input size fits the
/// command. Map an error to the returned status with
/// [`crate::status::status_for_error`].
///
/// # Errors
/// Header errors (`TooShort`, `BadMagic`, `VersionMismatch`, `UnknownKind`,
/// `BadReserved`); [`Error::UnexpectedKind`] for a kind that is not a command;
/// [`Error::TooShort`] / [`Error::BadLength`] (`command`) for a size outside
/// [`Command::min_input_bytes`]..=[`Command::max_input_bytes`].
pub fn decode_request(input: &[u8]) -> Result<Request<'_>, Error> {
    let kind = decode_header(input)?;
    let command = Command::from_kind(kind).ok_or(Error::UnexpectedKind { got: kind.as_u16() })?;
    if input.len() < command.min_input_bytes() {
        return Err(Error::TooShort {
            need: command.min_input_bytes(),
            got: input.len(),
        });
    }
    if input.len() > command.max_input_bytes() {
        return Err(Error::BadLength { field: "command" });
    }
    Ok(Request { command, input })
}

/// A driver version, packed on the wire as `major << 24 | minor << 16 | patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DriverVersion {
    /// Major version.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
    /// Patch version.
    pub patch: u16,
}

impl DriverVersion {
    /// The packed wire value.
    #[must_use]
    pub const fn to_u32(self) -> u32 {
        (self.major as u32) << 24 | (self.minor as u32) << 16 | self.patch as u32
    }

    /// Unpacks a wire value.
    #[must_use]
    pub const fn from_u32(value: u32) -> Self {
        let [major, minor, hi, lo] = value.to_be_bytes();
        Self {
            major,
            minor,
            patch: u16::from_be_bytes([hi, lo]),
        }
    }
}

/// The answer to `Hello`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HelloReply {
    /// The driver's version.
    pub driver_version: DriverVersion,
    /// The driver's protocol version (equal to the header's; a driver that spoke several
    /// would say its newest here).
    pub protocol_version: u16,
    /// The role of the connection the command came on.
    pub role: Role,
    /// The driver's id for this connection (unique while loaded).
    pub connection_id: u32,
    /// The current observer delivery mode.
    pub observer_delivery: Delivery,
}

impl HelloReply {
    /// Encodes into `out[..40]`; returns [`HELLO_REPLY_BYTES`].
    ///
    /// # Errors
    /// [`Error::OutputTooSmall`].
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Error> {
        need_out(out, HELLO_REPLY_BYTES)?;
        encode_header(MessageKind::Hello, out)?;
        put_u32(
            out,
            hello_offset::DRIVER_VERSION,
            self.driver_version.to_u32(),
        )?;
        put_u16(out, hello_offset::PROTOCOL_VERSION, self.protocol_version)?;
        put_u16(out, hello_offset::RESERVED0, 0)?;
        put_u32(out, hello_offset::ROLE, self.role.as_u32())?;
        put_u32(out, hello_offset::CONNECTION_ID, self.connection_id)?;
        put_u32(
            out,
            hello_offset::OBSERVER_DELIVERY,
            self.observer_delivery.as_u32(),
        )?;
        put_u32(out, hello_offset::RESERVED1, 0)?;
        put_u64(out, hello_offset::RESERVED2, 0)?;
        Ok(HELLO_REPLY_BYTES)
    }

    /// Decodes an answer of exactly [`HELLO_REPLY_BYTES`].
    ///
    /// # Errors
    /// [`Error::TooShort`] / [`Error::BadLength`] (`hello`), header errors,
    /// [`Error::UnexpectedKind`], [`Error::VersionMismatch`] when `protocol_version` is
    /// not this crate's, [`Error::FieldOutOfRange`] (`role`, `observer_delivery`),
    /// [`Error::BadReserved`] (`hello.reserved`).
    pub fn decode(buf: &[u8]) -> Result<Self, Error> {
        exact(buf, HELLO_REPLY_BYTES, "hello")?;
        expect_header(buf, MessageKind::Hello)?;
        let protocol_version = get_u16(buf, hello_offset::PROTOCOL_VERSION)?;
        if protocol_version != PROTOCOL_VERSION {
            return Err(Error::VersionMismatch {
                got: protocol_version,
            });
        }
        let role = Role::from_u32(get_u32(buf, hello_offset::ROLE)?)
            .ok_or(Error::FieldOutOfRange { field: "role" })?;
        let observer_delivery = Delivery::from_u32(get_u32(buf, hello_offset::OBSERVER_DELIVERY)?)
            .ok_or(Error::FieldOutOfRange {
                field: "observer_delivery",
            })?;
        if get_u16(buf, hello_offset::RESERVED0)? != 0
            || get_u32(buf, hello_offset::RESERVED1)? != 0
            || get_u64(buf, hello_offset::RESERVED2)? != 0
        {
            return Err(Error::BadReserved {
                field: "hello.reserved",
            });
        }
        Ok(Self {
            driver_version: DriverVersion::from_u32(get_u32(buf, hello_offset::DRIVER_VERSION)?),
            protocol_version,
            role,
            connection_id: get_u32(buf, hello_offset::CONNECTION_ID)?,
            observer_delivery,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::status::{
        STATUS_INFO_LENGTH_MISMATCH, STATUS_NOT_SUPPORTED, STATUS_REVISION_MISMATCH,
        status_for_error,
    };

    #[test]
    fn an_output_of_max_output_bytes_holds_every_answer() {
        let hello = HelloReply {
            driver_version: DriverVersion {
                major: 1,
                minor: 2,
                patch: 3,
            },
            protocol_version: crate::PROTOCOL_VERSION,
            role: Role::Decider,
            connection_id: 7,
            observer_delivery: Delivery::Queued,
        };
        let mut out = std::vec![0u8; Command::Hello.max_output_bytes()];
        assert_eq!(hello.encode(&mut out), Ok(HELLO_REPLY_BYTES));
        let mut out = std::vec![0u8; Command::GetStats.max_output_bytes()];
        assert_eq!(crate::Stats::default().encode(&mut out), Ok(STATS_BYTES));
        // The largest configuration: 16 filters, 2048 pattern bytes, each entry padded most.
        let mut config = Config::default();
        for i in 0..16u8 {
            let units = if i == 15 { 79 } else { 63 };
            let pattern: std::string::String = core::iter::once('\\')
                .chain(core::iter::repeat_n(char::from(b'a' + i), units - 1))
                .collect();
            config
                .filters
                .push_str(crate::FilterKind::IncludePrefix, &pattern)
                .unwrap();
        }
        for command in [Command::GetConfig, Command::SetConfig] {
            let mut out = std::vec![0u8; command.max_output_bytes()];
            assert_eq!(config.encode(command, &mut out), Ok(CONFIG_MAX_BYTES));
        }
    }

    #[test]
    fn requests_decode_with_exact_sizes() {
        for command in [Command::Hello, Command::GetStats, Command::GetConfig] {
            let mut buf = [0u8; 16];
            assert_eq!(encode_request(command, &mut buf), Ok(8));
            let req = decode_request(&buf[..8]).unwrap();
            assert_eq!(req.command, command);
            assert_eq!(req.input.len(), 8);
            let err = decode_request(&buf[..9]).unwrap_err();
            assert_eq!(err, Error::BadLength { field: "command" });
            assert_eq!(status_for_error(&err), STATUS_INFO_LENGTH_MISMATCH);
            assert_eq!(Command::from_kind(command.kind()), Some(command));
        }
        let mut buf = [0u8; 8];
        assert!(encode_request(Command::SetConfig, &mut buf).is_err());

        let mut cfg = [0u8; 64];
        let len = Config::default()
            .encode(Command::SetConfig, &mut cfg)
            .unwrap();
        let req = decode_request(&cfg[..len]).unwrap();
        assert_eq!(req.command, Command::SetConfig);
        let err = decode_request(&cfg[..len - 1]).unwrap_err();
        assert_eq!(status_for_error(&err), STATUS_INFO_LENGTH_MISMATCH);
    }

    #[test]
    fn request_errors_map_to_the_contract_statuses() {
        let mut buf = [0u8; 8];
        encode_request(Command::Hello, &mut buf).unwrap();
        let mut verdict_kind = buf;
        verdict_kind[4] = 3;
        assert_eq!(
            status_for_error(&decode_request(&verdict_kind).unwrap_err()),
            STATUS_NOT_SUPPORTED
        );
        let mut unknown = buf;
        unknown[4] = 77;
        assert_eq!(decode_request(&unknown), Err(Error::UnknownKind(77)));
        assert_eq!(
            status_for_error(&Error::UnknownKind(77)),
            STATUS_NOT_SUPPORTED
        );
        let mut old = buf;
        old[2] = 0;
        assert_eq!(
            status_for_error(&decode_request(&old).unwrap_err()),
            STATUS_REVISION_MISMATCH
        );
        assert_eq!(
            status_for_error(&decode_request(&[]).unwrap_err()),
            STATUS_INFO_LENGTH_MISMATCH
        );
    }

    #[test]
    fn hello_reply_round_trips_and_checks() {
        let reply = HelloReply {
            driver_version: DriverVersion {
                major: 1,
                minor: 2,
                patch: 300,
            },
            protocol_version: PROTOCOL_VERSION,
            role: Role::Observer,
            connection_id: 42,
            observer_delivery: Delivery::Notify,
        };
        let mut buf = [0u8; HELLO_REPLY_BYTES];
        assert_eq!(reply.encode(&mut buf), Ok(HELLO_REPLY_BYTES));
        assert_eq!(HelloReply::decode(&buf), Ok(reply));
        assert_eq!(
            u32::from_le_bytes(buf[8..12].try_into().unwrap()),
            0x0102_012C,
            "major << 24 | minor << 16 | patch"
        );
        let mut bad = buf;
        bad[14] = 1;
        assert_eq!(
            HelloReply::decode(&bad),
            Err(Error::BadReserved {
                field: "hello.reserved"
            })
        );
        let mut bad = buf;
        bad[12] = 9;
        assert_eq!(
            HelloReply::decode(&bad),
            Err(Error::VersionMismatch { got: 9 })
        );
        let mut bad = buf;
        bad[16] = 0;
        assert_eq!(
            HelloReply::decode(&bad),
            Err(Error::FieldOutOfRange { field: "role" })
        );
        let mut bad = buf;
        bad[24] = 0;
        assert_eq!(
            HelloReply::decode(&bad),
            Err(Error::FieldOutOfRange {
                field: "observer_delivery"
            })
        );
        assert_eq!(
            DriverVersion::from_u32(reply.driver_version.to_u32()),
            reply.driver_version
        );
    }

    #[test]
    fn hello_reply_refuses_each_reserved_field_alone() {
        let reply = HelloReply {
            driver_version: DriverVersion {
                major: 3,
                minor: 0,
                patch: 1,
            },
            protocol_version: PROTOCOL_VERSION,
            role: Role::Decider,
            connection_id: 7,
            observer_delivery: Delivery::Queued,
        };
        let mut buf = [0u8; HELLO_REPLY_BYTES];
        reply.encode(&mut buf).unwrap();
        // Every byte of reserved0 (u16 @14), reserved1 (u32 @28) and reserved2 (u64 @32),
        // each set alone: any of them not zero is refused.
        let reserved = (hello_offset::RESERVED0..hello_offset::RESERVED0 + 2)
            .chain(hello_offset::RESERVED1..hello_offset::RESERVED1 + 4)
            .chain(hello_offset::RESERVED2..hello_offset::RESERVED2 + 8);
        for at in reserved {
            let mut bad = buf;
            bad[at] = 0x80;
            assert_eq!(
                HelloReply::decode(&bad),
                Err(Error::BadReserved {
                    field: "hello.reserved"
                }),
                "reserved byte {at}"
            );
        }
    }
}
