//! `fltlib-remote` (exported as `libfltlib_shim.so` by `fltlib-shim`): the fltlib and kernel32
//! functions a Filter Manager client calls —
//! `FilterConnectCommunicationPort`, `FilterGetMessage`, `FilterReplyMessage`,
//! `FilterSendMessage`, `CloseHandle`, `CreateIoCompletionPort`,
//! `GetQueuedCompletionStatus(Ex)`, `PostQueuedCompletionStatus`, `CancelIoEx`,
//! `GetOverlappedResult`, `CreateEventW`, `SetEvent`, `ResetEvent`,
//! `WaitForSingleObject`, `GetLastError`, `SetLastError` — with their Windows
//! signatures, for Linux processes talking to a driver hosted by `portfilter-sim`.
//!
//! The Win32 semantics (handles, OVERLAPPED, events, completion ports, HRESULTs) are
//! fltsim-user's, shared with the in-process model; this crate only supplies the
//! [`Remote`] backend, which turns each port operation into a request on a Unix socket
//! (see the `portfilter-sim-wire` crate and docs/sim-host.md):
//!
//! * no host listening → `FilterConnectCommunicationPort` returns `0x80070002`, as on
//!   Windows when the filter is not loaded;
//! * the socket is found as `portfilter-sim` resolves it (`PORTFILTER_SIM_SOCKET`, else
//!   the per-user default), and trusted only if root or this user serves it
//!   (`SO_PEERCRED`); anyone else's host is refused with `0x80070005` and one line on
//!   stderr naming the socket and its server's uid;
//! * a handle rule the caller breaks (fltsim-user's `rule`, e.g. a NULL-OVERLAPPED
//!   `FilterGetMessage` woken early on an overlapped handle) is printed on stderr and
//!   sent to the host, whose verifier records it;
//! * `FilterSendMessage` reads the caller's input and probes its output with a
//!   fault-tolerant copy ([`usermem`]); a buffer that cannot be accessed is passed to
//!   the driver as an address that faults, so the caller gets the status a bad pointer
//!   gets in-process;
//! * `PORTFILTER_SIM_NON_ADMIN=1` makes the process a non-administrator for the port's
//!   security check (a test knob).
//!
//! Link this rlib (portctl) or the cdylib `fltlib-shim` (C programs: `-lfltlib_shim`), never
//! together with fltsim, which exports the same symbols in-process.

// Linux only: the shim stands in for FltLib.dll on Linux, over a Unix socket. On Windows
// this crate compiles to nothing, so that a workspace-wide Windows build (cargo-wdk builds
// every member) succeeds.
#![cfg(not(windows))]

mod link;
mod remote;
pub mod usermem;

pub use link::NON_ADMIN_ENV;
pub use remote::Remote;

fltsim_user::export_user_api!(crate::remote::Remote);
