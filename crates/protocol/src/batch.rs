//! `EventBatch` (kind 2): many create events in one message, for the queued observer
//! delivery mode.
//!
//! | offset | field | type |
//! |---|---|---|
//! | 0 | header (kind 2) | 8 bytes |
//! | 8 | count (events in this batch, ≤ [`MAX_BATCH_EVENTS`]) | u32 |
//! | 12 | `dropped_before` (events lost since the previous batch: queue full) | u32 |
//! | 16 | `count` event records back to back, each padded to 8 | … |
//!
//! The whole message is at most [`MAX_BATCH_BYTES`]. Batch records never carry
//! [`EVENT_FLAG_REQUEST`]: nothing waits for a verdict on a queued event.

use crate::Error;
use crate::event::{
    EVENT_FLAG_REQUEST, EventFields, EventView, MAX_EVENT_BYTES, decode_record, encode_record,
    record_bytes, truncate_name,
};
use crate::header::{HEADER_BYTES, MessageKind, encode_header, expect_header};
use crate::wire::{fields_tile, get_u32, need, need_out, put_u32};

/// Size of the batch header (common header + count + `dropped_before`).
pub const BATCH_HEADER_BYTES: usize = 16;
/// Largest batch message, header included (64 KiB: one `FltSendMessage` copy, bounded
/// non-paged pool per batch, and a user buffer of a sensible size).
pub const MAX_BATCH_BYTES: usize = 64 * 1024;
/// Most events in one batch. 1024 × the smallest record (56 bytes) fits in
/// [`MAX_BATCH_BYTES`].
pub const MAX_BATCH_EVENTS: usize = 1024;

/// Byte offsets of the batch header fields.
pub mod offset {
    /// `count: u32`.
    pub const COUNT: usize = 8;
    /// `dropped_before: u32`.
    pub const DROPPED_BEFORE: usize = 12;
    /// First record.
    pub const RECORDS: usize = 16;
}

const _: () = assert!(fields_tile(
    &[
        (0, HEADER_BYTES),
        (offset::COUNT, 4),
        (offset::DROPPED_BEFORE, 4)
    ],
    BATCH_HEADER_BYTES
));
const _: () = assert!(offset::RECORDS == BATCH_HEADER_BYTES);
const _: () = assert!(
    BATCH_HEADER_BYTES + MAX_BATCH_EVENTS * crate::event::EVENT_FIXED_BYTES <= MAX_BATCH_BYTES
);
const _: () = assert!(BATCH_HEADER_BYTES + MAX_EVENT_BYTES <= MAX_BATCH_BYTES);
const _: () = assert!(MAX_BATCH_EVENTS <= u32::MAX as usize);

/// Builds an `EventBatch` in a caller-provided buffer, one event at a time, until the
/// buffer (capped at [`MAX_BATCH_BYTES`]) or the event limit is reached. The buffer holds
/// a valid batch after every successful [`push`](Self::push).
#[derive(Debug)]
pub struct BatchWriter<'a> {
    buf: &'a mut [u8],
    capacity: usize,
    used: usize,
    count: u32,
    max_events: u32,
}

impl<'a> BatchWriter<'a> {
    /// Starts an empty batch in `buf` holding at most `max_events` events.
    ///
    /// # Errors
    /// [`Error::FieldOutOfRange`] (`batch_max_events`) unless `1 ≤ max_events ≤`
    /// [`MAX_BATCH_EVENTS`]; [`Error::OutputTooSmall`] unless `buf` can hold the header and
    /// the largest event (so an empty batch always accepts any event).
    pub fn new(buf: &'a mut [u8], max_events: u32, dropped_before: u32) -> Result<Self, Error> {
        if max_events == 0 || max_events as usize > MAX_BATCH_EVENTS {
            return Err(Error::FieldOutOfRange {
                field: "batch_max_events",
            });
        }
        need_out(buf, BATCH_HEADER_BYTES + MAX_EVENT_BYTES)?;
        encode_header(MessageKind::EventBatch, buf)?;
        put_u32(buf, offset::COUNT, 0)?;
        put_u32(buf, offset::DROPPED_BEFORE, dropped_before)?;
        let capacity = buf.len().min(MAX_BATCH_BYTES);
        Ok(Self {
            buf,
            capacity,
            used: BATCH_HEADER_BYTES,
            count: 0,
            max_events,
        })
    }

