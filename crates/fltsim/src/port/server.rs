//! Server ports: `FltCreateCommunicationPort`, `FltCloseCommunicationPort`, and the
//! kernel half of a connect.

use super::REGISTRY;
use super::connection::ClientConn;
use super::security::{self, Security};
use crate::image::win64::driver_call;
use crate::kernel::irql;
use crate::verifier::{self, rule};
use crate::{filter, process};
use parking_lot::Mutex;
use portfilter_bindings::{
    NTSTATUS, OBJ_KERNEL_HANDLE, OBJECT_ATTRIBUTES, PFLT_CONNECT_NOTIFY, PFLT_DISCONNECT_NOTIFY,
    PFLT_FILTER, PFLT_MESSAGE_NOTIFY, PFLT_PORT, STATUS_ACCESS_DENIED,
    STATUS_CONNECTION_COUNT_LIMIT, STATUS_FLT_DELETING_OBJECT, STATUS_INVALID_DEVICE_STATE,
    STATUS_INVALID_PARAMETER, STATUS_OBJECT_NAME_COLLISION, STATUS_OBJECT_NAME_NOT_FOUND,
    STATUS_SUCCESS, nt_success,
};
use std::ffi::c_void;
use std::sync::Arc;

/// A server port. Its address is the `PFLT_PORT` the driver holds.
pub(crate) struct ServerPort {
    pub filter: usize,
    pub display_name: String,
    pub key: String,
    pub cookie: usize,
    pub connect: PFLT_CONNECT_NOTIFY,
    pub disconnect: PFLT_DISCONNECT_NOTIFY,
    pub notify: Option<PFLT_MESSAGE_NOTIFY>,
    pub max_connections: u32,
    pub security: Security,
    /// Connections counted against `max_connections` (released by FltCloseClientPort).
    pub slots: Mutex<u32>,
}

impl ServerPort {
    pub fn release_slot(&self) {
        let mut s = self.slots.lock();
        *s = s.saturating_sub(1);
    }
}

/// Reads a counted UTF-16 name.
///
/// # Safety
/// `oa` is null or a readable `OBJECT_ATTRIBUTES` whose name (if any) is readable.
unsafe fn read_name(oa: *const OBJECT_ATTRIBUTES) -> Option<(String, u32)> {
    if oa.is_null() {
        return None;
    }
    // SAFETY: the caller's contract.
    let oa = unsafe { oa.read() };
    if oa.Length as usize != size_of::<OBJECT_ATTRIBUTES>() || oa.ObjectName.is_null() {
        return None;
    }
    // SAFETY: the caller's contract.
    let us = unsafe { oa.ObjectName.read() };
    // A well-formed UNICODE_STRING (as ntstrsafe's RtlUnicodeStringValidate checks it):
    // an even length within `MaximumLength`, the size of `Buffer`.
    if us.Length == 0 || us.Length % 2 != 0 || us.Length > us.MaximumLength || us.Buffer.is_null() {
        return None;
    }
    // SAFETY: `Length` bytes of UTF-16 at `Buffer` (the caller's contract).
    let units = unsafe { std::slice::from_raw_parts(us.Buffer, usize::from(us.Length / 2)) };
    Some((String::from_utf16_lossy(units), oa.Attributes))
}

/// `FltCreateCommunicationPort`.
///
/// # Safety
/// Pointers as the WDK documents them.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "system" fn FltCreateCommunicationPort(
    filter: PFLT_FILTER,
    server_port: *mut PFLT_PORT,
    object_attributes: *const OBJECT_ATTRIBUTES,
    server_port_cookie: *mut c_void,
    connect_notify: Option<PFLT_CONNECT_NOTIFY>,
    disconnect_notify: Option<PFLT_DISCONNECT_NOTIFY>,
    message_notify: Option<PFLT_MESSAGE_NOTIFY>,
    max_connections: i32,
) -> NTSTATUS {
    if irql::check_passive("FltCreateCommunicationPort") {
        return STATUS_INVALID_DEVICE_STATE;
    }
    let Some(f) = filter::from_ptr(filter) else {
        verifier::report(
            rule::INVALID_OBJECT,
            format!("FltCreateCommunicationPort({filter:p})"),
        );
        return STATUS_INVALID_PARAMETER;
    };
    if server_port.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the caller's contract.
    let Some((name, attributes)) = (unsafe { read_name(object_attributes) }) else {
        return STATUS_INVALID_PARAMETER;
    };
    if let Some(status) = crate::faults::enter(crate::faults::Routine::FltCreateCommunicationPort) {
        return status;
    }
    if attributes & OBJ_KERNEL_HANDLE == 0 {
        return STATUS_INVALID_PARAMETER;
    }
    let (Some(connect), Some(disconnect)) = (connect_notify, disconnect_notify) else {
        return STATUS_INVALID_PARAMETER;
    };
    let Ok(max) = u32::try_from(max_connections) else {
        return STATUS_INVALID_PARAMETER;
    };
    if max == 0 {
        return STATUS_INVALID_PARAMETER;
    }
    if f.is_deleting() {
        return STATUS_FLT_DELETING_OBJECT;
    }
    // SAFETY: object_attributes was read above, so it is readable.
    let sd = unsafe { object_attributes.read() }.SecurityDescriptor;
    let port = Arc::new(ServerPort {
        filter: filter as usize,
        key: name.to_uppercase(),
        display_name: name,
        cookie: server_port_cookie as usize,
        connect,
        disconnect,
        notify: message_notify,
        max_connections: max,
        security: security::from_descriptor(sd),
        slots: Mutex::new(0),
    });
    let mut r = REGISTRY.lock();
    if r.names.contains_key(&port.key) {
        return STATUS_OBJECT_NAME_COLLISION;
    }
    let addr = Arc::as_ptr(&port) as usize;
    r.names.insert(port.key.clone(), addr);
    r.servers.insert(addr, port);
    drop(r);
    // SAFETY: non-null, writable per the contract.
    unsafe { server_port.write(addr as PFLT_PORT) };
    STATUS_SUCCESS
}

