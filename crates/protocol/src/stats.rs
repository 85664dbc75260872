//! `Stats`: the answer to `GetStats` (kind 17): the driver's counters.
//!
//! Layout: header (kind 17) then [`STATS_SLOTS`] u64 slots at offset 8: the
//! [`STATS_COUNTERS`] named counters in the order of [`STATS_COUNTER_NAMES`], then
//! [`STATS_RESERVED_SLOTS`] reserved slots. A driver of this protocol version writes 0
//! to the reserved slots; decoders keep but do not check them, so a counter can be added
//! into the reserved room without breaking older clients. A change beyond that changes
//! [`STATS_BYTES`] and the protocol version.

use crate::Error;
use crate::header::{HEADER_BYTES, MessageKind, encode_header, expect_header};
use crate::wire::{exact, fields_tile, get_u64, need_out, put_u64};

/// Named counters.
pub const STATS_COUNTERS: usize = 21;
/// Reserved slots after the named counters.
pub const STATS_RESERVED_SLOTS: usize = 11;
/// All u64 slots.
pub const STATS_SLOTS: usize = STATS_COUNTERS + STATS_RESERVED_SLOTS;
/// Exact size of a `Stats` message.
pub const STATS_BYTES: usize = HEADER_BYTES + STATS_SLOTS * 8;

