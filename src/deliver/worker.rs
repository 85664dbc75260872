//! The queued-notify worker: a system thread that drains the queue into batches and sends
//! each batch to every observer, with a finite timeout per send.
//!
//! * Wake-up: the create path signals [`Worker::wake`] when it pushes into an empty queue;
//!   the worker drains until the queue is empty before it waits again, so no event waits
//!   for a signal that was already consumed.
//! * Self-exclusion: an observer never receives the events its own process created. The
//!   batch is built once; only when it holds such events is a filtered copy made for that
//!   observer.
//! * Losses: `dropped_before` of a batch = events the queue dropped since the previous
//!   batch + events of earlier batches that did not reach *this* observer (its send timed
//!   out or failed), so each observer learns exactly how many events it missed.
//! * Stalled observers: after a failed send, an observer is offered batches without
//!   waiting (the shortest non-zero timeout, never 0) until one is delivered again, so a
//!   client that stopped reading delays the others by one notify budget per stall, not
//!   one per batch. Each send waits at most its budget under every reading of the
//!   timeout (an absolute deadline, `crate::budget`).
//! * Stop (unload): [`Worker::stop`] sets the stop flag, wakes the thread and waits for it
//!   to exit. Unload closes every client port first, so a send the thread is in returns
//!   at once and it starts no other: the wait does not depend on any client.

use crate::MAX_CONNECTIONS;
use crate::budget::Budget;
use crate::connections::Role;
use crate::deliver::batch::Batch;
use crate::deliver::notify;
use crate::event::EventMessage;
use crate::state::DriverState;
use crate::stats::Counter;
use crate::sync::Event;
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::mem::size_of;
use core::sync::atomic::{AtomicBool, Ordering};
use portfilter_bindings::{
    FALSE, HANDLE, NTSTATUS, OBJ_KERNEL_HANDLE, OBJECT_ATTRIBUTES, PsCreateSystemThread,
    STATUS_INSUFFICIENT_RESOURCES, THREAD_ALL_ACCESS, ZwClose, ZwWaitForSingleObject, nt_success,
};

/// The worker thread's handle, batch buffers, wake-up event and stop flag.
pub(crate) struct Worker {
    thread: UnsafeCell<HANDLE>,
    /// The batch buffers: allocated by [`Worker::start`] on the DriverEntry thread (so a
    /// load without the pool for them fails cleanly, instead of a worker that can only
    /// drop), taken by the thread when it begins.
    buffers: UnsafeCell<Option<(Batch, Batch)>>,
    /// Signalled by the create path (queue became non-empty) and by [`Worker::stop`].
    wake: Event,
    stop: AtomicBool,
}

// SAFETY: `thread` is written in `start` before the handle is used and read in `stop`,
// both from the DriverEntry/unload thread, which the Filter Manager serialises.
// `buffers` is written in `start` before the thread is created (thread creation orders
// it before everything the thread does), taken once by the thread as it begins, and
// touched again only by `stop` after the thread has exited. The rest is an atomic and a
// kernel event.
unsafe impl Sync for Worker {}
// SAFETY: a handle and kernel objects.
unsafe impl Send for Worker {}

impl Worker {
    /// A worker that is not running; call [`Worker::init`] at its final address.
    pub(crate) const fn new() -> Self {
        Self {
            thread: UnsafeCell::new(core::ptr::null_mut()),
            buffers: UnsafeCell::new(None),
            wake: Event::new(),
            stop: AtomicBool::new(false),
        }
    }

    /// Initialises the wake-up event (auto-reset).
    pub(crate) fn init(&self) {
        self.wake.init(true);
    }

