//! An async API on top of the engine, usable from tokio: a `Stream` of events, each
//! request carrying a reply future.
//!
//! The engine's worker threads decode messages and push owned [`Event`]s into a bounded
//! channel; the async side consumes them with [`EventStream::next_item`] or as a
//! [`futures_core::Stream`]. A full channel blocks the workers, which stops re-arming
//! requests: the driver then holds (request-reply, up to its timeout) or queues / drops
//! (queued notify) further events — back-pressure, never unbounded memory.

use crate::connection::{Connection, ReplyOutcome, Verdict};
use crate::engine::{
    EndReason, Engine, EngineOptions, EngineStats, Handler, PendingReply, Stopper,
};
use crate::error::Result;
use crate::event::Event;
use parking_lot::Mutex;
use portfilter_protocol::EventView;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// One item of the stream.
#[derive(Debug)]
pub enum StreamItem {
    /// A create event; answer it with [`Delivery::reply`] when it is a request.
    Event(Delivery),
    /// The driver lost this many events (queue full or delivery to this client timed out) before the next batch.
    Dropped(u32),
}

/// A received event and, for request-reply, the right to answer it.
#[derive(Debug)]
pub struct Delivery {
    /// The event.
    pub event: Event,
    reply: Option<PendingReply>,
}

impl Delivery {
    /// Whether a verdict is expected.
    #[must_use]
    pub fn is_request(&self) -> bool {
        self.reply.is_some()
    }

    /// Answers the request (a no-op returning `Delivered` for notifications). Dropping a
    /// request's `Delivery` unanswered leaves it to the driver's timeout and default.
    ///
    /// # Errors
    /// As [`Connection::reply`].
    pub async fn reply(self, verdict: Verdict) -> Result<ReplyOutcome> {
        match self.reply {
            // FilterReplyMessage does not wait for anything: calling it here is fine.
            Some(token) => token.send(verdict),
            None => Ok(ReplyOutcome::Delivered),
        }
    }
}

struct ChannelHandler {
    sender: Mutex<Option<mpsc::Sender<StreamItem>>>,
}

impl ChannelHandler {
    fn push(&self, item: StreamItem) {
        let sender = self.sender.lock().clone();
        if let Some(sender) = sender {
            // Worker threads are not runtime threads: blocking here is the back-pressure.
            if sender.blocking_send(item).is_err() {
                tracing::debug!("event stream dropped; event discarded");
            }
        }
    }
}

impl Handler for ChannelHandler {
    fn on_event(&self, event: &EventView<'_>) -> Verdict {
        self.push(StreamItem::Event(Delivery {
            event: Event::from_view(event),
            reply: None,
        }));
        Verdict::Allow
    }

    fn on_request(&self, event: &EventView<'_>, reply: PendingReply) {
        self.push(StreamItem::Event(Delivery {
            event: Event::from_view(event),
            reply: Some(reply),
        }));
    }

    fn on_drops(&self, dropped: u32) {
        self.push(StreamItem::Dropped(dropped));
    }

    fn on_end(&self, _reason: EndReason) {
        // Closing the channel ends the stream once the receiver drained it.
        self.sender.lock().take();
    }
}

/// A stream of events from one connection, fed by an [`Engine`]. Ends when the engine
/// ends (stopped or disconnected). Dropping it stops the engine.
pub struct EventStream {
    receiver: mpsc::Receiver<StreamItem>,
    engine: Engine,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl EventStream {
    /// Starts an engine on `connection` feeding a channel of `capacity` items (≥ 1).
    ///
    /// # Errors
    /// As [`Engine::start`].
    pub fn start(
        connection: Arc<Connection>,
        options: EngineOptions,
        capacity: usize,
    ) -> Result<Self> {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let handler = Arc::new(ChannelHandler {
            sender: Mutex::new(Some(sender)),
        });
        let engine = Engine::start(connection, handler, options)?;
        Ok(Self { receiver, engine })
    }

    /// The next item, or `None` when the stream ended.
    pub async fn next_item(&mut self) -> Option<StreamItem> {
        self.receiver.recv().await
    }

    /// Stops the underlying engine (the stream then ends).
    #[must_use]
    pub fn stopper(&self) -> Stopper {
        self.engine.stopper()
    }

    /// The engine's counters.
    #[must_use]
    pub fn stats(&self) -> EngineStats {
        self.engine.stats()
    }
}

impl futures_core::Stream for EventStream {
    type Item = StreamItem;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamItem>> {
        self.receiver.poll_recv(cx)
    }
}
