//! The asynchronous decider (protocol version 3): the driver pends each create it must
//! decide and hands the requests over in batches without waiting; the decider answers
//! later — many verdicts per `FilterSendMessage`.
//!
//! * [`AsyncDecider::connect`] connects a decider with `CONNECT_FLAG_ASYNC`.
//! * [`AsyncDecider::requests`]: the stream of pending requests (a blocking iterator over
//!   `FilterGetMessage`; each message is a batch of requests).
//! * [`AsyncDecider::verdicts`]: a [`VerdictSink`] that batches verdicts by count and by
//!   time and sends each batch as one `VerdictBatch` command; the driver's answers are
//!   summed in [`VerdictTotals`].
//!
//! The sink is `Sync`: deciding threads push into it concurrently; a background flusher
//! sends what waited longer than [`Batching::max_delay`].

use crate::connection::{ConnectOptions, Connection, MessageBuffer, is_end_of_stream};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::message::Payload;
use crate::sys::{self, AlignedBuffer};
use portfilter_protocol::{
    CONNECT_CONTEXT_BYTES, ConnectContext, EVENT_FLAG_PENDED, MAX_BATCH_VERDICTS,
    MAX_VERDICT_BATCH_BYTES, Role, VERDICT_BATCH_REPLY_BYTES, VerdictBatchReply, VerdictEntry,
    encode_verdict_batch,
};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A pended create waiting for its verdict.
#[derive(Debug, Clone)]
pub struct PendingRequest {
    /// The sequence to answer.
    pub sequence: u64,
    /// The create.
    pub event: Event,
}

/// A connected asynchronous decider.
#[derive(Debug)]
pub struct AsyncDecider {
    connection: Arc<Connection>,
}

impl AsyncDecider {
    /// Connects as the asynchronous decider and performs Hello.
    ///
    /// # Errors
    /// As [`Connection::connect`].
    pub fn connect(options: &ConnectOptions) -> Result<Self> {
        let mut context = [0u8; CONNECT_CONTEXT_BYTES];
        ConnectContext::async_decider()
            .encode(&mut context)
            .map_err(|error| Error::Protocol {
                operation: "encoding the connection context",
                error,
            })?;
        let connection = Connection::connect_with_context(Role::Decider, options, &context)?;
        Ok(Self {
            connection: Arc::new(connection),
        })
    }

    /// The connection (commands, statistics).
    #[must_use]
    pub fn connection(&self) -> &Arc<Connection> {
        &self.connection
    }

    /// The stream of requests: blocks in `FilterGetMessage`; ends when the connection
    /// does (closed, driver unloading).
    #[must_use]
    pub fn requests(&self) -> Requests {
        Requests {
            connection: Arc::clone(&self.connection),
            buffer: MessageBuffer::new(),
            ready: VecDeque::new(),
            messages: 0,
            done: false,
        }
    }

    /// A verdict sink batching by `batching`.
    #[must_use]
    pub fn verdicts(&self, batching: Batching) -> VerdictSink {
        VerdictSink::new(Arc::clone(&self.connection), batching)
    }
}

/// The blocking stream of [`PendingRequest`]s.
#[derive(Debug)]
pub struct Requests {
    connection: Arc<Connection>,
    buffer: MessageBuffer,
    ready: VecDeque<PendingRequest>,
    messages: u64,
    done: bool,
}

