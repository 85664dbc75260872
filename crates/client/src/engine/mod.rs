//! The high-throughput receive engine: N overlapped `FilterGetMessage` requests on an
//! I/O completion port, M worker threads.
//!
//! Ownership of each request (its `OVERLAPPED` and its buffer, one heap allocation) is in
//! exactly one place at a time:
//! * while the kernel holds it, the only pointer is the one passed to `FilterGetMessage`
//!   (`Box::into_raw`); nothing else touches it;
//! * the worker that dequeues its completion takes it back (`Box::from_raw` on the
//!   `OVERLAPPED` pointer, which is the request's first field), handles the message and
//!   re-arms the same request, or frees it.
//!
//! Completions may come in any order; each carries its own request, so order does not
//! matter. Shutdown ([`Stopper::stop`]): a gate is closed so that no request is armed any
//! more, then `CancelIoEx` cancels every queued request; workers free each request as its
//! (cancelled or final) completion arrives. Messages already taken from the driver are
//! handled and answered first. When the last request is freed, every worker is woken
//! with a posted packet and exits. A disconnect (driver unloading) completes every
//! request with an error, which ends the engine the same way.

mod handler;

pub use handler::{Handler, PendingReply};

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::hresult::Hresult;
use crate::message::{MAX_MESSAGE_BYTES, Payload, decode_message};
use crate::sys::{self, AlignedBuffer, OwnedHandle};
use handler::ReplyStats;
use parking_lot::{Condvar, Mutex, RwLock};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use windows_sys::Win32::System::IO::OVERLAPPED;

/// Completion key of the port's I/O.
const KEY_PORT: usize = 1;
/// Completion key of the wake-up packets that tell a worker to exit.
const KEY_QUIT: usize = 2;
/// How long a worker waits for a completion before re-checking whether the engine ended
/// (a safety net; exits are normally signalled by packets).
const DEQUEUE_TIMEOUT_MS: u32 = 500;
/// Consecutive unexpected completion errors after which a request is retired rather than
/// re-armed (so a persistent error cannot spin a worker).
const MAX_CONSECUTIVE_ERRORS: u32 = 16;

/// How many requests and workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineOptions {
    /// Overlapped `FilterGetMessage` requests kept queued (N ≥ 1).
    pub requests: usize,
    /// Worker threads dequeuing completions (M ≥ 1).
    pub workers: usize,
}

impl Default for EngineOptions {
    /// 8 requests, 2 workers: a handful of requests keep the driver from waiting for a
    /// re-arm while a worker decides; two workers overlap deciding and replying.
    fn default() -> Self {
        Self {
            requests: 8,
            workers: 2,
        }
    }
}

/// Why the engine ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// [`Stopper::stop`] was called.
    Stopped,
    /// The connection closed (driver unloading, port closed).
    Disconnected,
}

/// Counters of an engine (a snapshot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EngineStats {
    /// Messages received (events and batches).
    pub messages: u64,
    /// Events delivered to the handler (batch members counted one by one).
    pub events: u64,
    /// Request-reply events among them.
    pub requests: u64,
    /// Batches received.
    pub batches: u64,
    /// Events the driver reported lost before batches (queue full or delivery to this client timed out).
    pub dropped: u64,
    /// Requests answered allow (delivered).
    pub allowed: u64,
    /// Requests answered deny (delivered).
    pub denied: u64,
    /// Replies that came too late (`ERROR_FLT_NO_WAITER_FOR_REPLY`).
    pub late_replies: u64,
    /// Replies that failed otherwise.
    pub failed_replies: u64,
    /// Requests dropped without an answer.
    pub unanswered: u64,
    /// Messages that did not decode.
    pub malformed: u64,
    /// Handler panics caught (only where panics unwind: see [`Handler`]).
    pub handler_panics: u64,
    /// Completion errors other than cancel / disconnect.
    pub io_errors: u64,
}

/// Counter-by-counter sum: the totals of a client that connected more than once.
impl std::ops::AddAssign for EngineStats {
    fn add_assign(&mut self, more: Self) {
        // Destructured so that a new counter cannot be left out of the sum.
        let Self {
            messages,
            events,
            requests,
            batches,
            dropped,
            allowed,
            denied,
            late_replies,
            failed_replies,
            unanswered,
            malformed,
            handler_panics,
            io_errors,
        } = more;
        self.messages += messages;
        self.events += events;
        self.requests += requests;
        self.batches += batches;
        self.dropped += dropped;
        self.allowed += allowed;
        self.denied += denied;
        self.late_replies += late_replies;
        self.failed_replies += failed_replies;
        self.unanswered += unanswered;
        self.malformed += malformed;
        self.handler_panics += handler_panics;
        self.io_errors += io_errors;
    }
}

