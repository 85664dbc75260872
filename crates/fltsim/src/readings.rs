//! Readings: where the sources of the Filter Manager's contract disagree (Microsoft's
//! documentation, reverse engineering of fltmgr.sys, ReactOS), the model offers each
//! reading, and **the one that hurts a driver or a client by default**
//! (`../shared/docs/port-semantics.md`: "the model offers each reading — the one that
//! hurts the driver or client most by default — and the driver and the client must be
//! correct under every reading").
//!
//! A machine boots with [`Readings::from_env`]: the harshest readings unless the
//! environment variable `FLTSIM_READINGS` picks others (so a whole test run, or
//! `portfilter-sim`, can be repeated under another reading). A test that must run
//! under a particular reading sets it with [`set`] (or boots with
//! [`Machine::boot_with`](crate::Machine::boot_with)); readings are process-global like
//! the rest of the machine and are reset by every boot.
//!
//! `FLTSIM_READINGS`: comma-separated `name=value` pairs, or `harshest` / `lenient`:
//! `zero_timeout=waits_forever|polls`, `timeout_budget=rearmed_per_wait|one_total`,
//! `error_length=dropped|kept`, `disconnect_wake=at_client_port_close|before_disconnect`,
//! `timer_expiry=clock_tick|exact`.
//! Example: `FLTSIM_READINGS=lenient,error_length=dropped`.

use parking_lot::Mutex;

/// What `FltSendMessage` does with `*Timeout == 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroTimeout {
    /// [doc] The FltSendMessage remarks: "If Timeout is zero, the minifilter driver is put
    /// into a wait state indefinitely" (for delivery and for the reply). **Default.**
    WaitsForever,
    /// [re] An older fltmgr passes the value straight to `KeWaitForMultipleObjects`: a
    /// poll (deliver only if a `FilterGetMessage` is already pending).
    Polls,
}

/// How a relative `FltSendMessage` timeout is spent across the sender's waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutBudget {
    /// [re] An older fltmgr re-arms the same relative value for each of its waits: for a
    /// reader, again after a too-small `FilterGetMessage` bounced the message, and for
    /// the reply — so a relative timeout can hold the sender ~3× as long. **Default.**
    /// Absolute timeouts are unaffected (re-arming an instant gives the same instant).
    RearmedPerWait,
    /// [doc] "the total absolute or relative length of time … until the message is
    /// received … and until it receives a reply": one budget.
    OneTotal,
}

/// Whether `lpBytesReturned` of `FilterSendMessage` carries MessageNotify's
/// `*ReturnOutputBufferLength` when the callback fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorLength {
    /// [doc] FilterSendMessage: `lpBytesReturned` is set when the call succeeds; the I/O
    /// manager copies `Information` back for success and warning statuses only. An
    /// error status (`STATUS_BUFFER_TOO_SMALL` included) returns 0 bytes. **Default.**
    Dropped,
    /// [re] One reverse-engineered fltmgr turns `STATUS_BUFFER_TOO_SMALL` into a warning
    /// so the needed size still reaches the caller (who sees 0x8007007A).
    Kept,
}

/// When senders blocked in `FltSendMessage` on a connection that is being
/// disconnected are woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectWake {
    /// [re: ReactOS] only when the filter calls `FltCloseClientPort` (normally from its
    /// Disconnect callback, or at unload): a filter that waits for its senders before
    /// closing the port deadlocks. **Default.**
    AtClientPortClose,
    /// [re] fltmgr's disconnect sequence wakes them with `STATUS_PORT_DISCONNECTED`
    /// before it calls Disconnect.
    BeforeDisconnect,
}

/// When a timed kernel wait (an NT timeout turned into a deadline) ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerExpiry {
    /// [doc] "Timer accuracy" (Windows drivers, kernel): system time is accurate only to
    /// the latest clock tick; an expiration is detected at the first tick after it, up to
    /// one clock period late (default period 15.625 ms). Modelled as: a timed wait ends at
    /// the first tick ([`CLOCK_PERIOD`](crate::kernel::time::CLOCK_PERIOD), counted from
    /// the machine's boot) at or after its due time — never earlier than due, up to one
    /// period later. A 100 ns timeout that is not satisfied at once lasts until the next
    /// tick. **Default.**
    ClockTick,
    /// A timed wait ends exactly when due (a process that raised the timer resolution
    /// to its finest comes close; the model's behaviour before this reading existed).
    Exact,
}

/// One choice for every disputed rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readings {
    /// `*Timeout == 0`.
    pub zero_timeout: ZeroTimeout,
    /// Relative timeouts across the sender's waits.
    pub timeout_budget: TimeoutBudget,
    /// `lpBytesReturned` on a failed MessageNotify.
    pub error_length: ErrorLength,
    /// Senders of a disconnecting connection.
    pub disconnect_wake: DisconnectWake,
    /// Timed waits: at clock ticks or exact.
    pub timer_expiry: TimerExpiry,
}

impl Readings {
    /// The readings that hurt a driver or client most (the default).
    pub const HARSHEST: Self = Self {
        zero_timeout: ZeroTimeout::WaitsForever,
        timeout_budget: TimeoutBudget::RearmedPerWait,
        error_length: ErrorLength::Dropped,
        disconnect_wake: DisconnectWake::AtClientPortClose,
        timer_expiry: TimerExpiry::ClockTick,
    };