impl Requests {
    /// Request messages received so far (each may carry many requests).
    #[must_use]
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// The next batch of requests as the driver sent it (`Ok(None)`: the stream ended).
    ///
    /// # Errors
    /// As [`Connection::receive`].
    pub fn next_batch(&mut self) -> Result<Option<Vec<PendingRequest>>> {
        if !self.ready.is_empty() {
            return Ok(Some(self.ready.drain(..).collect()));
        }
        loop {
            let Some(received) = self.connection.receive(&mut self.buffer)? else {
                self.done = true;
                return Ok(None);
            };
            self.messages += 1;
            let batch: Vec<PendingRequest> = match received.payload {
                Payload::Batch(batch) => batch
                    .events()
                    .filter(|v| v.fields.flags & EVENT_FLAG_PENDED != 0)
                    .map(|v| PendingRequest {
                        sequence: v.fields.sequence,
                        event: Event::from_view(&v),
                    })
                    .collect(),
                Payload::Event(_) => Vec::new(),
            };
            if !batch.is_empty() {
                return Ok(Some(batch));
            }
        }
    }
}

impl Iterator for Requests {
    type Item = Result<PendingRequest>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(r) = self.ready.pop_front() {
            return Some(Ok(r));
        }
        if self.done {
            return None;
        }
        match self.next_batch() {
            Ok(Some(batch)) => {
                self.ready.extend(batch);
                self.ready.pop_front().map(Ok)
            }
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// When a [`VerdictSink`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Send as soon as this many verdicts wait (1..=1024).
    pub max_verdicts: usize,
    /// Send verdicts that waited this long, however few.
    pub max_delay: Duration,
}

impl Default for Batching {
    /// 256 verdicts or 2 ms.
    fn default() -> Self {
        Self {
            max_verdicts: 256,
            max_delay: Duration::from_millis(2),
        }
    }
}

/// What the driver answered to every batch sent so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerdictTotals {
    /// `VerdictBatch` commands sent.
    pub messages: u64,
    /// Verdicts sent.
    pub verdicts: u64,
    /// Applied.
    pub applied: u64,
    /// Unknown.
    pub unknown: u64,
    /// Late.
    pub late: u64,
    /// Invalid.
    pub invalid: u64,
    /// Duplicated in a batch.
    pub duplicate: u64,
    /// Batches the driver refused as a whole, or that failed to send.
    pub failed_batches: u64,
}

impl VerdictTotals {
    fn add(&mut self, r: &VerdictBatchReply) {
        self.applied += u64::from(r.applied);
        self.unknown += u64::from(r.unknown);
        self.late += u64::from(r.late);
        self.invalid += u64::from(r.invalid);
        self.duplicate += u64::from(r.duplicate);
    }
}

#[derive(Debug, Default)]
struct SinkState {
    pending: Vec<VerdictEntry>,
    oldest: Option<Instant>,
    totals: VerdictTotals,
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    /// Where batches go; `None` until a session's first connection
    /// ([`VerdictSink::detached`]).
    connection: Mutex<Option<Arc<Connection>>>,
    batching: Batching,
    state: Mutex<SinkState>,
    wake: Condvar,
    /// Serialises sends so that batches go out in order.
    send: Mutex<()>,
}

/// Batches verdicts by count and by time (see the module documentation).
#[derive(Debug)]
pub struct VerdictSink {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
}

impl VerdictSink {
    /// A sink bound to no connection yet: batches fail with [`Error::Disconnected`]
    /// until [`rebind`](Self::rebind) gives it one (a reconnecting session calls it for
    /// each connection through [`AsyncGuard`]'s
    /// [`SessionHandler::on_connection`](crate::session::SessionHandler::on_connection)).
    #[must_use]
    pub fn detached(batching: Batching) -> Self {
        Self::with_connection(None, batching)
    }

    /// Sends later batches on `connection`. Verdicts still waiting are dropped: they
    /// answer creates of the previous connection, which the driver completed with its
    /// default verdict when that connection ended.
    pub fn rebind(&self, connection: Arc<Connection>) {
        let _order = lock(&self.shared.send);
        let dropped = take(&mut lock(&self.shared.state));
        if !dropped.is_empty() {
            tracing::debug!(
                count = dropped.len(),
                "verdicts for the previous connection dropped"
            );
        }
        *lock(&self.shared.connection) = Some(connection);
    }

