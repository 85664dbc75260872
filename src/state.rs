//! The driver's global state: one non-paged allocation, published through an atomic
//! pointer before any callback can run and freed only after `FltUnregisterFilter`.

use crate::config::ConfigStore;
use crate::connections::Connections;
use crate::deliver::queue::EventQueue;
use crate::deliver::worker::Worker;
use crate::pool::PoolBox;
use crate::stats::Stats;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use portfilter_bindings::{PFLT_FILTER, PFLT_PORT};

/// Everything the callbacks share.
pub(crate) struct DriverState {
    /// The filter handle from `FltRegisterFilter` (set once in `DriverEntry`).
    pub filter: AtomicPtr<core::ffi::c_void>,
    /// The server port (set once in `DriverEntry`, closed first in unload).
    pub server_port: UnsafeCell<PFLT_PORT>,
    /// Connections and their client ports.
    pub connections: Connections,
    /// The current configuration.
    pub config: ConfigStore,
    /// Counters.
    pub stats: Stats,
    /// The queued-notify queue.
    pub queue: EventQueue,
    /// The queued-notify worker thread.
    pub worker: Worker,
    /// The last event sequence number handed out (events start at 1).
    pub sequence: AtomicU64,
    /// Set when unload starts: creates are no longer reported after this.
    pub unloading: AtomicBool,
}

// SAFETY: `server_port` is written once in DriverEntry before any callback can run and
// read in unload; every other member synchronises itself (atomics, push locks, events).
unsafe impl Sync for DriverState {}
// SAFETY: the state is plain data and pointers to kernel objects.
unsafe impl Send for DriverState {}

impl DriverState {
    fn new() -> Self {
        Self {
            filter: AtomicPtr::new(core::ptr::null_mut()),
            server_port: UnsafeCell::new(core::ptr::null_mut()),
            connections: Connections::new(),
            config: ConfigStore::new(),
            stats: Stats::new(),
            queue: EventQueue::new(),
            worker: Worker::new(),
            sequence: AtomicU64::new(0),
            unloading: AtomicBool::new(false),
        }
    }

    /// Initialises the locks and events in place (the state is at its final address).
    fn init(&self) {
        self.connections.init();
        self.config.init();
        self.queue.init();
        self.worker.init();
    }

    /// The filter handle.
    pub(crate) fn filter(&self) -> PFLT_FILTER {
        self.filter.load(Ordering::Acquire)
    }
}

static STATE: AtomicPtr<DriverState> = AtomicPtr::new(core::ptr::null_mut());

/// Allocates the state, installs the default configuration and queue, and publishes it.
/// `None` if the pool is exhausted or a state is already published (a second `DriverEntry`).
pub(crate) fn create() -> Option<&'static DriverState> {
    let boxed = PoolBox::new(DriverState::new())?;
    boxed.init();
    let ready = boxed.config.install_default().is_ok()
        && boxed
            .queue
            .set_capacity(boxed.config.settings().queue_capacity as usize)
            .is_ok();
    if !ready {
        teardown(&boxed);
        return None;
    }
    let raw = boxed.into_raw();
    if STATE
        .compare_exchange(
            core::ptr::null_mut(),
            raw,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        // SAFETY: `raw` came from into_raw just above and was not published.
        if let Some(boxed) = unsafe { PoolBox::from_raw(raw) } {
            teardown(&boxed);
        }
        return None;
    }
    // SAFETY: published state lives until `destroy`, which runs only after every callback
    // that could observe it has finished (after FltUnregisterFilter).
    Some(unsafe { &*raw })
}

/// The published state, if any.
pub(crate) fn get() -> Option<&'static DriverState> {
    let raw = STATE.load(Ordering::Acquire);
    // SAFETY: see `create`: the pointer is valid until `destroy`.
    unsafe { raw.as_ref() }
}

/// Frees what the members own (queued events, configuration) and deletes the locks.
fn teardown(state: &DriverState) {
    let dropped = state.queue.destroy();
    if dropped != 0 {
        crate::log_warning!("{dropped} queued events dropped at unload");
    }
    state.config.destroy();
    state.connections.delete();
}

/// Unpublishes and frees the state.
///
/// # Safety
/// No callback or driver thread may run or start after this (call it after
/// `FltUnregisterFilter` and after the worker stopped, or on a `DriverEntry` failure path
/// before filtering started and with the port closed).
pub(crate) unsafe fn destroy() {
    let raw = STATE.swap(core::ptr::null_mut(), Ordering::AcqRel);
    // SAFETY: `raw` is the published pointer from `create` (or null).
    if let Some(boxed) = unsafe { PoolBox::from_raw(raw) } {
        teardown(&boxed);
        drop(boxed);
    }
}
