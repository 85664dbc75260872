//! A stand-in minifilter for client tests that need a driver other than portfilter (one
//! that sends junk, one of another protocol version): it registers with fltsim, opens one
//! communication port with the callbacks the test gives, and closes both at unload — the
//! part such test filters share, written once.

use parking_lot::Mutex;
use portfilter_bindings::*;
use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering};

/// The port a stand-in opens and its callbacks.
#[derive(Clone, Copy)]
pub struct Ports {
    /// Port name (`\PortFilterPort` to stand in for portfilter).
    pub name: &'static str,
    /// Connect callback.
    pub connect: PFLT_CONNECT_NOTIFY,
    /// Disconnect callback.
    pub disconnect: PFLT_DISCONNECT_NOTIFY,
    /// MessageNotify callback, if any.
    pub notify: Option<PFLT_MESSAGE_NOTIFY>,
    /// MaxConnections.
    pub max_connections: i32,
}

static PORTS: Mutex<Option<Ports>> = Mutex::new(None);
static FILTER: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
static SERVER_PORT: AtomicPtr<c_void> = AtomicPtr::new(null_mut());

static OPERATIONS: [FLT_OPERATION_REGISTRATION; 1] = [FLT_OPERATION_REGISTRATION {
    MajorFunction: IRP_MJ_OPERATION_END,
    Flags: 0,
    PreOperation: None,
    PostOperation: None,
    Reserved1: null_mut(),
}];

static REGISTRATION: FLT_REGISTRATION = FLT_REGISTRATION {
    Size: size_of::<FLT_REGISTRATION>() as u16,
    Version: FLT_REGISTRATION_VERSION,
    Flags: 0,
    ContextRegistration: std::ptr::null(),
    OperationRegistration: OPERATIONS.as_ptr(),
    FilterUnloadCallback: Some(unload),
    InstanceSetupCallback: None,
    InstanceQueryTeardownCallback: None,
    InstanceTeardownStartCallback: None,
    InstanceTeardownCompleteCallback: None,
    GenerateFileNameCallback: std::ptr::null(),
    NormalizeNameComponentCallback: std::ptr::null(),
    NormalizeContextCleanupCallback: std::ptr::null(),
    TransactionNotificationCallback: std::ptr::null(),
    NormalizeNameComponentExCallback: std::ptr::null(),
    SectionNotificationCallback: std::ptr::null(),
};

/// Loads the stand-in (`fltmc load`) with `ports`.
///
/// # Panics
/// If its DriverEntry fails (a test set-up error).
pub fn load(ports: Ports) {
    *PORTS.lock() = Some(ports);
    fltsim::load_driver(driver_entry).expect("stand-in DriverEntry");
}

/// The stand-in's filter (for FltSendMessage / FltCloseClientPort in callbacks).
pub fn filter() -> PFLT_FILTER {
    FILTER.load(Ordering::SeqCst)
}

