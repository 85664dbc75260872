//! portfilter driver (skeleton being written).
#![no_std]
#[cfg(not(target_os = "windows"))]
extern crate std;
