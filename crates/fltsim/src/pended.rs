//! Pended pre-operations: `FLT_PREOP_PENDING` for creates, `FltCompletePendedPreOperation`,
//! the cancel-safe callback data queue (`FltCbdq*`), spin locks, and the cancellation of
//! a pended create whose thread is terminated ([`terminate_thread`]).
//!
//! * A create whose pre-create returns `FLT_PREOP_PENDING` blocks its (simulated)
//!   creating thread until the driver calls `FltCompletePendedPreOperation`; completion
//!   may come before the pre-create even returned (another thread took the entry from
//!   the queue), as on Windows.
//! * Cancellation follows `IoCsq`: the queue's acquire routine runs at `DISPATCH_LEVEL`
//!   (the harsh reading: the I/O manager's cancel routine runs there), the entry is
//!   removed with the remove routine, the lock released, and the complete-cancelled
//!   routine called — also at `DISPATCH_LEVEL`. An entry not (or no longer) in a queue is
//!   not cancellable: the thread keeps waiting, as an IRP without a cancel routine does.
//! * Verifier rules: completed twice (or never pended), completed after unload, never
//!   completed by `FltUnregisterFilter`, a deny (`FLT_PREOP_COMPLETE`) with a status that is
//!   not an error, an invalid completion status, IRQL above `DISPATCH_LEVEL`.

use crate::image::win64::driver_call;
use crate::kernel::irql::{self, DISPATCH_LEVEL};
use crate::verifier::{self, rule};
use parking_lot::Mutex;
use portfilter_bindings::{
    FLT_CALLBACK_DATA, FLT_CALLBACK_DATA_QUEUE, FLT_PREOP_CALLBACK_STATUS, FLT_PREOP_COMPLETE,
    FLT_PREOP_SUCCESS_NO_CALLBACK, FLT_PREOP_SUCCESS_WITH_CALLBACK, KIRQL, KSPIN_LOCK, NTSTATUS,
    PFLT_CALLBACK_DATA_QUEUE_ACQUIRE, PFLT_CALLBACK_DATA_QUEUE_COMPLETE_CANCELED_IO,
    PFLT_CALLBACK_DATA_QUEUE_INSERT_IO, PFLT_CALLBACK_DATA_QUEUE_PEEK_NEXT_IO,
    PFLT_CALLBACK_DATA_QUEUE_RELEASE, PFLT_CALLBACK_DATA_QUEUE_REMOVE_IO, PFLT_INSTANCE,
    STATUS_CANCELLED, STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
};
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// `STATUS_FLT_CBDQ_DISABLED`: the queue is disabled; nothing was inserted.
pub const STATUS_FLT_CBDQ_DISABLED: NTSTATUS = 0xC01C_0025_u32.cast_signed();
/// How long a pended create waits for its completion before the model gives up, reports
/// [`rule::PENDED_NEVER_COMPLETED`] and fails it with `STATUS_CANCELLED`.
pub const PENDED_WAIT_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The pre-create runs or the create is pended.
    Open,
    /// `FltCompletePendedPreOperation` ran with this status.
    Completed(FLT_PREOP_CALLBACK_STATUS),
}

#[derive(Debug)]
struct Op {
    tid: u64,
    path: String,
    state: State,
    /// The pre-create returned `FLT_PREOP_PENDING`.
    pended: bool,
    terminated: bool,
    /// The queue holding it (address of the FLT_CALLBACK_DATA_QUEUE), if any.
    queue: Option<usize>,
    /// The create's thread once it waits for the completion: woken alone, as the kernel
    /// signals only the waiting IRP's event (one shared condition variable would wake
    /// every pended create's thread on each completion).
    waiter: Option<std::thread::Thread>,
}

impl Op {
    fn wake(&self) {
        if let Some(thread) = &self.waiter {
            thread.unpark();
        }
    }
}

#[derive(Default)]
struct Table {
    ops: HashMap<usize, Op>,
    disabled: HashMap<usize, bool>,
}

static TABLE: Mutex<Option<Table>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut Table) -> R) -> R {
    let mut guard = TABLE.lock();
    f(guard.get_or_insert_with(Table::default))
}

pub(crate) fn reset() {
    *TABLE.lock() = None;
}

