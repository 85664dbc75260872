//! The user-mode handle table: port connections, completion ports and events, each
//! owned by a (simulated) process.

use crate::backend::Connection;
use crate::event::UserEvent;
use crate::iocp::Iocp;
use crate::request::RequestSlot;
use parking_lot::{Condvar, Mutex};
use std::collections::BTreeMap;
use std::sync::Arc;
use windows_sys::Win32::Foundation::HANDLE;

/// A connected port handle.
pub(crate) struct PortHandle {
    pub conn: Arc<dyn Connection>,
    /// Opened with `FLT_PORT_FLAG_SYNC_HANDLE`.
    pub sync: bool,
    /// Completion port binding (`CreateIoCompletionPort`).
    pub binding: Mutex<Option<(Arc<Iocp>, usize)>>,
    /// Requests not completed yet (for `CancelIoEx` and `GetOverlappedResult`).
    pub pending: Mutex<Vec<Arc<RequestSlot>>>,
    /// The file object's event: signalled by every I/O that completes on the handle. A
    /// call with a NULL OVERLAPPED on an overlapped handle waits on it (docs/fltsim.md,
    /// "Handle kinds").
    pub completions: HandleSignal,
    /// Synchronous handles: the I/O manager's file object lock, held for the whole of
    /// each I/O call (`FilterGetMessage`, `FilterReplyMessage`, `FilterSendMessage`), so
    /// that every call on the handle waits for the one in progress.
    pub io_lock: Mutex<()>,
}

impl PortHandle {
    pub(crate) fn new(conn: Arc<dyn Connection>, sync: bool) -> Self {
        Self {
            conn,
            sync,
            binding: Mutex::new(None),
            pending: Mutex::new(Vec::new()),
            completions: HandleSignal::default(),
            io_lock: Mutex::new(()),
        }
    }

    /// Holds the file object lock for one call when the handle is synchronous.
    pub(crate) fn serialize(&self) -> Option<parking_lot::MutexGuard<'_, ()>> {
        self.sync.then(|| self.io_lock.lock())
    }
}

/// A counter of the I/O completions on one handle, with a condition variable: what the
/// event of a file object does for a thread waiting on the file handle.
#[derive(Debug, Default)]
pub(crate) struct HandleSignal {
    completed: Mutex<u64>,
    cond: Condvar,
}

impl HandleSignal {
    /// The number of completions so far.
    pub fn count(&self) -> u64 {
        *self.completed.lock()
    }

    /// One more I/O completed on the handle: wakes every thread waiting on the handle.
    pub fn signal(&self) {
        *self.completed.lock() += 1;
        self.cond.notify_all();
    }

    /// Waits until `done()` holds (then `true`) or until an I/O completes on the handle
    /// after `since` without `done()` holding (then `false`). `done` is checked under the
    /// signal's lock, so a completion that makes it true is never missed.
    pub fn wait(&self, since: u64, done: impl Fn() -> bool) -> bool {
        let mut completed = self.completed.lock();
        loop {
            if done() {
                return true;
            }
            if *completed != since {
                return false;
            }
            self.cond.wait(&mut completed);
        }
    }
}

/// What a handle refers to.
#[derive(Clone)]
pub(crate) enum Object {
    Port(Arc<PortHandle>),
    Iocp(Arc<Iocp>),
    Event(Arc<UserEvent>),
}

struct Entry {
    owner: u32,
    object: Object,
}

struct Table {
    next: usize,
    entries: BTreeMap<usize, Entry>,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    next: FIRST_HANDLE,
    entries: BTreeMap::new(),
});

/// Handle values start here and step by 4, like Windows handles.
const FIRST_HANDLE: usize = 0x100;

/// Owner recorded for handles created by threads that declared no process.
pub const NO_PROCESS: u32 = 0;

pub(crate) fn insert(owner: Option<u32>, object: Object) -> HANDLE {
    let mut t = TABLE.lock();
    let h = t.next;
    t.next += 4;
    t.entries.insert(
        h,
        Entry {
            owner: owner.unwrap_or(NO_PROCESS),
            object,
        },
    );
    h as HANDLE
}

fn usable(entry: &Entry, caller: Option<u32>) -> bool {
    match caller {
        None => true,
        Some(pid) => entry.owner == pid || entry.owner == NO_PROCESS,
    }
}

pub(crate) fn get(handle: HANDLE, caller: Option<u32>) -> Option<Object> {
    let t = TABLE.lock();
    t.entries
        .get(&(handle as usize))
        .filter(|e| usable(e, caller))
        .map(|e| e.object.clone())
}

pub(crate) fn remove(handle: HANDLE, caller: Option<u32>) -> Option<Object> {
    let mut t = TABLE.lock();
    let key = handle as usize;
    if !t.entries.get(&key).is_some_and(|e| usable(e, caller)) {
        return None;
    }
    t.entries.remove(&key).map(|e| e.object)
}

/// Closes what a handle refers to, once it left the table.
pub(crate) fn close_object(object: Object) {
    match object {
        Object::Port(p) => p.conn.close(),
        Object::Iocp(i) => i.close(),
        Object::Event(_) => {}
    }
}

/// Closes every handle `owner` holds (its process exited). Returns how many.
pub fn close_owned_by(owner: u32) -> usize {
    let objects: Vec<Object> = {
        let mut t = TABLE.lock();
        let keys: Vec<usize> = t
            .entries
            .iter()
            .filter(|(_, e)| e.owner == owner)
            .map(|(k, _)| *k)
            .collect();
        keys.iter()
            .filter_map(|k| t.entries.remove(k))
            .map(|e| e.object)
            .collect()
    };
    let n = objects.len();
    objects.into_iter().for_each(close_object);
    n
}

/// Closes every handle of every process (end of a simulation). Returns how many.
pub fn close_all() -> usize {
    let objects: Vec<Object> = {
        let mut t = TABLE.lock();
        std::mem::take(&mut t.entries)
            .into_values()
            .map(|e| e.object)
            .collect()
    };
    let n = objects.len();
    objects.into_iter().for_each(close_object);
    n
}

/// Number of open handles (all processes).
#[must_use]
pub fn count() -> usize {
    TABLE.lock().entries.len()
}
