//! `VerdictBatch` (kind 20, protocol version 3): the asynchronous decider's answer to
//! pended creates, sent with `FilterSendMessage` at any time after the requests arrived,
//! carrying one or many verdicts.
//!
//! Input (exactly `16 + 16 × count` bytes):
//!
//! | offset | field | type |
//! |---|---|---|
//! | 0 | header (kind 20) | 8 |
//! | 8 | count | u32, 1..=[`MAX_BATCH_VERDICTS`] |
//! | 12 | reserved | u32 = 0 |
//! | 16 | `count` entries | [`VERDICT_ENTRY_BYTES`] each |
//!
//! Entry: sequence u64 @0, verdict u32 @8 (0 ALLOW, 1 DENY), status i32 @12 (the rules of
//! [`crate::Verdict`]: ALLOW needs 0, DENY needs 0 or an error-severity status).
//!
//! The batch as a whole is checked strictly ([`VerdictBatchView::decode`]); entries are
//! checked one by one ([`VerdictEntry::verdict`]), so that one bad entry does not cost
//! the others their effect. Output: [`VerdictBatchReply`] (32 bytes) with how many
//! entries were applied, unknown, late, invalid and duplicated.

use crate::Error;
use crate::header::{HEADER_BYTES, MessageKind, encode_header, expect_header};
use crate::verdict::{Decision, Verdict};
use crate::wire::{
    fields_tile, get_i32, get_u32, get_u64, need, need_out, put_i32, put_u32, put_u64, slice,
};

/// Fixed part of a `VerdictBatch`.
pub const VERDICT_BATCH_HEADER_BYTES: usize = 16;
/// One entry.
pub const VERDICT_ENTRY_BYTES: usize = 16;
/// Most verdicts in one batch.
pub const MAX_BATCH_VERDICTS: usize = 1024;
/// Largest `VerdictBatch` (16 + 1024 × 16 = 16400).
pub const MAX_VERDICT_BATCH_BYTES: usize =
    VERDICT_BATCH_HEADER_BYTES + MAX_BATCH_VERDICTS * VERDICT_ENTRY_BYTES;
/// Exact size of the answer.
pub const VERDICT_BATCH_REPLY_BYTES: usize = 32;

/// Byte offsets of the batch header and of an entry.
pub mod offset {
    /// `count: u32`.
    pub const COUNT: usize = 8;
    /// `reserved: u32`.
    pub const RESERVED: usize = 12;
    /// Entry: `sequence: u64`.
    pub const ENTRY_SEQUENCE: usize = 0;
    /// Entry: `verdict: u32`.
    pub const ENTRY_VERDICT: usize = 8;
    /// Entry: `status: i32`.
    pub const ENTRY_STATUS: usize = 12;
    /// Reply: `applied: u32`.
    pub const APPLIED: usize = 8;
    /// Reply: `unknown: u32`.
    pub const UNKNOWN: usize = 12;
    /// Reply: `late: u32`.
    pub const LATE: usize = 16;
    /// Reply: `invalid: u32`.
    pub const INVALID: usize = 20;
    /// Reply: `duplicate: u32`.
    pub const DUPLICATE: usize = 24;
    /// Reply: `reserved: u32`.
    pub const REPLY_RESERVED: usize = 28;
}

const _: () = assert!(fields_tile(
    &[(0, HEADER_BYTES), (offset::COUNT, 4), (offset::RESERVED, 4)],
    VERDICT_BATCH_HEADER_BYTES
));
const _: () = assert!(fields_tile(
    &[
        (offset::ENTRY_SEQUENCE, 8),
        (offset::ENTRY_VERDICT, 4),
        (offset::ENTRY_STATUS, 4)
    ],
    VERDICT_ENTRY_BYTES
));
const _: () = assert!(fields_tile(
    &[
        (0, HEADER_BYTES),
        (offset::APPLIED, 4),
        (offset::UNKNOWN, 4),
        (offset::LATE, 4),
        (offset::INVALID, 4),
        (offset::DUPLICATE, 4),
        (offset::REPLY_RESERVED, 4)
    ],
    VERDICT_BATCH_REPLY_BYTES
));

