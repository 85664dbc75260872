//! Fault injection: the N-th call of a kernel routine fails with a status its
//! documentation allows, so tests can walk every failure path of the driver.
//!
//! Each routine listed in [`Routine`] counts its calls (since boot, and since the last
//! [`arm`]); `arm(routine, n, status)` makes the n-th call from now fail, once, without
//! side effects — no pool taken, no thread started, no port created, no message sent, out
//! parameters set as the routine sets them on failure. [`documented`] gives the failure
//! statuses each routine's documentation names (or, for `ExAllocatePool2`, NULL, written
//! here as `STATUS_INSUFFICIENT_RESOURCES`). A sweep counts a scenario's calls first
//! ([`calls`]), then replays it once per (routine, n, status).

use parking_lot::Mutex;
use portfilter_bindings::{
    NTSTATUS, STATUS_ACCESS_DENIED, STATUS_FLT_DELETING_OBJECT, STATUS_FLT_INVALID_NAME_REQUEST,
    STATUS_FLT_NOT_INITIALIZED, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_PARAMETER,
    STATUS_OBJECT_NAME_COLLISION, STATUS_OBJECT_NAME_NOT_FOUND, STATUS_PORT_DISCONNECTED,
    STATUS_THREAD_IS_TERMINATING,
};

/// `STATUS_OBJECT_PATH_NOT_FOUND` (a file system's answer to a name query).
const STATUS_OBJECT_PATH_NOT_FOUND: NTSTATUS = 0xC000_003A_u32.cast_signed();
/// `STATUS_FLT_NAME_CACHE_MISS`.
const STATUS_FLT_NAME_CACHE_MISS: NTSTATUS = 0xC01C_001B_u32.cast_signed();

/// The routines that can be made to fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Routine {
    /// `ExAllocatePool2` (returns NULL).
    ExAllocatePool2,
    /// `FltGetFileNameInformation`.
    FltGetFileNameInformation,
    /// `FltParseFileNameInformation`.
    FltParseFileNameInformation,
    /// `FltSendMessage`.
    FltSendMessage,
    /// `PsCreateSystemThread`.
    PsCreateSystemThread,
    /// `FltCreateCommunicationPort`.
    FltCreateCommunicationPort,
    /// `FltRegisterFilter`.
    FltRegisterFilter,
    /// `FltStartFiltering`.
    FltStartFiltering,
}

impl Routine {
    /// Every routine, in a fixed order.
    pub const ALL: [Self; 8] = [
        Self::ExAllocatePool2,
        Self::FltGetFileNameInformation,
        Self::FltParseFileNameInformation,
        Self::FltSendMessage,
        Self::PsCreateSystemThread,
        Self::FltCreateCommunicationPort,
        Self::FltRegisterFilter,
        Self::FltStartFiltering,
    ];

    const fn index(self) -> usize {
        self as usize
    }
}

/// The failure statuses a routine's documentation names (Microsoft's reference page of
/// each routine; for the name routines also what file systems return through them, as
/// the issue list of the reliability work names).
#[must_use]
pub const fn documented(routine: Routine) -> &'static [NTSTATUS] {
    match routine {
        // [doc] "ExAllocatePool2 returns NULL if there is insufficient memory".
        Routine::ExAllocatePool2 => &[STATUS_INSUFFICIENT_RESOURCES],
        // [doc] FltGetFileNameInformation return values, and file-system statuses that
        // reach callers through it.
        Routine::FltGetFileNameInformation => &[
            STATUS_FLT_INVALID_NAME_REQUEST,
            STATUS_INSUFFICIENT_RESOURCES,
            STATUS_INVALID_PARAMETER,
            STATUS_FLT_NAME_CACHE_MISS,
            STATUS_OBJECT_PATH_NOT_FOUND,
            STATUS_ACCESS_DENIED,
        ],
        // [doc] "an appropriate NTSTATUS value such as STATUS_INVALID_PARAMETER"; it
        // allocates nothing, but a failure status must still be survived.
        Routine::FltParseFileNameInformation => {
            &[STATUS_INVALID_PARAMETER, STATUS_INSUFFICIENT_RESOURCES]
        }
        // [doc] FltSendMessage return values (STATUS_TIMEOUT is a success code and is
        // exercised by the timeout tests, not here).
        Routine::FltSendMessage => &[
            STATUS_INSUFFICIENT_RESOURCES,
            STATUS_PORT_DISCONNECTED,
            STATUS_THREAD_IS_TERMINATING,
        ],
        // [doc] PsCreateSystemThread: an error NTSTATUS (resources).
        Routine::PsCreateSystemThread => &[STATUS_INSUFFICIENT_RESOURCES],
        // [doc] FltCreateCommunicationPort return values.
        Routine::FltCreateCommunicationPort => &[
            STATUS_FLT_DELETING_OBJECT,
            STATUS_INSUFFICIENT_RESOURCES,
            STATUS_OBJECT_NAME_COLLISION,
            STATUS_INVALID_PARAMETER,
        ],
        // [doc] FltRegisterFilter return values.
        Routine::FltRegisterFilter => &[
            STATUS_INSUFFICIENT_RESOURCES,
            STATUS_INVALID_PARAMETER,
            STATUS_FLT_NOT_INITIALIZED,
            STATUS_OBJECT_NAME_NOT_FOUND,
        ],
        // [doc] "an appropriate NTSTATUS value".
        Routine::FltStartFiltering => &[STATUS_INVALID_PARAMETER, STATUS_INSUFFICIENT_RESOURCES],
    }
}

