//! A per-thread simulated IRQL. Callbacks run at `PASSIVE_LEVEL`; tests raise it with
//! [`raise`] to check the routines that have IRQL rules (`FltSendMessage` ≤ `APC_LEVEL`;
//! `FltCreateCommunicationPort`, `FltCloseCommunicationPort`, `FltCloseClientPort` at
//! `PASSIVE_LEVEL`).

use std::cell::Cell;

/// `PASSIVE_LEVEL`.
pub const PASSIVE_LEVEL: u8 = 0;
/// `APC_LEVEL`.
pub const APC_LEVEL: u8 = 1;
/// `DISPATCH_LEVEL`.
pub const DISPATCH_LEVEL: u8 = 2;

thread_local! {
    static IRQL: Cell<u8> = const { Cell::new(PASSIVE_LEVEL) };
}

/// The calling thread's simulated IRQL.
#[must_use]
pub fn current() -> u8 {
    IRQL.with(Cell::get)
}

/// Restores the previous IRQL when dropped.
#[derive(Debug)]
pub struct IrqlGuard {
    previous: u8,
}

impl Drop for IrqlGuard {
    fn drop(&mut self) {
        IRQL.with(|c| c.set(self.previous));
    }
}

/// Sets the calling thread's IRQL to `level` until the guard drops (like
/// `KeRaiseIrql`/`KeLowerIrql`; also usable to "lower" for a callback).
#[must_use]
pub fn raise(level: u8) -> IrqlGuard {
    let previous = current();
    IRQL.with(|c| c.set(level));
    IrqlGuard { previous }
}

/// Reports a violation of [`rule::PORT_ROUTINE_ABOVE_PASSIVE`](crate::rule::PORT_ROUTINE_ABOVE_PASSIVE)
/// when the calling thread is above `PASSIVE_LEVEL`; returns whether it was.
pub(crate) fn check_passive(routine: &str) -> bool {
    let level = current();
    if level > PASSIVE_LEVEL {
        crate::verifier::report(
            crate::verifier::rule::PORT_ROUTINE_ABOVE_PASSIVE,
            format!("{routine} at IRQL {level}"),
        );
    }
    level > PASSIVE_LEVEL
}