/// A create's callback data enters the pre-create (it may be pended).
pub(crate) fn begin(data: *mut FLT_CALLBACK_DATA, tid: u64, path: &str) {
    with(|t| {
        t.ops.insert(
            data as usize,
            Op {
                tid,
                path: path.to_owned(),
                state: State::Open,
                pended: false,
                terminated: false,
                queue: None,
                waiter: None,
            },
        );
    });
}

/// The pre-create returned `pre` (not PENDING): forget the op; a completion that came
/// anyway is a violation.
pub(crate) fn end_not_pended(data: *mut FLT_CALLBACK_DATA, pre: Option<i32>) {
    let op = with(|t| t.ops.remove(&(data as usize)));
    if let Some(op) = op {
        if let State::Completed(_) = op.state {
            verifier::report(
                rule::PENDED_COMPLETED_TWICE,
                format!(
                    "{}: FltCompletePendedPreOperation for a create whose pre-create returned {pre:?}, not PENDING",
                    op.path
                ),
            );
        }
        if op.queue.is_some() {
            verifier::report(
                rule::PENDED_COMPLETED_TWICE,
                format!("{}: still in a callback data queue but not pended", op.path),
            );
        }
    }
}

/// The pre-create returned `FLT_PREOP_PENDING`: block until completed. Returns the
/// completion's callback status (`None`: never completed within the limit — reported,
/// and the caller fails the create with `STATUS_CANCELLED`).
pub(crate) fn wait_completed(data: *mut FLT_CALLBACK_DATA) -> Option<FLT_PREOP_CALLBACK_STATUS> {
    let deadline = Instant::now() + PENDED_WAIT_LIMIT;
    let mut guard = TABLE.lock();
    if let Some(op) = guard
        .get_or_insert_with(Table::default)
        .ops
        .get_mut(&(data as usize))
    {
        op.pended = true;
        op.waiter = Some(std::thread::current());
    }
    loop {
        let table = guard.get_or_insert_with(Table::default);
        match table.ops.get(&(data as usize)).map(|o| o.state) {
            Some(State::Completed(status)) => {
                table.ops.remove(&(data as usize));
                return Some(status);
            }
            Some(State::Open) => {}
            None => return None,
        }
        // Woken by the completion's unpark (a token: an unpark between the look above
        // and this park is not lost); spurious returns look again.
        let now = Instant::now();
        if now < deadline {
            drop(guard);
            std::thread::park_timeout(deadline - now);
            guard = TABLE.lock();
        } else {
            let table = guard.get_or_insert_with(Table::default);
            if let Some(op) = table.ops.remove(&(data as usize)) {
                if let State::Completed(status) = op.state {
                    return Some(status);
                }
                verifier::report(
                    rule::PENDED_NEVER_COMPLETED,
                    format!(
                        "{}: pended create not completed within {PENDED_WAIT_LIMIT:?}",
                        op.path
                    ),
                );
            }
            return None;
        }
    }
}

/// Pended creates still open (for `FltUnregisterFilter`): reported, then completed with
/// `STATUS_CANCELLED` by the model so that their threads return.
pub(crate) fn check_at_unregister() {
    let mut guard = TABLE.lock();
    let table = guard.get_or_insert_with(Table::default);
    for (&data, op) in &mut table.ops {
        // Creates still inside their pre-create are not pended (yet): unregistering waits
        // for those callbacks as for any other.
        if op.state == State::Open && (op.pended || op.queue.is_some()) {
            verifier::report(
                rule::PENDED_NOT_COMPLETED_AT_UNLOAD,
                format!(
                    "{}: pended create still open at FltUnregisterFilter",
                    op.path
                ),
            );
            // SAFETY: the create's callback data stays alive while its thread waits.
            unsafe { set_status(data as *mut FLT_CALLBACK_DATA, STATUS_CANCELLED) };
            op.state = State::Completed(FLT_PREOP_COMPLETE);
            op.queue = None;
            op.wake();
        }
    }
}

/// # Safety
/// `data` is a live callback data.
unsafe fn set_status(data: *mut FLT_CALLBACK_DATA, status: NTSTATUS) {
    // SAFETY: per the contract.
    unsafe {
        (*data).IoStatus.u.Status = status;
        (*data).IoStatus.Information = 0;
    }
}

