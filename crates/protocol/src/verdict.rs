//! `Verdict` (kind 3): the decider's answer to a request-reply `CreateEvent`.
//!
//! The client sends it with `FilterReplyMessage` after the 16-byte `FILTER_REPLY_HEADER`
//! (so the reply buffer is 16 + [`VERDICT_BYTES`] = 40 bytes); the driver asks
//! `FltSendMessage` for exactly [`VERDICT_BYTES`] and decodes what it received.
//!
//! | offset | field | type |
//! |---|---|---|
//! | 0 | header (kind 3) | 8 bytes |
//! | 8 | sequence (echo of the event's) | u64 |
//! | 16 | verdict ([`VERDICT_ALLOW`] = 0, [`VERDICT_DENY`] = 1) | u32 |
//! | 20 | status (NTSTATUS to fail a denied create with; 0 = `STATUS_ACCESS_DENIED`) | i32 |

use crate::Error;
use crate::header::{HEADER_BYTES, MessageKind, encode_header, expect_header};
use crate::status::STATUS_ACCESS_DENIED;
use crate::wire::{
    exact, fields_tile, get_i32, get_u32, get_u64, need_out, put_i32, put_u32, put_u64,
};

/// Exact size of a `Verdict` message.
pub const VERDICT_BYTES: usize = 24;
/// Wire value: let the create proceed.
pub const VERDICT_ALLOW: u32 = 0;
/// Wire value: fail the create.
pub const VERDICT_DENY: u32 = 1;

/// Byte offsets of the verdict fields.
pub mod offset {
    /// `sequence: u64`.
    pub const SEQUENCE: usize = 8;
    /// `verdict: u32`.
    pub const VERDICT: usize = 16;
    /// `status: i32`.
    pub const STATUS: usize = 20;
}

const _: () = assert!(fields_tile(
    &[
        (0, HEADER_BYTES),
        (offset::SEQUENCE, 8),
        (offset::VERDICT, 4),
        (offset::STATUS, 4)
    ],
    VERDICT_BYTES
));

/// Allow or deny. Also the type of [`crate::Config::default_verdict`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Decision {
    /// Let the create proceed.
    Allow = VERDICT_ALLOW,
    /// Fail the create.
    Deny = VERDICT_DENY,
}

impl Decision {
    /// The decision with wire value `value`, if any.
    #[must_use]
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            VERDICT_ALLOW => Some(Self::Allow),
            VERDICT_DENY => Some(Self::Deny),
            _ => None,
        }
    }

    /// The wire value.
    #[must_use]
    pub const fn as_u32(self) -> u32 {
        self as u32
    }
}

/// True for an error-severity NTSTATUS (top two bits set, `NT_ERROR`): the only statuses
/// a create may be failed with.
#[must_use]
pub const fn is_error_status(status: i32) -> bool {
    status.cast_unsigned() >> 30 == 3
}

/// A decoded verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Verdict {
    /// The `sequence` of the event being answered.
    pub sequence: u64,
    /// Allow or deny.
    pub decision: Decision,
    /// For [`Decision::Deny`]: 0 (the driver uses `STATUS_ACCESS_DENIED`) or an
    /// error-severity NTSTATUS. For [`Decision::Allow`]: 0.
    pub status: i32,
}

impl Verdict {
    /// Allow event `sequence`.
    #[must_use]
    pub const fn allow(sequence: u64) -> Self {
        Self {
            sequence,
            decision: Decision::Allow,
            status: 0,
        }
    }

    /// Deny event `sequence` with `STATUS_ACCESS_DENIED`.
    #[must_use]
    pub const fn deny(sequence: u64) -> Self {
        Self {
            sequence,
            decision: Decision::Deny,
            status: 0,
        }
    }

    /// Deny event `sequence`, failing the create with `status` (must be an error status).
    #[must_use]
    pub const fn deny_with(sequence: u64, status: i32) -> Self {
        Self {
            sequence,
            decision: Decision::Deny,
            status,
        }
    }

    /// The status the create completes with: `STATUS_SUCCESS` (0) for allow, else the
    /// given status or `STATUS_ACCESS_DENIED` when it is 0.
    #[must_use]
    pub const fn completion_status(&self) -> i32 {
        match self.decision {
            Decision::Allow => 0,
            Decision::Deny if self.status == 0 => STATUS_ACCESS_DENIED,
            Decision::Deny => self.status,
        }
    }

