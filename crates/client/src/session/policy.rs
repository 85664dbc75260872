//! When a session tries again: the reconnect policy (bounded exponential backoff, an
//! optional limit) and which connect failures are worth retrying.
//!
//! Pure logic, no clocks: the session passes in the attempt number and the time spent.

use crate::error::Error;
use crate::hresult::Hresult;
use std::time::Duration;

/// How a [`Session`](super::Session) reconnects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Reconnect when the connection ends (driver unloading, port closed). `false`: the
    /// session ends with [`SessionEnd::Disconnected`](super::SessionEnd::Disconnected).
    pub reconnect: bool,
    /// When the driver is not loaded at start, wait for it (as after a disconnect)
    /// instead of failing with [`Error::DriverNotLoaded`].
    pub wait_at_start: bool,
    /// Delay after the first failed attempt; each further failure doubles it.
    pub first_delay: Duration,
    /// The longest delay between two attempts.
    pub max_delay: Duration,
    /// Give up when the driver has been unreachable this long (`None`: keep trying until
    /// the session is stopped). One last attempt is made when the limit is reached.
    pub give_up_after: Option<Duration>,
}

impl Default for ReconnectPolicy {
    /// Reconnect, first retry after 50 ms, at most 1 s between attempts, no limit.
    ///
    /// A failed `FilterConnectCommunicationPort` to a port that does not exist costs
    /// next to nothing, while every second without a decider is a second of creates
    /// decided by the driver's default verdict: hence a short ceiling. Waiting at start
    /// is off so that a wrong port name or a missing driver is reported at once.
    fn default() -> Self {
        Self {
            reconnect: true,
            wait_at_start: false,
            first_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
            give_up_after: None,
        }
    }
}

/// What to do after failed attempt number `attempt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Sleep this long, then try again.
    RetryAfter(Duration),
    /// The limit is reached: stop trying.
    GiveUp,
}

impl ReconnectPolicy {
    /// The policy of a client that never reconnects nor waits (the behaviour of a bare
    /// [`Engine`](crate::Engine)).
    #[must_use]
    pub fn never() -> Self {
        Self {
            reconnect: false,
            wait_at_start: false,
            ..Self::default()
        }
    }

    /// The backoff delay after failed attempt number `attempt` (1 = the first failure):
    /// `first_delay × 2^(attempt−1)`, at most `max_delay`.
    #[must_use]
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.first_delay
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// What follows failed attempt number `attempt`, `elapsed` after the driver was
    /// first found missing. The delay never runs past the limit, so the last attempt is
    /// made when the limit is reached; after it, [`Next::GiveUp`].
    #[must_use]
    pub fn next(&self, attempt: u32, elapsed: Duration) -> Next {
        let delay = self.delay_after(attempt);
        match self.give_up_after {
            None => Next::RetryAfter(delay),
            Some(limit) if elapsed >= limit => Next::GiveUp,
            Some(limit) => Next::RetryAfter(delay.min(limit - elapsed)),
        }
    }
}

/// Whether a connect that failed with `error` after a disconnect is worth trying again.
///
/// Retried: the port is missing (driver unloaded, not loaded yet), the filter is being
/// torn down, the connection closed during the Hello, the port is full or another decider
/// holds the role (the previous connection, or one that will leave), and any other call
/// failure (an unknown code is not proof that the driver will never come back; a decider
/// that gives up leaves the machine to the driver's default verdict). Not retried: a
/// version mismatch (a newer driver will not change its protocol on the next attempt),
/// access denied, a malformed answer, an invalid option, or a call refused on a busy
/// synchronous handle (a usage error) — these stop the session.
#[must_use]
pub fn is_transient(error: &Error) -> bool {
    match error {
        Error::DriverNotLoaded { .. }
        | Error::ConnectionLimit { .. }
        | Error::DeciderBusy { .. }
        | Error::Disconnected
        | Error::Call { .. } => true,
        Error::VersionMismatch { .. }
        | Error::AccessDenied { .. }
        | Error::Protocol { .. }
        | Error::InvalidConfig(_)
        | Error::InvalidOption(_)
        | Error::SynchronousHandleBusy { .. } => false,
    }
}

