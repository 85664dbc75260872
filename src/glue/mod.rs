//! Runtime glue: the only code that differs between the three builds.
//!
//! * host (not Windows): std provides the allocator and the panic handler; nothing here.
//! * Windows with feature `wdk`: windows-drivers-rs (`wdk-alloc`, `wdk-panic`).
//! * Windows without `wdk` (the cross build): [`cross`] — pool allocator, bug-check panic
//!   handler and `_fltused`.
//!
//! Logging goes through `DbgPrintEx` (bindings) in every build, so it is not glue.

#[cfg(all(target_os = "windows", not(feature = "wdk")))]
mod cross;

#[cfg(all(target_os = "windows", feature = "wdk"))]
mod wdk;