/// `FltCloseCommunicationPort`: no new connects; existing connections stay.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn FltCloseCommunicationPort(server_port: PFLT_PORT) {
    irql::check_passive("FltCloseCommunicationPort");
    let mut r = REGISTRY.lock();
    let Some(port) = r.servers.remove(&(server_port as usize)) else {
        drop(r);
        verifier::report(
            rule::INVALID_OBJECT,
            format!("FltCloseCommunicationPort({server_port:p})"),
        );
        return;
    };
    r.names.remove(&port.key);
}

/// Closes every server port of a filter that is being unregistered (a violation).
pub(crate) fn close_all_of(filter: PFLT_FILTER) {
    let mut r = REGISTRY.lock();
    let addrs: Vec<usize> = r
        .servers
        .iter()
        .filter(|(_, s)| s.filter == filter as usize)
        .map(|(a, _)| *a)
        .collect();
    for a in addrs {
        if let Some(s) = r.servers.remove(&a) {
            r.names.remove(&s.key);
            verifier::report(
                rule::SERVER_PORT_OPEN_AT_UNREGISTER,
                format!("{} (close it before FltUnregisterFilter)", s.display_name),
            );
        }
    }
}

/// The kernel half of `FilterConnectCommunicationPort`, in the calling thread's process.
pub(crate) fn connect(
    name: &[u16],
    options: u32,
    context: &[u8],
) -> Result<Arc<ClientConn>, NTSTATUS> {
    let key = String::from_utf16_lossy(name).to_uppercase();
    let server = {
        let r = REGISTRY.lock();
        r.names.get(&key).and_then(|a| r.servers.get(a)).cloned()
    };
    let Some(server) = server else {
        return Err(STATUS_OBJECT_NAME_NOT_FOUND);
    };
    let Some(f) = filter::from_ptr(server.filter as PFLT_FILTER) else {
        return Err(STATUS_FLT_DELETING_OBJECT);
    };
    if f.is_deleting() {
        return Err(STATUS_FLT_DELETING_OBJECT);
    }
    if !server.security.admits(process::current_is_admin()) {
        return Err(STATUS_ACCESS_DENIED);
    }
    {
        // Counted before the callback; over the limit, the callback is not called. [re]
        let mut slots = server.slots.lock();
        if *slots >= server.max_connections {
            return Err(STATUS_CONNECTION_COUNT_LIMIT);
        }
        *slots += 1;
    }
    let Some(running) = f.enter_callback() else {
        server.release_slot();
        return Err(STATUS_FLT_DELETING_OBJECT);
    };
    let conn = Arc::new(ClientConn::new(server.clone(), process::current(), options));
    let addr = Arc::as_ptr(&conn) as usize;
    REGISTRY.lock().connections.insert(addr, conn.clone());
    // The kernel copy of the context, valid only during the callback.
    let mut copy = context.to_vec();
    let ctx_ptr: *mut c_void = if copy.is_empty() {
        std::ptr::null_mut()
    } else {
        copy.as_mut_ptr().cast()
    };
    let mut cookie: *mut c_void = std::ptr::null_mut();
    let size = u32::try_from(copy.len()).unwrap_or(u32::MAX);
    // SAFETY: the driver's Connect callback, with a port and a context copy valid for
    // the call, in the connecting process's context.
    let status = unsafe {
        driver_call(
            server.connect,
            (
                addr as PFLT_PORT,
                server.cookie as *mut c_void,
                ctx_ptr,
                size,
                &raw mut cookie,
            ),
        )
    };
    copy.fill(0xDD);
    drop(running);
    if !nt_success(status) {
        // The failed connection never existed for the client; Disconnect is not called.
        conn.abandon();
        return Err(status);
    }
    conn.set_cookie(cookie as usize);
    Ok(conn)
}
