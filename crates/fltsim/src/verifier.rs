//! Verifier-lite: cheap checks of rules whose violation would crash, hang or corrupt a
//! real Windows machine. Each violation is recorded with the rule's name; the
//! [`MachineGuard`](crate::MachineGuard) fails the test at drop unless the test expected
//! it. Violations that cannot be survived even in the model (a deadlock about to happen,
//! a direct dereference of a user buffer) abort the process after naming the rule.

use parking_lot::Mutex;

/// Names of the rules the verifier checks.
pub mod rule {
    // Rules of the user-mode layer (handle kinds), checked by fltsim-user.
    pub use fltsim_user::rule::{NULL_EVENT_RESULT_WOKEN_EARLY, NULL_OVERLAPPED_GET_WOKEN_EARLY};

    /// `FltSendMessage` called above `APC_LEVEL`.
    pub const SEND_ABOVE_APC_LEVEL: &str = "FltSendMessage called above APC_LEVEL";
    /// `FltSendMessage` with `*Timeout == 0`: documented as "wait indefinitely", seen as
    /// a poll in an older fltmgr — ambiguous, so never pass it (pass the shortest
    /// non-zero relative timeout, -1, for a poll).
    pub const ZERO_SEND_TIMEOUT: &str = "FltSendMessage with a zero timeout (ambiguous)";
    /// `FltCreateCommunicationPort`, `FltCloseCommunicationPort` or `FltCloseClientPort`
    /// called above `PASSIVE_LEVEL`.
    pub const PORT_ROUTINE_ABOVE_PASSIVE: &str =
        "communication port routine called above PASSIVE_LEVEL";
    /// `FltSendMessage` waiting for a user-mode reply on a thread that may hold
    /// file-system or memory-manager resources (a top-level IRP is set, or all APCs are
    /// disabled): the user-mode decider may need those resources to answer.
    pub const REPLY_WAIT_IN_UNSAFE_CONTEXT: &str =
        "FltSendMessage waits for a reply where the requestor may hold file-system resources";
    /// Name information obtained during an operation not released when it ended (or at
    /// unload).
    pub const NAME_INFO_NOT_RELEASED: &str = "file name information not released";
    /// `FltReleaseFileNameInformation` of something not obtained (or released twice).
    pub const NAME_INFO_BAD_RELEASE: &str = "release of unknown file name information";
    /// The Disconnect callback returned without `FltCloseClientPort`.
    pub const CLIENT_PORT_NOT_CLOSED: &str = "client port not closed by the Disconnect callback";
    /// A server port was still open when `FltUnregisterFilter` ran (it would hang there).
    pub const SERVER_PORT_OPEN_AT_UNREGISTER: &str =
        "server port still open at FltUnregisterFilter";
    /// A driver callback still ran when the filter's state was torn down.
    pub const CALLBACK_AFTER_TEARDOWN: &str = "callback running after FltUnregisterFilter";
    /// The unload callback returned success but the filter was still registered.
    pub const UNLOAD_WITHOUT_UNREGISTER: &str =
        "unload callback succeeded without FltUnregisterFilter";
    /// The unload callback refused a mandatory unload.
    pub const MANDATORY_UNLOAD_REFUSED: &str = "mandatory unload refused";
    /// Pool freed twice.
    pub const POOL_DOUBLE_FREE: &str = "pool freed twice";
    /// Pool free of an address that was never allocated.
    pub const POOL_BAD_FREE: &str = "pool free of an unknown address";
    /// Pool freed with another tag than it was allocated with.
    pub const POOL_WRONG_TAG: &str = "pool freed with the wrong tag";
    /// `ExAllocatePool2` with invalid flags or a zero tag.
    pub const POOL_BAD_CALLER: &str = "ExAllocatePool2 with invalid flags or tag";
    /// Pool still allocated when the driver unloaded.
    pub const POOL_LEAK: &str = "pool leaked at unload";
    /// A push lock released by a thread that does not hold it (or not held at all).
    pub const PUSH_LOCK_NOT_OWNER: &str = "push lock released by a non-owner";
    /// A push lock acquired again by the thread holding it (a deadlock on Windows).
    pub const PUSH_LOCK_RECURSIVE: &str = "push lock acquired recursively";
    /// A push lock used without `FltInitializePushLock`.
    pub const PUSH_LOCK_UNINITIALIZED: &str = "push lock used before FltInitializePushLock";
    /// A push lock deleted while held.
    pub const PUSH_LOCK_DELETED_HELD: &str = "push lock deleted while held";
    /// A kernel handle that is not open (ZwClose / ZwWaitForSingleObject).
    pub const BAD_KERNEL_HANDLE: &str = "invalid kernel handle";
    /// A kernel handle still open at unload.
    pub const KERNEL_HANDLE_LEAK: &str = "kernel handle not closed at unload";
    /// A system thread still running after the driver unloaded.
    pub const THREAD_RUNNING_AT_UNLOAD: &str = "system thread still running after unload";
    /// An object pointer the model never handed out (or already destroyed).
    pub const INVALID_OBJECT: &str = "unknown or destroyed object passed to a kernel routine";
    /// An event used without `KeInitializeEvent`.
    pub const EVENT_UNINITIALIZED: &str = "KEVENT used before KeInitializeEvent";
    /// A pre-operation callback returned a status the model does not allow for creates.
    pub const BAD_PREOP_STATUS: &str = "invalid pre-operation callback status";
    /// `FltCompletePendedPreOperation` for an operation already completed, never pended,
    /// or still in a callback data queue.
    pub const PENDED_COMPLETED_TWICE: &str = "pended operation completed twice (or never pended)";
    /// `FltCompletePendedPreOperation` after the filter unregistered.
    pub const PENDED_COMPLETED_AFTER_UNLOAD: &str = "pended operation completed after unload";
    /// A pended create still open when `FltUnregisterFilter` ran.
    pub const PENDED_NOT_COMPLETED_AT_UNLOAD: &str =
        "pended operation not completed before FltUnregisterFilter";
    /// A pended create not completed within the model's limit.
    pub const PENDED_NEVER_COMPLETED: &str = "pended operation never completed";
    /// A pended create completed with `FLT_PREOP_COMPLETE` and a status that is not an
    /// error (a failed create must carry an error status).
    pub const PENDED_DENY_NOT_ERROR: &str =
        "pended create completed (denied) with a status that is not an error";
    /// `FltCompletePendedPreOperation`, `FltCbdq*` or `KeAcquireSpinLockRaiseToDpc` above
    /// `DISPATCH_LEVEL`.
    pub const PENDED_IRQL: &str = "pended-operation routine above DISPATCH_LEVEL";
    /// `KeReleaseSpinLock` of a lock that is not held.
    pub const SPIN_LOCK_NOT_HELD: &str = "spin lock released while not held";
    /// `FLT_PREOP_COMPLETE` with `STATUS_PENDING` in IoStatus.
    pub const COMPLETE_WITH_PENDING: &str = "FLT_PREOP_COMPLETE with STATUS_PENDING";
    /// MessageNotify reported more output bytes than the output buffer holds.
    pub const RETURN_LENGTH_TOO_LARGE: &str =
        "MessageNotify returned more bytes than OutputBufferLength";
    /// `PfCopyFromUser`/`PfCopyToUser` outside the buffers of the current call.
    pub const USER_COPY_OUT_OF_RANGE: &str =
        "user copy outside the buffers of the current MessageNotify call";
    /// A user-mode buffer dereferenced directly instead of through the fault-tolerant copy.
    pub const USER_BUFFER_DEREFERENCED: &str =
        "user-mode buffer dereferenced directly (not through PfCopyFromUser/PfCopyToUser)";
    /// A null pointer where the routine dereferences without checking (a bugcheck).
    pub const NULL_POINTER: &str = "null pointer passed to a kernel routine";
    /// `FltRegisterFilter` was passed a driver object the model did not create.
    pub const BAD_DRIVER_OBJECT: &str = "FltRegisterFilter with an unknown driver object";
    /// `KeLeaveCriticalRegion` without an enter, or a pre-create that returned inside a
    /// critical region it entered.
    pub const CRITICAL_REGION_UNBALANCED: &str = "critical region entered and left unevenly";
}