unsafe extern "system" fn driver_entry(
    driver: PDRIVER_OBJECT,
    _path: *const UNICODE_STRING,
) -> NTSTATUS {
    let Some(ports) = *PORTS.lock() else {
        return STATUS_INVALID_PARAMETER;
    };
    // SAFETY: test-driver code: each routine is called with the arguments its contract
    // asks for (the model hands valid objects to DriverEntry).
    unsafe {
        let mut filter = null_mut();
        let st = FltRegisterFilter(driver, &raw const REGISTRATION, &raw mut filter);
        if !nt_success(st) {
            return st;
        }
        FILTER.store(filter, Ordering::SeqCst);
        let mut sd: PSECURITY_DESCRIPTOR = null_mut();
        let st = FltBuildDefaultSecurityDescriptor(&raw mut sd, FLT_PORT_ALL_ACCESS);
        if !nt_success(st) {
            FltUnregisterFilter(filter);
            return st;
        }
        let mut name: Vec<u16> = ports.name.encode_utf16().collect();
        let bytes = u16::try_from(name.len() * 2).unwrap();
        let us = UNICODE_STRING {
            Length: bytes,
            MaximumLength: bytes,
            Buffer: name.as_mut_ptr(),
        };
        let oa = OBJECT_ATTRIBUTES {
            Length: size_of::<OBJECT_ATTRIBUTES>() as u32,
            RootDirectory: null_mut(),
            ObjectName: &raw const us,
            Attributes: OBJ_KERNEL_HANDLE | OBJ_CASE_INSENSITIVE,
            SecurityDescriptor: sd,
            SecurityQualityOfService: null_mut(),
        };
        let mut port = null_mut();
        let st = FltCreateCommunicationPort(
            filter,
            &raw mut port,
            &raw const oa,
            null_mut(),
            ports.connect,
            ports.disconnect,
            ports.notify,
            ports.max_connections,
        );
        FltFreeSecurityDescriptor(sd);
        if !nt_success(st) {
            FltUnregisterFilter(filter);
            return st;
        }
        SERVER_PORT.store(port, Ordering::SeqCst);
        let st = FltStartFiltering(filter);
        if !nt_success(st) {
            FltCloseCommunicationPort(port);
            FltUnregisterFilter(filter);
            return st;
        }
        STATUS_SUCCESS
    }
}

unsafe extern "system" fn unload(_flags: u32) -> NTSTATUS {
    // SAFETY: the server port and filter were created by driver_entry and are closed
    // once, here.
    unsafe {
        let port = SERVER_PORT.swap(null_mut(), Ordering::SeqCst);
        if !port.is_null() {
            FltCloseCommunicationPort(port);
        }
        FltUnregisterFilter(FILTER.swap(null_mut(), Ordering::SeqCst));
    }
    STATUS_SUCCESS
}

/// The one client port of a stand-in that serves a single client (set by
/// [`remember_client_port`], closed by [`close_client_port`]).
pub static CLIENT_PORT: AtomicPtr<c_void> = AtomicPtr::new(null_mut());

/// A connect callback for a single-client stand-in: keeps the client port, no cookie.
pub unsafe extern "system" fn remember_client_port(
    client_port: PFLT_PORT,
    _server_cookie: *mut c_void,
    _context: *mut c_void,
    _size: u32,
    cookie: *mut *mut c_void,
) -> NTSTATUS {
    CLIENT_PORT.store(client_port, Ordering::SeqCst);
    // SAFETY: the model passes a valid out pointer.
    unsafe { *cookie = null_mut() };
    STATUS_SUCCESS
}

/// The matching disconnect callback: closes the kept client port.
pub unsafe extern "system" fn close_client_port(_cookie: *mut c_void) {
    // SAFETY: the filter is live while its ports are; the client port was stored by
    // `remember_client_port` and is closed once (FltCloseClientPort sets it to NULL).
    unsafe { FltCloseClientPort(filter(), CLIENT_PORT.as_ptr()) };
}

/// A booted machine with a single-client stand-in loaded — port `name`, commands to
/// `notify`, the client port kept in [`CLIENT_PORT`] — and the calling thread acting for
/// the client process `client_pid` (spawned as an administrator). Unloads the stand-in
/// when dropped, before the machine goes.
pub struct SingleClient {
    _process: fltsim::process::ProcessGuard,
    _machine: fltsim::MachineGuard,
}

impl SingleClient {
    /// Boots the machine and loads the stand-in.
    pub fn boot(name: &'static str, notify: PFLT_MESSAGE_NOTIFY, client_pid: u32) -> Self {
        let machine = fltsim::Machine::boot();
        load(Ports {
            name,
            connect: remember_client_port,
            disconnect: close_client_port,
            notify: Some(notify),
            max_connections: 1,
        });
        fltsim::process::spawn(client_pid, "portctl.exe", true);
        let process = fltsim::process::enter(client_pid);
        Self {
            _process: process,
            _machine: machine,
        }
    }
}

impl Drop for SingleClient {
    fn drop(&mut self) {
        if fltsim::is_loaded() {
            let _ = fltsim::unload_driver();
        }
    }
}
