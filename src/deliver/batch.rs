//! Assembling `EventBatch` messages from already-encoded event records.
//!
//! Queued events are complete `CreateEvent` messages built by the create path; a batch
//! carries their records back to back after the batch header, so the worker copies each
//! record's bytes instead of decoding and re-encoding it. The layout constants are the
//! protocol crate's; a test checks that the protocol's decoder accepts what this builds.

use crate::event::read_u32;
use crate::pool::PoolBytes;
use portfilter_protocol::batch::{BATCH_HEADER_BYTES, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, offset};
use portfilter_protocol::{MessageKind, encode_header, event::offset as record_offset};

/// A batch under construction in a pool buffer of [`MAX_BATCH_BYTES`].
pub(crate) struct Batch {
    buf: PoolBytes,
    used: usize,
    count: u32,
    max_events: u32,
}

impl Batch {
    /// Allocates an empty batch buffer; `None` when the pool is exhausted.
    pub(crate) fn new() -> Option<Self> {
        let mut batch = Self {
            buf: PoolBytes::zeroed(MAX_BATCH_BYTES)?,
            used: 0,
            count: 0,
            max_events: 1,
        };
        batch.reset(1);
        Some(batch)
    }

    /// Empties the batch; it will take at most `max_events` events (clamped to the
    /// protocol's bounds).
    pub(crate) fn reset(&mut self, max_events: u32) {
        self.max_events = max_events.clamp(1, MAX_BATCH_EVENTS as u32);
        self.used = BATCH_HEADER_BYTES;
        self.count = 0;
        let _ = encode_header(MessageKind::EventBatch, &mut self.buf);
        self.put(offset::COUNT, 0);
        self.put(offset::DROPPED_BEFORE, 0);
    }

    fn put(&mut self, at: usize, value: u32) {
        if let Some(field) = self.buf.get_mut(at..at + 4) {
            field.copy_from_slice(&value.to_le_bytes());
        }
    }

    /// Events in the batch.
    pub(crate) fn count(&self) -> u32 {
        self.count
    }

    /// Appends one encoded record; false (nothing changed) when it does not fit.
    pub(crate) fn try_push(&mut self, record: &[u8]) -> bool {
        if self.count >= self.max_events {
            return false;
        }
        let end = self.used + record.len();
        let Some(dst) = self.buf.get_mut(self.used..end) else {
            return false;
        };
        dst.copy_from_slice(record);
        self.used = end;
        self.count += 1;
        self.put(offset::COUNT, self.count);
        true
    }

    /// Sets the number of events lost before this batch (saturating at `u32::MAX`).
    pub(crate) fn set_dropped_before(&mut self, dropped: u64) {
        self.put(
            offset::DROPPED_BEFORE,
            u32::try_from(dropped).unwrap_or(u32::MAX),
        );
    }

    /// The message to send (header and records).
    pub(crate) fn message(&mut self) -> &mut [u8] {
        let used = self.used;
        self.buf.get_mut(..used).unwrap_or(&mut [])
    }

    /// The records, one slice each.
    pub(crate) fn records(&self) -> Records<'_> {
        Records {
            rest: self.buf.get(BATCH_HEADER_BYTES..self.used).unwrap_or(&[]),
        }
    }

    /// Whether some record was created by process `pid`.
    pub(crate) fn has_process(&self, pid: u32) -> bool {
        self.records()
            .any(|r| read_u32(r, record_offset::PROCESS_ID) == pid)
    }

    /// Rebuilds `out` as this batch without the records of process `pid` (self-exclusion
    /// for one observer); returns how many were left out.
    pub(crate) fn copy_excluding(&self, pid: u32, out: &mut Batch) -> u32 {
        out.reset(self.max_events);
        let mut excluded = 0;
        for record in self.records() {
            if read_u32(record, record_offset::PROCESS_ID) == pid {
                excluded += 1;
            } else {
                out.try_push(record);
            }
        }
        excluded
    }
}

/// Iterator over the records of a [`Batch`] (each `record_len` bytes long).
pub(crate) struct Records<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Records<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let len_bytes = self.rest.get(..2)?;
        let len = usize::from(u16::from_le_bytes([
            *len_bytes.first()?,
            *len_bytes.get(1)?,
        ]));
        if len == 0 {
            return None;
        }
        let record = self.rest.get(..len)?;
        self.rest = self.rest.get(len..).unwrap_or(&[]);
        Some(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventMessage;
    use portfilter_protocol::{EventFields, KernelMessage, decode_kernel_message};
    use std::vec::Vec;

    fn event(pid: u32, name: &str) -> EventMessage {
        let name: Vec<u16> = name.encode_utf16().collect();
        let fields = EventFields {
            sequence: 1,
            process_id: pid,
            ..EventFields::default()
        };
        EventMessage::build(&fields, &name).expect("pool")
    }

    #[test]
    fn a_batch_knows_which_processes_its_records_came_from() {
        let _machine = fltsim::Machine::boot();
        let mut batch = Batch::new().expect("pool");
        batch.reset(8);
        assert!(!batch.has_process(10), "an empty batch");
        assert!(batch.try_push(event(10, r"\a.txt").record()));
        assert!(batch.try_push(event(20, r"\b.txt").record()));
        assert!(batch.try_push(event(10, r"\c.txt").record()));
        assert!(batch.has_process(10));
        assert!(batch.has_process(20));
        assert!(!batch.has_process(30));

        // Without process 10's records: one left, and the batch decodes as such.
        let mut filtered = Batch::new().expect("pool");
        assert_eq!(batch.copy_excluding(10, &mut filtered), 2);
        assert_eq!(filtered.count(), 1);
        assert!(!filtered.has_process(10));
        let Ok(KernelMessage::Batch(view)) = decode_kernel_message(filtered.message()) else {
            panic!("not a batch");
        };
        let pids: Vec<u32> = view.events().map(|e| e.fields.process_id).collect();
        assert_eq!(pids, [20]);
        assert_eq!(batch.copy_excluding(30, &mut filtered), 0);
        assert_eq!(filtered.count(), 3);
    }

    #[test]
    fn a_batch_takes_at_most_its_maximum_of_events() {
        let _machine = fltsim::Machine::boot();
        let mut batch = Batch::new().expect("pool");
        batch.reset(2);
        let e = event(1, r"\x");
        assert!(batch.try_push(e.record()));
        assert!(batch.try_push(e.record()));
        assert!(!batch.try_push(e.record()), "full at 2 events");
        assert_eq!(batch.count(), 2);
        batch.set_dropped_before(u64::MAX);
        let Ok(KernelMessage::Batch(view)) = decode_kernel_message(batch.message()) else {
            panic!("not a batch");
        };
        assert_eq!(view.events().count(), 2);
        assert_eq!(view.dropped_before(), u32::MAX, "saturated");
    }
}
