//! The driver's global state: one non-paged allocation, published through an atomic
//! pointer before any callback can run and freed only after `FltUnregisterFilter`.

use crate::MAX_CONNECTIONS;
use crate::pool::PoolBox;
use crate::sync::PushLock;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use portfilter_bindings::{PFLT_FILTER, PFLT_PORT};

/// One client connection's bookkeeping (guarded by [`DriverState::clients`]).
#[derive(Clone, Copy, Default)]
pub(crate) struct ClientSlot {
    /// The slot holds a live connection.
    pub in_use: bool,
    /// Process id of the connecting process (captured in the Connect callback).
    pub process_id: u32,
}

/// The table of connections.
pub(crate) struct ClientTable {
    /// One entry per possible connection.
    pub slots: [ClientSlot; MAX_CONNECTIONS],
}

/// Everything the callbacks share.
pub(crate) struct DriverState {
    /// The filter handle from `FltRegisterFilter` (set once in DriverEntry).
    pub filter: AtomicPtr<core::ffi::c_void>,
    /// The server port (set once in DriverEntry, closed first in unload).
    pub server_port: UnsafeCell<PFLT_PORT>,
    /// Client port per slot. The Filter Manager reads and clears these itself
    /// (`FltSendMessage` / `FltCloseClientPort` take their address), so they live outside
    /// the lock; connection bookkeeping lives in `clients`.
    pub client_ports: [UnsafeCell<PFLT_PORT>; MAX_CONNECTIONS],
    /// Connection bookkeeping.
    pub clients: PushLock<ClientTable>,
    /// Set when unload starts: no new messages are sent after this.
    pub unloading: AtomicBool,
}

// SAFETY: the UnsafeCell port slots are written only by the Connect callback (before the
// connection is visible), and read/cleared by the Filter Manager routines that take their
// address, which synchronise on the port object themselves.
unsafe impl Sync for DriverState {}
// SAFETY: the state is plain data and pointers to kernel objects.
unsafe impl Send for DriverState {}

impl DriverState {
    fn new() -> Self {
        Self {
            filter: AtomicPtr::new(core::ptr::null_mut()),
            server_port: UnsafeCell::new(core::ptr::null_mut()),
            client_ports: [const { UnsafeCell::new(core::ptr::null_mut()) }; MAX_CONNECTIONS],
            clients: PushLock::new(ClientTable {
                slots: [ClientSlot {
                    in_use: false,
                    process_id: 0,
                }; MAX_CONNECTIONS],
            }),
            unloading: AtomicBool::new(false),
        }
    }

    /// The filter handle.
    pub(crate) fn filter(&self) -> PFLT_FILTER {
        self.filter.load(Ordering::Acquire)
    }
}

static STATE: AtomicPtr<DriverState> = AtomicPtr::new(core::ptr::null_mut());

/// Allocates the state and publishes it. `None` if the pool is exhausted or a state is
/// already published (a second DriverEntry).
pub(crate) fn create() -> Option<&'static DriverState> {
    let boxed = PoolBox::new(DriverState::new())?;
    boxed.clients.init();
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
        drop(unsafe { PoolBox::from_raw(raw) });
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

/// Unpublishes and frees the state.
///
/// # Safety
/// No callback may run or start after this (call it after `FltUnregisterFilter`, or on a
/// DriverEntry failure path before filtering started and with the port closed).
pub(crate) unsafe fn destroy() {
    let raw = STATE.swap(core::ptr::null_mut(), Ordering::AcqRel);
    // SAFETY: `raw` is the published pointer from `create` (or null).
    if let Some(boxed) = unsafe { PoolBox::from_raw(raw) } {
        boxed.clients.delete();
        drop(boxed);
    }
}
