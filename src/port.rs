//! The communication port: creation with an admin-and-SYSTEM descriptor, and the
//! connect / disconnect / message callbacks.

use crate::state::{self, DriverState};
use crate::wide::ascii_to_utf16;
use core::ffi::c_void;
use core::mem::size_of;
use core::ptr::null_mut;
use portfilter_bindings::{
    FLT_PORT_ALL_ACCESS, FltBuildDefaultSecurityDescriptor, FltCloseClientPort,
    FltCreateCommunicationPort, FltFreeSecurityDescriptor, NTSTATUS, OBJ_CASE_INSENSITIVE,
    OBJ_KERNEL_HANDLE, OBJECT_ATTRIBUTES, PFLT_PORT, PSECURITY_DESCRIPTOR,
    PsGetCurrentProcessId, STATUS_CONNECTION_COUNT_LIMIT, STATUS_INVALID_DEVICE_REQUEST,
    STATUS_SUCCESS, UNICODE_STRING, nt_success,
};

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

/// Connect: runs in the connecting process. Takes a free slot and remembers the process.
unsafe extern "system" fn connect_notify(
    client_port: PFLT_PORT,
    _server_port_cookie: *mut c_void,
    _connection_context: *mut c_void,
    _size_of_context: u32,
    connection_port_cookie: *mut *mut c_void,
) -> NTSTATUS {
    let Some(state) = state::get() else {
        return STATUS_INVALID_DEVICE_REQUEST;
    };
    if connection_port_cookie.is_null() {
        return STATUS_INVALID_DEVICE_REQUEST;
    }
    // SAFETY: PsGetCurrentProcessId has no preconditions; Connect runs in the client process.
    let process_id = unsafe { PsGetCurrentProcessId() } as usize as u32;
    let mut table = state.clients.write();
    let Some(index) = table.slots.iter().position(|slot| !slot.in_use) else {
        return STATUS_CONNECTION_COUNT_LIMIT;
    };
    if let Some(slot) = table.slots.get_mut(index) {
        slot.in_use = true;
        slot.process_id = process_id;
    }
    if let Some(port) = state.client_ports.get(index) {
        // SAFETY: the slot was free, so nobody else uses this port cell now.
        unsafe { *port.get() = client_port };
    }
    // SAFETY: checked non-null above; the Filter Manager passes a writable cookie slot.
    unsafe { *connection_port_cookie = (index + 1) as *mut c_void };
    crate::log!("client connected (pid {process_id}, slot {index})");
    STATUS_SUCCESS
}

/// Disconnect: closes the client port (releasing the connection slot) and frees our slot.
unsafe extern "system" fn disconnect_notify(connection_cookie: *mut c_void) {
    let Some(state) = state::get() else { return };
    let Some(index) = (connection_cookie as usize).checked_sub(1) else {
        return;
    };
    let Some(port) = state.client_ports.get(index) else {
        return;
    };
    let mut table = state.clients.write();
    // SAFETY: the cell belongs to this connection; FltCloseClientPort sets it to null.
    unsafe { FltCloseClientPort(state.filter(), port.get()) };
    if let Some(slot) = table.slots.get_mut(index) {
        *slot = Default::default();
    }
    crate::log!("client disconnected (slot {index})");
}

/// MessageNotify: commands from `FilterSendMessage`. Not implemented in the skeleton.
unsafe extern "system" fn message_notify(
    _port_cookie: *mut c_void,
    _input_buffer: *mut c_void,
    _input_buffer_length: u32,
    _output_buffer: *mut c_void,
    _output_buffer_length: u32,
    return_output_buffer_length: *mut u32,
) -> NTSTATUS {
    if !return_output_buffer_length.is_null() {
        // SAFETY: a kernel-mode out parameter supplied by the Filter Manager.
        unsafe { *return_output_buffer_length = 0 };
    }
    STATUS_INVALID_DEVICE_REQUEST
}
