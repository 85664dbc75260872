//! A test hook that models a sending thread the scheduler does not run: while a
//! [`SenderHold`] exists, every kernel sender inside `FltSendMessage` stops before it
//! next looks at its own state (its wait may have ended, a reply may have come, its
//! deadline may pass) and goes on only when the hold is dropped. What the model decides
//! without the sender's thread — whether a `FilterGetMessage` still finds the message,
//! whether a `FilterReplyMessage` still finds a waiter — is then decided exactly as it
//! would be under a starved thread, deterministically.

use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Live holds (fast path: zero).
static HOLDS: AtomicUsize = AtomicUsize::new(0);
/// Held senders wait here until the last hold goes.
static GATE: Mutex<()> = Mutex::new(());
static RELEASED: Condvar = Condvar::new();

/// Holds every kernel sender's thread until dropped (see the module documentation).
#[must_use = "the hold ends when this value is dropped"]
#[derive(Debug)]
pub struct SenderHold(());

/// Starts holding the kernel senders' threads.
pub fn hold_senders() -> SenderHold {
    HOLDS.fetch_add(1, Ordering::SeqCst);
    SenderHold(())
}

impl Drop for SenderHold {
    fn drop(&mut self) {
        let _g = GATE.lock();
        HOLDS.fetch_sub(1, Ordering::SeqCst);
        RELEASED.notify_all();
    }
}

/// Whether a hold exists now.
pub(crate) fn held() -> bool {
    HOLDS.load(Ordering::SeqCst) != 0
}

/// Blocks the calling sender while a hold exists (called without the connection's lock).
pub(crate) fn wait_while_held() {
    if HOLDS.load(Ordering::SeqCst) == 0 {
        return;
    }
    let mut g = GATE.lock();
    while HOLDS.load(Ordering::SeqCst) != 0 {
        RELEASED.wait(&mut g);
    }
}
