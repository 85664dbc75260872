//! Plain notify delivery: one `FltSendMessage` per observer, without a reply buffer and
//! with a short finite timeout. It never denies: a failed send is counted and forgotten.

use crate::connections::Targets;
use crate::stats::{Counter, Stats};
use crate::sync::relative_timeout;
use core::ffi::c_void;
use portfilter_bindings::{FltSendMessage, PFLT_FILTER, STATUS_SUCCESS};

/// Sends `message` (a complete protocol message in kernel memory) to every connection in
/// `targets`; returns how many took it. `*Timeout == 0` (timeout_ms 0) means "only if a
/// `FilterGetMessage` is already waiting".
pub(crate) fn send_to_all(
    filter: PFLT_FILTER,
    targets: &Targets<'_>,
    message: &mut [u8],
    timeout_ms: u32,
    stats: &Stats,
) -> u32 {
    let mut delivered = 0;
    for index in targets.indexes() {
        if send_one(filter, targets, index, message, timeout_ms) {
            stats.bump(Counter::NotifySent);
            delivered += 1;
        } else {
            stats.bump(Counter::NotifyFailed);
        }
    }
    delivered
}

/// Sends `message` to the connection `index` of `targets`; true when a client took it.
pub(crate) fn send_one(
    filter: PFLT_FILTER,
    targets: &Targets<'_>,
    index: usize,
    message: &mut [u8],
    timeout_ms: u32,
) -> bool {
    let port = targets.port_cell(index);
    if port.is_null() {
        return false;
    }
    let Ok(len) = u32::try_from(message.len()) else {
        return false;
    };
    let mut timeout = relative_timeout(timeout_ms);
    // SAFETY: the port cell is referenced by `targets`; the message is kernel memory valid
    // for `len` bytes; no reply buffer; the timeout is finite and lives across the call.
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