    /// Allocates the batch buffers and starts the thread.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES` without pool for the buffers; the status of
    /// `PsCreateSystemThread`. Nothing stays allocated on failure.
    pub(crate) fn start(&self, state: &'static DriverState) -> Result<(), NTSTATUS> {
        let (Some(batch), Some(filtered)) = (Batch::new(), Batch::new()) else {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        };
        // SAFETY: no thread exists yet; only this (load) path touches the cell now.
        unsafe { *self.buffers.get() = Some((batch, filtered)) };
        let mut handle: HANDLE = core::ptr::null_mut();
        // A kernel handle: unload may run in another process context than DriverEntry.
        let mut attributes = OBJECT_ATTRIBUTES {
            Length: size_of::<OBJECT_ATTRIBUTES>() as u32,
            RootDirectory: core::ptr::null_mut(),
            ObjectName: core::ptr::null(),
            Attributes: OBJ_KERNEL_HANDLE,
            SecurityDescriptor: core::ptr::null_mut(),
            SecurityQualityOfService: core::ptr::null_mut(),
        };
        // SAFETY: `handle` and `attributes` are valid for the call; `state` outlives the
        // thread (unload stops the thread before freeing the state).
        let status = unsafe {
            PsCreateSystemThread(
                &raw mut handle,
                THREAD_ALL_ACCESS,
                &raw mut attributes,
                core::ptr::null_mut(),
                core::ptr::null_mut(),
                worker_main,
                core::ptr::from_ref(state).cast_mut().cast::<c_void>(),
            )
        };
        if !nt_success(status) {
            // SAFETY: the thread was not created; the buffers are ours again (freed).
            drop(unsafe { (*self.buffers.get()).take() });
            return Err(status);
        }
        // SAFETY: only the load/unload path touches the handle cell.
        unsafe { *self.thread.get() = handle };
        Ok(())
    }

    /// Wakes the thread (the queue became non-empty).
    pub(crate) fn wake(&self) {
        self.wake.set();
    }

