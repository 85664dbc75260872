//! Names of the handle-kind rules the user-mode layer checks (docs/port-semantics.md,
//! "Handle kinds"). A violation is handed to the backend
//! ([`PortBackend::report_violation`](crate::PortBackend::report_violation)): fltsim
//! records it with its verifier, the fltlib shim prints it and forwards it to the
//! `portfilter-sim` host, whose verifier records it.

/// A `FilterGetMessage` with a NULL OVERLAPPED on an overlapped handle (one opened
/// without `FLT_PORT_FLAG_SYNC_HANDLE`) waited on the file handle itself and returned
/// when another I/O on that handle completed, before its own message arrived. Its
/// request stays queued: the message is written into the caller's buffer later.
pub const NULL_OVERLAPPED_GET_WOKEN_EARLY: &str = "FilterGetMessage with a NULL OVERLAPPED on an overlapped handle returned \
     early (another I/O on the handle completed); its message is written into the buffer later";

/// `GetOverlappedResult` with `bWait = TRUE` and an OVERLAPPED without `hEvent`, on an
/// overlapped handle, waited on the file handle and returned when another I/O on the
/// handle completed, while its own request was still pending (it reports success and 0
/// bytes; the request completes later).
pub const NULL_EVENT_RESULT_WOKEN_EARLY: &str = "GetOverlappedResult without an event returned early on an overlapped handle \
     (another I/O on the handle completed); its request is still pending";

/// Every rule of this module (a host maps a rule name received from a client to its
/// static name with this list).
pub const ALL: &[&str] = &[
    NULL_OVERLAPPED_GET_WOKEN_EARLY,
    NULL_EVENT_RESULT_WOKEN_EARLY,
];
