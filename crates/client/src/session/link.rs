//! What a session tells its handler about the link to the driver, and the per-connection
//! adapter that sits between an engine and the session's handler.

use crate::connection::Verdict;
use crate::engine::{EndReason, Handler, PendingReply};
use crate::error::Error;
use crate::hresult::Hresult;
use portfilter_protocol::{EventView, HelloReply};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A [`Handler`] that also hears about the link: connects, disconnects, waiting for the
/// driver, and restarted sequence numbers. All methods have defaults, so any `Handler`
/// (closures included) becomes one with an empty `impl`.
pub trait SessionHandler: Handler {
    /// The link changed. Called on the session's thread, never concurrently with itself;
    /// [`LinkChange::Disconnected`] comes after the last event of the old connection,
    /// [`LinkChange::Connected`] before the first event of the new one.
    fn on_link(&self, change: &LinkChange) {
        let _ = change;
    }

    /// A new connection is up (after its [`LinkChange::Connected`]) and its engine is
    /// about to start. A handler that talks to the driver on its own — the
    /// asynchronous decider's verdict sink — switches to it here.
    fn on_connection(&self, connection: &Arc<crate::connection::Connection>) {
        let _ = connection;
    }
}

impl<F> SessionHandler for F where F: Fn(&EventView<'_>) -> Verdict + Send + Sync + 'static {}

/// A change of the link to the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkChange {
    /// A connection is up (the first one, or a reconnect).
    Connected(Connected),
    /// The connection ended (driver unloading, port closed).
    Disconnected(Disconnected),
    /// A connect attempt failed and another will follow (reported for the first failure
    /// of an outage and whenever the failure changes, not for every attempt).
    Waiting(Waiting),
    /// The first event after a reconnect carries a sequence number not above the last
    /// one seen before: the driver's numbering restarted, so it was reloaded.
    SequenceRestarted {
        /// The last sequence number seen before the outage.
        before: u64,
        /// The first one seen after it.
        now: u64,
    },
}

/// A connection came up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connected {
    /// 1 for the session's first connection, then 2, 3, …
    pub generation: u32,
    /// The driver's answer to this connection's Hello.
    pub hello: HelloReply,
    /// The outage this connection ends (`None` for a first connection made at once).
    pub outage: Option<Outage>,
}

/// How long the driver was out of reach, and what is known about what was missed.
///
/// What is *not* known is how many events were missed: the driver's sequence numbers
/// and counters restart when it is reloaded, and creates that happen while no driver is
/// loaded are seen by nobody. A session never makes up that number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outage {
    /// From the disconnect (or the first failed attempt) to this connection.
    pub duration: Duration,
    /// Connect attempts made, this successful one included.
    pub attempts: u32,
    /// The last event sequence number received before the outage, if any.
    pub last_sequence_before: Option<u64>,
}

/// A connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disconnected {
    /// The generation of the connection that ended.
    pub generation: u32,
    /// The last event sequence number received on it, if any.
    pub last_sequence: Option<u64>,
    /// Events received on it.
    pub events: u64,
    /// Whether the session will try to reconnect.
    pub reconnecting: bool,
}

/// A connect attempt failed; the session waits and tries again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    /// Attempts made so far in this outage.
    pub attempts: u32,
    /// Time since the outage began.
    pub elapsed: Duration,
    /// The failure, as its one-line message.
    pub error: String,
    /// Its HRESULT, when it has one.
    pub hresult: Option<Hresult>,
}

impl Waiting {
    pub(crate) fn new(attempts: u32, elapsed: Duration, error: &Error) -> Self {
        Self {
            attempts,
            elapsed,
            error: error.to_string(),
            hresult: error.hresult(),
        }
    }
}

/// The handler an engine runs for one connection of a session: forwards events to the
/// session's handler, remembers the last sequence number, spots a restarted numbering,
/// and turns the engine's end into a wake-up of the session (the session's handler hears
/// about the end of the whole session only, once).
pub(crate) struct Link {
    inner: Arc<dyn SessionHandler>,
    /// Highest sequence number seen on this connection, 0 for none (events start at 1).
    last_sequence: AtomicU64,
    /// The last sequence number seen before this connection's outage.
    before: Option<u64>,
    checked_restart: AtomicBool,
    events: AtomicU64,
    /// Wakes the session thread when the engine ended.
    engine_ended: Box<dyn Fn() + Send + Sync>,
}

impl Link {
    pub(crate) fn new(
        inner: Arc<dyn SessionHandler>,
        before: Option<u64>,
        engine_ended: Box<dyn Fn() + Send + Sync>,
    ) -> Self {
        Self {
            inner,
            last_sequence: AtomicU64::new(0),
            before,
            checked_restart: AtomicBool::new(before.is_none()),
            events: AtomicU64::new(0),
            engine_ended,
        }
    }

    pub(crate) fn last_sequence(&self) -> Option<u64> {
        Some(self.last_sequence.load(Ordering::Acquire)).filter(|&s| s != 0)
    }

    pub(crate) fn events(&self) -> u64 {
        self.events.load(Ordering::Acquire)
    }

    fn saw(&self, event: &EventView<'_>) {
        let sequence = event.fields.sequence;
        self.events.fetch_add(1, Ordering::AcqRel);
        self.last_sequence.fetch_max(sequence, Ordering::AcqRel);
        if !self.checked_restart.swap(true, Ordering::AcqRel)
            && let Some(before) = self.before
            && sequence <= before
        {
            tracing::warn!(
                before,
                now = sequence,
                "event sequence numbers restarted: the driver was reloaded"
            );
            self.inner.on_link(&LinkChange::SequenceRestarted {
                before,
                now: sequence,
            });
        }
    }
}

impl Handler for Link {
    fn on_event(&self, event: &EventView<'_>) -> Verdict {
        self.saw(event);
        self.inner.on_event(event)
    }

    fn on_request(&self, event: &EventView<'_>, reply: PendingReply) {
        self.saw(event);
        self.inner.on_request(event, reply);
    }

    fn on_drops(&self, dropped: u32) {
        self.inner.on_drops(dropped);
    }

    fn on_end(&self, reason: EndReason) {
        let _ = reason;
        (self.engine_ended)();
    }

    fn on_malformed(&self, error: &portfilter_protocol::Error) {
        self.inner.on_malformed(error);
    }
}