    fn check(&self) -> Result<(), Error> {
        let ok = match self.decision {
            Decision::Allow => self.status == 0,
            Decision::Deny => self.status == 0 || is_error_status(self.status),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::FieldOutOfRange { field: "status" })
        }
    }

    /// Encodes into `out[..24]`; returns [`VERDICT_BYTES`].
    ///
    /// # Errors
    /// [`Error::OutputTooSmall`]; [`Error::FieldOutOfRange`] (`status`) for a non-zero
    /// status with allow, or a non-error status with deny (a create failed with a success
    /// or warning code would look opened without a file object).
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Error> {
        self.check()?;
        need_out(out, VERDICT_BYTES)?;
        encode_header(MessageKind::Verdict, out)?;
        put_u64(out, offset::SEQUENCE, self.sequence)?;
        put_u32(out, offset::VERDICT, self.decision.as_u32())?;
        put_i32(out, offset::STATUS, self.status)?;
        Ok(VERDICT_BYTES)
    }

    /// Decodes a reply payload of exactly [`VERDICT_BYTES`].
    ///
    /// # Errors
    /// [`Error::TooShort`] / [`Error::BadLength`] (`verdict`) for any other size, header
    /// errors, [`Error::UnexpectedKind`], [`Error::FieldOutOfRange`] (`verdict` not 0/1,
    /// or `status` as in [`encode`](Self::encode)).
    pub fn decode(buf: &[u8]) -> Result<Self, Error> {
        exact(buf, VERDICT_BYTES, "verdict")?;
        expect_header(buf, MessageKind::Verdict)?;
        let decision = Decision::from_u32(get_u32(buf, offset::VERDICT)?)
            .ok_or(Error::FieldOutOfRange { field: "verdict" })?;
        let verdict = Self {
            sequence: get_u64(buf, offset::SEQUENCE)?,
            decision,
            status: get_i32(buf, offset::STATUS)?,
        };
        verdict.check()?;
        Ok(verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_round_trip() {
        for v in [
            Verdict::allow(1),
            Verdict::deny(u64::MAX),
            Verdict::deny_with(7, 0xC000_0043_u32.cast_signed()),
        ] {
            let mut buf = [0u8; 24];
            assert_eq!(v.encode(&mut buf), Ok(24));
            assert_eq!(Verdict::decode(&buf), Ok(v));
        }
        assert_eq!(Verdict::deny(1).completion_status(), STATUS_ACCESS_DENIED);
        assert_eq!(Verdict::allow(1).completion_status(), 0);
    }

    #[test]
    fn verdict_checks() {
        let mut buf = [0u8; 25];
        Verdict::deny(5).encode(&mut buf).unwrap();
        assert_eq!(
            Verdict::decode(&buf),
            Err(Error::BadLength { field: "verdict" })
        );
        assert_eq!(
            Verdict::decode(&buf[..23]),
            Err(Error::TooShort { need: 24, got: 23 })
        );
        let mut bad = buf;
        bad[16] = 2;
        assert_eq!(
            Verdict::decode(&bad[..24]),
            Err(Error::FieldOutOfRange { field: "verdict" })
        );
        let mut bad = buf;
        bad[20..24].copy_from_slice(&0x0000_0102u32.to_le_bytes()); // STATUS_TIMEOUT: success
        assert_eq!(
            Verdict::decode(&bad[..24]),
            Err(Error::FieldOutOfRange { field: "status" })
        );
        let mut out = [0u8; 24];
        assert!(Verdict::deny_with(1, 0x4000_0000).encode(&mut out).is_err());
        assert!(
            Verdict::deny_with(1, 0x8000_0005_u32.cast_signed())
                .encode(&mut out)
                .is_err()
        );
        let mut allow_with_status = Verdict::allow(1);
        allow_with_status.status = STATUS_ACCESS_DENIED;
        assert!(allow_with_status.encode(&mut out).is_err());
        assert!(Verdict::allow(1).encode(&mut out[..23]).is_err());
    }

    #[test]
    fn a_deny_completes_with_its_own_status_when_it_has_one() {
        let sharing = 0xC000_0043_u32.cast_signed(); // STATUS_SHARING_VIOLATION
        assert_eq!(Verdict::deny_with(1, sharing).completion_status(), sharing);
        assert_eq!(
            Verdict::deny_with(2, 0).completion_status(),
            STATUS_ACCESS_DENIED
        );
        assert_eq!(Verdict::deny(3).completion_status(), STATUS_ACCESS_DENIED);
        assert_eq!(Verdict::allow(4).completion_status(), 0);
    }
}
