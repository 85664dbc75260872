//! Statistics counters: relaxed atomics bumped on the hot paths, read by `GetStats`.
//!
//! Counters are independent (no cross-counter consistency is promised: a snapshot taken
//! while creates run may show `events_seen` one ahead of `events_reported`). Gauges
//! (queue depth, connection counts) are read from their owners at snapshot time.

use core::sync::atomic::{AtomicU64, Ordering};

/// Every monotonically increasing counter the driver keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum Counter {
    /// Pre-create callbacks that ran.
    EventsSeen,
    /// Creates that passed the skip rules and filters (their event is then delivered, or
    /// counted as dropped when it could not be built).
    EventsReported,
    /// Creates not reported: skip rules, filters, no connection, unloading.
    EventsSkipped,
    /// Deliveries not made because the requestor was the connection's own process.
    SelfExcluded,
    /// Request-reply messages sent to the decider.
    RequestsSent,
    /// Verdicts "allow" received.
    RepliesAllow,
    /// Verdicts "deny" received.
    RepliesDeny,
    /// Request-reply sends that timed out (`STATUS_TIMEOUT`).
    ReplyTimeouts,
    /// Replies that were short, malformed, for another event, or had an invalid verdict.
    ReplyBad,
    /// Creates decided by the configured default verdict (no decider, timeout,
    /// disconnect, bad reply, send failure).
    DefaultVerdicts,
    /// Plain notify messages delivered.
    NotifySent,
    /// Plain notify messages not delivered (timeout, disconnect, failure).
    NotifyFailed,
    /// Events put in the queue.
    QueueEnqueued,
    /// Events dropped: queue full, allocation failure, batch not delivered, unload.
    QueueDropped,
    /// Batch messages delivered to observers.
    BatchesSent,
    /// Reported creates whose requestor may hold file-system resources (top-level IRP,
    /// all APCs disabled): never held, default verdict at once.
    UnsafeContext,
}

/// Number of [`Counter`]s.
pub(crate) const COUNTERS: usize = Counter::UnsafeContext as usize + 1;

/// The counters.
pub(crate) struct Stats {
    values: [AtomicU64; COUNTERS],
}

impl Stats {
    /// All zero.
    pub(crate) const fn new() -> Self {
        Self {
            values: [const { AtomicU64::new(0) }; COUNTERS],
        }
    }

    /// Adds one.
    pub(crate) fn bump(&self, counter: Counter) {
        self.add(counter, 1);
    }

    /// Adds `n`.
    pub(crate) fn add(&self, counter: Counter, n: u64) {
        if let Some(value) = self.values.get(counter as usize) {
            value.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Current value.
    pub(crate) fn get(&self, counter: Counter) -> u64 {
        self.values
            .get(counter as usize)
            .map_or(0, |value| value.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_independent() {
        let s = Stats::new();
        s.bump(Counter::EventsSeen);
        s.add(Counter::QueueDropped, 5);
        s.bump(Counter::BatchesSent);
        assert_eq!(s.get(Counter::EventsSeen), 1);
        assert_eq!(s.get(Counter::QueueDropped), 5);
        assert_eq!(s.get(Counter::BatchesSent), 1);
        assert_eq!(s.get(Counter::RepliesDeny), 0);
    }
}
