//! A session: a connection plus an [`Engine`] that outlive the driver.
//!
//! When the connection ends (the driver unloads, `0x80070006`) or the driver is not
//! there (`0x80070002`), the session reconnects with bounded exponential backoff
//! ([`ReconnectPolicy`]), says Hello again and resumes with the same handler. Every
//! disconnect and reconnect is logged and reported to the handler
//! ([`SessionHandler::on_link`]), with what can be said about the gap: its length, the
//! attempts, the last sequence number before it — and never a made-up count of missed
//! events (a reload restarts the driver's sequence numbers and counters; a restart is
//! reported when the first event after the gap shows it, [`LinkChange::SequenceRestarted`]).
//!
//! A version mismatch, access denied or a malformed answer on reconnect ends the session
//! ([`SessionEnd::Failed`]) instead of retrying; a driver that stays away ends it only when
//! [`SessionStopper::stop`] is called or after [`ReconnectPolicy::give_up_after`].
//!
//! The session runs on its own thread; each connection gets a fresh engine (its requests,
//! workers and completion port) and a small adapter handler ([`link`]) that forwards to
//! the session's handler. The old connection is closed before a new one is opened, so a
//! decider does not meet its own previous connection in the decider slot.
//!
//! ```no_run
//! use portfilter_client::session::{Session, SessionOptions};
//! use portfilter_client::{Role, Verdict};
//! use std::sync::Arc;
//!
//! let handler = Arc::new(|_: &portfilter_client::protocol::EventView<'_>| Verdict::Allow);
//! let session = Session::start(SessionOptions::new(Role::Decider), handler)?;
//! // … later, from any thread: session.stopper().stop();
//! let outcome = session.wait();
//! println!("{:?} after {} connections", outcome.end, outcome.connections);
//! # Ok::<(), portfilter_client::Error>(())
//! ```

mod link;
mod policy;
mod report;
mod runner;

pub use link::{Connected, Disconnected, LinkChange, Outage, SessionHandler, Waiting};
pub use policy::{Next, ReconnectPolicy, is_driver_missing, is_transient};
pub use report::print_link;

use crate::connection::{ConnectOptions, Connection};
use crate::engine::{Engine, EngineOptions, EngineStats};
use crate::error::{Error, Result};
use parking_lot::{Condvar, Mutex};
use portfilter_protocol::{Role, Stats};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a session connects to and how it runs and reconnects.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// The role of every connection (an observer, or the decider).
    pub role: Role,
    /// Port name; the handle must be overlapped (`synchronous = false`).
    pub connect: ConnectOptions,
    /// Requests and workers of each connection's engine.
    pub engine: EngineOptions,
    /// When and how often to reconnect.
    pub reconnect: ReconnectPolicy,
    /// Connect every connection of a decider session as the asynchronous decider
    /// (`CONNECT_FLAG_ASYNC`: pended creates, verdicts through `VerdictBatch`); the
    /// handler learns each new connection through [`SessionHandler::on_connection`].
    pub asynchronous: bool,
}

impl SessionOptions {
    /// Defaults for `role`: the default port, 8 requests, 2 workers, reconnect without a
    /// limit ([`ReconnectPolicy::default`]).
    #[must_use]
    pub fn new(role: Role) -> Self {
        Self {
            role,
            connect: ConnectOptions::default(),
            engine: EngineOptions::default(),
            reconnect: ReconnectPolicy::default(),
            asynchronous: false,
        }
    }

    /// Opens one connection as these options say (asynchronous decider or plain role).
    pub(crate) fn open(&self) -> Result<Connection> {
        if self.asynchronous {
            let mut context = [0u8; portfilter_protocol::CONNECT_CONTEXT_BYTES];
            portfilter_protocol::ConnectContext::async_decider()
                .encode(&mut context)
                .map_err(|error| Error::Protocol {
                    operation: "encoding the connection context",
                    error,
                })?;
            Connection::connect_with_context(self.role, &self.connect, &context)
        } else {
            Connection::connect(self.role, &self.connect)
        }
    }
}

/// Why a session ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum SessionEnd {
    /// [`SessionStopper::stop`] was called (every message already received was handled).
    Stopped,
    /// The connection ended and [`ReconnectPolicy::reconnect`] is off.
    Disconnected,
    /// The driver stayed out of reach for [`ReconnectPolicy::give_up_after`].
    GaveUp {
        /// How long the session tried.
        waited: Duration,
        /// The last attempt's failure.
        last_error: Error,
        /// Whether the session had been connected before (`false`: the driver was never
        /// reached, as when waiting at start).
        ever_connected: bool,
    },
    /// A connect failed in a way that retrying cannot fix: a version mismatch (a newer
    /// driver after a reload), access denied, a malformed answer, an invalid option.
    Failed(Error),
}

