//! System time and NT timeouts (100 ns units; negative = relative, positive = absolute,
//! null = forever, zero = do not wait — except for `FltSendMessage`, whose zero is
//! disputed: [`SendTimeout`]).
//!
//! Every timed wait's due instant goes through one place ([`due`]): under the
//! [`TimerExpiry::ClockTick`] reading (the default) it is moved to the first clock tick at
//! or after it, ticks being [`CLOCK_PERIOD`] apart from the machine's boot.

use crate::readings::{self, TimerExpiry};
use parking_lot::Mutex;
use portfilter_bindings::LARGE_INTEGER;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The default Windows clock period, 15.625 ms (64 ticks a second) [doc: "Timer
/// accuracy"]: under the [`TimerExpiry::ClockTick`] reading timed waits end on its ticks.
pub const CLOCK_PERIOD: Duration = Duration::from_micros(15_625);

/// Tick zero: the machine's boot (set by [`reset`]; the first use before any boot).
static TICK_EPOCH: Mutex<Option<Instant>> = Mutex::new(None);

pub(crate) fn reset() {
    *TICK_EPOCH.lock() = Some(Instant::now());
}

fn tick_epoch() -> Instant {
    *TICK_EPOCH.lock().get_or_insert_with(Instant::now)
}

/// The deadline of a timed wait due at `at`: `at` itself under [`TimerExpiry::Exact`],
/// else the first clock tick at or after `at` (never earlier, at most one
/// [`CLOCK_PERIOD`] later).
#[must_use]
pub fn due(at: Instant) -> Deadline {
    match readings::current().timer_expiry {
        TimerExpiry::Exact => Deadline::At(at),
        TimerExpiry::ClockTick => Deadline::At(next_tick(tick_epoch(), at)),
    }
}

/// The first instant `epoch + k × CLOCK_PERIOD` (k ≥ 0) at or after `at` (`at` itself if
/// it precedes the epoch or the tick would overflow).
fn next_tick(epoch: Instant, at: Instant) -> Instant {
    let since = at.saturating_duration_since(epoch);
    let period = CLOCK_PERIOD.as_nanos();
    let ticks = since.as_nanos().div_ceil(period);
    u64::try_from(ticks.saturating_mul(period))
        .ok()
        .and_then(|ns| epoch.checked_add(Duration::from_nanos(ns)))
        .filter(|t| *t >= at)
        .unwrap_or(at)
}

fn due_after(start: Instant, d: Duration) -> Deadline {
    start.checked_add(d).map_or(Deadline::Never, due)
}

/// 100 ns intervals between 1601-01-01 and 1970-01-01.
const EPOCH_DIFFERENCE_100NS: i64 = 116_444_736_000_000_000;

/// Now, in 100 ns units since 1601-01-01 UTC.
#[must_use]
pub fn system_time() -> i64 {
    let since_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let hundreds = i64::try_from(since_unix.as_nanos() / 100).unwrap_or(i64::MAX);
    EPOCH_DIFFERENCE_100NS.saturating_add(hundreds)
}

/// When a wait with an NT timeout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// Null timeout: wait forever.
    Never,
    /// `*Timeout == 0` (or an absolute time already past): do not wait.
    Immediate,
    /// Wait until this instant.
    At(Instant),
}

impl Deadline {
    /// Reads an NT timeout.
    ///
    /// # Safety
    /// `timeout` is null or points to a readable `LARGE_INTEGER`.
    #[must_use]
    pub unsafe fn from_nt(timeout: *const LARGE_INTEGER) -> Self {
        // Kernel waits (KeWaitForSingleObject, ZwWaitForSingleObject) treat zero as a
        // poll: that is documented for them, unlike for FltSendMessage.
        // SAFETY: the caller's contract.
        unsafe { SendTimeout::from_nt(timeout) }.arm(crate::readings::ZeroTimeout::Polls)
    }

    /// From a timeout value (not a pointer).
    #[must_use]
    pub fn from_value(t: i64) -> Self {
        let hundreds = match t {
            0 => return Self::Immediate,
            t if t < 0 => t.unsigned_abs(),
            t => match u64::try_from(t - system_time()) {
                Ok(d) if d > 0 => d,
                _ => return Self::Immediate,
            },
        };
        let d = Duration::from_nanos(hundreds.saturating_mul(100));
        due_after(Instant::now(), d)
    }

