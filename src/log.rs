//! Driver logging to the kernel debugger with `DbgPrintEx(DPFLTR_IHVDRIVER_ID, level, …)`
//! (fltsim captures component and level on the host).
//!
//! Since Windows Vista, `DbgPrint` output is filtered out by default (it is component
//! DEFAULT at the info level); `DbgPrintEx` messages show when their level's bit is in
//! the component's filter mask, which by default holds only the error bit. So:
//! * [`Level::Error`] — the driver cannot do its job (a load step failed, no memory for
//!   the worker's buffers): shown under the default filter;
//! * [`Level::Warning`] — something a client or the machine did that costs events or
//!   answers (a refused command or connect, events dropped at unload);
//! * [`Level::Info`] — the normal lifecycle (loaded, connected, disconnected, unloaded).
//!
//! To see warnings and information on a test machine, set the `IHVDRIVER` value under
//! `HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Debug Print Filter` to 0xF (or
//! `ed nt!Kd_IHVDRIVER_Mask 0xF` in the debugger).
//!
//! Messages are formatted into a fixed stack buffer (no allocation) and truncated if
//! longer; they are passed as a `%s` argument, never as the format string.

use core::fmt::{self, Write};
use portfilter_bindings::{
    DPFLTR_ERROR_LEVEL, DPFLTR_IHVDRIVER_ID, DPFLTR_INFO_LEVEL, DPFLTR_WARNING_LEVEL,
};

const LINE_BYTES: usize = 256;

/// How important a line is (the `DbgPrintEx` level).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// `DPFLTR_ERROR_LEVEL`: shown by default.
    Error,
    /// `DPFLTR_WARNING_LEVEL`.
    Warning,
    /// `DPFLTR_INFO_LEVEL`.
    Info,
}

impl Level {
    const fn dpfltr(self) -> u32 {
        match self {
            Self::Error => DPFLTR_ERROR_LEVEL,
            Self::Warning => DPFLTR_WARNING_LEVEL,
            Self::Info => DPFLTR_INFO_LEVEL,
        }
    }
}

struct Line {
    buf: [u8; LINE_BYTES],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Keep one byte for the terminator; silently truncate the rest.
        let room = LINE_BYTES - 1 - self.len;
        let take = s.len().min(room);
        if let (Some(dst), Some(src)) = (
            self.buf.get_mut(self.len..self.len + take),
            s.as_bytes().get(..take),
        ) {
            dst.copy_from_slice(src);
            self.len += take;
        }
        Ok(())
    }
}

/// Formats and prints one line prefixed with `portfilter: ` at `level`.
pub fn print(level: Level, args: fmt::Arguments<'_>) {
    let mut line = Line {
        buf: [0; LINE_BYTES],
        len: 0,
    };
    let _ = line.write_str("portfilter: ");
    let _ = line.write_fmt(args);
    let _ = line.write_str("\n");
    // `len <= LINE_BYTES - 1`, so the terminator fits; buf is zero-initialised.
    // SAFETY: both strings are NUL-terminated and live across the call; "%s" consumes
    // exactly one pointer argument.
    unsafe {
        portfilter_bindings::DbgPrintEx(
            DPFLTR_IHVDRIVER_ID,
            level.dpfltr(),
            c"%s".as_ptr().cast(),
            line.buf.as_ptr(),
        )
    };
}

/// `log_error!("fmt", args…)`: a line at `DPFLTR_ERROR_LEVEL` (shown by default).
#[macro_export]
macro_rules! log_error {
    ($($arg:tt)*) => { $crate::log::print($crate::log::Level::Error, format_args!($($arg)*)) };
}

/// `log_warning!("fmt", args…)`: a line at `DPFLTR_WARNING_LEVEL`.
#[macro_export]
macro_rules! log_warning {
    ($($arg:tt)*) => { $crate::log::print($crate::log::Level::Warning, format_args!($($arg)*)) };
}

/// `log_info!("fmt", args…)`: a line at `DPFLTR_INFO_LEVEL`.
#[macro_export]
macro_rules! log_info {
    ($($arg:tt)*) => { $crate::log::print($crate::log::Level::Info, format_args!($($arg)*)) };
}