    /// Tells the thread to stop: it starts no further send (a send under way ends with
    /// its budget, or at once when its client port is closed) and exits.
    pub(crate) fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake.set();
    }

    /// Stops the thread and waits for it to exit. Call after the client ports are closed
    /// (then no send can keep it). Does nothing if it was never started.
    pub(crate) fn stop(&self) {
        // SAFETY: only the load/unload path touches the handle cell.
        let handle = unsafe { core::mem::replace(&mut *self.thread.get(), core::ptr::null_mut()) };
        if handle.is_null() {
            return;
        }
        self.request_stop();
        // SAFETY: `handle` is the thread handle from PsCreateSystemThread. No timeout: the
        // thread blocks only in FltSendMessage (its client ports are closed by now, see
        // entry::shut_down, and every send has a finite budget anyway) and on its wake-up
        // event (set just above).
        unsafe { ZwWaitForSingleObject(handle, FALSE, core::ptr::null_mut()) };
        // SAFETY: the handle is ours and closed once.
        unsafe { ZwClose(handle) };
        // SAFETY: the thread has exited; it took the buffers as it began (this frees
        // them should it not have).
        drop(unsafe { (*self.buffers.get()).take() });
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// Events of earlier batches that did not reach an observer, by slot.
#[derive(Clone, Copy, Default)]
struct Lost {
    connection_id: u32,
    events: u64,
}

/// The thread's entry point.
unsafe extern "system" fn worker_main(context: *mut c_void) {
    // SAFETY: `context` is the published DriverState, alive until after this thread
    // exits (unload waits for it).
    let state: &DriverState = unsafe { &*context.cast::<DriverState>() };
    let worker = &state.worker;
    // SAFETY: `start` stored the buffers before creating this thread and nothing else
    // touches the cell until this thread has exited.
    let buffers = unsafe { (*worker.buffers.get()).take() };
    let Some((mut batch, mut filtered)) = buffers else {
        // Cannot happen (`start` allocates them or fails the load); never spin on it.
        crate::log_error!("worker: no batch buffers; queued events will be dropped");
        while !worker.stopping() {
            let lost = state.queue.clear();
            state.stats.add(Counter::QueueDropped, lost);
            let _ = worker.wake.wait(None);
        }
        return;
    };
    let mut lost = [Lost::default(); MAX_CONNECTIONS];
    let mut carry: Option<EventMessage> = None;
    while !worker.stopping() {
        let _ = worker.wake.wait(None);
        // Drain until empty (or stopping).
        while !worker.stopping() {
            let max_events = state.config.settings().batch_max_events;
            batch.reset(max_events);
            fill(state, &mut batch, &mut carry);
            if batch.count() == 0 {
                break;
            }
            let dropped = state.queue.take_dropped();
            send_batch(state, &mut batch, &mut filtered, dropped, &mut lost);
        }
    }
    // Anything still carried is freed here; the queue itself is cleared by unload.
    if carry.take().is_some() {
        state.stats.bump(Counter::QueueDropped);
    }
}

/// Moves events from the queue (after the carried one) into the batch until it is full or
/// the queue is empty.
fn fill(state: &DriverState, batch: &mut Batch, carry: &mut Option<EventMessage>) {
    loop {
        let Some(event) = carry.take().or_else(|| state.queue.pop()) else {
            return;
        };
        if !batch.try_push(event.record()) {
            if batch.count() == 0 {
                // Cannot happen (a batch holds the largest event); do not spin on it.
                state.stats.bump(Counter::QueueDropped);
                continue;
            }
            *carry = Some(event);
            return;
        }
    }
}

/// Sends the batch to every observer (excluding each one's own events).
fn send_batch(
    state: &DriverState,
    batch: &mut Batch,
    filtered: &mut Batch,
    dropped: u64,
    lost: &mut [Lost; MAX_CONNECTIONS],
) {
    let filter = state.filter();
    let timeout_ms = state.config.settings().notify_timeout_ms;
    let visit = state
        .connections
        .for_each(Role::Observer, None, &state.stats, |observer| {
            let Some(slot_lost) = lost.get_mut(observer.index) else {
                return;
            };
            if slot_lost.connection_id != observer.connection_id {
                *slot_lost = Lost {
                    connection_id: observer.connection_id,
                    events: 0,
                };
            }
            let missed = dropped.saturating_add(slot_lost.events);
            let message = if batch.has_process(observer.process_id) {
                let excluded = batch.copy_excluding(observer.process_id, filtered);
                state.stats.add(Counter::SelfExcluded, u64::from(excluded));
                if filtered.count() == 0 {
                    // Only its own events: nothing to send; it learns of the losses in
                    // its next batch.
                    slot_lost.events = missed;
                    return;
                }
                filtered.set_dropped_before(missed);
                filtered.message()
            } else {
                batch.set_dropped_before(missed);
                batch.message()
            };
            let count = u64::from(read_count(message));
            if state.worker.stopping() {
                // Unload waits for this thread: start no further send (each may take the
                // whole notify timeout), so the wait stays bounded by the one under way.
                // The batch is lost for this observer, like the rest of the queue.
                state.stats.add(Counter::QueueDropped, count);
                return;
            }
            let connections = &state.connections;
            let wait_ms = connections.notify_wait_ms(observer.index, timeout_ms);
            let ok = notify::send_one(filter, observer.port, message, Budget::ms(wait_ms));
            connections.record_notify(observer.index, ok);
            if ok {
                state.stats.bump(Counter::BatchesSent);
                slot_lost.events = 0;
            } else {
                state.stats.bump(Counter::NotifyFailed);
                state.stats.add(Counter::QueueDropped, count);
                slot_lost.events = missed.saturating_add(count);
            }
        });
    if visit.visited == 0 {
        // Nobody to deliver to (every observer disconnected): the events are lost.
        state
            .stats
            .add(Counter::QueueDropped, u64::from(batch.count()));
    }
}

fn read_count(message: &[u8]) -> u32 {
    crate::event::read_u32(message, portfilter_protocol::batch::offset::COUNT)
}