macro_rules! stats {
    ($($index:literal $field:ident $offset:ident $doc:literal;)*) => {
        /// The driver's counters (all monotonic since load, except the gauges
        /// `queue_depth`, `connected_clients`, `deciders`, `observers`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
        pub struct Stats {
            $(#[doc = $doc] pub $field: u64,)*
            /// Reserved slots (0 from this protocol version's driver; not checked).
            pub reserved: [u64; STATS_RESERVED_SLOTS],
        }

        /// Byte offsets of the counters in the message.
        pub mod offset {
            $(#[doc = concat!("`", stringify!($field), ": u64`.")]
            pub const $offset: usize = crate::header::HEADER_BYTES + $index * 8;)*
            /// First reserved slot.
            pub const RESERVED: usize = crate::header::HEADER_BYTES + super::STATS_COUNTERS * 8;
        }

        /// The counter names, in wire order.
        pub const STATS_COUNTER_NAMES: [&str; STATS_COUNTERS] = [$(stringify!($field),)*];

        impl Stats {
            /// The named counters with their names, in wire order.
            #[must_use]
            pub const fn counters(&self) -> [(&'static str, u64); STATS_COUNTERS] {
                [$((stringify!($field), self.$field),)*]
            }

            fn to_slots(self) -> [u64; STATS_SLOTS] {
                let mut slots = [0u64; STATS_SLOTS];
                $(if let Some(s) = slots.get_mut($index) { *s = self.$field; })*
                for (s, r) in slots.iter_mut().skip(STATS_COUNTERS).zip(self.reserved) {
                    *s = r;
                }
                slots
            }

            fn from_slots(slots: &[u64; STATS_SLOTS]) -> Self {
                let mut reserved = [0u64; STATS_RESERVED_SLOTS];
                for (r, s) in reserved.iter_mut().zip(slots.iter().skip(STATS_COUNTERS)) {
                    *r = *s;
                }
                Self {
                    $($field: slots.get($index).copied().unwrap_or_default(),)*
                    reserved,
                }
            }
        }

        #[allow(clippy::indexing_slicing)] // const evaluation: a bad index fails the build
        const _: () = {
            let names = [$($index,)*];
            let mut i = 0;
            while i < names.len() {
                assert!(names[i] == i, "counter indexes must be 0, 1, 2, …");
                i += 1;
            }
            assert!(names.len() == STATS_COUNTERS);
        };
    };
}

stats! {
    0 events_seen EVENTS_SEEN "Creates the pre-create callback looked at.";
    1 events_reported EVENTS_REPORTED "Creates that passed the skip flags and filters.";
    2 events_skipped EVENTS_SKIPPED "Creates dropped by skip flags, filters, or the always-skipped kinds (paging files, volume opens, target-directory opens).";
    3 self_excluded SELF_EXCLUDED "Creates by a connected client's own process, not held for a verdict.";
    4 requests_sent REQUESTS_SENT "Request-reply events sent to the decider.";
    5 replies_allow REPLIES_ALLOW "Valid verdicts that allowed.";
    6 replies_deny REPLIES_DENY "Valid verdicts that denied.";
    7 reply_timeouts REPLY_TIMEOUTS "Request-reply sends that timed out.";
    8 reply_bad REPLY_BAD "Replies that were malformed, short, for another sequence, or an invalid verdict.";
    9 default_verdicts DEFAULT_VERDICTS "Default verdicts applied (no decider, timeout, disconnect, bad reply, send failure).";
    10 notify_sent NOTIFY_SENT "Notify-mode events delivered.";
    11 notify_failed NOTIFY_FAILED "Notify-mode events not delivered (timeout, disconnect, failure).";
    12 queue_enqueued QUEUE_ENQUEUED "Queued-mode events put in the queue.";
    13 queue_dropped QUEUE_DROPPED "Queued-mode events dropped because the queue was full.";
    14 batches_sent BATCHES_SENT "Batches delivered.";
    15 queue_depth QUEUE_DEPTH "Events in the queue now (gauge).";
    16 queue_high_water QUEUE_HIGH_WATER "Most events ever in the queue.";
    17 connected_clients CONNECTED_CLIENTS "Connections now (gauge).";
    18 deciders DECIDERS "Decider connections now (gauge, 0 or 1).";
    19 observers OBSERVERS "Observer connections now (gauge).";
    20 unsafe_context UNSAFE_CONTEXT "Reported creates issued where waiting for user mode could deadlock (top-level IRP set or all APCs disabled): never held, default verdict at once.";
}

const _: () = assert!(offset::RESERVED + STATS_RESERVED_SLOTS * 8 == STATS_BYTES);
// Counters are contiguous u64 slots (offset = 8 + 8 × index, checked by the macro's index
// assertion), right after the header, then the reserved slots up to the end.
const _: () = assert!(fields_tile(
    &[
        (0, HEADER_BYTES),
        (offset::EVENTS_SEEN, 8),
        (offset::EVENTS_REPORTED, 8)
    ],
    offset::EVENTS_REPORTED + 8
));
const _: () =
    assert!(offset::UNSAFE_CONTEXT + 8 == offset::RESERVED && offset::RESERVED.is_multiple_of(8));

impl Stats {
    /// Encodes into `out[..264]`; returns [`STATS_BYTES`].
    ///
    /// # Errors
    /// [`Error::OutputTooSmall`].
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Error> {
        need_out(out, STATS_BYTES)?;
        encode_header(MessageKind::GetStats, out)?;
        for (i, value) in self.to_slots().into_iter().enumerate() {
            put_u64(out, HEADER_BYTES + i * 8, value)?;
        }
        Ok(STATS_BYTES)
    }

    /// Decodes a message of exactly [`STATS_BYTES`].
    ///
    /// # Errors
    /// [`Error::TooShort`] / [`Error::BadLength`] (`stats`), header errors,
    /// [`Error::UnexpectedKind`].
    pub fn decode(buf: &[u8]) -> Result<Self, Error> {
        exact(buf, STATS_BYTES, "stats")?;
        expect_header(buf, MessageKind::GetStats)?;
        let mut slots = [0u64; STATS_SLOTS];
        for (i, slot) in slots.iter_mut().enumerate() {
            *slot = get_u64(buf, HEADER_BYTES + i * 8)?;
        }
        Ok(Self::from_slots(&slots))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_round_trip_in_wire_order() {
        let mut stats = Stats {
            events_seen: 1,
            queue_dropped: 14,
            observers: 20,
            unsafe_context: 21,
            ..Stats::default()
        };
        stats.reserved[STATS_RESERVED_SLOTS - 1] = 99;
        let mut buf = [0u8; STATS_BYTES];
        assert_eq!(stats.encode(&mut buf), Ok(STATS_BYTES));
        assert_eq!(Stats::decode(&buf), Ok(stats));
        assert_eq!(buf[offset::EVENTS_SEEN], 1);
        assert_eq!(buf[offset::QUEUE_DROPPED], 14);
        assert_eq!(buf[offset::OBSERVERS], 20);
        assert_eq!(buf[STATS_BYTES - 8], 99);
        assert_eq!(STATS_COUNTER_NAMES[13], "queue_dropped");
        assert_eq!(stats.counters()[19], ("observers", 20));
        assert_eq!(stats.counters()[20], ("unsafe_context", 21));
        assert_eq!(buf[offset::UNSAFE_CONTEXT], 21);
        assert_eq!(
            Stats::decode(&buf[..STATS_BYTES - 1]),
            Err(Error::TooShort {
                need: STATS_BYTES,
                got: STATS_BYTES - 1
            })
        );
        assert!(stats.encode(&mut buf[..100]).is_err());
    }
}