struct Armed {
    routine: Routine,
    /// Only calls made on this thread count (None: calls on any thread).
    thread: Option<std::thread::ThreadId>,
    /// Calls left before the failing one (1: the next call fails).
    countdown: u64,
    status: NTSTATUS,
}

struct State {
    calls: [u64; Routine::ALL.len()],
    armed: Vec<Armed>,
}

static STATE: Mutex<State> = Mutex::new(State {
    calls: [0; Routine::ALL.len()],
    armed: Vec::new(),
});

thread_local! {
    /// Calls made on this thread, since its first call or the last [`reset_counts`].
    static HERE: std::cell::Cell<[u64; Routine::ALL.len()]> =
        const { std::cell::Cell::new([0; Routine::ALL.len()]) };
}

/// Calls of `routine` since boot or the last [`reset_counts`].
#[must_use]
pub fn calls(routine: Routine) -> u64 {
    STATE.lock().calls[routine.index()]
}

/// Calls of every routine made on the calling thread since the last [`reset_counts`]
/// on it, in [`Routine::ALL`] order. Other threads of the model (a driver's worker,
/// other clients) do not change these counts, so a sweep of a scenario that runs on one
/// thread is deterministic.
#[must_use]
pub fn calls_here() -> [(Routine, u64); Routine::ALL.len()] {
    let here = HERE.with(std::cell::Cell::get);
    Routine::ALL.map(|r| (r, here[r.index()]))
}

/// Calls of every routine since boot or the last [`reset_counts`], in [`Routine::ALL`]
/// order.
#[must_use]
pub fn all_calls() -> [(Routine, u64); Routine::ALL.len()] {
    let state = STATE.lock();
    Routine::ALL.map(|r| (r, state.calls[r.index()]))
}

/// Sets every call count to 0 (the global ones and the calling thread's).
pub fn reset_counts() {
    STATE.lock().calls = [0; Routine::ALL.len()];
    HERE.with(|h| h.set([0; Routine::ALL.len()]));
}

/// The `n`-th call of `routine` from now (1: the next), made on any thread, fails with
/// `status`, once. `n == 0` arms nothing.
pub fn arm(routine: Routine, n: u64, status: NTSTATUS) {
    push(routine, n, status, None);
}

/// Like [`arm`], counting only the calls made on the calling thread.
pub fn arm_here(routine: Routine, n: u64, status: NTSTATUS) {
    push(routine, n, status, Some(std::thread::current().id()));
}

fn push(routine: Routine, n: u64, status: NTSTATUS, thread: Option<std::thread::ThreadId>) {
    if n > 0 {
        STATE.lock().armed.push(Armed {
            routine,
            thread,
            countdown: n,
            status,
        });
    }
}

/// How many armed failures have not fired yet.
#[must_use]
pub fn armed() -> usize {
    STATE.lock().armed.len()
}

/// Removes every armed failure; returns how many had not fired.
pub fn disarm() -> usize {
    std::mem::take(&mut STATE.lock().armed).len()
}

/// Counts a call of `routine`; `Some(status)` when this call must fail.
pub(crate) fn enter(routine: Routine) -> Option<NTSTATUS> {
    HERE.with(|h| {
        let mut here = h.get();
        here[routine.index()] += 1;
        h.set(here);
    });
    let me = std::thread::current().id();
    let mut state = STATE.lock();
    state.calls[routine.index()] += 1;
    let mut fired = None;
    state.armed.retain_mut(|a| {
        if a.routine != routine || fired.is_some() || a.thread.is_some_and(|t| t != me) {
            return true;
        }
        a.countdown -= 1;
        if a.countdown == 0 {
            fired = Some(a.status);
            false
        } else {
            true
        }
    });
    fired
}

pub(crate) fn reset() {
    let mut state = STATE.lock();
    state.calls = [0; Routine::ALL.len()];
    state.armed.clear();
}
