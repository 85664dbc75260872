//! The communication port: creation with an admin-and-SYSTEM descriptor, and the
//! connect / disconnect / message callbacks (thin: the work is in [`crate::connections`]
//! and [`crate::commands`]).

use crate::commands;
use crate::connections::Role;
use crate::state::{self, DriverState};
use crate::usercopy::UserPtr;
use crate::wide::ascii_to_utf16;
use core::ffi::c_void;
use core::mem::size_of;
use core::ptr::null_mut;
use core::sync::atomic::Ordering;
use portfilter_bindings::{
    FLT_PORT_ALL_ACCESS, FltBuildDefaultSecurityDescriptor, FltCreateCommunicationPort,
    FltFreeSecurityDescriptor, NTSTATUS, OBJ_CASE_INSENSITIVE, OBJ_KERNEL_HANDLE,
    OBJECT_ATTRIBUTES, PFLT_PORT, PSECURITY_DESCRIPTOR, PsGetCurrentProcessId,
    STATUS_FLT_DELETING_OBJECT, STATUS_INVALID_DEVICE_REQUEST, STATUS_SUCCESS, UNICODE_STRING,
    nt_success,
};
use portfilter_protocol::{ConnectContext, status_for_error};

const PORT_NAME_LEN: usize = crate::PORT_NAME.len();
static PORT_NAME_UTF16: [u16; PORT_NAME_LEN] = ascii_to_utf16(crate::PORT_NAME);

/// Creates the server port `\PortFilterPort`, reachable by Administrators and SYSTEM only.
pub(crate) fn create_server_port(state: &DriverState) -> Result<(), NTSTATUS> {
    let mut sd: PSECURITY_DESCRIPTOR = null_mut();
    // SAFETY: `sd` is a valid out pointer.
    let status = unsafe { FltBuildDefaultSecurityDescriptor(&raw mut sd, FLT_PORT_ALL_ACCESS) };
    if !nt_success(status) {
        return Err(status);
    }
    let name = UNICODE_STRING {
        Length: (PORT_NAME_LEN * 2) as u16,
        MaximumLength: (PORT_NAME_LEN * 2) as u16,
        Buffer: PORT_NAME_UTF16.as_ptr().cast_mut(),
    };
    let attributes = OBJECT_ATTRIBUTES {
        Length: size_of::<OBJECT_ATTRIBUTES>() as u32,
        RootDirectory: null_mut(),
        ObjectName: &raw const name,
        Attributes: OBJ_KERNEL_HANDLE | OBJ_CASE_INSENSITIVE,
        SecurityDescriptor: sd,
        SecurityQualityOfService: null_mut(),
    };
    // SAFETY: every pointer is valid for the call; the port handle slot is ours and only
    // written here, before any client can connect.
    let status = unsafe {
        FltCreateCommunicationPort(
            state.filter(),
            state.server_port.get(),
            &raw const attributes,
            null_mut(),
            connect_notify,
            disconnect_notify,
            Some(message_notify),
            crate::MAX_CONNECTIONS as i32,
        )
    };
    // The port keeps its own copy of the descriptor.
    // SAFETY: `sd` came from FltBuildDefaultSecurityDescriptor and is freed once.
    unsafe { FltFreeSecurityDescriptor(sd) };
    if nt_success(status) {
        Ok(())
    } else {
        Err(status)
    }
}

/// Connect: runs in the connecting process's context. Decodes the connect context (the
/// role; no context at all means observer), captures the process id, and takes a slot.
unsafe extern "system" fn connect_notify(
    client_port: PFLT_PORT,
    _server_port_cookie: *mut c_void,
    connection_context: *mut c_void,
    size_of_context: u32,
    connection_port_cookie: *mut *mut c_void,
) -> NTSTATUS {
    let Some(state) = state::get() else {
        return STATUS_FLT_DELETING_OBJECT;
    };
    if connection_port_cookie.is_null() || state.unloading.load(Ordering::Acquire) {
        return STATUS_FLT_DELETING_OBJECT;
    }
    let role = if connection_context.is_null() || size_of_context == 0 {
        Role::Observer
    } else {
        // SAFETY: the Filter Manager passes a kernel copy of the client's context, valid
        // for `size_of_context` bytes during this call.
        let context = unsafe {
            core::slice::from_raw_parts(
                connection_context.cast::<u8>().cast_const(),
                size_of_context as usize,
            )
        };
        match ConnectContext::decode(context) {
            Ok(decoded) => decoded.role,
            Err(e) => return status_for_error(&e),
        }
    };
    // SAFETY: PsGetCurrentProcessId has no preconditions; Connect runs in the client process.
    let process_id = unsafe { PsGetCurrentProcessId() } as usize as u32;
    match state.connections.connect(role, process_id, client_port) {
        Ok((index, connection_id)) => {
            // SAFETY: checked non-null above; the Filter Manager passes a writable slot.
            unsafe { *connection_port_cookie = (index + 1) as *mut c_void };
            crate::log_info!(
                "client connected: {role:?}, pid {process_id}, connection {connection_id}"
            );
            STATUS_SUCCESS
        }
        Err(status) => {
            crate::log_warning!(
                "client refused: {role:?}, pid {process_id}, status {status:#010x}"
            );
            status
        }
    }
}

/// The slot index a connection cookie stands for.
fn slot_of(cookie: *mut c_void) -> Option<usize> {
    (cookie as usize)
        .checked_sub(1)
        .filter(|&index| index < crate::MAX_CONNECTIONS)
}

/// Disconnect: closes the client port (failing the sends waiting on it, so waiting
/// creates get the default verdict at once), waits for senders to leave, frees the slot.
/// (After unload closed the connection itself there is nothing left to do.)
unsafe extern "system" fn disconnect_notify(connection_cookie: *mut c_void) {
    let Some(state) = state::get() else { return };
    let Some(index) = slot_of(connection_cookie) else {
        return;
    };
    let _closed = state.connections.disconnect(state.filter(), index);
}

/// `MessageNotify`: a command from `FilterSendMessage` ([`crate::commands`]).
unsafe extern "system" fn message_notify(
    port_cookie: *mut c_void,
    input_buffer: *mut c_void,
    input_buffer_length: u32,
    output_buffer: *mut c_void,
    output_buffer_length: u32,
    return_output_buffer_length: *mut u32,
) -> NTSTATUS {
    let answer = match (state::get(), slot_of(port_cookie)) {
        (Some(state), Some(slot)) => commands::handle(
            state,
            slot,
            UserPtr::new(input_buffer, input_buffer_length),
            UserPtr::new(output_buffer, output_buffer_length),
        ),
        _ => commands::Answer {
            status: STATUS_INVALID_DEVICE_REQUEST,
            returned: 0,
        },
    };
    if answer.status != STATUS_SUCCESS {
        crate::log_warning!(
            "command failed: status {:#010x} (returned {})",
            answer.status,
            answer.returned
        );
    }
    if !return_output_buffer_length.is_null() {
        // SAFETY: a kernel-mode out parameter supplied by the Filter Manager.
        unsafe { *return_output_buffer_length = answer.returned };
    }
    answer.status
}
