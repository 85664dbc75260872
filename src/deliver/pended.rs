//! Pended creates for the asynchronous decider: a cancel-safe callback data queue
//! (`FltCbdq*`, as Microsoft's `cancelSafe` minifilter sample builds one) holding each
//! pended create with its sequence, deadline and decider connection.
//!
//! * **One completer.** A pended create is completed only by whoever removes it from the
//!   queue: a verdict (`VerdictBatch`), the deadline ([`expire`]), the decider's
//!   disconnect, unload, or the system's cancellation (the queue's complete-cancelled
//!   routine). Removal happens under the queue's spin lock, so a verdict racing with the
//!   deadline or a cancellation completes the create exactly once; the loser finds nothing.
//! * **IRQL.** The queue is protected by a spin lock: the I/O manager's cancel path calls
//!   the acquire and complete-cancelled routines at up to `DISPATCH_LEVEL`. Those routines
//!   touch only the queue's own storage (no allocation, no push lock), atomics and
//!   `FltCompletePendedPreOperation` (IRQL <= `DISPATCH_LEVEL`). Everything else here runs
//!   at `PASSIVE_LEVEL` (pre-create, `MessageNotify`, the asynchronous worker, unload).
//! * **Late verdicts.** Every removal records the sequence in a ring of the most recent
//!   [`RECENT`] completions, so that a verdict arriving after its create completed is
//!   reported as late rather than unknown.
//! * **Instance.** `FltCbdqInitialize` takes an instance; the queue is initialised on the
//!   first pended create with that create's instance (documented limitation: one queue
//!   for the whole filter, not one per instance as in the sample).

use crate::config::Settings;
use crate::deliver::pended_set::{Entry, Set};
use crate::deliver::reply::Outcome;
use crate::pool::PoolArray;
use crate::state::{self, DriverState};
use crate::stats::Counter;
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicU8, Ordering};
use portfilter_bindings::{
    FLT_CALLBACK_DATA, FLT_CALLBACK_DATA_QUEUE, FLT_PREOP_COMPLETE, FLT_PREOP_SUCCESS_NO_CALLBACK,
    FltCbdqDisable, FltCbdqInitialize, FltCbdqInsertIo, FltCbdqRemoveNextIo,
    FltCompletePendedPreOperation, IO_STATUS_BLOCK, IO_STATUS_BLOCK_0, KIRQL, KSPIN_LOCK,
    KeAcquireSpinLockRaiseToDpc, KeReleaseSpinLock, NTSTATUS, PFLT_INSTANCE, STATUS_CANCELLED,
    STATUS_INSUFFICIENT_RESOURCES, STATUS_SUCCESS,
};

/// Most creates pended at once; more get the default verdict at once (counted).
pub(crate) const MAX_PENDED: usize = 4096;
/// Completed sequences remembered for "late" answers.
pub(crate) const RECENT: usize = 1024;

/// Slots of the index by sequence ([`pended_set`]): a power of two larger than
/// [`MAX_PENDED`], twice as many so that probe runs stay short.
const INDEX_SLOTS: usize = 2 * MAX_PENDED;

/// What a removal looks for (the peek context).
#[derive(Clone, Copy)]
pub(crate) enum Peek {
    /// The create with this sequence pended for this decider connection.
    Sequence {
        /// Its sequence.
        sequence: u64,
        /// The decider connection.
        connection_id: u32,
    },
    /// The create with this sequence, for any decider connection.
    AnySequence(u64),
    /// Any create whose deadline is at or before `now`.
    Expired {
        /// System time now.
        now: i64,
    },
    /// Any create pended for this decider connection.
    Connection(u32),
    /// Any create.
    Any,
}

impl Peek {
    fn matches(self, e: &Entry) -> bool {
        match self {
            Self::Sequence {
                sequence,
                connection_id,
            } => e.sequence == sequence && e.connection_id == connection_id,
            Self::AnySequence(sequence) => e.sequence == sequence,
            Self::Expired { now } => e.deadline <= now,
            Self::Connection(id) => e.connection_id == id,
            Self::Any => true,
        }
    }
}