    fn new(connection: Arc<Connection>, batching: Batching) -> Self {
        Self::with_connection(Some(connection), batching)
    }

    fn with_connection(connection: Option<Arc<Connection>>, batching: Batching) -> Self {
        let batching = Batching {
            max_verdicts: batching.max_verdicts.clamp(1, MAX_BATCH_VERDICTS),
            max_delay: batching.max_delay.max(Duration::from_micros(100)),
        };
        let shared = Arc::new(Shared {
            connection: Mutex::new(connection),
            batching,
            state: Mutex::new(SinkState::default()),
            wake: Condvar::new(),
            send: Mutex::new(()),
        });
        let flusher = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || flusher_main(&shared))
        };
        Self {
            shared,
            flusher: Some(flusher),
        }
    }

    /// Queues a verdict; sends the batch when it is full.
    ///
    /// # Errors
    /// [`Error::Disconnected`] or [`Error::Call`] when a batch could not be sent (its
    /// creates get the driver's default verdict at their deadline).
    pub fn push(&self, sequence: u64, verdict: crate::Verdict) -> Result<()> {
        let entry = VerdictEntry::from(verdict.to_wire(sequence));
        let full = {
            let mut state = lock(&self.shared.state);
            if state.pending.is_empty() {
                state.oldest = Some(Instant::now());
                self.shared.wake.notify_all();
            }
            state.pending.push(entry);
            (state.pending.len() >= self.shared.batching.max_verdicts).then(|| take(&mut state))
        };
        match full {
            Some(batch) => send_batch(&self.shared, &batch),
            None => Ok(()),
        }
    }

    /// Sends whatever waits now.
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn flush(&self) -> Result<()> {
        let batch = take(&mut lock(&self.shared.state));
        if batch.is_empty() {
            return Ok(());
        }
        send_batch(&self.shared, &batch)
    }

    /// The driver's answers so far.
    #[must_use]
    pub fn totals(&self) -> VerdictTotals {
        lock(&self.shared.state).totals
    }

    /// Flushes, stops the flusher and returns the totals.
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn close(mut self) -> Result<VerdictTotals> {
        let flushed = self.flush();
        self.stop();
        flushed.map(|()| self.totals())
    }

    fn stop(&mut self) {
        lock(&self.shared.state).closed = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.flusher.take() {
            let _ = t.join();
        }
    }
}

