//! Timeouts of the Win32 wait functions (milliseconds, `INFINITE`).

use std::time::{Duration, Instant};

/// `INFINITE`.
pub const INFINITE: u32 = u32::MAX;

/// A deadline computed from a Win32 millisecond timeout: `None` waits forever.
#[must_use]
pub fn deadline_ms(milliseconds: u32) -> Option<Instant> {
    if milliseconds == INFINITE {
        None
    } else {
        Some(Instant::now() + Duration::from_millis(u64::from(milliseconds)))
    }
}