/// One recorded violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule (one of [`rule`]).
    pub rule: &'static str,
    /// What happened.
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.rule, self.detail)
    }
}

static VIOLATIONS: Mutex<Vec<Violation>> = Mutex::new(Vec::new());

/// Records a violation (and prints it to stderr).
pub fn report(rule: &'static str, detail: impl Into<String>) {
    let v = Violation {
        rule,
        detail: detail.into(),
    };
    eprintln!("fltsim verifier: {v}");
    VIOLATIONS.lock().push(v);
}

/// A violation the model cannot survive (Windows would bugcheck or deadlock here):
/// names the rule on stderr and aborts the process.
pub fn fatal(rule: &'static str, detail: &str) -> ! {
    eprintln!("fltsim verifier: FATAL: {rule}: {detail}");
    eprintln!("fltsim: on Windows this would crash or hang the machine; aborting.");
    std::process::abort()
}

/// Takes (and clears) every violation recorded so far.
pub fn take() -> Vec<Violation> {
    std::mem::take(&mut *VIOLATIONS.lock())
}

/// A copy of the violations recorded so far.
#[must_use]
pub fn peek() -> Vec<Violation> {
    VIOLATIONS.lock().clone()
}

pub(crate) fn reset() {
    VIOLATIONS.lock().clear();
}