/// How a session ended, with its counters.
#[derive(Debug)]
pub struct SessionOutcome {
    /// Why it ended.
    pub end: SessionEnd,
    /// The engine counters, summed over every connection.
    pub stats: EngineStats,
    /// Connections made (1 when the driver never went away).
    pub connections: u32,
    /// The driver's counters, read on the open connection just before a
    /// [`SessionEnd::Stopped`] closed it (`None` otherwise, or if that read failed).
    pub driver_stats: Option<Stats>,
}

#[derive(Default)]
struct State {
    stopping: bool,
    /// The engine of the live connection.
    engine: Option<Engine>,
    /// Set by the live engine's adapter when it ended.
    engine_ended: bool,
    /// Counters of the engines that ended.
    totals: EngineStats,
    connections: u32,
    finished: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.state.lock().stopping
    }

    /// Sleeps `delay` unless a stop comes first; returns whether stopping.
    fn sleep_unless_stopped(&self, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        let mut state = self.state.lock();
        while !state.stopping {
            if self.changed.wait_until(&mut state, deadline).timed_out() {
                break;
            }
        }
        state.stopping
    }
}

/// A running session. Dropping it stops it and waits for its thread.
pub struct Session {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<SessionOutcome>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("connections", &self.connections())
            .finish_non_exhaustive()
    }
}

/// Stops a session from any thread (a Ctrl-C handler, a service control handler).
#[derive(Clone)]
pub struct SessionStopper {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SessionStopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionStopper")
    }
}

impl SessionStopper {
    /// Stops the session: the live engine stops as [`Stopper::stop`](crate::Stopper::stop)
    /// describes (messages already received are handled and answered first), a wait
    /// between attempts ends at once. Idempotent.
    pub fn stop(&self) {
        let stopper = {
            let mut state = self.shared.state.lock();
            state.stopping = true;
            self.shared.changed.notify_all();
            state.engine.as_ref().map(Engine::stopper)
        };
        if let Some(stopper) = stopper {
            stopper.stop();
        }
    }
}

impl Session {
    /// Starts a session. Unless [`ReconnectPolicy::wait_at_start`] is set, the first
    /// connect happens here, so a driver that is not loaded, a busy decider slot or a
    /// version mismatch is returned at once.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for zero requests or workers or a synchronous handle;
    /// otherwise the first connect's error, as [`Connection::connect`].
    pub fn start(options: SessionOptions, handler: Arc<dyn SessionHandler>) -> Result<Self> {
        if options.engine.requests == 0 || options.engine.workers == 0 {
            return Err(Error::InvalidOption(format!(
                "the engine needs at least one request and one worker (got {} and {})",
                options.engine.requests, options.engine.workers
            )));
        }
        if options.connect.synchronous {
            return Err(Error::InvalidOption(
                "a session needs an overlapped handle (synchronous = false)".to_owned(),
            ));
        }
        let first = if options.reconnect.wait_at_start {
            None
        } else {
            Some(options.open()?)
        };
        let shared = Arc::new(Shared::default());
        let runner = runner::Runner {
            shared: Arc::clone(&shared),
            options,
            handler,
        };
        let thread = std::thread::Builder::new()
            .name("portfilter-session".to_owned())
            .spawn(move || runner.run(first))
            .map_err(|error| {
                Error::InvalidOption(format!("cannot start the session thread: {error}"))
            })?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// A handle that stops the session from another thread.
    #[must_use]
    pub fn stopper(&self) -> SessionStopper {
        SessionStopper {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The engine counters so far, summed over every connection.
    #[must_use]
    pub fn stats(&self) -> EngineStats {
        let state = self.shared.state.lock();
        let mut total = state.totals;
        if let Some(engine) = &state.engine {
            total += engine.stats();
        }
        total
    }

    /// Connections made so far.
    #[must_use]
    pub fn connections(&self) -> u32 {
        self.shared.state.lock().connections
    }

    /// Whether a connection is up now.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        let state = self.shared.state.lock();
        state.engine.is_some() && !state.engine_ended
    }

    /// Waits until the session ended, at most `timeout`; returns whether it has.
    #[must_use]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.state.lock();
        while !state.finished {
            if self
                .shared
                .changed
                .wait_until(&mut state, deadline)
                .timed_out()
            {
                break;
            }
        }
        state.finished
    }

    /// Waits until the session ends and returns how.
    #[must_use]
    pub fn wait(mut self) -> SessionOutcome {
        self.join()
    }

    /// Stops the session and waits for it.
    #[must_use]
    pub fn stop(self) -> SessionOutcome {
        self.stopper().stop();
        self.wait()
    }

    fn join(&mut self) -> SessionOutcome {
        let joined = self.thread.take().map(JoinHandle::join);
        match joined {
            Some(Ok(outcome)) => outcome,
            _ => {
                tracing::error!("the session thread panicked");
                let state = self.shared.state.lock();
                SessionOutcome {
                    end: SessionEnd::Failed(Error::InvalidOption(
                        "the session thread panicked".to_owned(),
                    )),
                    stats: state.totals,
                    connections: state.connections,
                    driver_stats: None,
                }
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stopper().stop();
            let _ = self.join();
        }
    }
}