/// Whether a first connect that failed with `error` means "the driver is not there yet",
/// which a session waits for when [`ReconnectPolicy::wait_at_start`] is set. Anything
/// else at start (a busy port, another decider, access denied) is reported at once.
#[must_use]
pub fn is_driver_missing(error: &Error) -> bool {
    match error {
        Error::DriverNotLoaded { .. } | Error::Disconnected => true,
        Error::Call { hresult, .. } => *hresult == Hresult::FLT_DELETING_OBJECT,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn backoff_doubles_from_the_first_delay_up_to_the_ceiling() {
        let policy = ReconnectPolicy {
            first_delay: ms(50),
            max_delay: ms(1000),
            ..ReconnectPolicy::default()
        };
        let delays: Vec<u64> = (1..=8)
            .map(|attempt| u64::try_from(policy.delay_after(attempt).as_millis()).unwrap())
            .collect();
        assert_eq!(delays, [50, 100, 200, 400, 800, 1000, 1000, 1000]);
        // Attempt numbers far beyond any real run neither overflow nor exceed the ceiling.
        assert_eq!(policy.delay_after(u32::MAX), ms(1000));
        assert_eq!(policy.delay_after(0), ms(50));
    }

    #[test]
    fn without_a_limit_it_never_gives_up() {
        let policy = ReconnectPolicy::default();
        assert_eq!(
            policy.next(10_000, Duration::from_secs(86_400 * 365)),
            Next::RetryAfter(policy.max_delay)
        );
    }

    #[test]
    fn the_limit_clips_the_last_delay_then_gives_up() {
        let policy = ReconnectPolicy {
            first_delay: ms(400),
            max_delay: ms(400),
            give_up_after: Some(ms(1000)),
            ..ReconnectPolicy::default()
        };
        assert_eq!(policy.next(1, ms(0)), Next::RetryAfter(ms(400)));
        assert_eq!(policy.next(2, ms(400)), Next::RetryAfter(ms(400)));
        // 200 ms left: the sleep ends at the limit, for one last attempt.
        assert_eq!(policy.next(3, ms(800)), Next::RetryAfter(ms(200)));
        assert_eq!(policy.next(4, ms(1000)), Next::GiveUp);
        assert_eq!(policy.next(4, ms(5000)), Next::GiveUp);
    }

    #[test]
    fn a_version_mismatch_is_never_retried_a_missing_driver_always() {
        let missing = Error::DriverNotLoaded {
            port: "\\P".into(),
            hresult: Hresult::FILE_NOT_FOUND,
        };
        let mismatch = Error::VersionMismatch {
            client: 1,
            driver: "2".into(),
            hresult: None,
        };
        let denied = Error::AccessDenied {
            port: "\\P".into(),
            hresult: Hresult::ACCESS_DENIED,
        };
        let busy = Error::DeciderBusy {
            port: "\\P".into(),
            hresult: Hresult::SHARING_VIOLATION,
        };
        let deleting = Error::Call {
            operation: "FilterConnectCommunicationPort",
            hresult: Hresult::FLT_DELETING_OBJECT,
        };
        assert!(is_transient(&missing) && is_driver_missing(&missing));
        assert!(is_transient(&Error::Disconnected) && is_driver_missing(&Error::Disconnected));
        assert!(is_transient(&deleting) && is_driver_missing(&deleting));
        assert!(!is_transient(&mismatch) && !is_driver_missing(&mismatch));
        assert!(!is_transient(&denied) && !is_driver_missing(&denied));
        // Busy after a reload: retried; busy at start: reported (exit 5 in portctl).
        assert!(is_transient(&busy) && !is_driver_missing(&busy));
    }
}
