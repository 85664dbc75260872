//! Declarations of the Windows kernel and Filter Manager types, constants and functions
//! that portfilter uses — written from Microsoft's documented x64 layouts, with every
//! struct's size and the offset of every field we use asserted at compile time.
//!
//! * On Windows targets the functions import from `ntoskrnl.exe` and `fltmgr.sys` with
//!   `raw-dylib`, so no WDK import library is needed.
//! * On every other target they are plain `extern "system"` symbols; `fltsim` (the
//!   user-mode Filter Manager model) defines them, so the same driver code runs in tests.
//!
//! Layouts that Debian's mingw-w64 DDK headers also define are cross-checked by a C
//! compile in `tests/layout_mingw.rs`.
//!
//! Deliberately *not* taken from `windows-sys`'s `Wdk` module: its `FLT_PARAMETERS.Create`
//! drops `POINTER_ALIGNMENT`, and it binds kernel routines to `ntdll.dll`.
#![no_std]
#![allow(non_camel_case_types, non_snake_case, clippy::upper_case_acronyms)]

pub mod flt;
pub mod fltuser;
pub mod functions;
pub mod io;
pub mod ntdef;
pub mod status;

pub use flt::*;
pub use fltuser::*;
pub use functions::*;
pub use io::*;
pub use ntdef::*;
pub use status::*;