/// One entry as it is on the wire (not yet validated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerdictEntry {
    /// The pended create's sequence.
    pub sequence: u64,
    /// Wire verdict value.
    pub verdict: u32,
    /// Wire status.
    pub status: i32,
}

impl VerdictEntry {
    /// The valid verdict this entry holds.
    ///
    /// # Errors
    /// [`Error::FieldOutOfRange`] (`verdict` or `status`).
    pub fn verdict(&self) -> Result<Verdict, Error> {
        let decision =
            Decision::from_u32(self.verdict).ok_or(Error::FieldOutOfRange { field: "verdict" })?;
        let verdict = Verdict {
            sequence: self.sequence,
            decision,
            status: self.status,
        };
        let mut scratch = [0u8; crate::VERDICT_BYTES];
        verdict.encode(&mut scratch)?;
        Ok(verdict)
    }
}

impl From<Verdict> for VerdictEntry {
    fn from(v: Verdict) -> Self {
        Self {
            sequence: v.sequence,
            verdict: v.decision.as_u32(),
            status: v.status,
        }
    }
}

/// A decoded (length-checked) batch; entries are read on demand.
#[derive(Debug, Clone, Copy)]
pub struct VerdictBatchView<'a> {
    entries: &'a [u8],
    count: usize,
}

impl<'a> VerdictBatchView<'a> {
    /// Checks the header, the count and the exact length.
    ///
    /// # Errors
    /// Header errors, [`Error::UnexpectedKind`], [`Error::FieldOutOfRange`] (`count`:
    /// 0 or more than [`MAX_BATCH_VERDICTS`]), [`Error::BadReserved`]
    /// (`verdict_batch.reserved`), [`Error::TooShort`] / [`Error::BadLength`]
    /// (`verdict_batch`) when the length is not `16 + 16 × count`.
    pub fn decode(buf: &'a [u8]) -> Result<Self, Error> {
        need(buf, VERDICT_BATCH_HEADER_BYTES)?;
        expect_header(buf, MessageKind::VerdictBatch)?;
        let count = get_u32(buf, offset::COUNT)? as usize;
        if get_u32(buf, offset::RESERVED)? != 0 {
            return Err(Error::BadReserved {
                field: "verdict_batch.reserved",
            });
        }
        if count == 0 || count > MAX_BATCH_VERDICTS {
            return Err(Error::FieldOutOfRange { field: "count" });
        }
        let total = VERDICT_BATCH_HEADER_BYTES + count * VERDICT_ENTRY_BYTES;
        need(buf, total)?;
        if buf.len() != total {
            return Err(Error::BadLength {
                field: "verdict_batch",
            });
        }
        Ok(Self {
            entries: slice(buf, VERDICT_BATCH_HEADER_BYTES, count * VERDICT_ENTRY_BYTES)?,
            count,
        })
    }

    /// Number of entries.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.count
    }

    /// Never true for a decoded batch (count ≥ 1).
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Entry `index`, if in range.
    #[must_use]
    pub fn get(&self, index: usize) -> Option<VerdictEntry> {
        let at = index.checked_mul(VERDICT_ENTRY_BYTES)?;
        let raw = slice(self.entries, at, VERDICT_ENTRY_BYTES).ok()?;
        Some(VerdictEntry {
            sequence: get_u64(raw, offset::ENTRY_SEQUENCE).ok()?,
            verdict: get_u32(raw, offset::ENTRY_VERDICT).ok()?,
            status: get_i32(raw, offset::ENTRY_STATUS).ok()?,
        })
    }

    /// The entries in order.
    pub fn entries(&self) -> impl Iterator<Item = VerdictEntry> + '_ {
        (0..self.count).filter_map(|i| self.get(i))
    }
}

