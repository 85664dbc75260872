//! Driver logging to the kernel debugger (`DbgPrint`; fltsim captures it on the host).
//!
//! Messages are formatted into a fixed stack buffer (no allocation) and truncated if
//! longer; they are passed as a `%s` argument, never as the format string.

use core::fmt::{self, Write};

const LINE_BYTES: usize = 256;

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

/// Formats and prints one line prefixed with `portfilter: `.
pub fn print(args: fmt::Arguments<'_>) {
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
    unsafe { portfilter_bindings::DbgPrint(c"%s".as_ptr().cast(), line.buf.as_ptr()) };
}

/// `log!("fmt", args…)`: print a line to the kernel debugger.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => { $crate::log::print(format_args!($($arg)*)) };
}