    /// Whether it has passed.
    #[must_use]
    pub fn expired(&self) -> bool {
        match self {
            Self::Never => false,
            Self::Immediate => true,
            Self::At(i) => Instant::now() >= *i,
        }
    }
}

/// A `FltSendMessage` timeout as the caller passed it, before the model arms its waits
/// with it (the zero value and the re-arming of relative values depend on the
/// [readings](crate::readings)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendTimeout {
    /// Null: wait forever.
    Forever,
    /// `*Timeout == 0` (ambiguous: see [`crate::readings::ZeroTimeout`]).
    Zero,
    /// Negative: this long from the start of a wait.
    Relative(Duration),
    /// Positive: this system time (100 ns since 1601).
    Absolute(i64),
}

impl SendTimeout {
    /// Reads an NT timeout.
    ///
    /// # Safety
    /// `timeout` is null or points to a readable `LARGE_INTEGER`.
    #[must_use]
    pub unsafe fn from_nt(timeout: *const LARGE_INTEGER) -> Self {
        if timeout.is_null() {
            return Self::Forever;
        }
        // SAFETY: non-null and readable per the contract.
        match unsafe { timeout.read_unaligned() } {
            0 => Self::Zero,
            t if t < 0 => {
                Self::Relative(Duration::from_nanos(t.unsigned_abs().saturating_mul(100)))
            }
            t => Self::Absolute(t),
        }
    }

    /// The deadline of a wait that starts now.
    #[must_use]
    pub fn arm(self, zero: crate::readings::ZeroTimeout) -> Deadline {
        match self {
            Self::Forever => Deadline::Never,
            Self::Zero => match zero {
                crate::readings::ZeroTimeout::WaitsForever => Deadline::Never,
                crate::readings::ZeroTimeout::Polls => Deadline::Immediate,
            },
            Self::Relative(d) => due_after(Instant::now(), d),
            Self::Absolute(t) => Deadline::from_value(t),
        }
    }

    /// The deadline of a *re-armed* wait that starts now: a relative value counts again
    /// from now; every other kind ends when it would have ended anyway (`None`).
    #[must_use]
    pub fn rearm(self) -> Option<Deadline> {
        self.rearm_from(Instant::now())
    }

    /// As [`SendTimeout::rearm`] for a wait that started at `start`.
    #[must_use]
    pub fn rearm_from(self, start: Instant) -> Option<Deadline> {
        match self {
            Self::Relative(d) => Some(due_after(start, d)),
            Self::Forever | Self::Zero | Self::Absolute(_) => None,
        }
    }
}

/// `KeQuerySystemTimePrecise`.
///
/// # Safety
/// `current_time` is a writable `LARGE_INTEGER`.
#[inline(never)]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn KeQuerySystemTimePrecise(current_time: *mut LARGE_INTEGER) {
    if current_time.is_null() {
        crate::verifier::fatal(
            crate::verifier::rule::NULL_POINTER,
            "KeQuerySystemTimePrecise",
        );
    }
    // SAFETY: non-null, writable per the contract.
    unsafe { current_time.write_unaligned(system_time()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_due_time_moves_to_the_first_tick_at_or_after_it() {
        let epoch = Instant::now();
        let p = CLOCK_PERIOD;
        assert_eq!(next_tick(epoch, epoch), epoch, "on a tick: that tick");
        let just_after = epoch + Duration::from_nanos(100);
        assert_eq!(
            next_tick(epoch, just_after),
            epoch + p,
            "100 ns late: next tick"
        );
        assert_eq!(next_tick(epoch, epoch + p), epoch + p);
        assert_eq!(
            next_tick(epoch, epoch + p + Duration::from_nanos(1)),
            epoch + 2 * p
        );
        let late = epoch + 1000 * p - Duration::from_micros(1);
        assert_eq!(next_tick(epoch, late), epoch + 1000 * p);
    }
}
