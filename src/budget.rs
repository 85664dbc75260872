//! `FltSendMessage` timeouts whose bound holds under every reading of the Filter Manager's
//! contract (`../shared/docs/port-semantics.md`):
//!
//! * **Never zero.** The documentation says a zero timeout waits "indefinitely"; an older
//!   fltmgr polls. "Deliver only if a `FilterGetMessage` is already pending" is therefore
//!   sent as the shortest non-zero *relative* timeout, [`POLL`] (100 ns): unambiguous —
//!   but **not free**. A kernel timer expires only at a system clock tick ("Timer
//!   accuracy": an expiration is detected at the first tick after it, up to one clock
//!   period late; 15.625 ms by default, ~0.5–1 ms while some process has raised the
//!   timer resolution), so when no get is pending the sender waits until the next tick:
//!   up to one clock period, ~7.8 ms on average at the default resolution. Only a get
//!   already pending makes it return at once. The Filter Manager offers no way to ask
//!   whether a get is pending without sending. So [`POLL`] is never used where a thread
//!   must not wait (the asynchronous decider's pended creates queue their requests for the
//!   worker instead); where it is used (`notify_timeout_ms = 0`, an observer backed off
//!   after a failed send, a create in a context that must not wait for user mode) it
//!   costs the creating thread up to one clock period per observer that has no get
//!   pending (docs/driver.md, "Bounds").
//! * **An absolute deadline per message.** The documentation calls the timeout the total
//!   for delivery and reply; an older fltmgr re-arms a *relative* value for each of its up
//!   to three waits (reader, again after a too-small get, reply), so `-budget` could hold
//!   the sender ~3 × budget. An absolute system time is the same instant however often it
//!   is re-armed, so [`Budget::timeout`] passes `now + budget` as a positive (absolute)
//!   value: the message waits at most its budget under both readings (plus up to one
//!   clock period: the timer expires at the first tick at or after the deadline).
//!
//! The trade-off (docs/driver.md, "Bounds"): an absolute timeout follows the system clock.
//! If the clock is set back by Δ while a message waits, that one wait lasts up to Δ longer;
//! if it is set forward, the wait ends early (the create gets the default verdict, counted
//! as a timeout). Relative timeouts are immune to clock changes but break the bound under
//! the re-arming reading, and dividing the budget by three to survive re-arming would cut
//! every decider's time to a third under the documented reading. Clock steps are rare and
//! affect only the sends waiting at that moment; a broken bound would affect every create.

use crate::sync::relative_timeout;
use portfilter_bindings::{KeQuerySystemTimePrecise, LARGE_INTEGER};

/// The shortest non-zero relative timeout: "only if a request is already pending" — a
/// wait of up to one clock period when none is (see the module documentation).
pub(crate) const POLL: LARGE_INTEGER = -1;
const _: () = assert!(POLL < 0, "relative, never 0");

/// 100 ns units per millisecond.
const UNITS_PER_MS: i64 = 10_000;

/// The time budget of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Budget {
    ms: u32,
}

impl Budget {
    /// A budget of `ms` milliseconds (0: deliver only to a reader already waiting, which
    /// still costs up to one clock period when there is none: [`POLL`]).
    pub(crate) const fn ms(ms: u32) -> Self {
        Self { ms }
    }

    /// The `FltSendMessage` timeout for a message sent now: the absolute system time
    /// `now + budget`, or [`POLL`] for a zero budget. Never 0.
    pub(crate) fn timeout(self) -> LARGE_INTEGER {
        if self.ms == 0 {
            return POLL;
        }
        let mut now: LARGE_INTEGER = 0;
        // SAFETY: `now` is a valid out pointer.
        unsafe { KeQuerySystemTimePrecise(&raw mut now) };
        absolute_deadline(now, self.ms)
    }
}

/// The system time now (100 ns units since 1601).
pub(crate) fn now() -> LARGE_INTEGER {
    let mut now: LARGE_INTEGER = 0;
    // SAFETY: `now` is a valid out pointer.
    unsafe { KeQuerySystemTimePrecise(&raw mut now) };
    now
}

impl Budget {
    /// The absolute system time at which a budget starting now ends (a pended create's
    /// deadline).
    pub(crate) fn deadline(self) -> LARGE_INTEGER {
        now().saturating_add(i64::from(self.ms) * UNITS_PER_MS)
    }
}

/// Milliseconds from now until `deadline` (0 when it has passed).
pub(crate) fn ms_until(deadline: LARGE_INTEGER) -> u32 {
    ms_between(now(), deadline)
}

/// Whole milliseconds from `now` until `deadline`, rounded up (a wait of that long does
/// not end before the deadline); 0 when it has passed, `u32::MAX` when it is further.
fn ms_between(now: LARGE_INTEGER, deadline: LARGE_INTEGER) -> u32 {
    let left = deadline.saturating_sub(now).max(0);
    u32::try_from(left.saturating_add(UNITS_PER_MS - 1) / UNITS_PER_MS).unwrap_or(u32::MAX)
}

/// `now + ms` as an absolute NT time (positive). Falls back to the relative form if the
/// clock reads as unset (≤ 0), so that the value can never be 0 or negative-by-accident
/// in a way that changes its meaning.
fn absolute_deadline(now: LARGE_INTEGER, ms: u32) -> LARGE_INTEGER {
    let span = i64::from(ms) * UNITS_PER_MS;
    match now.checked_add(span) {
        Some(at) if now > 0 => at,
        _ => relative_timeout(ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_budget_is_the_shortest_relative_timeout_never_zero() {
        assert_eq!(Budget::ms(0).timeout(), POLL);
    }

    #[test]
    fn a_budget_is_an_absolute_time_after_now() {
        let now = 133_000_000_000_000_000; // 2022
        assert_eq!(absolute_deadline(now, 250), now + 2_500_000);
        assert_eq!(absolute_deadline(now, 60_000), now + 600_000_000);
    }

    #[test]
    fn the_time_left_until_a_deadline_is_rounded_up_to_whole_milliseconds() {
        let now = 133_000_000_000_000_000;
        assert_eq!(ms_between(now, now + 1), 1, "100 ns left: wait 1 ms");
        assert_eq!(ms_between(now, now + UNITS_PER_MS), 1);
        assert_eq!(ms_between(now, now + UNITS_PER_MS + 1), 2);
        assert_eq!(ms_between(now, now + 250 * UNITS_PER_MS), 250);
        assert_eq!(ms_between(now, now), 0, "due now");
        assert_eq!(ms_between(now, now - UNITS_PER_MS), 0, "passed");
        assert_eq!(ms_between(now, i64::MAX), u32::MAX, "further than u32 ms");
    }

    #[test]
    fn the_time_left_until_a_deadline_is_measured_from_the_system_clock() {
        let _machine = fltsim::Machine::boot();
        // A minute away: this test's own delay is far below a second.
        let left = ms_until(now() + 60_000 * UNITS_PER_MS);
        assert!((59_000..=60_000).contains(&left), "{left} ms left");
        assert_eq!(ms_until(now() - UNITS_PER_MS), 0);
        let left = ms_until(Budget::ms(60_000).deadline());
        assert!((59_000..=60_000).contains(&left), "{left} ms left");
    }

    #[test]
    fn an_unset_clock_falls_back_to_a_relative_timeout() {
        assert_eq!(absolute_deadline(0, 100), -1_000_000);
        assert_eq!(absolute_deadline(i64::MAX, 100), -1_000_000);
    }
}