/// `FltCompletePendedPreOperation`.
///
/// # Safety
/// `callback_data` is what the pre-create was called with.
#[inline(never)]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltCompletePendedPreOperation(
    callback_data: *mut FLT_CALLBACK_DATA,
    callback_status: FLT_PREOP_CALLBACK_STATUS,
    _context: *mut c_void,
) {
    if irql::current() > DISPATCH_LEVEL {
        verifier::report(
            rule::PENDED_IRQL,
            format!("FltCompletePendedPreOperation at IRQL {}", irql::current()),
        );
    }
    let mut guard = TABLE.lock();
    let table = guard.get_or_insert_with(Table::default);
    let Some(op) = table.ops.get_mut(&(callback_data as usize)) else {
        drop(guard);
        if crate::filter::current().is_none() {
            verifier::report(
                rule::PENDED_COMPLETED_AFTER_UNLOAD,
                format!("FltCompletePendedPreOperation({callback_data:p}) after unload"),
            );
        } else {
            verifier::report(
                rule::PENDED_COMPLETED_TWICE,
                format!(
                    "FltCompletePendedPreOperation({callback_data:p}): not a pended operation (completed already?)"
                ),
            );
        }
        return;
    };
    if let State::Completed(_) = op.state {
        let path = op.path.clone();
        drop(guard);
        verifier::report(
            rule::PENDED_COMPLETED_TWICE,
            format!("{path}: completed twice"),
        );
        return;
    }
    match callback_status {
        FLT_PREOP_COMPLETE => {
            // SAFETY: a live callback data (its thread waits for this completion).
            let status = unsafe { (*callback_data).IoStatus.u.Status };
            if status.cast_unsigned() >> 30 != 3 {
                verifier::report(
                    rule::PENDED_DENY_NOT_ERROR,
                    format!(
                        "{}: completed with FLT_PREOP_COMPLETE and status {status:#010x}",
                        op.path
                    ),
                );
            }
        }
        FLT_PREOP_SUCCESS_NO_CALLBACK | FLT_PREOP_SUCCESS_WITH_CALLBACK => {}
        other => {
            verifier::report(
                rule::BAD_PREOP_STATUS,
                format!("{}: FltCompletePendedPreOperation with {other}", op.path),
            );
        }
    }
    if op.queue.is_some() {
        verifier::report(
            rule::PENDED_COMPLETED_TWICE,
            format!(
                "{}: completed while still in a callback data queue",
                op.path
            ),
        );
    }
    op.state = State::Completed(callback_status);
    op.wake();
}

// ---- callback data queues -----------------------------------------------------------

fn check_dispatch(routine: &str) {
    if irql::current() > DISPATCH_LEVEL {
        verifier::report(
            rule::PENDED_IRQL,
            format!("{routine} at IRQL {}", irql::current()),
        );
    }
}

struct Routines {
    insert: PFLT_CALLBACK_DATA_QUEUE_INSERT_IO,
    remove: PFLT_CALLBACK_DATA_QUEUE_REMOVE_IO,
    peek: PFLT_CALLBACK_DATA_QUEUE_PEEK_NEXT_IO,
    acquire: PFLT_CALLBACK_DATA_QUEUE_ACQUIRE,
    release: PFLT_CALLBACK_DATA_QUEUE_RELEASE,
    cancelled: PFLT_CALLBACK_DATA_QUEUE_COMPLETE_CANCELED_IO,
}

/// # Safety
/// `cbdq` is an initialised queue.
unsafe fn routines(cbdq: *mut FLT_CALLBACK_DATA_QUEUE) -> Option<Routines> {
    // SAFETY: per the contract.
    let q = unsafe { &*cbdq };
    Some(Routines {
        insert: q.InsertIo?,
        remove: q.RemoveIo?,
        peek: q.PeekNextIo?,
        acquire: q.Acquire?,
        release: q.Release?,
        cancelled: q.CompleteCanceledIo?,
    })
}