struct Inner {
    entries: Option<PoolArray<Entry>>,
    len: usize,
    /// The index by sequence over `entries` ([`pended_set`]).
    index: Option<PoolArray<u16>>,
    /// Position of the entry the peek routine returned last: `FltCbdqRemoveNextIo` calls
    /// the remove routine with that callback data under the same hold of the lock, so
    /// the remove routine finds it without a scan (checked; a cancellation scans).
    peeked: usize,
    /// In pool, not inline: the state is built on the stack before it moves to pool, and
    /// a frame over 4 KiB asks for `__chkstk` (DESIGN.md).
    recent: Option<PoolArray<u64>>,
    recent_next: usize,
}

impl Inner {
    /// The pended creates' storage, or `None` without pool.
    fn set(&mut self) -> Option<Set<'_>> {
        Set::new(
            self.entries.as_deref_mut()?,
            &mut self.len,
            self.index.as_deref_mut()?,
        )
    }

    /// The pended creates (read-only).
    fn pended(&self) -> &[Entry] {
        self.entries
            .as_deref()
            .and_then(|e| e.get(..self.len))
            .unwrap_or(&[])
    }
}

const NOT_READY: u8 = 0;
const INITIALIZING: u8 = 1;
const READY: u8 = 2;

/// The queue. `repr(C)` with the `FLT_CALLBACK_DATA_QUEUE` first: the queue routines get
/// the queue's address and find the rest from it.
#[repr(C)]
pub(crate) struct PendedQueue {
    cbdq: UnsafeCell<FLT_CALLBACK_DATA_QUEUE>,
    lock: UnsafeCell<KSPIN_LOCK>,
    inner: UnsafeCell<Inner>,
    ready: AtomicU8,
}

// SAFETY: `inner` is touched only under the spin lock; the queue header is written once by
// FltCbdqInitialize (guarded by `ready`) and then only by the Filter Manager.
unsafe impl Sync for PendedQueue {}
// SAFETY: plain data and pointers to kernel objects.
unsafe impl Send for PendedQueue {}

impl PendedQueue {
    /// An empty queue without storage; [`PendedQueue::init`] allocates it.
    pub(crate) const fn new() -> Self {
        Self {
            cbdq: UnsafeCell::new(FLT_CALLBACK_DATA_QUEUE::ZERO),
            lock: UnsafeCell::new(0),
            inner: UnsafeCell::new(Inner {
                entries: None,
                len: 0,
                index: None,
                peeked: 0,
                recent: None,
                recent_next: 0,
            }),
            ready: AtomicU8::new(NOT_READY),
        }
    }

    /// Allocates the entry storage (`DriverEntry`, PASSIVE_LEVEL). False without pool.
    pub(crate) fn init(&self) -> bool {
        // SAFETY: an Entry of zeros is a null pointer and zero numbers: a valid value.
        let entries = unsafe { PoolArray::<Entry>::new_zeroed(MAX_PENDED) };
        // SAFETY: zeros are valid u64s.
        let recent = unsafe { PoolArray::<u64>::new_zeroed(RECENT) };
        // SAFETY: zeros are valid u16s (empty slots).
        let index = unsafe { PoolArray::<u16>::new_zeroed(INDEX_SLOTS) };
        let ok = entries.is_some() && recent.is_some() && index.is_some();
        // SAFETY: not yet shared: no callback can run before the state is published.
        let inner = unsafe { &mut *self.inner.get() };
        inner.entries = entries;
        inner.recent = recent;
        inner.index = index;
        ok
    }

    /// Frees the storage. Call when nothing can use the queue (after unregistering).
    pub(crate) fn destroy(&self) {
        // SAFETY: as the caller guarantees, no other thread uses the queue.
        let inner = unsafe { &mut *self.inner.get() };
        inner.entries = None;
        inner.recent = None;
        inner.index = None;
    }

    fn cbdq(&self) -> *mut FLT_CALLBACK_DATA_QUEUE {
        self.cbdq.get()
    }

