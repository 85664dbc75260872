//! `Connect` (kind 4): the connection context a client passes to
//! `FilterConnectCommunicationPort` (`lpContext`, 16 bytes); the driver's Connect callback
//! receives a kernel copy and decodes it.
//!
//! | offset | field | type |
//! |---|---|---|
//! | 0 | header (kind 4) | 8 bytes |
//! | 8 | role ([`ROLE_DECIDER`] = 1, [`ROLE_OBSERVER`] = 2, [`ROLE_CONTROL`] = 3) | u32 |
//! | 12 | flags: [`CONNECT_FLAG_ASYNC`] (version 3, deciders only); other bits 0 | u32 |

use crate::Error;
use crate::header::{HEADER_BYTES, MessageKind, encode_header, expect_header};
use crate::wire::{exact, fields_tile, get_u32, need_out, put_u32};

/// Exact size of the connection context.
pub const CONNECT_CONTEXT_BYTES: usize = 16;
/// Wire value: the connection answers request-reply events with verdicts (at most one
/// decider at a time).
pub const ROLE_DECIDER: u32 = 1;
/// Wire value: the connection receives notify-only events or batches.
pub const ROLE_OBSERVER: u32 = 2;
/// Wire value: the connection only sends commands (ping, statistics, configuration) and
/// receives no events, so a short-lived `portctl stats` never slows event delivery.
pub const ROLE_CONTROL: u32 = 3;

/// (version 3) Connect flag: this decider answers asynchronously. The driver pends each
/// create it must decide (`FLT_PREOP_PENDING`), sends the requests in batches without
/// waiting for an answer, and completes each create when a `VerdictBatch` command names
/// it (or at its deadline). Valid only with [`Role::Decider`].
pub const CONNECT_FLAG_ASYNC: u32 = 0x0000_0001;

/// Byte offsets of the connection context fields.
pub mod offset {
    /// `role: u32`.
    pub const ROLE: usize = 8;
    /// `flags: u32`, zero.
    pub const FLAGS: usize = 12;
}

const _: () = assert!(fields_tile(
    &[(0, HEADER_BYTES), (offset::ROLE, 4), (offset::FLAGS, 4)],
    CONNECT_CONTEXT_BYTES
));

/// What a connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Role {
    /// Receives request-reply events and answers them.
    Decider = ROLE_DECIDER,
    /// Receives notify-only events or batches.
    Observer = ROLE_OBSERVER,
    /// Sends commands only; receives no events.
    Control = ROLE_CONTROL,
}

impl Role {
    /// The role with wire value `value`, if any.
    #[must_use]
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            ROLE_DECIDER => Some(Self::Decider),
            ROLE_OBSERVER => Some(Self::Observer),
            ROLE_CONTROL => Some(Self::Control),
            _ => None,
        }
    }

    /// The wire value.
    #[must_use]
    pub const fn as_u32(self) -> u32 {
        self as u32
    }
}

/// The decoded connection context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectContext {
    /// The role the client asks for.
    pub role: Role,
    /// (version 3) An asynchronous decider ([`CONNECT_FLAG_ASYNC`]); only with
    /// [`Role::Decider`].
    pub asynchronous: bool,
}

impl ConnectContext {
    /// A context for `role`, synchronous.
    #[must_use]
    pub const fn new(role: Role) -> Self {
        Self {
            role,
            asynchronous: false,
        }
    }

    /// An asynchronous decider's context.
    #[must_use]
    pub const fn async_decider() -> Self {
        Self {
            role: Role::Decider,
            asynchronous: true,
        }
    }
}

impl ConnectContext {
    /// Encodes into `out[..16]`; returns [`CONNECT_CONTEXT_BYTES`].
    ///
    /// # Errors
    /// [`Error::OutputTooSmall`].
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Error> {
        if self.asynchronous && self.role != Role::Decider {
            return Err(Error::FieldOutOfRange {
                field: "connect.flags",
            });
        }
        need_out(out, CONNECT_CONTEXT_BYTES)?;
        encode_header(MessageKind::Connect, out)?;
        put_u32(out, offset::ROLE, self.role.as_u32())?;
        let flags = if self.asynchronous {
            CONNECT_FLAG_ASYNC
        } else {
            0
        };
        put_u32(out, offset::FLAGS, flags)?;
        Ok(CONNECT_CONTEXT_BYTES)
    }

    /// Decodes a context of exactly [`CONNECT_CONTEXT_BYTES`] (an empty context is
    /// [`Error::TooShort`]).
    ///
    /// # Errors
    /// [`Error::TooShort`] / [`Error::BadLength`] (`connect`) for other sizes, header
    /// errors, [`Error::UnexpectedKind`], [`Error::FieldOutOfRange`] (`role`),
    /// [`Error::BadReserved`] (`connect.flags`).
    pub fn decode(buf: &[u8]) -> Result<Self, Error> {
        exact(buf, CONNECT_CONTEXT_BYTES, "connect")?;
        expect_header(buf, MessageKind::Connect)?;
        let role = Role::from_u32(get_u32(buf, offset::ROLE)?)
            .ok_or(Error::FieldOutOfRange { field: "role" })?;
        let flags = get_u32(buf, offset::FLAGS)?;
        if flags & !CONNECT_FLAG_ASYNC != 0 {
            return Err(Error::BadReserved {
                field: "connect.flags",
            });
        }
        let asynchronous = flags & CONNECT_FLAG_ASYNC != 0;
        if asynchronous && role != Role::Decider {
            return Err(Error::FieldOutOfRange {
                field: "connect.flags",
            });
        }
        Ok(Self { role, asynchronous })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_round_trips_and_checks() {
        for role in [Role::Decider, Role::Observer, Role::Control] {
            let mut buf = [0u8; 16];
            assert_eq!(ConnectContext::new(role).encode(&mut buf), Ok(16));
            assert_eq!(ConnectContext::decode(&buf), Ok(ConnectContext::new(role)));
        }
        let mut buf = [0u8; 16];
        assert_eq!(ConnectContext::async_decider().encode(&mut buf), Ok(16));
        assert_eq!(buf[12], 1);
        assert_eq!(
            ConnectContext::decode(&buf),
            Ok(ConnectContext::async_decider())
        );
        let mut observer_async = buf;
        observer_async[8] = 2;
        assert_eq!(
            ConnectContext::decode(&observer_async),
            Err(Error::FieldOutOfRange {
                field: "connect.flags"
            })
        );
        let mut buf = [0u8; 16];
        ConnectContext::new(Role::Decider).encode(&mut buf).unwrap();
        assert_eq!(
            ConnectContext::decode(&[]),
            Err(Error::TooShort { need: 16, got: 0 })
        );
        let mut bad = buf;
        bad[8] = 4;
        assert_eq!(
            ConnectContext::decode(&bad),
            Err(Error::FieldOutOfRange { field: "role" })
        );
        let mut bad = buf;
        bad[12] = 2;
        assert_eq!(
            ConnectContext::decode(&bad),
            Err(Error::BadReserved {
                field: "connect.flags"
            })
        );
        let mut bad = buf;
        bad[2] = 0;
        assert_eq!(
            ConnectContext::decode(&bad),
            Err(Error::VersionMismatch { got: 0 })
        );
    }
}