    /// True when an event whose name has `name_units` UTF-16 units would be accepted now
    /// (names longer than [`crate::MAX_NAME_UNITS`] count as truncated).
    #[must_use]
    pub fn fits(&self, name_units: usize) -> bool {
        let name_units = name_units.min(crate::MAX_NAME_UNITS);
        self.count < self.max_events
            && self.used.saturating_add(record_bytes(name_units * 2)) <= self.capacity
    }

    /// Appends one event (same encoding rules as [`crate::encode_record`]).
    ///
    /// # Errors
    /// [`Error::BatchFull`] when it does not fit (nothing is changed: send this batch and
    /// push the event into the next one); [`Error::FieldOutOfRange`] (`flags`) when the
    /// event carries [`EVENT_FLAG_REQUEST`]; the field errors of
    /// [`crate::encode_record`].
    pub fn push(&mut self, fields: &EventFields, name: &[u16]) -> Result<(), Error> {
        if fields.flags & EVENT_FLAG_REQUEST != 0 {
            return Err(Error::FieldOutOfRange { field: "flags" });
        }
        let (kept, _) = truncate_name(name);
        if !self.fits(kept.len()) {
            return Err(Error::BatchFull);
        }
        let dst = self
            .buf
            .get_mut(self.used..self.capacity)
            .ok_or(Error::BatchFull)?;
        let written = encode_record(fields, name, dst)?;
        self.used = self.used.saturating_add(written);
        self.count = self.count.saturating_add(1);
        put_u32(self.buf, offset::COUNT, self.count)
    }

    /// Sets the number of events lost before this batch.
    pub fn set_dropped_before(&mut self, dropped: u32) {
        // The header was written in `new`; the buffer is long enough.
        let _ = put_u32(self.buf, offset::DROPPED_BEFORE, dropped);
    }

    /// Events in the batch so far.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.count as usize
    }

    /// True when no event has been pushed.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of the message so far (header included).
    #[must_use]
    pub const fn bytes_used(&self) -> usize {
        self.used
    }

    /// The finished message: the first [`bytes_used`](Self::bytes_used) bytes of the buffer.
    #[must_use]
    pub fn finish(self) -> &'a [u8] {
        let buf: &'a [u8] = self.buf;
        buf.get(..self.used).unwrap_or_default()
    }
}

/// A decoded, fully validated `EventBatch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchView<'a> {
    count: u32,
    dropped_before: u32,
    records: &'a [u8],
}

impl<'a> BatchView<'a> {
    /// Decodes and validates a batch at the start of `buf`: the header, the count, and
    /// every record (as [`crate::decode_record`]). Trailing bytes after the last record
    /// are ignored (a synchronous `FilterGetMessage` does not report the length).
    ///
    /// # Errors
    /// Header errors, [`Error::UnexpectedKind`], [`Error::FieldOutOfRange`] (`count` above
    /// [`MAX_BATCH_EVENTS`], or a record with [`EVENT_FLAG_REQUEST`]),
    /// [`Error::BadLength`] (`batch`) when the records run past [`MAX_BATCH_BYTES`], and
    /// any record error (sizes relative to the whole message).
    pub fn decode(buf: &'a [u8]) -> Result<Self, Error> {
        expect_header(buf, MessageKind::EventBatch)?;
        need(buf, BATCH_HEADER_BYTES)?;
        let count = get_u32(buf, offset::COUNT)?;
        if count as usize > MAX_BATCH_EVENTS {
            return Err(Error::FieldOutOfRange { field: "count" });
        }
        let dropped_before = get_u32(buf, offset::DROPPED_BEFORE)?;
        let body = buf.get(BATCH_HEADER_BYTES..).unwrap_or_default();
        let mut pos = 0usize;
        for _ in 0..count {
            let rest = body.get(pos..).unwrap_or_default();
            let at = BATCH_HEADER_BYTES.saturating_add(pos);
            let (view, len) = decode_record(rest).map_err(|e| e.shifted(at))?;
            if view.is_request() {
                return Err(Error::FieldOutOfRange { field: "flags" });
            }
            pos = pos.saturating_add(len);
            if BATCH_HEADER_BYTES.saturating_add(pos) > MAX_BATCH_BYTES {
                return Err(Error::BadLength { field: "batch" });
            }
        }
        Ok(Self {
            count,
            dropped_before,
            records: body.get(..pos).unwrap_or_default(),
        })
    }