    /// Runs `f` on the storage under the spin lock (at DISPATCH_LEVEL).
    fn locked<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        // SAFETY: our own spin lock word, zero-initialised in place.
        let previous = unsafe { KeAcquireSpinLockRaiseToDpc(self.lock.get()) };
        // SAFETY: we hold the spin lock: exclusive access to `inner`.
        let result = f(unsafe { &mut *self.inner.get() });
        // SAFETY: acquired just above with this previous IRQL.
        unsafe { KeReleaseSpinLock(self.lock.get(), previous) };
        result
    }

    /// Initialises the callback data queue on first use with `instance` (a concurrent
    /// first use waits for it). False if `FltCbdqInitialize` failed.
    fn ensure_ready(&self, instance: PFLT_INSTANCE) -> bool {
        match self.ready.compare_exchange(
            NOT_READY,
            INITIALIZING,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {}
            Err(READY) => return true,
            Err(_) => {
                // Another create is initialising it: FltCbdqInitialize only fills the
                // queue header, so this wait is a few instructions long.
                while self.ready.load(Ordering::Acquire) == INITIALIZING {
                    core::hint::spin_loop();
                }
                return self.is_ready();
            }
        }
        // SAFETY: the queue header is ours and not in use yet (guarded by `ready`); the
        // routines match the queue's contract.
        let status = unsafe {
            FltCbdqInitialize(
                instance,
                self.cbdq(),
                cbdq_insert,
                cbdq_remove,
                cbdq_peek,
                cbdq_acquire,
                cbdq_release,
                cbdq_complete_canceled,
            )
        };
        let ok = status == STATUS_SUCCESS;
        self.ready
            .store(if ok { READY } else { NOT_READY }, Ordering::Release);
        ok
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) == READY
    }

    /// Removes the next create `peek` matches; the caller must complete it.
    pub(crate) fn remove(&self, mut peek: Peek) -> Option<*mut FLT_CALLBACK_DATA> {
        if !self.is_ready() {
            return None;
        }
        // SAFETY: the queue is initialised; `peek` lives across the call.
        let cbd = unsafe { FltCbdqRemoveNextIo(self.cbdq(), (&raw mut peek).cast::<c_void>()) };
        (!cbd.is_null()).then_some(cbd)
    }

    /// Refuses every later insert (unload).
    pub(crate) fn disable(&self) {
        if self.is_ready() {
            // SAFETY: the queue is initialised.
            unsafe { FltCbdqDisable(self.cbdq()) };
        }
    }

    /// The earliest deadline of a pended create.
    pub(crate) fn next_deadline(&self) -> Option<i64> {
        self.locked(|inner| inner.pended().iter().map(|e| e.deadline).min())
    }

    /// Whether `sequence` was completed recently.
    pub(crate) fn recently_completed(&self, sequence: u64) -> bool {
        sequence != 0
            && self.locked(|inner| inner.recent.as_ref().is_some_and(|r| r.contains(&sequence)))
    }
}

/// The queue a routine was called for.
///
/// # Safety
/// `cbdq` is the `cbdq` member of a live [`PendedQueue`].
unsafe fn queue_of<'a>(cbdq: *mut FLT_CALLBACK_DATA_QUEUE) -> &'a PendedQueue {
    // SAFETY: `cbdq` is the first member of the repr(C) PendedQueue (caller's contract).
    unsafe { &*cbdq.cast::<PendedQueue>() }
}

/// Insert routine (queue lock held): appends the entry passed as the insert context.
unsafe extern "system" fn cbdq_insert(
    cbdq: *mut FLT_CALLBACK_DATA_QUEUE,
    cbd: *mut FLT_CALLBACK_DATA,
    insert_context: *mut c_void,
) -> NTSTATUS {
    // SAFETY: the Filter Manager calls this for our queue.
    let queue = unsafe { queue_of(cbdq) };
    // SAFETY: `pend` passes a pointer to an Entry on its stack, valid during the insert.
    let Some(mut entry) = (unsafe { insert_context.cast::<Entry>().as_ref() }).copied() else {
        return STATUS_INSUFFICIENT_RESOURCES;
    };
    entry.cbd = cbd;
    // SAFETY: the queue lock is held (the Filter Manager acquired it through cbdq_acquire).
    let inner = unsafe { &mut *queue.inner.get() };
    match inner.set().and_then(|mut set| set.insert(entry)) {
        Some(_) => STATUS_SUCCESS,
        None => STATUS_INSUFFICIENT_RESOURCES,
    }
}

