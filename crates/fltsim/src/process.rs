//! Simulated processes: who is calling.
//!
//! Each OS thread acts for one simulated process at a time: the one it [`enter`]ed, or
//! by default the System process (pid 4, `"System"`, administrator) — which is also
//! the process of system threads. The process decides:
//! * `PsGetCurrentProcessId` (so the Connect callback sees the connecting client);
//! * whether a connect passes an admin-only port security descriptor;
//! * which handles a thread may use (handles belong to the process that created them;
//!   threads that entered no process may use any handle);
//! * [`exit`] closes every handle of the process, as process termination does (the
//!   disconnect sequence runs for its port connections).
//!
//! Threads do not inherit the process of the thread that spawned them: call [`enter`]
//! in each thread that should act for a client process.

use parking_lot::Mutex;
use portfilter_bindings::HANDLE;
use std::cell::Cell;
use std::collections::BTreeMap;

/// The System process id.
pub const SYSTEM_PID: u32 = 4;

/// A simulated process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Image name, e.g. `"portctl.exe"`.
    pub image: String,
    /// Whether its token is an administrator's (or SYSTEM).
    pub admin: bool,
}

static PROCESSES: Mutex<BTreeMap<u32, ProcessInfo>> = Mutex::new(BTreeMap::new());

thread_local! {
    static CURRENT: Cell<Option<u32>> = const { Cell::new(None) };
}

fn system() -> ProcessInfo {
    ProcessInfo {
        pid: SYSTEM_PID,
        image: "System".to_owned(),
        admin: true,
    }
}

pub(crate) fn reset() {
    let mut p = PROCESSES.lock();
    p.clear();
    p.insert(SYSTEM_PID, system());
}

/// Creates (or replaces) a simulated process.
///
/// # Panics
/// If `pid` is 0 or the System pid (test misuse).
pub fn spawn(pid: u32, image: &str, admin: bool) {
    assert!(
        pid != 0 && pid != SYSTEM_PID,
        "fltsim: pid {pid} is reserved"
    );
    PROCESSES.lock().insert(
        pid,
        ProcessInfo {
            pid,
            image: image.to_owned(),
            admin,
        },
    );
}

/// Information about a process, if it exists.
#[must_use]
pub fn info(pid: u32) -> Option<ProcessInfo> {
    PROCESSES.lock().get(&pid).cloned()
}

/// Restores the thread's previous process when dropped.
#[derive(Debug)]
pub struct ProcessGuard {
    previous: Option<u32>,
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

/// Makes the calling thread act for process `pid` until the guard drops.
///
/// # Panics
/// If `pid` was not [`spawn`]ed (test misuse).
#[must_use]
pub fn enter(pid: u32) -> ProcessGuard {
    assert!(
        PROCESSES.lock().contains_key(&pid),
        "fltsim: process {pid} does not exist (process::spawn it first)"
    );
    ProcessGuard {
        previous: CURRENT.with(|c| c.replace(Some(pid))),
    }
}

/// Acts for `pid` without requiring that it exists (the requestor of a simulated create).
pub(crate) fn enter_unchecked(pid: u32) -> ProcessGuard {
    ProcessGuard {
        previous: CURRENT.with(|c| c.replace(Some(pid))),
    }
}

/// Terminates process `pid`: closes all its handles (port connections disconnect), then
/// forgets it. Returns how many handles were closed.
pub fn exit(pid: u32) -> usize {
    let n = fltsim_user::handles::close_owned_by(pid);
    if pid != SYSTEM_PID {
        PROCESSES.lock().remove(&pid);
    }
    n
}

/// The process the calling thread explicitly entered, if any.
#[must_use]
pub fn declared() -> Option<u32> {
    CURRENT.with(Cell::get)
}

/// The calling thread's process id (System when none was entered).
#[must_use]
pub fn current() -> u32 {
    declared().unwrap_or(SYSTEM_PID)
}

/// Whether the calling thread's process is an administrator. Unknown pids (requestors
/// of simulated creates that were never spawned) are not.
#[must_use]
pub fn current_is_admin() -> bool {
    let pid = current();
    PROCESSES.lock().get(&pid).is_some_and(|p| p.admin)
}

/// `PsGetCurrentProcessId`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn PsGetCurrentProcessId() -> HANDLE {
    current() as usize as HANDLE
}