    /// Events in the batch.
    #[must_use]
    pub const fn count(&self) -> u32 {
        self.count
    }

    /// Events the driver lost (queue full or delivery to this client timed out) since the previous batch.
    #[must_use]
    pub const fn dropped_before(&self) -> u32 {
        self.dropped_before
    }

    /// Size of the message in bytes (header and records).
    #[must_use]
    pub const fn byte_len(&self) -> usize {
        BATCH_HEADER_BYTES + self.records.len()
    }

    /// The events, in order (same as [`events`](Self::events)).
    #[must_use]
    pub const fn iter(&self) -> BatchEvents<'a> {
        self.events()
    }

    /// The events, in order.
    #[must_use]
    pub const fn events(&self) -> BatchEvents<'a> {
        BatchEvents {
            rest: self.records,
            remaining: self.count,
        }
    }
}

impl<'a> IntoIterator for &BatchView<'a> {
    type Item = EventView<'a>;
    type IntoIter = BatchEvents<'a>;

    fn into_iter(self) -> BatchEvents<'a> {
        self.events()
    }
}

/// Iterator over the events of a [`BatchView`]. Each record is decoded with the checked
/// decoder again; since [`BatchView::decode`] validated them all, the iterator yields
/// exactly [`BatchView::count`] events.
#[derive(Debug, Clone)]
pub struct BatchEvents<'a> {
    rest: &'a [u8],
    remaining: u32,
}

impl<'a> Iterator for BatchEvents<'a> {
    type Item = EventView<'a>;

    fn next(&mut self) -> Option<EventView<'a>> {
        if self.remaining == 0 {
            return None;
        }
        if let Ok((view, len)) = decode_record(self.rest) {
            self.rest = self.rest.get(len..).unwrap_or_default();
            self.remaining -= 1;
            Some(view)
        } else {
            // Unreachable after BatchView::decode; end the iteration rather than panic.
            self.remaining = 0;
            None
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

impl ExactSizeIterator for BatchEvents<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EVENT_FIXED_BYTES, MAX_NAME_UNITS};
    use std::vec;
    use std::vec::Vec;

    fn fields(seq: u64) -> EventFields {
        EventFields {
            sequence: seq,
            volume_name_len: 2,
            ..EventFields::default()
        }
    }

    /// A batch of exactly [`MAX_BATCH_BYTES`]: 15 records with the longest name and one
    /// of 1592 units (15 × 4152 + 3240 = 65520 bytes after the 16-byte header).
    fn largest_batch(buf: &mut [u8]) -> &[u8] {
        let mut w = BatchWriter::new(buf, MAX_BATCH_EVENTS as u32, 0).unwrap();
        for (i, units) in [MAX_NAME_UNITS; 15].into_iter().chain([1592]).enumerate() {
            let name: Vec<u16> = "\\"
                .encode_utf16()
                .chain(core::iter::repeat_n(u16::from(b'x'), units - 1))
                .collect();
            w.push(&fields(i as u64), &name).unwrap();
        }
        assert_eq!(w.bytes_used(), MAX_BATCH_BYTES);
        w.finish()
    }