/// One overlapped request: the `OVERLAPPED` first (its address is the request's), then
/// the buffer the kernel writes into.
#[repr(C)]
struct Request {
    overlapped: OVERLAPPED,
    buffer: AlignedBuffer,
    consecutive_errors: u32,
}

#[derive(Debug, Default)]
struct Counters {
    messages: AtomicU64,
    events: AtomicU64,
    requests: AtomicU64,
    batches: AtomicU64,
    dropped: AtomicU64,
    malformed: AtomicU64,
    handler_panics: AtomicU64,
    io_errors: AtomicU64,
}

struct Shared {
    connection: Arc<Connection>,
    iocp: OwnedHandle,
    handler: Arc<dyn Handler>,
    /// `true` once stopping: no request is armed after that. Arming holds it shared.
    stopping: RwLock<bool>,
    /// Requests allocated and not yet freed (queued in the kernel or being handled).
    live_requests: AtomicUsize,
    workers: usize,
    end: Mutex<Option<EndReason>>,
    ended: Condvar,
    counters: Counters,
    replies: Arc<ReplyStats>,
}

/// A running engine. Dropping it stops it and waits for its workers.
pub struct Engine {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

/// Stops an engine from any thread (e.g. a Ctrl-C handler). Cloneable.
#[derive(Clone)]
pub struct Stopper {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Stopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stopper")
    }
}

