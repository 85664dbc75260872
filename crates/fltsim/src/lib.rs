//! fltsim: a user-mode model of the Windows Filter Manager, so that portfilter's real
//! driver code and real clients run and are tested on Linux.
//!
//! It defines, as `#[no_mangle]` symbols, every kernel routine the driver imports (see
//! `portfilter_bindings::functions`: `Flt*`, `Ex*`, `Ke*`, `Ps*`, `Zw*`, `Io*`,
//! `DbgPrintEx` (and `DbgPrint`), `PfCopyFromUser`/`PfCopyToUser`) and the fltlib/kernel32 functions a client calls
//! (`FilterConnectCommunicationPort`, `FilterGetMessage`, …, I/O completion ports,
//! events; written in [`fltsim_user`] and exported here over the in-process backend
//! [`port::InProcess`]). A binary that links fltsim must not also link `fltlib-shim`.
//! A crate that only calls those symbols (through windows-sys or the bindings) must
//! still reference fltsim (e.g. `Machine::boot()`, or `use fltsim as _;`) so it is linked.
//!
//! Typical test:
//! ```ignore
//! let machine = fltsim::Machine::boot();
//! fltsim::load_driver(portfilter::DriverEntry).unwrap();
//! fltsim::process::spawn(1000, "portctl.exe", true);
//! let _p = fltsim::process::enter(1000);
//! // FilterConnectCommunicationPort(...) through windows-sys; fltsim::create(&CreateRequest::new(r"C:\a.txt"));
//! fltsim::unload_driver().unwrap();
//! drop(machine); // panics on unexpected verifier violations (leaks included)
//! ```
//!
//! Where Microsoft's documentation and reverse engineering disagree, the model offers
//! each reading and applies the harshest by default ([`readings`]).
//!
//! What is modelled and what is not: docs/fltsim.md.

// Linux only: fltsim models the Filter Manager on Linux (threads, `libc`,
// `process_vm_readv`). On Windows this crate compiles to nothing, so that a workspace-wide
// Windows build (cargo-wdk builds every member) succeeds.
#![cfg(not(windows))]

pub mod create;
pub mod driver;
pub mod faults;
mod filter;
pub mod image;
pub mod kernel;
pub mod log;
mod machine;
pub mod names;
pub mod pended;
pub mod port;
pub mod process;
pub mod readings;
pub mod registration;
pub mod usercopy;
pub mod verifier;
pub mod volumes;

pub use create::{CreateOutcome, CreateRequest, create};
pub use driver::{DriverEntry, is_loaded, load_driver, unload_driver, unload_driver_mandatory};
pub use machine::{Machine, MachineGuard};
pub use readings::Readings;
pub use verifier::{Violation, rule};

/// The NTSTATUS → HRESULT mapping FltLib applies (re-exported from fltsim-user).
pub use fltsim_user::hresult;