    #[test]
    fn a_batch_of_exactly_the_largest_size_decodes() {
        let mut buf = vec![0u8; MAX_BATCH_BYTES];
        let msg = largest_batch(&mut buf);
        assert_eq!(msg.len(), MAX_BATCH_BYTES);
        let view = BatchView::decode(msg).unwrap();
        assert_eq!(view.count(), 16);
        assert_eq!(view.events().count(), 16);
    }

    #[test]
    fn only_a_count_above_the_maximum_is_out_of_range() {
        let mut buf = vec![0u8; MAX_BATCH_BYTES];
        let mut msg = largest_batch(&mut buf).to_vec();
        // A count of exactly the maximum is allowed: this batch then fails on its records
        // (there are only 16), not on the count.
        put_u32(&mut msg, offset::COUNT, MAX_BATCH_EVENTS as u32).unwrap();
        let at_max = BatchView::decode(&msg).unwrap_err();
        assert_ne!(at_max, Error::FieldOutOfRange { field: "count" });
        put_u32(&mut msg, offset::COUNT, MAX_BATCH_EVENTS as u32 + 1).unwrap();
        assert_eq!(
            BatchView::decode(&msg).unwrap_err(),
            Error::FieldOutOfRange { field: "count" }
        );
    }

    #[test]
    fn writer_and_view_agree() {
        let mut buf = vec![0u8; MAX_BATCH_BYTES];
        let mut w = BatchWriter::new(&mut buf, 10, 7).unwrap();
        assert!(w.is_empty());
        let names: Vec<Vec<u16>> = (0..5)
            .map(|i| "\\x".repeat(i + 1).encode_utf16().collect())
            .collect();
        for (i, name) in names.iter().enumerate() {
            w.push(&fields(i as u64), name).unwrap();
        }
        w.set_dropped_before(9);
        assert_eq!(w.len(), 5);
        assert!(!w.is_empty());
        let msg = w.finish();
        let view = BatchView::decode(msg).unwrap();
        assert_eq!(view.count(), 5);
        // An exact-size iterator: its length goes down with each event taken.
        let mut events = view.events();
        assert_eq!(events.len(), 5);
        events.next();
        assert_eq!(events.len(), 4);
        assert_eq!(events.count(), 4);
        assert_eq!(view.dropped_before(), 9);
        assert_eq!(view.byte_len(), msg.len());
        assert_eq!(view.events().len(), 5);
        for (i, (ev, name)) in view.events().zip(&names).enumerate() {
            assert_eq!(ev.fields.sequence, i as u64);
            assert!(ev.name.eq_units(name));
        }
    }

    #[test]
    fn writer_stops_at_event_limit_and_at_capacity() {
        let mut buf = vec![0u8; MAX_BATCH_BYTES];
        let mut w = BatchWriter::new(&mut buf, 2, 0).unwrap();
        w.push(&fields(1), &[92]).unwrap();
        w.push(&fields(2), &[92]).unwrap();
        assert_eq!(w.push(&fields(3), &[92]), Err(Error::BatchFull));
        assert_eq!(w.len(), 2);

        let mut buf = vec![0u8; BATCH_HEADER_BYTES + MAX_EVENT_BYTES + 64];
        let mut w = BatchWriter::new(&mut buf, 1024, 0).unwrap();
        let long = vec![92u16; MAX_NAME_UNITS + 10]; // truncated to MAX_NAME_UNITS
        assert!(w.fits(long.len()));
        w.push(&fields(1), &long).unwrap();
        assert_eq!(w.bytes_used(), BATCH_HEADER_BYTES + MAX_EVENT_BYTES);
        assert!(w.fits(4)); // 56 + 8 = 64 bytes still fit
        assert!(!w.fits(5));
        assert_eq!(w.push(&fields(2), &[92; 5]), Err(Error::BatchFull));
        w.push(&fields(2), &[92; 4]).unwrap();
        assert_eq!(w.bytes_used(), BATCH_HEADER_BYTES + MAX_EVENT_BYTES + 64);
        let msg = w.finish();
        let view = BatchView::decode(msg).unwrap();
        assert_eq!(view.count(), 2);
        assert_eq!(
            view.events().next().unwrap().name.len_units(),
            MAX_NAME_UNITS
        );
    }

