//! `libfltlib.so`: the fltlib and kernel32 functions a Filter Manager client calls,
//! with their Windows signatures, for Linux processes (C programs: `-lfltlib`) talking to
//! a driver hosted by `portfilter-sim`.
//!
//! Everything is in `fltlib-remote` (the rlib `portctl` links); this cdylib exports its
//! `#[no_mangle]` symbols. See docs/sim-host.md.

use fltlib_remote as _;
