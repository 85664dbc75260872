//! portfilter: a file-system minifilter that reports every file create to user mode over
//! a Filter Manager communication port.
//!
//! One source, three builds (DESIGN.md, decision 2):
//! * Windows + WDK: `cargo make` with windows-drivers-rs (feature `wdk`);
//! * Windows target without the WDK: `scripts/build-sys.sh` (own runtime glue);
//! * host (Linux/macOS): an rlib that links against `fltsim`, the user-mode Filter Manager
//!   model, so the real callbacks run in tests and in `portfilter-sim`.
//!
//! Only [`glue`] differs between the builds.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(not(target_os = "windows"))]
extern crate std;

mod glue;

mod budget;
mod commands;
mod config;
mod connections;
mod deliver;
pub mod entry;
mod event;
pub mod log;
mod names;
mod pool;
mod port;
mod precreate;
mod registration;
#[cfg(test)]
mod scoped_check;
mod skip;
mod state;
mod stats;
mod sync;
mod usercopy;
mod verdicts;
mod wide;

pub use entry::DriverEntry;

/// The name of the communication port clients connect to.
pub const PORT_NAME: &str = "\\PortFilterPort";

/// Pool tag for every allocation the driver makes (`PfFl` as it appears in pool tools).
pub const POOL_TAG: u32 = u32::from_le_bytes(*b"PfFl");

/// How many client connections the port accepts: one deciding client (request-reply)
/// plus up to seven observers (notify / queued notify); an eighth observer is refused so
/// that a slot always remains for the decider. Each connection costs a slot in a fixed,
/// non-paged table, so the bound is also a memory bound.
pub const MAX_CONNECTIONS: usize = 8;
