//! The session's thread: connect (again) with backoff, run one engine per connection,
//! report every link change, and decide how the session ends.

use super::link::Link;
use super::{
    Connected, Disconnected, LinkChange, Next, Outage, SessionEnd, SessionHandler, SessionOptions,
    SessionOutcome, Shared, Waiting, is_driver_missing, is_transient,
};
use crate::connection::Connection;
use crate::engine::{EndReason, Engine};
use crate::error::Error;
use portfilter_protocol::Stats;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

/// The session thread.
pub(super) struct Runner {
    pub(super) shared: Arc<Shared>,
    pub(super) options: SessionOptions,
    pub(super) handler: Arc<dyn SessionHandler>,
}

impl Runner {
    pub(super) fn run(&self, mut first: Option<Connection>) -> SessionOutcome {
        let mut before: Option<u64> = None;
        let mut generation = 0u32;
        let mut driver_stats = None;
        let end = loop {
            let (connection, outage) = match first.take() {
                Some(connection) => (connection, None),
                None => match self.connect_again(generation > 0, before) {
                    Ok((connection, outage)) => (connection, Some(outage)),
                    Err(end) => break end,
                },
            };
            generation += 1;
            let connected = Connected {
                generation,
                hello: *connection.hello_info(),
                outage,
            };
            log_connected(&connected);
            self.notify(&LinkChange::Connected(connected));
            match self.serve(connection, generation, before) {
                Served::Stopped(stats) => {
                    driver_stats = stats.map(|stats| *stats);
                    break SessionEnd::Stopped;
                }
                Served::Failed(error) => break SessionEnd::Failed(error),
                Served::Disconnected { last_sequence } => {
                    // A stop asked for wins over an end the driver caused meanwhile.
                    if self.shared.stopping() {
                        break SessionEnd::Stopped;
                    }
                    if !self.options.reconnect.reconnect {
                        break SessionEnd::Disconnected;
                    }
                    before = last_sequence.or(before);
                }
            }
        };
        let reason = match end {
            SessionEnd::Stopped => EndReason::Stopped,
            _ => EndReason::Disconnected,
        };
        if catch_unwind(AssertUnwindSafe(|| self.handler.on_end(reason))).is_err() {
            tracing::error!("the session handler panicked at the end");
        }
        let mut state = self.shared.state.lock();
        state.finished = true;
        self.shared.changed.notify_all();
        SessionOutcome {
            end,
            stats: state.totals,
            connections: generation,
            driver_stats,
        }
    }

    /// Runs one connection's engine to its end.
    fn serve(&self, connection: Connection, generation: u32, before: Option<u64>) -> Served {
        let wake = Arc::clone(&self.shared);
        let link = Arc::new(Link::new(
            Arc::clone(&self.handler),
            before,
            Box::new(move || {
                wake.state.lock().engine_ended = true;
                wake.changed.notify_all();
            }),
        ));
        self.shared.state.lock().engine_ended = false;
        let connection = Arc::new(connection);
        self.handler.on_connection(&connection);
        let engine = match Engine::start(
            Arc::clone(&connection),
            Arc::clone(&link) as _,
            self.options.engine,
        ) {
            Ok(engine) => engine,
            Err(error) => return Served::Failed(error),
        };
        let engine = {
            let mut state = self.shared.state.lock();
            let stop_now = state.stopping.then(|| engine.stopper());
            state.engine = Some(engine);
            state.connections = generation;
            drop(state);
            if let Some(stopper) = stop_now {
                stopper.stop();
            }
            let mut state = self.shared.state.lock();
            while !state.engine_ended {
                self.shared.changed.wait(&mut state);
            }
            state.engine.take()
        };
        let Some(engine) = engine else {
            return Served::Failed(Error::InvalidOption("the engine vanished".to_owned()));
        };
        let (reason, stats) = engine.wait();
        self.shared.state.lock().totals += stats;
        if reason == EndReason::Stopped {
            return Served::Stopped(connection.stats().ok().map(Box::new));
        }
        // Close our handle before anything else happens (the handler may still hold
        // reply tokens that keep the connection alive; a decider then retries until
        // they are gone).
        drop(connection);
        let reconnecting = self.options.reconnect.reconnect && !self.shared.stopping();
        let disconnected = Disconnected {
            generation,
            last_sequence: link.last_sequence(),
            events: link.events(),
            reconnecting,
        };
        tracing::warn!(
            connection = generation,
            events = disconnected.events,
            last_sequence = disconnected.last_sequence,
            "the driver closed the connection{}",
            if reconnecting { "; reconnecting" } else { "" }
        );
        let last_sequence = disconnected.last_sequence;
        self.notify(&LinkChange::Disconnected(disconnected));
        Served::Disconnected { last_sequence }
    }