    #[test]
    fn writer_rejects_requests_and_bad_limits() {
        let mut buf = vec![0u8; MAX_BATCH_BYTES];
        assert!(BatchWriter::new(&mut buf, 0, 0).is_err());
        assert!(BatchWriter::new(&mut buf, 1025, 0).is_err());
        let mut small = vec![0u8; BATCH_HEADER_BYTES + MAX_EVENT_BYTES - 1];
        assert!(matches!(
            BatchWriter::new(&mut small, 1, 0),
            Err(Error::OutputTooSmall { .. })
        ));
        let mut w = BatchWriter::new(&mut buf, 4, 0).unwrap();
        let mut f = fields(1);
        f.flags = EVENT_FLAG_REQUEST;
        assert_eq!(
            w.push(&f, &[92]),
            Err(Error::FieldOutOfRange { field: "flags" })
        );
        assert!(w.is_empty());
    }

    #[test]
    fn view_rejects_bad_counts_and_truncation() {
        let mut buf = vec![0u8; MAX_BATCH_BYTES];
        let mut w = BatchWriter::new(&mut buf, 4, 0).unwrap();
        w.push(&fields(1), &[92, 97]).unwrap();
        let len = w.bytes_used();
        assert_eq!(len, BATCH_HEADER_BYTES + EVENT_FIXED_BYTES + 8);
        // Claim two events: the second record is all zeros, whose record_len (0) is wrong.
        buf[offset::COUNT] = 2;
        assert_eq!(
            BatchView::decode(&buf),
            Err(Error::BadLength {
                field: "record_len"
            })
        );
        // Claim two events but stop the input after the first.
        assert_eq!(
            BatchView::decode(&buf[..len]),
            Err(Error::TooShort {
                need: len + EVENT_FIXED_BYTES,
                got: len
            })
        );
        buf[offset::COUNT..offset::COUNT + 4].copy_from_slice(&1025u32.to_le_bytes());
        assert_eq!(
            BatchView::decode(&buf),
            Err(Error::FieldOutOfRange { field: "count" })
        );
        // A request flag smuggled into a batch record.
        buf[offset::COUNT..offset::COUNT + 4].copy_from_slice(&1u32.to_le_bytes());
        buf[BATCH_HEADER_BYTES + 4] = EVENT_FLAG_REQUEST as u8;
        assert_eq!(
            BatchView::decode(&buf),
            Err(Error::FieldOutOfRange { field: "flags" })
        );
    }

    #[test]
    fn view_bounds_total_size() {
        // 16 max-size records exceed 64 KiB: hand-build one with a big input buffer.
        let mut buf = vec![0u8; BATCH_HEADER_BYTES + 16 * MAX_EVENT_BYTES];
        let name = vec![92u16; MAX_NAME_UNITS];
        encode_header(MessageKind::EventBatch, &mut buf).unwrap();
        buf[offset::COUNT] = 16;
        for i in 0..16 {
            let at = BATCH_HEADER_BYTES + i * MAX_EVENT_BYTES;
            encode_record(&fields(1), &name, &mut buf[at..]).unwrap();
        }
        assert_eq!(
            BatchView::decode(&buf),
            Err(Error::BadLength { field: "batch" })
        );
        buf[offset::COUNT] = 15;
        assert_eq!(BatchView::decode(&buf).unwrap().count(), 15);
    }
}
