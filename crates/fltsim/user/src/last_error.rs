//! The thread-local Win32 "last error" (`GetLastError` / `SetLastError`).

use std::cell::Cell;

thread_local! {
    static LAST_ERROR: Cell<u32> = const { Cell::new(0) };
}

/// The calling thread's last error.
#[must_use]
pub fn get() -> u32 {
    LAST_ERROR.with(Cell::get)
}

/// Sets the calling thread's last error.
pub fn set(error: u32) {
    LAST_ERROR.with(|e| e.set(error));
}