/// Encodes a batch of `entries` into `out`; returns its size. Entries are written as
/// given (so tests can send invalid ones); use [`VerdictEntry::from`] for valid verdicts.
///
/// # Errors
/// [`Error::FieldOutOfRange`] (`count`) for 0 or more than [`MAX_BATCH_VERDICTS`]
/// entries, [`Error::OutputTooSmall`].
pub fn encode_verdict_batch(entries: &[VerdictEntry], out: &mut [u8]) -> Result<usize, Error> {
    if entries.is_empty() || entries.len() > MAX_BATCH_VERDICTS {
        return Err(Error::FieldOutOfRange { field: "count" });
    }
    let total = VERDICT_BATCH_HEADER_BYTES + entries.len() * VERDICT_ENTRY_BYTES;
    need_out(out, total)?;
    encode_header(MessageKind::VerdictBatch, out)?;
    put_u32(out, offset::COUNT, entries.len() as u32)?;
    put_u32(out, offset::RESERVED, 0)?;
    for (i, e) in entries.iter().enumerate() {
        let at = VERDICT_BATCH_HEADER_BYTES + i * VERDICT_ENTRY_BYTES;
        put_u64(out, at, e.sequence)?; // offset::ENTRY_SEQUENCE is 0 (no `+ 0`)
        put_u32(out, at + offset::ENTRY_VERDICT, e.verdict)?;
        put_i32(out, at + offset::ENTRY_STATUS, e.status)?;
    }
    Ok(total)
}

/// What the driver did with a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct VerdictBatchReply {
    /// Entries that completed a pended create.
    pub applied: u32,
    /// Entries naming a sequence that was never pended for this decider (or completed
    /// too long ago for the driver to remember it).
    pub unknown: u32,
    /// Entries for a create already completed (deadline, cancellation, an earlier
    /// verdict): no effect.
    pub late: u32,
    /// Entries with an invalid verdict value or status: no effect.
    pub invalid: u32,
    /// Entries repeating a sequence named earlier in the same batch: no effect.
    pub duplicate: u32,
}

impl VerdictBatchReply {
    /// Encodes into `out[..32]`.
    ///
    /// # Errors
    /// [`Error::OutputTooSmall`].
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Error> {
        need_out(out, VERDICT_BATCH_REPLY_BYTES)?;
        encode_header(MessageKind::VerdictBatch, out)?;
        put_u32(out, offset::APPLIED, self.applied)?;
        put_u32(out, offset::UNKNOWN, self.unknown)?;
        put_u32(out, offset::LATE, self.late)?;
        put_u32(out, offset::INVALID, self.invalid)?;
        put_u32(out, offset::DUPLICATE, self.duplicate)?;
        put_u32(out, offset::REPLY_RESERVED, 0)?;
        Ok(VERDICT_BATCH_REPLY_BYTES)
    }

    /// Decodes exactly [`VERDICT_BATCH_REPLY_BYTES`].
    ///
    /// # Errors
    /// Length and header errors, [`Error::BadReserved`].
    pub fn decode(buf: &[u8]) -> Result<Self, Error> {
        crate::wire::exact(buf, VERDICT_BATCH_REPLY_BYTES, "verdict_batch_reply")?;
        expect_header(buf, MessageKind::VerdictBatch)?;
        if get_u32(buf, offset::REPLY_RESERVED)? != 0 {
            return Err(Error::BadReserved {
                field: "verdict_batch_reply.reserved",
            });
        }
        Ok(Self {
            applied: get_u32(buf, offset::APPLIED)?,
            unknown: get_u32(buf, offset::UNKNOWN)?,
            late: get_u32(buf, offset::LATE)?,
            invalid: get_u32(buf, offset::INVALID)?,
            duplicate: get_u32(buf, offset::DUPLICATE)?,
        })
    }