    /// The other reading of every rule.
    pub const LENIENT: Self = Self {
        zero_timeout: ZeroTimeout::Polls,
        timeout_budget: TimeoutBudget::OneTotal,
        error_length: ErrorLength::Kept,
        disconnect_wake: DisconnectWake::BeforeDisconnect,
        timer_expiry: TimerExpiry::Exact,
    };

    /// The harshest readings, changed by `FLTSIM_READINGS` if it is set.
    ///
    /// # Panics
    /// If `FLTSIM_READINGS` does not parse (a test-setup error, said plainly).
    #[must_use]
    pub fn from_env() -> Self {
        match std::env::var("FLTSIM_READINGS") {
            Ok(text) => Self::parse(&text).unwrap_or_else(|e| panic!("FLTSIM_READINGS: {e}")),
            Err(_) => Self::HARSHEST,
        }
    }

    /// Parses the `FLTSIM_READINGS` syntax (see the module documentation), starting from
    /// the harshest readings.
    ///
    /// # Errors
    /// A description of the first item that is not understood.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut r = Self::HARSHEST;
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "harshest" => r = Self::HARSHEST,
                "lenient" => r = Self::LENIENT,
                "zero_timeout=waits_forever" => r.zero_timeout = ZeroTimeout::WaitsForever,
                "zero_timeout=polls" => r.zero_timeout = ZeroTimeout::Polls,
                "timeout_budget=rearmed_per_wait" => {
                    r.timeout_budget = TimeoutBudget::RearmedPerWait;
                }
                "timeout_budget=one_total" => r.timeout_budget = TimeoutBudget::OneTotal,
                "error_length=dropped" => r.error_length = ErrorLength::Dropped,
                "error_length=kept" => r.error_length = ErrorLength::Kept,
                "disconnect_wake=at_client_port_close" => {
                    r.disconnect_wake = DisconnectWake::AtClientPortClose;
                }
                "disconnect_wake=before_disconnect" => {
                    r.disconnect_wake = DisconnectWake::BeforeDisconnect;
                }
                "timer_expiry=clock_tick" => r.timer_expiry = TimerExpiry::ClockTick,
                "timer_expiry=exact" => r.timer_expiry = TimerExpiry::Exact,
                other => return Err(format!("unknown reading {other:?}")),
            }
        }
        Ok(r)
    }

    /// These readings with another zero-timeout reading.
    #[must_use]
    pub const fn with_zero_timeout(mut self, z: ZeroTimeout) -> Self {
        self.zero_timeout = z;
        self
    }

    /// These readings with another timeout-budget reading.
    #[must_use]
    pub const fn with_timeout_budget(mut self, b: TimeoutBudget) -> Self {
        self.timeout_budget = b;
        self
    }

    /// These readings with another error-length reading.
    #[must_use]
    pub const fn with_error_length(mut self, e: ErrorLength) -> Self {
        self.error_length = e;
        self
    }

    /// These readings with another disconnect-wake reading.
    #[must_use]
    pub const fn with_disconnect_wake(mut self, d: DisconnectWake) -> Self {
        self.disconnect_wake = d;
        self
    }

    /// These readings with another timer-expiry reading.
    #[must_use]
    pub const fn with_timer_expiry(mut self, t: TimerExpiry) -> Self {
        self.timer_expiry = t;
        self
    }
}

impl Default for Readings {
    fn default() -> Self {
        Self::HARSHEST
    }
}

static CURRENT: Mutex<Readings> = Mutex::new(Readings::HARSHEST);

/// The readings the model applies now.
#[must_use]
pub fn current() -> Readings {
    *CURRENT.lock()
}

/// Applies `readings` from now on (until the next boot).
pub fn set(readings: Readings) {
    *CURRENT.lock() = readings;
}

pub(crate) fn reset() {
    set(Readings::from_env());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_harshest_reading_of_every_rule() {
        assert_eq!(Readings::default(), Readings::HARSHEST);
        assert_eq!(Readings::parse(""), Ok(Readings::HARSHEST));
    }

    #[test]
    fn the_environment_syntax_picks_readings_one_by_one() {
        assert_eq!(Readings::parse("lenient"), Ok(Readings::LENIENT));
        assert_eq!(
            Readings::parse("lenient, error_length=dropped"),
            Ok(Readings::LENIENT.with_error_length(ErrorLength::Dropped))
        );
        assert_eq!(
            Readings::parse("zero_timeout=polls,disconnect_wake=before_disconnect"),
            Ok(Readings::HARSHEST
                .with_zero_timeout(ZeroTimeout::Polls)
                .with_disconnect_wake(DisconnectWake::BeforeDisconnect))
        );
        assert_eq!(
            Readings::parse("timer_expiry=exact"),
            Ok(Readings::HARSHEST.with_timer_expiry(TimerExpiry::Exact))
        );
        assert_eq!(
            Readings::parse("lenient,timer_expiry=clock_tick"),
            Ok(Readings::LENIENT.with_timer_expiry(TimerExpiry::ClockTick))
        );
        assert!(Readings::parse("zero_timeout=maybe").is_err());
    }
}