/// `FltCbdqInitialize`.
///
/// # Safety
/// `cbdq` is writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "system" fn FltCbdqInitialize(
    instance: PFLT_INSTANCE,
    cbdq: *mut FLT_CALLBACK_DATA_QUEUE,
    insert: PFLT_CALLBACK_DATA_QUEUE_INSERT_IO,
    remove: PFLT_CALLBACK_DATA_QUEUE_REMOVE_IO,
    peek: PFLT_CALLBACK_DATA_QUEUE_PEEK_NEXT_IO,
    acquire: PFLT_CALLBACK_DATA_QUEUE_ACQUIRE,
    release: PFLT_CALLBACK_DATA_QUEUE_RELEASE,
    cancelled: PFLT_CALLBACK_DATA_QUEUE_COMPLETE_CANCELED_IO,
) -> NTSTATUS {
    if cbdq.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: writable per the contract.
    unsafe {
        cbdq.write(FLT_CALLBACK_DATA_QUEUE {
            Instance: instance,
            InsertIo: Some(insert),
            RemoveIo: Some(remove),
            PeekNextIo: Some(peek),
            Acquire: Some(acquire),
            Release: Some(release),
            CompleteCanceledIo: Some(cancelled),
            ..FLT_CALLBACK_DATA_QUEUE::ZERO
        });
    }
    with(|t| t.disabled.insert(cbdq as usize, false));
    STATUS_SUCCESS
}

/// `FltCbdqInsertIo`.
///
/// # Safety
/// `cbdq` was initialised; `cbd` is a live callback data.
#[inline(never)]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltCbdqInsertIo(
    cbdq: *mut FLT_CALLBACK_DATA_QUEUE,
    cbd: *mut FLT_CALLBACK_DATA,
    _context: *mut c_void,
    insert_context: *mut c_void,
) -> NTSTATUS {
    check_dispatch("FltCbdqInsertIo");
    // SAFETY: per the contract.
    let Some(r) = (unsafe { routines(cbdq) }) else {
        verifier::report(
            rule::INVALID_OBJECT,
            "FltCbdqInsertIo on an uninitialised queue",
        );
        return STATUS_INVALID_PARAMETER;
    };
    let mut irql_before: KIRQL = 0;
    // SAFETY: the driver's routines on its queue.
    unsafe { driver_call(r.acquire, (cbdq, &raw mut irql_before)) };
    let disabled = with(|t| t.disabled.get(&(cbdq as usize)).copied().unwrap_or(false));
    let status = if disabled {
        STATUS_FLT_CBDQ_DISABLED
    } else {
        // SAFETY: as above.
        unsafe { driver_call(r.insert, (cbdq, cbd, insert_context)) }
    };
    let mut cancel_now = false;
    if status >= 0 && !disabled {
        with(|t| {
            if let Some(op) = t.ops.get_mut(&(cbd as usize)) {
                op.queue = Some(cbdq as usize);
                cancel_now = op.terminated;
            }
        });
    }
    // SAFETY: as above.
    unsafe { driver_call(r.release, (cbdq, irql_before)) };
    if cancel_now {
        // The IRP was cancelled already: IoCsqInsertIrp cancels it at once.
        // SAFETY: as above.
        unsafe { cancel(cbdq, cbd) };
    }
    status
}

/// `FltCbdqRemoveNextIo`.
///
/// # Safety
/// `cbdq` was initialised.
#[inline(never)]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltCbdqRemoveNextIo(
    cbdq: *mut FLT_CALLBACK_DATA_QUEUE,
    peek_context: *mut c_void,
) -> *mut FLT_CALLBACK_DATA {
    check_dispatch("FltCbdqRemoveNextIo");
    // SAFETY: per the contract.
    let Some(r) = (unsafe { routines(cbdq) }) else {
        verifier::report(
            rule::INVALID_OBJECT,
            "FltCbdqRemoveNextIo on an uninitialised queue",
        );
        return std::ptr::null_mut();
    };
    let mut irql_before: KIRQL = 0;
    // SAFETY: the driver's routines on its queue.
    unsafe { driver_call(r.acquire, (cbdq, &raw mut irql_before)) };
    // SAFETY: as above.
    let cbd = unsafe { driver_call(r.peek, (cbdq, std::ptr::null_mut(), peek_context)) };
    if !cbd.is_null() {
        // SAFETY: as above.
        unsafe { driver_call(r.remove, (cbdq, cbd)) };
        with(|t| {
            if let Some(op) = t.ops.get_mut(&(cbd as usize)) {
                op.queue = None;
            }
        });
    }
    // SAFETY: as above.
    unsafe { driver_call(r.release, (cbdq, irql_before)) };
    cbd
}