    /// Entries accounted for.
    #[must_use]
    pub const fn total(&self) -> u32 {
        self.applied + self.unknown + self.late + self.invalid + self.duplicate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_round_trips_and_checks_lengths() {
        let entries = [
            VerdictEntry::from(Verdict::allow(1)),
            VerdictEntry::from(Verdict::deny(2)),
            VerdictEntry {
                sequence: 3,
                verdict: 9,
                status: 0,
            },
        ];
        let mut buf = [0u8; 64];
        assert_eq!(encode_verdict_batch(&entries, &mut buf), Ok(64));
        let view = VerdictBatchView::decode(&buf).unwrap();
        assert_eq!(view.len(), 3);
        assert_eq!(view.entries().collect::<std::vec::Vec<_>>(), entries);
        assert_eq!(view.get(0).unwrap().verdict(), Ok(Verdict::allow(1)));
        assert!(view.get(2).unwrap().verdict().is_err());
        assert!(VerdictBatchView::decode(&buf[..63]).is_err());
        let mut long = [0u8; 80];
        long[..64].copy_from_slice(&buf);
        assert_eq!(
            VerdictBatchView::decode(&long).err(),
            Some(Error::BadLength {
                field: "verdict_batch"
            })
        );
        let mut zero = buf;
        zero[8] = 0;
        assert!(VerdictBatchView::decode(&zero[..16]).is_err());
        let mut reserved = buf;
        reserved[12] = 1;
        assert!(VerdictBatchView::decode(&reserved).is_err());
    }

    /// A batch message of `count` entries (each allow of its index), header included,
    /// with `count` written as given.
    fn batch_bytes(count: u32, entries: usize) -> std::vec::Vec<u8> {
        let mut buf = std::vec![0u8; VERDICT_BATCH_HEADER_BYTES + entries * VERDICT_ENTRY_BYTES];
        encode_header(MessageKind::VerdictBatch, &mut buf).unwrap();
        buf[offset::COUNT..offset::COUNT + 4].copy_from_slice(&count.to_le_bytes());
        for i in 0..entries {
            let e = VerdictEntry::from(Verdict::allow(i as u64));
            let at = VERDICT_BATCH_HEADER_BYTES + i * VERDICT_ENTRY_BYTES;
            buf[at..at + 8].copy_from_slice(&e.sequence.to_le_bytes());
            buf[at + 8..at + 12].copy_from_slice(&e.verdict.to_le_bytes());
        }
        buf
    }

    #[test]
    fn a_batch_holds_one_to_max_batch_verdicts_entries() {
        let max = MAX_BATCH_VERDICTS;
        // Decoding: the largest batch is accepted whole, one more entry is refused by its
        // count even when the bytes are all there.
        let full = batch_bytes(max as u32, max);
        let view = VerdictBatchView::decode(&full).unwrap();
        assert_eq!(view.len(), max);
        assert!(!view.is_empty());
        assert_eq!(view.entries().count(), max);
        assert_eq!(
            view.get(max - 1).unwrap().verdict(),
            Ok(Verdict::allow(max as u64 - 1))
        );
        let over = batch_bytes(max as u32 + 1, max + 1);
        assert_eq!(
            VerdictBatchView::decode(&over).err(),
            Some(Error::FieldOutOfRange { field: "count" })
        );
        let one_bytes = batch_bytes(1, 1);
        let one = VerdictBatchView::decode(&one_bytes).unwrap();
        assert!(!one.is_empty());
        assert_eq!(one.len(), 1);

        // Encoding: the same bounds.
        let entries: std::vec::Vec<VerdictEntry> = (0..=max as u64)
            .map(|i| VerdictEntry::from(Verdict::deny(i)))
            .collect();
        let mut out = std::vec![0u8; MAX_VERDICT_BATCH_BYTES + VERDICT_ENTRY_BYTES];
        assert_eq!(
            encode_verdict_batch(&entries[..max], &mut out),
            Ok(MAX_VERDICT_BATCH_BYTES)
        );
        let decoded = VerdictBatchView::decode(&out[..MAX_VERDICT_BATCH_BYTES]).unwrap();
        assert!(decoded.entries().eq(entries[..max].iter().copied()));
        assert_eq!(
            encode_verdict_batch(&entries, &mut out),
            Err(Error::FieldOutOfRange { field: "count" })
        );
        assert_eq!(
            encode_verdict_batch(&[], &mut out),
            Err(Error::FieldOutOfRange { field: "count" })
        );
    }

    #[test]
    fn deny_with_a_success_status_is_invalid() {
        let e = VerdictEntry {
            sequence: 1,
            verdict: 1,
            status: 0x0000_0103,
        };
        assert_eq!(e.verdict(), Err(Error::FieldOutOfRange { field: "status" }));
    }

    #[test]
    fn reply_round_trips() {
        let r = VerdictBatchReply {
            applied: 1,
            unknown: 2,
            late: 3,
            invalid: 4,
            duplicate: 5,
        };
        let mut buf = [0u8; 32];
        assert_eq!(r.encode(&mut buf), Ok(32));
        assert_eq!(VerdictBatchReply::decode(&buf), Ok(r));
        assert_eq!(r.total(), 15);
    }
}