impl Drop for VerdictSink {
    fn drop(&mut self) {
        let _ = self.flush();
        self.stop();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn take(state: &mut SinkState) -> Vec<VerdictEntry> {
    state.oldest = None;
    std::mem::take(&mut state.pending)
}

/// Sends verdicts that waited `max_delay`.
fn flusher_main(shared: &Shared) {
    let mut state = lock(&shared.state);
    loop {
        if state.closed {
            return;
        }
        let due = state.oldest.map(|t| t + shared.batching.max_delay);
        match due {
            Some(at) if Instant::now() >= at => {
                let batch = take(&mut state);
                drop(state);
                let _ = send_batch(shared, &batch);
                state = lock(&shared.state);
            }
            Some(at) => {
                let wait = at.saturating_duration_since(Instant::now());
                state = shared
                    .wake
                    .wait_timeout(state, wait)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
            None => {
                state = shared
                    .wake
                    .wait_timeout(state, Duration::from_millis(100))
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
        }
    }
}

fn send_batch(shared: &Shared, batch: &[VerdictEntry]) -> Result<()> {
    let _order = lock(&shared.send);
    let connection = lock(&shared.connection).clone();
    let mut result = Ok(());
    for chunk in batch.chunks(MAX_BATCH_VERDICTS) {
        let outcome = match &connection {
            Some(connection) => send_verdicts(connection, chunk),
            None => Err(Error::Disconnected),
        };
        let mut state = lock(&shared.state);
        state.totals.messages += 1;
        state.totals.verdicts += chunk.len() as u64;
        match outcome {
            Ok(reply) => state.totals.add(&reply),
            Err(e) => {
                state.totals.failed_batches += 1;
                result = Err(e);
            }
        }
    }
    result
}

/// Sends one `VerdictBatch` (1..=1024 entries) and returns the driver's answer.
///
/// # Errors
/// [`Error::Disconnected`], [`Error::Call`] (e.g. `0x80070005` when the connection is not
/// the asynchronous decider, `0x80070018` for a malformed batch), [`Error::Protocol`].
pub fn send_verdicts(
    connection: &Connection,
    entries: &[VerdictEntry],
) -> Result<VerdictBatchReply> {
    const OP: &str = "FilterSendMessage(VerdictBatch)";
    let mut input = AlignedBuffer::new(MAX_VERDICT_BATCH_BYTES);
    let len =
        encode_verdict_batch(entries, input.bytes_mut()).map_err(|error| Error::Protocol {
            operation: OP,
            error,
        })?;
    let mut output = AlignedBuffer::new(VERDICT_BATCH_REPLY_BYTES);
    let (hresult, returned) =
        sys::send(connection.port(), &input.bytes()[..len], output.bytes_mut());
    if !hresult.is_ok() {
        return Err(if is_end_of_stream(hresult) {
            Error::Disconnected
        } else {
            Error::Call {
                operation: OP,
                hresult,
            }
        });
    }
    let n = usize::try_from(returned).unwrap_or(0).min(output.len());
    VerdictBatchReply::decode(&output.bytes()[..n]).map_err(|error| Error::Protocol {
        operation: OP,
        error,
    })
}

/// `portctl guard --mode async`: decides each pended request with a
/// [`Guard`](crate::guard::Guard) (printing it) and answers through a [`VerdictSink`].
/// Runs on the [`Engine`](crate::Engine): requests arrive as batches, whose events the
/// engine hands to [`Handler::on_event`](crate::Handler::on_event) one by one.
#[derive(Debug)]
pub struct AsyncGuard {
    guard: crate::guard::Guard,
    sink: VerdictSink,
}

impl AsyncGuard {
    /// Decides with `guard`, answers through `sink`.
    #[must_use]
    pub fn new(guard: crate::guard::Guard, sink: VerdictSink) -> Self {
        Self { guard, sink }
    }

    /// The guard (rules, output, latencies).
    #[must_use]
    pub fn guard(&self) -> &crate::guard::Guard {
        &self.guard
    }

    /// The sink (totals).
    #[must_use]
    pub fn sink(&self) -> &VerdictSink {
        &self.sink
    }
}

impl crate::Handler for AsyncGuard {
    fn on_event(&self, view: &portfilter_protocol::EventView<'_>) -> crate::Verdict {
        let event = Event::from_view(view);
        let (verdict, printed) = self.guard.decide(&event);
        self.guard.latencies().record_since(view.fields.timestamp);
        self.guard.output().event(&event, Some(&printed));
        if view.fields.flags & EVENT_FLAG_PENDED != 0
            && let Err(error) = self.sink.push(view.fields.sequence, verdict)
        {
            tracing::warn!(%error, "sending verdicts failed");
        }
        verdict
    }

    fn on_end(&self, _reason: crate::engine::EndReason) {
        // Whatever waits is answered before the engine reports its end.
        if let Err(error) = self.sink.flush() {
            tracing::warn!(%error, "sending the last verdicts failed");
        }
    }
}

/// On a reconnecting session (`SessionOptions::asynchronous`): link changes are printed
/// as `guard` prints them, and each new connection becomes the sink's.
impl crate::session::SessionHandler for AsyncGuard {
    fn on_link(&self, change: &crate::session::LinkChange) {
        crate::session::print_link(self.guard.output(), change);
    }

    fn on_connection(&self, connection: &Arc<Connection>) {
        self.sink.rebind(Arc::clone(connection));
    }
}
