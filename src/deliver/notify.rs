//! Plain notify delivery: one `FltSendMessage` per observer, without a reply buffer and
//! with a short finite budget (an absolute deadline, [`Budget`]). It never denies: a
//! failed send is counted and forgotten. An observer whose last send failed is not waited
//! for until it takes a message again ([`Connections::notify_wait_ms`]: the message is
//! offered with the shortest non-zero timeout, never 0), so a frozen observer does not
//! make every create pay the budget — only up to one clock period each: a kernel timer
//! expires at a clock tick, so that send lasts until the next tick when no get is pending
//! ([`crate::budget::POLL`]).

use crate::budget::Budget;
use crate::connections::{Connections, Role};
use crate::stats::{Counter, Stats};
use core::ffi::c_void;
use portfilter_bindings::{FltSendMessage, PFLT_FILTER, PFLT_PORT, STATUS_SUCCESS};

/// Sends `message` (a complete protocol message in kernel memory) to every observer
/// except the requestor's own process; returns how many took it. `timeout_ms` 0 means
/// "only if a `FilterGetMessage` is already waiting" (sent as the shortest non-zero
/// timeout, which lasts until the next clock tick when none is).
pub(crate) fn send_to_observers(
    filter: PFLT_FILTER,
    connections: &Connections,
    requestor: u32,
    message: &mut [u8],
    timeout_ms: u32,
    stats: &Stats,
) -> u32 {
    let mut delivered = 0;
    connections.for_each(Role::Observer, Some(requestor), stats, |target| {
        let wait_ms = connections.notify_wait_ms(target.index, timeout_ms);
        let ok = send_one(filter, target.port, message, Budget::ms(wait_ms));
        connections.record_notify(target.index, ok);
        if ok {
            stats.bump(Counter::NotifySent);
            delivered += 1;
        } else {
            stats.bump(Counter::NotifyFailed);
        }
    });
    delivered
}

/// Sends `message` without a reply buffer to the client port in `port`, waiting at most
/// `budget` for a reader; true when a client took it.
pub(crate) fn send_one(
    filter: PFLT_FILTER,
    port: *mut PFLT_PORT,
    message: &mut [u8],
    budget: Budget,
) -> bool {
    if port.is_null() {
        return false;
    }
    let Ok(len) = u32::try_from(message.len()) else {
        return false;
    };
    let mut timeout = budget.timeout();
    // SAFETY: the port cell belongs to a connection referenced by the caller (inside
    // Connections::for_each); the message is kernel memory valid for `len` bytes; no reply
    // buffer; the timeout is finite and lives across the call.
    let status = unsafe {
        FltSendMessage(
            filter,
            port,
            message.as_mut_ptr().cast::<c_void>(),
            len,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            &raw mut timeout,
        )
    };
    // STATUS_TIMEOUT passes NT_SUCCESS but means nobody took the message.
    status == STATUS_SUCCESS
}
