//! `libfltlib_shim.so`: the fltlib and kernel32 functions a Filter Manager client calls,
//! with their Windows signatures, for Linux processes (C programs: `-lfltlib_shim`) talking to
//! a driver hosted by `portfilter-sim`.
//!
//! Everything is in `fltlib-remote` (the rlib `portctl` links); this cdylib exports its
//! `#[no_mangle]` symbols. See docs/sim-host.md.

// Linux only: on Windows this crate compiles to nothing (see Cargo.toml for its name).
#![cfg(not(windows))]

use fltlib_remote as _;