/// Remove routine (queue lock held): takes the entry out, remembers its sequence.
unsafe extern "system" fn cbdq_remove(
    cbdq: *mut FLT_CALLBACK_DATA_QUEUE,
    cbd: *mut FLT_CALLBACK_DATA,
) {
    // SAFETY: the Filter Manager calls this for our queue.
    let queue = unsafe { queue_of(cbdq) };
    // SAFETY: the queue lock is held.
    let inner = unsafe { &mut *queue.inner.get() };
    let hint = inner.peeked;
    let Some(mut set) = inner.set() else {
        return;
    };
    let Some(entry) = set
        .position_of(cbd, hint)
        .and_then(|position| set.remove_at(position))
    else {
        return;
    };
    let at = inner.recent_next % RECENT;
    if let Some(slot) = inner.recent.as_mut().and_then(|r| r.get_mut(at)) {
        *slot = entry.sequence;
    }
    inner.recent_next = (at + 1) % RECENT;
}

/// Peek routine (queue lock held): the first entry after `cbd` (or from the start) that
/// the [`Peek`] in `peek_context` matches.
unsafe extern "system" fn cbdq_peek(
    cbdq: *mut FLT_CALLBACK_DATA_QUEUE,
    cbd: *mut FLT_CALLBACK_DATA,
    peek_context: *mut c_void,
) -> *mut FLT_CALLBACK_DATA {
    // SAFETY: the Filter Manager calls this for our queue.
    let queue = unsafe { queue_of(cbdq) };
    // SAFETY: `PendedQueue::remove` passes a Peek that lives across the call; the
    // Filter Manager passes it through unchanged.
    let peek = unsafe { peek_context.cast::<Peek>().as_ref() }
        .copied()
        .unwrap_or(Peek::Any);
    // SAFETY: the queue lock is held.
    let inner = unsafe { &mut *queue.inner.get() };
    let hint = inner.peeked;
    let Some(set) = inner.set() else {
        return core::ptr::null_mut();
    };
    // Entries at or after `start` come after `cbd` (storage order is the queue order).
    let start = if cbd.is_null() {
        0
    } else {
        set.position_of(cbd, hint)
            .map_or(set.entries().len(), |i| i + 1)
    };
    let found = match peek {
        // A verdict: the index, not a scan.
        Peek::Sequence { sequence, .. } | Peek::AnySequence(sequence) => set
            .find(sequence)
            .filter(|&i| i >= start)
            .filter(|&i| set.entries().get(i).is_some_and(|e| peek.matches(e))),
        _ => set
            .entries()
            .get(start..)
            .and_then(|rest| rest.iter().position(|e| peek.matches(e)))
            .map(|i| i + start),
    };
    let Some(position) = found else {
        return core::ptr::null_mut();
    };
    let cbd = set
        .entries()
        .get(position)
        .map_or(core::ptr::null_mut(), |e| e.cbd);
    inner.peeked = position;
    cbd
}

/// Acquire routine: the queue's spin lock (IRQL <= DISPATCH_LEVEL).
unsafe extern "system" fn cbdq_acquire(cbdq: *mut FLT_CALLBACK_DATA_QUEUE, irql: *mut KIRQL) {
    // SAFETY: the Filter Manager calls this for our queue.
    let queue = unsafe { queue_of(cbdq) };
    // SAFETY: our own spin lock word.
    let previous = unsafe { KeAcquireSpinLockRaiseToDpc(queue.lock.get()) };
    if !irql.is_null() {
        // SAFETY: the Filter Manager's out parameter.
        unsafe { *irql = previous };
    }
}

/// Release routine.
unsafe extern "system" fn cbdq_release(cbdq: *mut FLT_CALLBACK_DATA_QUEUE, irql: KIRQL) {
    // SAFETY: the Filter Manager calls this for our queue.
    let queue = unsafe { queue_of(cbdq) };
    // SAFETY: acquired by cbdq_acquire, which returned `irql`.
    unsafe { KeReleaseSpinLock(queue.lock.get(), irql) };
}

/// Complete-cancelled routine (IRQL <= DISPATCH_LEVEL): the create's thread or process is
/// going away; the entry is already out of the queue. Completes it with
/// `STATUS_CANCELLED`. Only atomics and `FltCompletePendedPreOperation` here.
unsafe extern "system" fn cbdq_complete_canceled(
    _cbdq: *mut FLT_CALLBACK_DATA_QUEUE,
    cbd: *mut FLT_CALLBACK_DATA,
) {
    if let Some(state) = state::get() {
        state.stats.bump(Counter::AsyncCancelled);
    }
    // SAFETY: the pended create's callback data, removed from the queue by the cancel
    // path, completed once, here.
    unsafe { complete(cbd, Outcome::Deny(STATUS_CANCELLED)) };
}