/// `FltCbdqDisable`.
///
/// # Safety
/// `cbdq` was initialised.
#[inline(never)]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltCbdqDisable(cbdq: *mut FLT_CALLBACK_DATA_QUEUE) {
    check_dispatch("FltCbdqDisable");
    // SAFETY: per the contract.
    let Some(r) = (unsafe { routines(cbdq) }) else {
        return;
    };
    let mut irql_before: KIRQL = 0;
    // SAFETY: the driver's routines on its queue.
    unsafe { driver_call(r.acquire, (cbdq, &raw mut irql_before)) };
    with(|t| t.disabled.insert(cbdq as usize, true));
    // SAFETY: as above.
    unsafe { driver_call(r.release, (cbdq, irql_before)) };
}

/// The I/O manager's cancel routine for a queued callback data, at `DISPATCH_LEVEL`.
///
/// # Safety
/// `cbdq` was initialised; `cbd` is live.
unsafe fn cancel(cbdq: *mut FLT_CALLBACK_DATA_QUEUE, cbd: *mut FLT_CALLBACK_DATA) {
    // SAFETY: per the contract.
    let Some(r) = (unsafe { routines(cbdq) }) else {
        return;
    };
    let _dispatch = irql::raise(DISPATCH_LEVEL);
    let mut irql_before: KIRQL = 0;
    // SAFETY: the driver's routines on its queue.
    unsafe { driver_call(r.acquire, (cbdq, &raw mut irql_before)) };
    let member = with(|t| {
        t.ops
            .get_mut(&(cbd as usize))
            .is_some_and(|op| op.queue.take() == Some(cbdq as usize))
    });
    if member {
        // SAFETY: as above.
        unsafe { driver_call(r.remove, (cbdq, cbd)) };
    }
    // SAFETY: as above.
    unsafe { driver_call(r.release, (cbdq, irql_before)) };
    if member {
        // SAFETY: as above.
        unsafe { driver_call(r.cancelled, (cbdq, cbd)) };
    }
}

/// Terminates the simulated thread `tid`: each of its pended creates that sits in a
/// callback data queue is cancelled through that queue (the driver's complete-cancelled
/// routine runs on the calling thread, at `DISPATCH_LEVEL`); a pended create inserted
/// later is cancelled at its insert. Returns how many were cancelled now.
pub fn terminate_thread(tid: u64) -> usize {
    let victims: Vec<(usize, usize)> = with(|t| {
        t.ops
            .iter_mut()
            .filter(|(_, op)| op.tid == tid)
            .filter_map(|(&data, op)| {
                op.terminated = true;
                op.queue.map(|q| (q, data))
            })
            .collect()
    });
    for &(queue, data) in &victims {
        // SAFETY: the queue is initialised (an op only records an initialised queue) and
        // the callback data stays alive while its thread waits.
        unsafe {
            cancel(
                queue as *mut FLT_CALLBACK_DATA_QUEUE,
                data as *mut FLT_CALLBACK_DATA,
            )
        };
    }
    victims.len()
}

/// Pended creates now waiting (for tests).
#[must_use]
pub fn pended_count() -> usize {
    with(|t| t.ops.values().filter(|o| o.queue.is_some()).count())
}

// ---- spin locks ----------------------------------------------------------------------

/// `KeAcquireSpinLockRaiseToDpc`.
///
/// # Safety
/// `lock` is a valid, initialised (zeroed) `KSPIN_LOCK`.
#[inline(never)]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn KeAcquireSpinLockRaiseToDpc(lock: *mut KSPIN_LOCK) -> KIRQL {
    let previous = irql::current();
    if previous > DISPATCH_LEVEL {
        verifier::report(
            rule::PENDED_IRQL,
            format!("KeAcquireSpinLockRaiseToDpc at IRQL {previous}"),
        );
    }
    // SAFETY: a KSPIN_LOCK is one pointer-sized, pointer-aligned word.
    let word = unsafe { AtomicUsize::from_ptr(lock) };
    let spins_before_yield = 64;
    let mut spins = 0;
    while word
        .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        spins += 1;
        if spins % spins_before_yield == 0 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
    irql::set(DISPATCH_LEVEL);
    previous
}

/// `KeReleaseSpinLock`.
///
/// # Safety
/// `lock` is held by the caller.
#[inline(never)]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn KeReleaseSpinLock(lock: *mut KSPIN_LOCK, new_irql: KIRQL) {
    // SAFETY: as in the acquire.
    let word = unsafe { AtomicUsize::from_ptr(lock) };
    if word.swap(0, Ordering::Release) == 0 {
        verifier::report(rule::SPIN_LOCK_NOT_HELD, "KeReleaseSpinLock of a free lock");
    }
    irql::set(new_irql);
}
