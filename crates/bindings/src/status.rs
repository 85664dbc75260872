//! `NTSTATUS` values used by portfilter and fltsim.
//!
//! Values are written as `u32` bit patterns and converted, so they read as in ntstatus.h.
#![allow(clippy::cast_possible_wrap)]

use crate::ntdef::NTSTATUS;

/// `NT_SUCCESS`: true for success *and* informational codes — note that
/// `STATUS_TIMEOUT` passes it. Compare `FltSendMessage`'s result with `STATUS_SUCCESS`.
#[must_use]
pub const fn nt_success(status: NTSTATUS) -> bool {
    status >= 0
}

macro_rules! statuses {
    ($($(#[$doc:meta])* $name:ident = $value:expr;)*) => {
        $($(#[$doc])* pub const $name: NTSTATUS = ($value as u32) as NTSTATUS;)*
    };
}

statuses! {
    /// The operation completed successfully.
    STATUS_SUCCESS = 0x0000_0000u32;
    /// A wait timed out (a *success* code).
    STATUS_TIMEOUT = 0x0000_0102u32;
    /// The operation is pending.
    STATUS_PENDING = 0x0000_0103u32;
    /// Data was truncated (warning).
    STATUS_BUFFER_OVERFLOW = 0x8000_0005u32;
    /// No more entries (warning).
    STATUS_NO_MORE_ENTRIES = 0x8000_001Au32;
    /// Unsuccessful.
    STATUS_UNSUCCESSFUL = 0xC000_0001u32;
    /// Not implemented.
    STATUS_NOT_IMPLEMENTED = 0xC000_0002u32;
    /// Length mismatch for an information class.
    STATUS_INFO_LENGTH_MISMATCH = 0xC000_0004u32;
    /// Access violation (bad pointer).
    STATUS_ACCESS_VIOLATION = 0xC000_0005u32;
    /// Invalid handle.
    STATUS_INVALID_HANDLE = 0xC000_0008u32;
    /// Invalid parameter.
    STATUS_INVALID_PARAMETER = 0xC000_000Du32;
    /// Invalid device request (e.g. no MessageNotify callback).
    STATUS_INVALID_DEVICE_REQUEST = 0xC000_0010u32;
    /// Access denied.
    STATUS_ACCESS_DENIED = 0xC000_0022u32;
    /// Buffer too small.
    STATUS_BUFFER_TOO_SMALL = 0xC000_0023u32;
    /// Object name not found.
    STATUS_OBJECT_NAME_NOT_FOUND = 0xC000_0034u32;
    /// Object name already exists.
    STATUS_OBJECT_NAME_COLLISION = 0xC000_0035u32;
    /// Port disconnected.
    STATUS_PORT_DISCONNECTED = 0xC000_0037u32;
    /// Thread is terminating.
    STATUS_THREAD_IS_TERMINATING = 0xC000_004Bu32;
    /// Revision mismatch (protocol version).
    STATUS_REVISION_MISMATCH = 0xC000_0059u32;
    /// Insufficient resources.
    STATUS_INSUFFICIENT_RESOURCES = 0xC000_009Au32;
    /// Not supported.
    STATUS_NOT_SUPPORTED = 0xC000_00BBu32;
    /// Cancelled.
    STATUS_CANCELLED = 0xC000_0120u32;
    /// Invalid buffer size.
    STATUS_INVALID_BUFFER_SIZE = 0xC000_0206u32;
    /// Connection count limit reached.
    STATUS_CONNECTION_COUNT_LIMIT = 0xC000_0246u32;
    /// Datatype misalignment (error form).
    STATUS_DATATYPE_MISALIGNMENT_ERROR = 0xC000_02C5u32;
    /// Invalid state for the request (e.g. a second deciding client).
    STATUS_INVALID_DEVICE_STATE = 0xC000_0184u32;
    /// Device busy.
    STATUS_DEVICE_BUSY = 0x8000_0011u32;
    /// Filter Manager: object is being deleted.
    STATUS_FLT_DELETING_OBJECT = 0xC01C_000Bu32;
    /// Filter Manager: do not attach to this volume.
    STATUS_FLT_DO_NOT_ATTACH = 0xC01C_000Fu32;
    /// Filter Manager: no sender is waiting for this reply.
    STATUS_FLT_NO_WAITER_FOR_REPLY = 0xC01C_0020u32;
    /// Filter Manager: the filter is not initialised.
    STATUS_FLT_NOT_INITIALIZED = 0xC01C_0007u32;
    /// Filter Manager: the name could not be obtained.
    STATUS_FLT_INVALID_NAME_REQUEST = 0xC01C_0005u32;
}