    /// Connects again after a disconnect (`was_connected`) or at start, with backoff.
    fn connect_again(
        &self,
        was_connected: bool,
        before: Option<u64>,
    ) -> std::result::Result<(Connection, Outage), SessionEnd> {
        let policy = self.options.reconnect;
        let since = Instant::now();
        let mut attempts = 0u32;
        let mut reported = None;
        loop {
            if self.shared.stopping() {
                return Err(SessionEnd::Stopped);
            }
            attempts = attempts.saturating_add(1);
            let error = match self.options.open() {
                Ok(connection) => {
                    let outage = Outage {
                        duration: since.elapsed(),
                        attempts,
                        last_sequence_before: before,
                    };
                    return Ok((connection, outage));
                }
                Err(error) => error,
            };
            let retry = if was_connected {
                is_transient(&error)
            } else {
                is_driver_missing(&error)
            };
            if !retry {
                tracing::error!(%error, "cannot reconnect; not retrying");
                return Err(SessionEnd::Failed(error));
            }
            let kind = (std::mem::discriminant(&error), error.hresult());
            if reported != Some(kind) {
                reported = Some(kind);
                tracing::warn!(%error, attempts, "waiting for the driver");
                self.notify(&LinkChange::Waiting(Waiting::new(
                    attempts,
                    since.elapsed(),
                    &error,
                )));
            } else {
                tracing::debug!(%error, attempts, "connect attempt failed");
            }
            match policy.next(attempts, since.elapsed()) {
                Next::GiveUp => {
                    tracing::error!(%error, attempts, "giving up: the driver did not come back");
                    return Err(SessionEnd::GaveUp {
                        waited: since.elapsed(),
                        last_error: error,
                        ever_connected: was_connected,
                    });
                }
                Next::RetryAfter(delay) => {
                    if self.shared.sleep_unless_stopped(delay) {
                        return Err(SessionEnd::Stopped);
                    }
                }
            }
        }
    }

    fn notify(&self, change: &LinkChange) {
        if catch_unwind(AssertUnwindSafe(|| self.handler.on_link(change))).is_err() {
            tracing::error!("the session handler panicked on a link change");
        }
    }
}

/// How one connection ended.
enum Served {
    /// Stopped, with the driver's counters read just before closing.
    Stopped(Option<Box<Stats>>),
    /// The connection closed.
    Disconnected { last_sequence: Option<u64> },
    /// The engine could not start.
    Failed(Error),
}

fn log_connected(connected: &Connected) {
    let hello = &connected.hello;
    match &connected.outage {
        None => tracing::info!(
            connection = connected.generation,
            protocol = hello.protocol_version,
            "connected to the driver"
        ),
        Some(outage) if connected.generation == 1 => tracing::info!(
            connection = connected.generation,
            protocol = hello.protocol_version,
            after_ms = u64::try_from(outage.duration.as_millis()).unwrap_or(u64::MAX),
            attempts = outage.attempts,
            "connected to the driver after waiting for it"
        ),
        Some(outage) => tracing::warn!(
            connection = connected.generation,
            protocol = hello.protocol_version,
            after_ms = u64::try_from(outage.duration.as_millis()).unwrap_or(u64::MAX),
            attempts = outage.attempts,
            last_sequence_before = outage.last_sequence_before,
            "connected to the driver again; events during the outage were not delivered (their number is not known: a reload restarts the driver's sequence numbers)"
        ),
    }
}
