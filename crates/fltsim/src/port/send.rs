//! `FltSendMessage` and `FltCloseClientPort`: the driver's side of a connection. Both
//! take the *address* of the driver's port variable; it is read (and cleared) under the
//! port registry's lock, as the Filter Manager does under its rundown protection, so a
//! send racing a close sees either the live port or NULL.

use super::REGISTRY;
use crate::filter;
use crate::kernel::context;
use crate::kernel::irql::{self, APC_LEVEL};
use crate::kernel::time::SendTimeout;
use crate::verifier::{self, rule};
use portfilter_bindings::{
    FILTER_HEADER_SIZE, LARGE_INTEGER, NTSTATUS, PFLT_FILTER, PFLT_PORT,
    STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_PARAMETER, STATUS_PORT_DISCONNECTED,
};
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Reads the driver's port variable atomically.
///
/// # Safety
/// `port` is non-null, aligned and points to the driver's `PFLT_PORT` variable.
unsafe fn port_var<'a>(port: *mut PFLT_PORT) -> &'a AtomicUsize {
    // SAFETY: a PFLT_PORT is one aligned pointer-sized word (the caller's contract);
    // other threads only access it atomically through this function or the driver's
    // own synchronised code.
    unsafe { AtomicUsize::from_ptr(port.cast::<usize>()) }
}

/// Largest payload the model accepts in one message (the header's sizes are u32; this
/// keeps test memory bounded).
const MAX_MESSAGE: u32 = 64 * 1024 * 1024;

/// `FltSendMessage`.
///
/// # Safety
/// Pointers as the WDK documents them.
#[inline(never)]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltSendMessage(
    filter: PFLT_FILTER,
    client_port: *mut PFLT_PORT,
    sender_buffer: *mut c_void,
    sender_buffer_length: u32,
    reply_buffer: *mut c_void,
    reply_length: *mut u32,
    timeout: *mut LARGE_INTEGER,
) -> NTSTATUS {
    crate::kernel::counts::bump(crate::kernel::counts::Routine::FltSendMessage);
    if irql::current() > APC_LEVEL {
        verifier::report(
            rule::SEND_ABOVE_APC_LEVEL,
            format!("FltSendMessage at IRQL {}", irql::current()),
        );
        return STATUS_INVALID_DEVICE_STATE;
    }
    if filter::from_ptr(filter).is_none() {
        verifier::report(
            rule::INVALID_OBJECT,
            format!("FltSendMessage filter {filter:p}"),
        );
        return STATUS_INVALID_PARAMETER;
    }
    if client_port.is_null() || !(client_port as usize).is_multiple_of(align_of::<usize>()) {
        verifier::fatal(rule::NULL_POINTER, "FltSendMessage: ClientPort");
    }
    if (sender_buffer.is_null() && sender_buffer_length != 0) || sender_buffer_length > MAX_MESSAGE
    {
        return STATUS_INVALID_PARAMETER;
    }
    if let Some(status) = crate::faults::enter(crate::faults::Routine::FltSendMessage) {
        return status;
    }
    if !reply_buffer.is_null() && reply_length.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the caller's contract (null or a readable LARGE_INTEGER).
    let timeout = unsafe { SendTimeout::from_nt(timeout) };
    if timeout == SendTimeout::Zero {
        verifier::report(
            rule::ZERO_SEND_TIMEOUT,
            "*Timeout == 0: documented as \"wait indefinitely\", an older fltmgr polls",
        );
    }
    if !reply_buffer.is_null() && context::unsafe_to_wait_for_user_mode() {
        verifier::report(
            rule::REPLY_WAIT_IN_UNSAFE_CONTEXT,
            format!(
                "TopLevelIrp {:#x}, all APCs disabled: {}",
                context::top_level_irp(),
                context::all_apcs_disabled()
            ),
        );
    }
    let conn = {
        let r = REGISTRY.lock();
        // SAFETY: checked non-null and aligned above.
        let p = unsafe { port_var(client_port) }.load(Ordering::SeqCst);
        if p == 0 {
            return STATUS_PORT_DISCONNECTED;
        }
        match r.connections.get(&p) {
            Some(c) => c.clone(),
            None => {
                drop(r);
                verifier::report(
                    rule::INVALID_OBJECT,
                    format!(
                        "FltSendMessage to client port {p:#x}, which is closed (pass the address of the variable FltCloseClientPort clears)"
                    ),
                );
                return STATUS_PORT_DISCONNECTED;
            }
        }
    };
    // Read in place: the connection copies it once (the caller's buffer need not outlive
    // this call).
    let payload: &[u8] = if sender_buffer_length == 0 {
        &[]
    } else {
        // SAFETY: a kernel buffer of `sender_buffer_length` bytes (the caller's contract),
        // valid and unchanged for the duration of this call.
        unsafe {
            std::slice::from_raw_parts(sender_buffer.cast::<u8>(), sender_buffer_length as usize)
        }
    };
    let reply_capacity = if reply_buffer.is_null() {
        None
    } else {
        // SAFETY: non-null, readable per the contract.
        Some(unsafe { reply_length.read() }.min(u32::MAX - FILTER_HEADER_SIZE as u32))
    };
    let result = conn.kernel_send(payload, reply_capacity, timeout);
    if let Some(cap) = reply_capacity {
        let n = result.reply.len().min(cap as usize);
        if n > 0 {
            // SAFETY: the kernel reply buffer holds `*reply_length` bytes (contract).
            unsafe {
                std::ptr::copy_nonoverlapping(result.reply.as_ptr(), reply_buffer.cast::<u8>(), n)
            };
        }
        if result.replied {
            #[allow(clippy::cast_possible_truncation)]
            // SAFETY: non-null, writable per the contract.
            unsafe {
                reply_length.write(n as u32);
            }
        }
    }
    result.status
}

/// `FltCloseClientPort`: closes the connection's kernel side and sets `*ClientPort` to NULL.
///
/// # Safety
/// `client_port` points to the driver's port variable.
#[inline(never)]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltCloseClientPort(filter: PFLT_FILTER, client_port: *mut PFLT_PORT) {
    irql::check_passive("FltCloseClientPort");
    if filter::from_ptr(filter).is_none() {
        verifier::report(
            rule::INVALID_OBJECT,
            format!("FltCloseClientPort filter {filter:p}"),
        );
    }
    if client_port.is_null() || !(client_port as usize).is_multiple_of(align_of::<usize>()) {
        verifier::fatal(rule::NULL_POINTER, "FltCloseClientPort: ClientPort");
    }
    let conn = {
        let mut r = REGISTRY.lock();
        // SAFETY: checked non-null and aligned above.
        let p = unsafe { port_var(client_port) }.swap(0, Ordering::SeqCst);
        if p == 0 {
            return;
        }
        let Some(c) = r.connections.remove(&p) else {
            drop(r);
            verifier::report(
                rule::INVALID_OBJECT,
                format!("FltCloseClientPort({p:#x}): not an open client port"),
            );
            return;
        };
        c
    };
    conn.close_by_filter();
}