/// Completes a pended create removed from the queue.
///
/// # Safety
/// `cbd` was pended, removed from the queue by the caller, and is completed only here.
pub(crate) unsafe fn complete(cbd: *mut FLT_CALLBACK_DATA, outcome: Outcome) {
    let status = match outcome {
        Outcome::Deny(status) => {
            // SAFETY: a pended create's callback data stays valid until it is completed.
            unsafe {
                (*cbd).IoStatus = IO_STATUS_BLOCK {
                    u: IO_STATUS_BLOCK_0 { Status: status },
                    Information: 0,
                };
            }
            FLT_PREOP_COMPLETE
        }
        Outcome::Allow | Outcome::Pended => FLT_PREOP_SUCCESS_NO_CALLBACK,
    };
    // SAFETY: as above; IRQL <= DISPATCH_LEVEL on every caller.
    unsafe { FltCompletePendedPreOperation(cbd, status, core::ptr::null_mut()) };
}

/// Pends `data` for the asynchronous decider `connection_id`, queues its request, and
/// returns [`Outcome::Pended`] — or decides at once (default verdict) when it cannot be
/// pended (queue full or uninitialised, request queue full, no pool).
///
/// # Safety
/// `data` is the running pre-create's callback data; after this returns `Pended` the
/// caller must return `FLT_PREOP_PENDING` and not touch `data` again.
pub(crate) unsafe fn pend(
    state: &DriverState,
    data: *mut FLT_CALLBACK_DATA,
    instance: PFLT_INSTANCE,
    request: Option<crate::event::EventMessage>,
    sequence: u64,
    settings: &Settings,
    connection_id: u32,
) -> Outcome {
    let stats = &state.stats;
    let queue = &state.pended;
    let Some(request) = request else {
        return Outcome::default_verdict(settings, stats);
    };
    if !queue.ensure_ready(instance) {
        return Outcome::default_verdict(settings, stats);
    }
    let entry = Entry {
        cbd: core::ptr::null_mut(),
        sequence,
        deadline: crate::budget::Budget::ms(settings.reply_timeout_ms).deadline(),
        connection_id,
    };
    // SAFETY: the queue is initialised; `data` is an IRP-based create; `entry` lives
    // across the call.
    let status = unsafe {
        FltCbdqInsertIo(
            queue.cbdq(),
            data,
            core::ptr::null_mut(),
            (&raw const entry).cast_mut().cast::<c_void>(),
        )
    };
    if status != STATUS_SUCCESS {
        return Outcome::default_verdict(settings, stats);
    }
    stats.bump(Counter::AsyncPended);
    // The request goes to the worker, never to FltSendMessage from here: even the
    // shortest timeout is a wait on Windows when no FilterGetMessage is pending (the
    // timer expires at the next clock tick, up to 15.6 ms at the default resolution), and
    // this thread is the creating thread (docs/driver.md, "Asynchronous decisions").
    match state.requests.push(request) {
        crate::deliver::queue::Push::Queued { .. } => {
            state.async_worker.wake();
            Outcome::Pended
        }
        crate::deliver::queue::Push::Full(request) => {
            drop(request);
            // Nobody will hear of it: take it back if still ours.
            let peek = Peek::Sequence {
                sequence,
                connection_id,
            };
            if queue.remove(peek).is_some() {
                Outcome::default_verdict(settings, stats)
            } else {
                // Completed meanwhile (cancelled): it was pended.
                Outcome::Pended
            }
        }
    }
}

/// Completes every pended create `peek` matches with the default verdict; returns how
/// many. PASSIVE_LEVEL.
pub(crate) fn complete_matching(state: &DriverState, peek: Peek) -> u64 {
    let settings = state.config.settings();
    let mut n = 0;
    while let Some(cbd) = state.pended.remove(peek) {
        state.stats.bump(Counter::AsyncDeadlineDefaults);
        let outcome = Outcome::default_verdict(&settings, &state.stats);
        // SAFETY: removed from the queue just now: ours to complete, once.
        unsafe { complete(cbd, outcome) };
        n += 1;
    }
    n
}
