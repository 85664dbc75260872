//! Win32 events (`CreateEventW`, `SetEvent`, `ResetEvent`, `WaitForSingleObject`).

use parking_lot::{Condvar, Mutex};
use std::time::Instant;

/// A manual- or auto-reset event.
#[derive(Debug)]
pub struct UserEvent {
    manual_reset: bool,
    signalled: Mutex<bool>,
    cond: Condvar,
}

impl UserEvent {
    /// A new event.
    #[must_use]
    pub fn new(manual_reset: bool, initial: bool) -> Self {
        Self {
            manual_reset,
            signalled: Mutex::new(initial),
            cond: Condvar::new(),
        }
    }

    /// Signals the event.
    pub fn set(&self) {
        let mut s = self.signalled.lock();
        *s = true;
        if self.manual_reset {
            self.cond.notify_all();
        } else {
            self.cond.notify_one();
        }
    }

    /// Resets the event.
    pub fn reset(&self) {
        *self.signalled.lock() = false;
    }

    /// Whether the event is signalled now.
    #[must_use]
    pub fn is_set(&self) -> bool {
        *self.signalled.lock()
    }

    /// Waits until signalled (consuming the signal of an auto-reset event) or until the
    /// deadline. Returns whether it was signalled.
    pub fn wait(&self, deadline: Option<Instant>) -> bool {
        let mut s = self.signalled.lock();
        loop {
            if *s {
                if !self.manual_reset {
                    *s = false;
                }
                return true;
            }
            match deadline {
                None => self.cond.wait(&mut s),
                Some(d) => {
                    if self.cond.wait_until(&mut s, d).timed_out() && !*s {
                        return false;
                    }
                }
            }
        }
    }
}
