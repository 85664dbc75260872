//! A pending `FilterGetMessage`: where its result goes (buffer, OVERLAPPED, event,
//! completion port) and how a waiter learns it is done.

use crate::event::UserEvent;
use crate::iocp::{Iocp, Packet};
use parking_lot::{Condvar, Mutex};
use portfilter_bindings::NTSTATUS;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use windows_sys::Win32::System::IO::OVERLAPPED;

static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh request id (unique in the process).
pub(crate) fn next_request_id() -> u64 {
    NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed)
}

/// Where a completed request is reported besides its own waiters.
#[derive(Debug, Default)]
pub(crate) struct Notify {
    /// The client's OVERLAPPED (0 for a synchronous call).
    pub overlapped: usize,
    /// Event from `OVERLAPPED.hEvent`.
    pub event: Option<Arc<UserEvent>>,
    /// Completion port and key the handle is bound to (unless `hEvent` has its low bit set).
    pub iocp: Option<(Arc<Iocp>, usize)>,
}

/// Called once with the request id after completion.
pub(crate) type OnDone = Box<dyn FnOnce(u64) + Send>;

/// One request.
pub(crate) struct RequestSlot {
    pub id: u64,
    pub buffer: usize,
    pub capacity: u32,
    notify: Notify,
    done: Mutex<Option<(NTSTATUS, usize)>>,
    cond: Condvar,
    /// Called once after completion (removes the slot from its handle's pending list).
    on_done: Mutex<Option<OnDone>>,
}

impl std::fmt::Debug for RequestSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestSlot")
            .field("id", &self.id)
            .field("capacity", &self.capacity)
            .field("done", &*self.done.lock())
            .finish_non_exhaustive()
    }
}

// SAFETY: `buffer` and `notify.overlapped` are addresses the client promised to keep
// valid until completion (the Win32 contract); they are only written by `finish`, once.
unsafe impl Send for RequestSlot {}
// SAFETY: as above; all mutable state is behind mutexes.
unsafe impl Sync for RequestSlot {}

impl RequestSlot {
    pub fn new(buffer: *mut u8, capacity: u32, notify: Notify) -> Arc<Self> {
        Arc::new(Self {
            id: next_request_id(),
            buffer: buffer as usize,
            capacity,
            notify,
            done: Mutex::new(None),
            cond: Condvar::new(),
            on_done: Mutex::new(None),
        })
    }

    pub fn set_on_done(&self, f: OnDone) {
        *self.on_done.lock() = Some(f);
    }

    pub fn overlapped(&self) -> usize {
        self.notify.overlapped
    }

    /// Completes once; later calls are ignored. Each `(offset, bytes)` segment is copied
    /// to the client's buffer at `offset`, clipped to the buffer's capacity; bytes not
    /// covered by a segment are left as they were.
    pub fn finish(&self, status: NTSTATUS, segments: &[(usize, &[u8])], information: usize) {
        let mut done = self.done.lock();
        if done.is_some() {
            return;
        }
        let capacity = self.capacity as usize;
        for &(offset, bytes) in segments {
            if offset >= capacity {
                continue;
            }
            let n = bytes.len().min(capacity - offset);
            // SAFETY: the client handed us `buffer` with `capacity` bytes and keeps it
            // valid until this request completes (Win32 contract); `offset + n` is within
            // it; `bytes` is ours.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    (self.buffer as *mut u8).add(offset),
                    n,
                );
            }
        }
        let ov = self.notify.overlapped as *mut OVERLAPPED;
        if !ov.is_null() {
            // SAFETY: same contract for the OVERLAPPED; the client may poll it
            // (HasOverlappedIoCompleted) from another thread: published atomically.
            #[allow(clippy::cast_sign_loss)]
            unsafe {
                crate::overlapped::complete(ov, status as u32 as usize, information);
            }
        }
        *done = Some((status, information));
        self.cond.notify_all();
        drop(done);
        if let Some(f) = self.on_done.lock().take() {
            f(self.id);
        }
        if let Some(ev) = &self.notify.event {
            ev.set();
        }
        if let Some((iocp, key)) = &self.notify.iocp {
            #[allow(clippy::cast_possible_truncation)]
            iocp.post(Packet {
                bytes: information as u32,
                key: *key,
                overlapped: self.notify.overlapped,
                status,
            });
        }
    }

    /// (status, information) once completed.
    pub fn result(&self) -> Option<(NTSTATUS, usize)> {
        *self.done.lock()
    }

    /// Waits for completion; returns (status, information).
    pub fn wait(&self) -> (NTSTATUS, usize) {
        let mut done = self.done.lock();
        loop {
            if let Some(r) = *done {
                return r;
            }
            self.cond.wait(&mut done);
        }
    }
}
