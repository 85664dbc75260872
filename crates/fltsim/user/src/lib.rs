//! The user-mode half of fltsim: the fltlib and kernel32 functions a Filter Manager
//! client calls (`FilterConnectCommunicationPort`, `FilterGetMessage`, …, I/O completion
//! ports, events, OVERLAPPED requests, `CloseHandle`, the thread-local last error),
//! written once over a [`PortBackend`].
//!
//! Two crates export these symbols, each with [`export_user_api!`]: `fltsim` (backend:
//! the in-process kernel model; tests and `portfilter-sim`) and `fltlib-shim` (backend:
//! a `portfilter-sim` host reached over a Unix socket). This crate itself exports
//! nothing, so linking it never clashes with a provider.
//!
//! NTSTATUS → HRESULT conversion is in [`hresult`], tested entry by entry against the
//! table of docs/port-semantics.md.

// Linux only: fltsim's Win32 layer exists to stand in for FltLib.dll on Linux. On Windows
// this crate compiles to nothing, so that a workspace-wide Windows build (cargo-wdk builds
// every member) succeeds.
#![cfg(not(windows))]

pub mod api;
mod backend;
mod event;
mod export;
pub mod handles;
pub mod hresult;
mod iocp;
pub mod last_error;
mod overlapped;
mod request;
pub mod rule;
pub mod wait;

pub use backend::{Connection, ForwardSink, GetRequest, PortBackend};
pub use event::UserEvent;
pub use iocp::{Iocp, Packet, WaitError};

/// Types the exported signatures use (for [`export_user_api!`]).
pub mod reexport {
    pub use windows_sys::Win32::Foundation::HANDLE;
    pub use windows_sys::Win32::Security::SECURITY_ATTRIBUTES;
    pub use windows_sys::Win32::Storage::InstallableFileSystems::{
        FILTER_MESSAGE_HEADER, FILTER_REPLY_HEADER,
    };
    pub use windows_sys::Win32::System::IO::{OVERLAPPED, OVERLAPPED_ENTRY};
    pub use windows_sys::core::{BOOL, HRESULT, PCWSTR};
}