impl Engine {
    /// Binds the connection's handle to a new completion port, starts the workers and
    /// queues the requests.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for zero requests or workers or a synchronous handle;
    /// [`Error::Call`] when the completion port cannot be created (e.g. the handle is
    /// already bound to one: one engine per connection).
    pub fn start(
        connection: Arc<Connection>,
        handler: Arc<dyn Handler>,
        options: EngineOptions,
    ) -> Result<Self> {
        if options.requests == 0 || options.workers == 0 {
            return Err(Error::InvalidOption(format!(
                "the engine needs at least one request and one worker (got {} and {})",
                options.requests, options.workers
            )));
        }
        if connection.is_synchronous() {
            return Err(Error::InvalidOption(
                "the engine needs an overlapped handle (connect with synchronous = false)"
                    .to_owned(),
            ));
        }
        let threads = u32::try_from(options.workers).unwrap_or(u32::MAX);
        let iocp =
            sys::create_iocp_for(connection.port(), KEY_PORT, threads).map_err(|hresult| {
                Error::Call {
                    operation: "CreateIoCompletionPort",
                    hresult,
                }
            })?;
        let shared = Arc::new(Shared {
            connection,
            iocp,
            handler,
            stopping: RwLock::new(false),
            live_requests: AtomicUsize::new(options.requests),
            workers: options.workers,
            end: Mutex::new(None),
            ended: Condvar::new(),
            counters: Counters::default(),
            replies: Arc::new(ReplyStats::default()),
        });
        let mut workers = Vec::with_capacity(options.workers);
        for index in 0..options.workers {
            let worker_shared = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("portfilter-worker-{index}"))
                .spawn(move || worker_loop(&worker_shared));
            match spawned {
                Ok(handle) => workers.push(handle),
                Err(error) => {
                    // Requests are not armed yet: retire them all, which wakes the
                    // workers already started so they exit, then report.
                    for _ in 0..options.requests {
                        release_request(&shared);
                    }
                    for handle in workers {
                        let _ = handle.join();
                    }
                    return Err(Error::InvalidOption(format!(
                        "cannot start a worker thread: {error}"
                    )));
                }
            }
        }
        for _ in 0..options.requests {
            let request = Box::new(Request {
                // SAFETY: OVERLAPPED is plain data; all-zero is its documented initial state.
                overlapped: unsafe { std::mem::zeroed() },
                buffer: AlignedBuffer::new(MAX_MESSAGE_BYTES),
                consecutive_errors: 0,
            });
            arm(&shared, request);
        }
        Ok(Self { shared, workers })
    }

    /// A handle that stops the engine from another thread.
    #[must_use]
    pub fn stopper(&self) -> Stopper {
        Stopper {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The counters now.
    #[must_use]
    pub fn stats(&self) -> EngineStats {
        self.shared.stats()
    }

    /// The connection the engine serves.
    #[must_use]
    pub fn connection(&self) -> &Arc<Connection> {
        &self.shared.connection
    }

    /// Waits until the engine ends (stopped or disconnected), at most `timeout`; `None`
    /// when it is still running.
    #[must_use]
    pub fn wait_timeout(&self, timeout: Duration) -> Option<EndReason> {
        let mut end = self.shared.end.lock();
        if end.is_none() {
            let _ = self.shared.ended.wait_for(&mut end, timeout);
        }
        *end
    }

    /// Waits until the engine ends (stop or disconnect), joins the workers and returns
    /// why it ended and the final counters.
    pub fn wait(mut self) -> (EndReason, EngineStats) {
        let reason = {
            let mut end = self.shared.end.lock();
            while end.is_none() {
                self.shared.ended.wait(&mut end);
            }
            end.unwrap_or(EndReason::Stopped)
        };
        self.join_workers();
        (reason, self.shared.stats())
    }

    /// Stops the engine and waits for it (see [`Stopper::stop`]).
    pub fn stop(self) -> (EndReason, EngineStats) {
        self.stopper().stop();
        self.wait()
    }

    fn join_workers(&mut self) {
        for handle in self.workers.drain(..) {
            if handle.join().is_err() {
                tracing::error!("an engine worker panicked");
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if !self.workers.is_empty() {
            self.stopper().stop();
            self.join_workers();
        }
    }
}

impl Stopper {
    /// Stops the engine: no request is re-armed, queued requests are cancelled. Messages
    /// already received are still handled and answered; requests the driver has not
    /// delivered yet stay with the driver, which applies its default verdict when the
    /// connection closes or its timeout passes. Idempotent.
    pub fn stop(&self) {
        {
            let mut stopping = self.shared.stopping.write();
            if *stopping {
                return;
            }
            *stopping = true;
        }
        // Every request armed before the gate closed is queued now: cancel them all.
        match sys::cancel_all(self.shared.connection.port()) {
            Ok(_) => {}
            Err(hresult) if crate::connection::is_end_of_stream(hresult) => {}
            Err(hresult) => tracing::warn!(%hresult, "CancelIoEx failed"),
        }
    }

    /// Whether the engine has ended.
    #[must_use]
    pub fn is_ended(&self) -> bool {
        self.shared.end.lock().is_some()
    }
}

impl Shared {
    fn stats(&self) -> EngineStats {
        let c = &self.counters;
        let r = &self.replies;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        EngineStats {
            messages: load(&c.messages),
            events: load(&c.events),
            requests: load(&c.requests),
            batches: load(&c.batches),
            dropped: load(&c.dropped),
            allowed: load(&r.allowed),
            denied: load(&r.denied),
            late_replies: load(&r.late),
            failed_replies: load(&r.failed),
            unanswered: load(&r.unanswered),
            malformed: load(&c.malformed),
            handler_panics: load(&c.handler_panics),
            io_errors: load(&c.io_errors),
        }
    }
}

/// Queues `request` with `FilterGetMessage`, or frees it when stopping or when the call
/// fails at once.
fn arm(shared: &Shared, mut request: Box<Request>) {
    let gate = shared.stopping.read();
    if *gate {
        drop(gate);
        drop(request);
        release_request(shared);
        return;
    }
    // SAFETY: OVERLAPPED is plain data; a request is re-armed only after its previous
    // completion was dequeued, so the kernel no longer uses it.
    request.overlapped = unsafe { std::mem::zeroed() };
    let size = request.buffer.len();
    let raw = Box::into_raw(request);
    // SAFETY: `raw` is a live, leaked allocation: its buffer (8-aligned, `size` bytes) and
    // OVERLAPPED stay valid and unmoved until the completion hands the pointer back to a
    // worker. The projections do not create references to the whole request.
    let hresult = unsafe {
        sys::get_message_overlapped(
            shared.connection.port(),
            (*raw).buffer.as_mut_ptr(),
            size,
            &raw mut (*raw).overlapped,
        )
    };
    drop(gate);
    if hresult.is_ok() || hresult == Hresult::IO_PENDING {
        // The kernel owns the request until its completion is dequeued.
        return;
    }
    // SAFETY: the call failed at once, so no completion will be queued: the pointer is
    // ours again, and it came from Box::into_raw above.
    let request = unsafe { Box::from_raw(raw) };
    if !crate::connection::is_end_of_stream(hresult) {
        shared.counters.io_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%hresult, "FilterGetMessage failed");
    }
    drop(request);
    release_request(shared);
}

/// A request was freed. The last one ends the engine and wakes every worker.
fn release_request(shared: &Shared) {
    if shared.live_requests.fetch_sub(1, Ordering::AcqRel) != 1 {
        return;
    }
    let reason = if *shared.stopping.read() {
        EndReason::Stopped
    } else {
        EndReason::Disconnected
    };
    if catch_unwind(AssertUnwindSafe(|| shared.handler.on_end(reason))).is_err() {
        shared
            .counters
            .handler_panics
            .fetch_add(1, Ordering::Relaxed);
    }
    {
        let mut end = shared.end.lock();
        end.get_or_insert(reason);
        shared.ended.notify_all();
    }
    for _ in 0..shared.workers {
        if let Err(hresult) = sys::post(&shared.iocp, KEY_QUIT) {
            tracing::error!(%hresult, "PostQueuedCompletionStatus failed");
        }
    }
}

fn worker_loop(shared: &Shared) {
    loop {
        let completion = match sys::dequeue(&shared.iocp, DEQUEUE_TIMEOUT_MS) {
            Ok(Some(completion)) => completion,
            Ok(None) => {
                if shared.end.lock().is_some() && shared.live_requests.load(Ordering::Acquire) == 0
                {
                    return;
                }
                continue;
            }
            Err(hresult) => {
                tracing::error!(%hresult, "GetQueuedCompletionStatus failed; worker exits");
                return;
            }
        };
        if completion.overlapped.is_null() {
            if completion.key == KEY_QUIT {
                return;
            }
            continue;
        }
        // SAFETY: every OVERLAPPED completed on this port with a non-null pointer is the
        // first field of a `Request` leaked by `arm` (#[repr(C)], so the addresses are
        // equal), and each completion is dequeued exactly once: this worker is now its
        // only owner.
        let mut request = unsafe { Box::from_raw(completion.overlapped.cast::<Request>()) };
        match completion.error {
            None => {
                request.consecutive_errors = 0;
                let len = usize::try_from(completion.bytes).unwrap_or(usize::MAX);
                let bytes = request.buffer.bytes();
                handle_message(shared, bytes.get(..len).unwrap_or(bytes));
                arm(shared, request);
            }
            Some(hresult) if crate::connection::is_end_of_stream(hresult) => {
                drop(request);
                release_request(shared);
            }
            Some(hresult) => {
                shared.counters.io_errors.fetch_add(1, Ordering::Relaxed);
                request.consecutive_errors += 1;
                tracing::warn!(%hresult, "FilterGetMessage completed with an error");
                if request.consecutive_errors >= MAX_CONSECUTIVE_ERRORS {
                    drop(request);
                    release_request(shared);
                } else {
                    arm(shared, request);
                }
            }
        }
    }
}

fn handle_message(shared: &Shared, bytes: &[u8]) {
    let counters = &shared.counters;
    counters.messages.fetch_add(1, Ordering::Relaxed);
    let received = match decode_message(bytes) {
        Ok(received) => received,
        Err(error) => {
            counters.malformed.fetch_add(1, Ordering::Relaxed);
            // A panic here must not unwind out of the worker: it would take the request
            // with it and the engine could never end.
            if catch_unwind(AssertUnwindSafe(|| shared.handler.on_malformed(&error))).is_err() {
                counters.handler_panics.fetch_add(1, Ordering::Relaxed);
                tracing::error!("the malformed-message handler panicked");
            }
            return;
        }
    };
    let handler = &*shared.handler;
    let outcome = catch_unwind(AssertUnwindSafe(|| match received.payload {
        Payload::Event(event) => {
            counters.events.fetch_add(1, Ordering::Relaxed);
            match received.reply_to() {
                Some(to) => {
                    counters.requests.fetch_add(1, Ordering::Relaxed);
                    let token = PendingReply::new(
                        Arc::clone(&shared.connection),
                        to,
                        Arc::clone(&shared.replies),
                    );
                    handler.on_request(&event, token);
                }
                None => {
                    let _ = handler.on_event(&event);
                }
            }
        }
        Payload::Batch(batch) => {
            counters.batches.fetch_add(1, Ordering::Relaxed);
            if batch.dropped_before() > 0 {
                counters
                    .dropped
                    .fetch_add(u64::from(batch.dropped_before()), Ordering::Relaxed);
                handler.on_drops(batch.dropped_before());
            }
            for event in batch.events() {
                counters.events.fetch_add(1, Ordering::Relaxed);
                let _ = handler.on_event(&event);
            }
        }
    }));
    if outcome.is_err() {
        counters.handler_panics.fetch_add(1, Ordering::Relaxed);
        tracing::error!("the event handler panicked; the message was skipped");
    }
}

#[cfg(test)]
mod tests {
    use super::EngineStats;

    #[test]
    fn stats_add_counter_by_counter() {
        let one = EngineStats {
            messages: 1,
            events: 2,
            requests: 3,
            batches: 4,
            dropped: 5,
            allowed: 6,
            denied: 7,
            late_replies: 8,
            failed_replies: 9,
            unanswered: 10,
            malformed: 11,
            handler_panics: 12,
            io_errors: 13,
        };
        let mut total = one;
        total += one;
        total += EngineStats::default();
        assert_eq!(
            total,
            EngineStats {
                messages: 2,
                events: 4,
                requests: 6,
                batches: 8,
                dropped: 10,
                allowed: 12,
                denied: 14,
                late_replies: 16,
                failed_replies: 18,
                unanswered: 20,
                malformed: 22,
                handler_panics: 24,
                io_errors: 26,
            }
        );
    }
}
