//! User-mode client library for portfilter.
//!
//! On Windows the fltlib calls go to `FltLib.dll`; on Linux the same code calls the
//! symbols defined by `fltsim` (in-process, tests) or `fltlib-shim` (socket to
//! `portfilter-sim`). The library never links either: the final binary picks one.
//!
//! * [`Connection`]: connect with a role, Hello, blocking receive / reply, commands
//!   (ping, statistics, configuration).
//! * [`engine`]: the I/O completion port engine (N overlapped requests, M workers) with a
//!   [`Handler`].
//! * [`session`]: a connection + engine that reconnects across driver reloads.
//! * [`stream`] (feature `async`): a tokio-friendly `Stream` of events with reply tokens.
//! * [`rules`], [`guard`], [`watch`], [`output`]: what `portctl` is made of.
//! * [`Hresult`], [`Error`]: every failure with its code and what to do.

pub mod commands;
pub mod connection;
pub mod engine;
pub mod error;
pub mod event;
pub mod guard;
pub mod hresult;
pub mod latency;
pub mod message;
pub mod output;
pub mod rules;
pub mod session;
pub mod settings;
#[cfg(feature = "async")]
pub mod stream;
mod sys;
pub mod watch;

pub use connection::{
    ConnectOptions, Connection, DEFAULT_PORT_NAME, MessageBuffer, ReplyOutcome, Verdict,
};
pub use engine::{EndReason, Engine, EngineOptions, EngineStats, Handler, PendingReply, Stopper};
pub use error::{Error, Result};
pub use event::Event;
pub use hresult::Hresult;
pub use message::{Payload, Received, ReplyTo};
/// The protocol crate, re-exported so users need no second dependency.
pub use portfilter_protocol as protocol;
pub use portfilter_protocol::{Config, HelloReply, Role, Stats};
