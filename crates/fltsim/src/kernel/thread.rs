//! Thread identity, system threads (`PsCreateSystemThread`) and their kernel handles
//! (`ZwWaitForSingleObject`, `ZwClose`).

use super::time::Deadline;
use crate::image::win64::driver_call;
use crate::verifier::{self, rule};
use parking_lot::{Condvar, Mutex};
use portfilter_bindings::{
    ACCESS_MASK, BOOLEAN, HANDLE, KSTART_ROUTINE, LARGE_INTEGER, NTSTATUS, OBJECT_ATTRIBUTES,
    PETHREAD, STATUS_INVALID_HANDLE, STATUS_INVALID_PARAMETER, STATUS_SUCCESS, STATUS_TIMEOUT,
};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_THREAD_ID: AtomicU64 = AtomicU64::new(0x1000);

thread_local! {
    static THREAD_ID: u64 = NEXT_THREAD_ID.fetch_add(4, Ordering::Relaxed);
    static THREAD_OVERRIDE: Cell<Option<u64>> = const { Cell::new(None) };
}

/// The calling thread's simulated thread id (unique, a multiple of 4), or the
/// requestor thread id while a simulated create runs on it.
#[must_use]
pub fn current_thread_id() -> u64 {
    THREAD_OVERRIDE
        .with(Cell::get)
        .unwrap_or_else(|| THREAD_ID.with(|t| *t))
}

/// Restores the thread id override when dropped.
pub(crate) struct ThreadIdGuard(Option<u64>);

impl Drop for ThreadIdGuard {
    fn drop(&mut self) {
        THREAD_OVERRIDE.with(|c| c.set(self.0));
    }
}

/// Makes `PsGetCurrentThreadId` report `tid` until the guard drops.
pub(crate) fn override_thread_id(tid: u64) -> ThreadIdGuard {
    ThreadIdGuard(THREAD_OVERRIDE.with(|c| c.replace(Some(tid))))
}

/// `PsGetCurrentThreadId`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn PsGetCurrentThreadId() -> HANDLE {
    current_thread_id() as usize as HANDLE
}

/// `PsGetThreadId`: only the fake `ETHREAD`s of simulated creates are known.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn PsGetThreadId(thread: PETHREAD) -> HANDLE {
    match crate::create::thread_id_of(thread) {
        Some(tid) => tid as usize as HANDLE,
        None => {
            verifier::report(rule::INVALID_OBJECT, format!("PsGetThreadId({thread:p})"));
            std::ptr::null_mut()
        }
    }
}

#[derive(Default)]
struct Done {
    finished: Mutex<bool>,
    cond: Condvar,
}

struct SystemThread {
    done: Arc<Done>,
    join: Option<std::thread::JoinHandle<()>>,
}

struct Handles {
    next: usize,
    threads: BTreeMap<usize, SystemThread>,
}

/// Kernel handles have the top bit set on x64; the model uses this range.
const FIRST_KERNEL_HANDLE: usize = 0xFFFF_FFFF_8000_0004;

static HANDLES: Mutex<Handles> = Mutex::new(Handles {
    next: FIRST_KERNEL_HANDLE,
    threads: BTreeMap::new(),
});

static RUNNING: AtomicU64 = AtomicU64::new(0);

/// System threads started by the driver that have not returned yet.
#[must_use]
pub fn running_system_threads() -> u64 {
    RUNNING.load(Ordering::SeqCst)
}

/// Kernel handles the driver has not closed.
#[must_use]
pub fn open_kernel_handles() -> usize {
    HANDLES.lock().threads.len()
}

pub(crate) fn reset() {
    let mut h = HANDLES.lock();
    h.threads.clear();
    h.next = FIRST_KERNEL_HANDLE;
}

struct StartContext(usize);
// SAFETY: the start context is an opaque value the driver hands to its own thread.
unsafe impl Send for StartContext {}

