//! What the engine calls for each message, and the token that answers a request.

use crate::connection::{Connection, ReplyOutcome, Verdict};
use crate::error::Result;
use crate::message::ReplyTo;
use portfilter_protocol::EventView;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Receives the engine's events, on its worker threads (concurrently: implementations
/// must be `Sync`).
///
/// A panic in a handler is caught and counted ([`EngineStats::handler_panics`](crate::EngineStats::handler_panics);
/// the message is skipped, a request in it left to the driver's default verdict) only
/// where panics unwind. Built with `panic = "abort"` — this workspace's dev and release
/// profiles — it ends the process: install a panic hook that says so and exits with a
/// code a service manager can act on, as `portctl` does (docs/portctl.md, exit code 7).
pub trait Handler: Send + Sync + 'static {
    /// A create event. For a request-reply event the returned verdict is sent to the
    /// driver at once; for notifications it is ignored.
    fn on_event(&self, event: &EventView<'_>) -> Verdict;

    /// A request-reply event with the token that answers it. The default answers with
    /// [`on_event`](Self::on_event)'s verdict at once; override it to answer later (from
    /// any thread, e.g. an async task). A token dropped unanswered leaves the create to
    /// the driver's reply timeout and default verdict.
    fn on_request(&self, event: &EventView<'_>, reply: PendingReply) {
        let verdict = self.on_event(event);
        if let Err(error) = reply.send(verdict) {
            tracing::warn!(%error, "reply failed");
        }
    }

    /// A batch said that `dropped` events were lost (driver queue full) before it.
    fn on_drops(&self, dropped: u32) {
        let _ = dropped;
    }

    /// The engine ended (stopped, or the connection closed): no more calls follow. Runs
    /// on a worker thread before [`Engine::wait`](crate::Engine::wait) returns.
    fn on_end(&self, reason: crate::engine::EndReason) {
        let _ = reason;
    }

    /// A message could not be decoded (it is skipped; a request in it is left to the
    /// driver's default verdict).
    fn on_malformed(&self, error: &portfilter_protocol::Error) {
        tracing::warn!(%error, "malformed message from the driver skipped");
    }
}

impl<F> Handler for F
where
    F: Fn(&EventView<'_>) -> Verdict + Send + Sync + 'static,
{
    fn on_event(&self, event: &EventView<'_>) -> Verdict {
        self(event)
    }
}

/// Counters shared by the engine and its reply tokens.
#[derive(Debug, Default)]
pub(crate) struct ReplyStats {
    pub(crate) allowed: AtomicU64,
    pub(crate) denied: AtomicU64,
    pub(crate) late: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) unanswered: AtomicU64,
}

/// The right to answer one request-reply event, exactly once. Send it to another thread
/// if the decision takes time (the creating thread waits, up to the driver's timeout).
#[derive(Debug)]
#[must_use = "an unanswered request waits for the driver's timeout"]
pub struct PendingReply {
    connection: Arc<Connection>,
    to: ReplyTo,
    stats: Arc<ReplyStats>,
    answered: bool,
}

impl PendingReply {
    pub(crate) fn new(connection: Arc<Connection>, to: ReplyTo, stats: Arc<ReplyStats>) -> Self {
        Self {
            connection,
            to,
            stats,
            answered: false,
        }
    }

    /// The message and event being answered.
    #[must_use]
    pub fn reply_to(&self) -> ReplyTo {
        self.to
    }

    /// Sends the verdict.
    ///
    /// # Errors
    /// As [`Connection::reply`]; a late reply is `Ok(ReplyOutcome::Late)`.
    pub fn send(mut self, verdict: Verdict) -> Result<ReplyOutcome> {
        self.answered = true;
        let result = self.connection.reply(self.to, verdict);
        match &result {
            Ok(ReplyOutcome::Delivered) if verdict.is_deny() => &self.stats.denied,
            Ok(ReplyOutcome::Delivered) => &self.stats.allowed,
            Ok(ReplyOutcome::Late) => &self.stats.late,
            Err(_) => &self.stats.failed,
        }
        .fetch_add(1, Ordering::Relaxed);
        result
    }
}

impl Drop for PendingReply {
    fn drop(&mut self) {
        if !self.answered {
            self.stats.unanswered.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                sequence = self.to.sequence,
                "request left unanswered: the driver applies its default verdict at its timeout"
            );
        }
    }
}
