//! System time and NT timeouts (100 ns units; negative = relative, positive = absolute,
//! null = forever, zero = do not wait — except for `FltSendMessage`, whose zero is
//! disputed: [`SendTimeout`]).

use portfilter_bindings::LARGE_INTEGER;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
        Instant::now().checked_add(d).map_or(Self::Never, Self::At)
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
            Self::Relative(d) => Instant::now()
                .checked_add(d)
                .map_or(Deadline::Never, Deadline::At),
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
            Self::Relative(d) => Some(start.checked_add(d).map_or(Deadline::Never, Deadline::At)),
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