/// `PsCreateSystemThread`: a real OS thread, running at PASSIVE_LEVEL in the System
/// process.
///
/// # Safety
/// `thread_handle` is writable; `start_routine` is a valid thread routine.
#[inline(never)]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn PsCreateSystemThread(
    thread_handle: *mut HANDLE,
    _desired_access: ACCESS_MASK,
    _object_attributes: *mut OBJECT_ATTRIBUTES,
    _process_handle: HANDLE,
    _client_id: *mut c_void,
    start_routine: Option<KSTART_ROUTINE>,
    start_context: *mut c_void,
) -> NTSTATUS {
    let Some(routine) = start_routine else {
        return STATUS_INVALID_PARAMETER;
    };
    if thread_handle.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    if let Some(status) = crate::faults::enter(crate::faults::Routine::PsCreateSystemThread) {
        return status;
    }
    let done = Arc::new(Done::default());
    let ctx = StartContext(start_context as usize);
    let thread_done = done.clone();
    RUNNING.fetch_add(1, Ordering::SeqCst);
    let spawned = std::thread::Builder::new()
        .name("fltsim-system-thread".into())
        .spawn(move || {
            let ctx = ctx;
            // SAFETY: the driver's thread routine with the context it chose.
            unsafe { driver_call(routine, (ctx.0 as *mut c_void,)) };
            RUNNING.fetch_sub(1, Ordering::SeqCst);
            *thread_done.finished.lock() = true;
            thread_done.cond.notify_all();
        });
    let join = match spawned {
        Ok(j) => j,
        Err(_) => {
            RUNNING.fetch_sub(1, Ordering::SeqCst);
            return portfilter_bindings::STATUS_INSUFFICIENT_RESOURCES;
        }
    };
    let mut h = HANDLES.lock();
    let handle = h.next;
    h.next += 4;
    h.threads.insert(
        handle,
        SystemThread {
            done,
            join: Some(join),
        },
    );
    // SAFETY: non-null, writable per the contract.
    unsafe { thread_handle.write(handle as HANDLE) };
    STATUS_SUCCESS
}

/// `ZwWaitForSingleObject` on a system thread handle.
///
/// # Safety
/// `timeout` is null or a readable `LARGE_INTEGER`.
#[inline(never)]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn ZwWaitForSingleObject(
    handle: HANDLE,
    _alertable: BOOLEAN,
    timeout: *mut LARGE_INTEGER,
) -> NTSTATUS {
    let done = HANDLES
        .lock()
        .threads
        .get(&(handle as usize))
        .map(|t| t.done.clone());
    let Some(done) = done else {
        verifier::report(
            rule::BAD_KERNEL_HANDLE,
            format!("ZwWaitForSingleObject({handle:p})"),
        );
        return STATUS_INVALID_HANDLE;
    };
    // SAFETY: the caller's contract.
    let deadline = unsafe { Deadline::from_nt(timeout) };
    let mut finished = done.finished.lock();
    loop {
        if *finished {
            return STATUS_SUCCESS;
        }
        match deadline {
            Deadline::Immediate => return STATUS_TIMEOUT,
            Deadline::Never => done.cond.wait(&mut finished),
            Deadline::At(at) => {
                if done.cond.wait_until(&mut finished, at).timed_out() && !*finished {
                    return STATUS_TIMEOUT;
                }
            }
        }
    }
}

/// `ZwClose` of a system thread handle (a finished thread is joined).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn ZwClose(handle: HANDLE) -> NTSTATUS {
    let Some(mut t) = HANDLES.lock().threads.remove(&(handle as usize)) else {
        verifier::report(rule::BAD_KERNEL_HANDLE, format!("ZwClose({handle:p})"));
        return STATUS_INVALID_HANDLE;
    };
    let finished = *t.done.finished.lock();
    if finished && let Some(j) = t.join.take() {
        let _ = j.join();
    }
    STATUS_SUCCESS
}
