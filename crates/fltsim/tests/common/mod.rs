//! A small test minifilter written against the bindings (as a real driver is), plus
//! client helpers that call the fltlib functions through windows-sys.
#![allow(dead_code, clippy::missing_safety_doc)]

use fltsim::{Machine, MachineGuard};
use parking_lot::{Condvar, Mutex};
use portfilter_bindings::*;
use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::time::Duration;
use windows_sys::Win32::Foundation::{HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::Storage::InstallableFileSystems as fl;

pub const PORT_NAME: &str = r"\FltsimTestPort";
pub const TAG: u32 = u32::from_le_bytes(*b"TfTs");

/// What the test filter does on a pre-create.
#[derive(Debug, Clone, PartialEq)]
pub enum PreCreate {
    /// SUCCESS_WITH_CALLBACK.
    Pass,
    /// SUCCESS_NO_CALLBACK.
    PassNoCallback,
    /// FLT_PREOP_COMPLETE with STATUS_ACCESS_DENIED when the name contains the text.
    DenyContaining(String),
    /// Send the opened name to client slot 0 and wait for a reply; the reply's status
    /// (if STATUS_SUCCESS was returned by FltSendMessage) decides.
    Ask { timeout_100ns: i64 },
    /// FLT_PREOP_PENDING; the callback data is left in [`PENDED`] for the test to
    /// complete (`FltCompletePendedPreOperation`).
    Pend,
}

/// The callback data of the last create `PreCreate::Pend` pended.
pub static PENDED: AtomicPtr<FLT_CALLBACK_DATA> = AtomicPtr::new(null_mut());

#[derive(Debug, Clone)]
pub struct Config {
    pub secure: bool,
    /// The access `FltBuildDefaultSecurityDescriptor` grants (with `secure`).
    pub port_access: ACCESS_MASK,
    pub max_connections: i32,
    pub connect_status: NTSTATUS,
    pub close_in_disconnect: bool,
    pub message_notify: bool,
    pub unload_status: NTSTATUS,
    pub unregister_in_unload: bool,
    pub close_server_port_in_unload: bool,
    pub attach: bool,
    pub pre_create: PreCreate,
    pub release_names: bool,
    pub create_port_in_teardown: bool,
    pub connect_in_disconnect: bool,
    /// Disconnect holds (after its FltCloseClientPort) until `open_disconnect_gate`.
    pub hold_in_disconnect: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            secure: true,
            port_access: FLT_PORT_ALL_ACCESS,
            max_connections: 2,
            connect_status: STATUS_SUCCESS,
            close_in_disconnect: true,
            message_notify: true,
            unload_status: STATUS_SUCCESS,
            unregister_in_unload: true,
            close_server_port_in_unload: true,
            attach: true,
            pre_create: PreCreate::Pass,
            release_names: true,
            create_port_in_teardown: false,
            connect_in_disconnect: false,
            hold_in_disconnect: false,
        }
    }
}

/// A callback the test filter saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    InstanceSetup {
        device_type: u32,
        fs: i32,
    },
    Connect {
        slot: usize,
        pid: u32,
        /// The bytes of ConnectionContext; `None` when the pointer was NULL.
        context: Option<Vec<u8>>,
    },
    /// A Connect callback whose context is `b"gate"` is holding at the gate.
    ConnectHeld,
    /// A Disconnect callback closed its port and holds (`hold_in_disconnect`).
    DisconnectHeld,
    Disconnect {
        slot: usize,
        pid: u32,
    },
    Notify {
        slot: usize,
        len: u32,
        tid: u64,
        input_low: usize,
        translated: bool,
    },
    Parsed {
        volume: String,
        parent: String,
        final_component: String,
        extension: String,
        stream: String,
    },
    TeardownPortStatus(NTSTATUS),
    ConnectDuringUnload(i32),
    PreCreate {
        pid: u32,
        requestor: u32,
        tid: u64,
        thread_tid: u64,
        name: String,
        opened: String,
        flags: u8,
        /// `Data->Flags` (`FLTFL_CALLBACK_DATA_*`).
        data_flags: u32,
        options: u32,
        access: u32,
        kernel: bool,
        volume_open: bool,
        file_name: String,
        /// `IoGetTopLevelIrp()` during the callback.
        top_level_irp: usize,
        /// `KeAreAllApcsDisabled()` during the callback.
        apcs_disabled: bool,
    },
    PostCreate {
        status: NTSTATUS,
        is_dir: Option<bool>,
    },
    Unload {
        flags: u32,
    },
    TeardownStart,
}

pub static CONFIG: Mutex<Option<Config>> = Mutex::new(None);
pub static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());
pub static FILTER: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
pub static SERVER_PORT: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
pub const SLOTS: usize = 4;
pub static CLIENT_PORTS: [AtomicPtr<c_void>; SLOTS] = [const { AtomicPtr::new(null_mut()) }; SLOTS];
static GATE: Mutex<bool> = Mutex::new(false);
static GATE_CV: Condvar = Condvar::new();
static DISCONNECT_GATE: Mutex<bool> = Mutex::new(false);
static DISCONNECT_GATE_CV: Condvar = Condvar::new();

pub fn config() -> Config {
    CONFIG.lock().clone().unwrap_or_default()
}

pub fn seen() -> Vec<Seen> {
    SEEN.lock().clone()
}

fn record(s: Seen) {
    SEEN.lock().push(s);
}

/// Opens the gate that 'W' messages and `b"gate"` connects wait on.
pub fn open_gate() {
    *GATE.lock() = true;
    GATE_CV.notify_all();
}

/// Opens the gate that Disconnect waits on with `hold_in_disconnect`.
pub fn open_disconnect_gate() {
    *DISCONNECT_GATE.lock() = true;
    DISCONNECT_GATE_CV.notify_all();
}

/// Waits (at most 20 s, so a broken test cannot hang) until the gate is open.
fn wait_for_gate() {
    wait_open(&GATE, &GATE_CV);
}

fn wait_open(gate: &Mutex<bool>, cv: &Condvar) {
    let mut g = gate.lock();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !*g {
        if cv.wait_until(&mut g, deadline).timed_out() {
            break;
        }
    }
}

pub fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(Some(0)).collect()
}

fn us_to_string(u: &UNICODE_STRING) -> String {
    if u.Length == 0 || u.Buffer.is_null() {
        return String::new();
    }
    // SAFETY: FFI into the model with valid arguments.
    let s = unsafe { std::slice::from_raw_parts(u.Buffer, usize::from(u.Length / 2)) };
    String::from_utf16_lossy(s)
}

// ---------------------------------------------------------------- the test filter

static OPERATIONS: [FLT_OPERATION_REGISTRATION; 2] = [
    FLT_OPERATION_REGISTRATION {
        MajorFunction: IRP_MJ_CREATE,
        Flags: 0,
        PreOperation: Some(pre_create),
        PostOperation: Some(post_create),
        Reserved1: null_mut(),
    },
    FLT_OPERATION_REGISTRATION {
        MajorFunction: IRP_MJ_OPERATION_END,
        Flags: 0,
        PreOperation: None,
        PostOperation: None,
        Reserved1: null_mut(),
    },
];

pub static REGISTRATION: FLT_REGISTRATION = FLT_REGISTRATION {
    Size: size_of::<FLT_REGISTRATION>() as u16,
    Version: FLT_REGISTRATION_VERSION,
    Flags: 0,
    ContextRegistration: std::ptr::null(),
    OperationRegistration: OPERATIONS.as_ptr(),
    FilterUnloadCallback: Some(unload),
    InstanceSetupCallback: Some(instance_setup),
    InstanceQueryTeardownCallback: None,
    InstanceTeardownStartCallback: Some(teardown_start),
    InstanceTeardownCompleteCallback: None,
    GenerateFileNameCallback: std::ptr::null(),
    NormalizeNameComponentCallback: std::ptr::null(),
    NormalizeContextCleanupCallback: std::ptr::null(),
    TransactionNotificationCallback: std::ptr::null(),
    NormalizeNameComponentExCallback: std::ptr::null(),
    SectionNotificationCallback: std::ptr::null(),
};

pub unsafe extern "system" fn driver_entry(
    driver: PDRIVER_OBJECT,
    _path: *const UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: test-driver code; the model hands valid objects to callbacks, and
    // the arguments of each routine called here follow its documented contract.
    unsafe {
        let cfg = config();
        let mut filter = null_mut();
        let st = FltRegisterFilter(driver, &REGISTRATION, &mut filter);
        if !nt_success(st) {
            return st;
        }
        FILTER.store(filter, Ordering::SeqCst);
        let mut sd: PSECURITY_DESCRIPTOR = null_mut();
        if cfg.secure {
            let st = FltBuildDefaultSecurityDescriptor(&mut sd, cfg.port_access);
            if !nt_success(st) {
                FltUnregisterFilter(filter);
                return st;
            }
        }
        let st = create_port(
            filter,
            PORT_NAME,
            sd,
            cfg.max_connections,
            cfg.message_notify,
            OBJ_KERNEL_HANDLE | OBJ_CASE_INSENSITIVE,
        );
        if !sd.is_null() {
            FltFreeSecurityDescriptor(sd);
        }
        let port = match st {
            Ok(p) => p,
            Err(st) => {
                FltUnregisterFilter(filter);
                return st;
            }
        };
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

/// FltCreateCommunicationPort with the test filter's callbacks.
pub unsafe fn create_port(
    filter: PFLT_FILTER,
    name: &str,
    sd: PSECURITY_DESCRIPTOR,
    max: i32,
    with_notify: bool,
    attributes: u32,
) -> Result<PFLT_PORT, NTSTATUS> {
    // SAFETY: test-driver code; the model hands valid objects to callbacks, and
    // the arguments of each routine called here follow its documented contract.
    unsafe {
        let mut w: Vec<u16> = name.encode_utf16().collect();
        let us = UNICODE_STRING {
            Length: (w.len() * 2) as u16,
            MaximumLength: (w.len() * 2) as u16,
            Buffer: w.as_mut_ptr(),
        };
        let oa = OBJECT_ATTRIBUTES {
            Length: size_of::<OBJECT_ATTRIBUTES>() as u32,
            RootDirectory: null_mut(),
            ObjectName: &us,
            Attributes: attributes,
            SecurityDescriptor: sd,
            SecurityQualityOfService: null_mut(),
        };
        let mut port = null_mut();
        let st = FltCreateCommunicationPort(
            filter,
            &mut port,
            &oa,
            null_mut(),
            on_connect,
            on_disconnect,
            if with_notify {
                Some(message_notify)
            } else {
                None
            },
            max,
        );
        if nt_success(st) { Ok(port) } else { Err(st) }
    }
}

unsafe extern "system" fn instance_setup(
    _o: *const FLT_RELATED_OBJECTS,
    _flags: u32,
    device_type: u32,
    fs: i32,
) -> NTSTATUS {
    record(Seen::InstanceSetup { device_type, fs });
    if config().attach {
        STATUS_SUCCESS
    } else {
        STATUS_FLT_DO_NOT_ATTACH
    }
}

unsafe extern "system" fn teardown_start(_o: *const FLT_RELATED_OBJECTS, _reason: u32) {
    // SAFETY: test-driver code; the model hands valid objects to callbacks, and
    // the arguments of each routine called here follow its documented contract.
    unsafe {
        record(Seen::TeardownStart);
        if config().create_port_in_teardown {
            let st = create_port(
                FILTER.load(Ordering::SeqCst),
                r"\AnotherPort",
                null_mut(),
                1,
                true,
                OBJ_KERNEL_HANDLE,
            );
            record(Seen::TeardownPortStatus(st.err().unwrap_or(STATUS_SUCCESS)));
        }
    }
}

unsafe extern "system" fn unload(flags: u32) -> NTSTATUS {
    // SAFETY: test-driver code; the model hands valid objects to callbacks, and
    // the arguments of each routine called here follow its documented contract.
    unsafe {
        record(Seen::Unload { flags });
        let cfg = config();
        if !nt_success(cfg.unload_status) {
            return cfg.unload_status;
        }
        if cfg.close_server_port_in_unload {
            let p = SERVER_PORT.swap(null_mut(), Ordering::SeqCst);
            if !p.is_null() {
                FltCloseCommunicationPort(p);
            }
        }
        if cfg.unregister_in_unload {
            FltUnregisterFilter(FILTER.load(Ordering::SeqCst));
        }
        STATUS_SUCCESS
    }
}

unsafe extern "system" fn on_connect(
    client_port: PFLT_PORT,
    _server_cookie: *mut c_void,
    context: *mut c_void,
    size: u32,
    cookie: *mut *mut c_void,
) -> NTSTATUS {
    // SAFETY: test-driver code; the model hands valid objects to callbacks, and
    // the arguments of each routine called here follow its documented contract.
    unsafe {
        let cfg = config();
        let ctx = if context.is_null() {
            None
        } else {
            Some(std::slice::from_raw_parts(context.cast::<u8>(), size as usize).to_vec())
        };
        let pid = PsGetCurrentProcessId() as usize as u32;
        if ctx.as_deref() == Some(b"gate".as_slice()) {
            // Hold the connect inside the callback until the test opens the gate.
            record(Seen::ConnectHeld);
            wait_for_gate();
        }
        if !nt_success(cfg.connect_status) {
            return cfg.connect_status;
        }
        let Some(slot) = CLIENT_PORTS.iter().position(|p| {
            p.compare_exchange(null_mut(), client_port, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        }) else {
            return STATUS_INSUFFICIENT_RESOURCES;
        };
        record(Seen::Connect {
            slot,
            pid,
            context: ctx,
        });
        *cookie = (slot + 1) as *mut c_void;
        STATUS_SUCCESS
    }
}

unsafe extern "system" fn on_disconnect(cookie: *mut c_void) {
    // SAFETY: test-driver code; the model hands valid objects to callbacks, and
    // the arguments of each routine called here follow its documented contract.
    unsafe {
        let slot = cookie as usize - 1;
        record(Seen::Disconnect {
            slot,
            pid: PsGetCurrentProcessId() as usize as u32,
        });
        if config().connect_in_disconnect {
            let r = connect_opts(PORT_NAME, 0, &[]);
            record(Seen::ConnectDuringUnload(r.err().unwrap_or(0)));
        }
        if config().close_in_disconnect {
            FltCloseClientPort(FILTER.load(Ordering::SeqCst), CLIENT_PORTS[slot].as_ptr());
        }
        if config().hold_in_disconnect {
            record(Seen::DisconnectHeld);
            wait_open(&DISCONNECT_GATE, &DISCONNECT_GATE_CV);
        }
    }
}

unsafe extern "system" fn message_notify(
    cookie: *mut c_void,
    input: *mut c_void,
    input_len: u32,
    output: *mut c_void,
    output_len: u32,
    ret: *mut u32,
) -> NTSTATUS {
    // SAFETY: test-driver code; the model hands valid objects to callbacks, and
    // the arguments of each routine called here follow its documented contract.
    unsafe {
        let slot = cookie as usize - 1;
        record(Seen::Notify {
            slot,
            len: input_len,
            tid: PsGetCurrentThreadId() as usize as u64,
            input_low: input as usize & 0xFFF,
            translated: fltsim::usercopy::is_translated(input as usize),
        });
        let mut cmd = [0u8; 5];
        let n = (input_len as usize).min(5);
        let st = PfCopyFromUser(cmd.as_mut_ptr().cast(), input, n);
        if !nt_success(st) {
            return st;
        }
        match cmd[0] {
            b'E' => {
                if output_len < input_len {
                    *ret = input_len;
                    return STATUS_BUFFER_TOO_SMALL;
                }
                let mut buf = vec![0u8; input_len as usize];
                let st = PfCopyFromUser(buf.as_mut_ptr().cast(), input, buf.len());
                if !nt_success(st) {
                    return st;
                }
                let st = PfCopyToUser(output, buf.as_ptr().cast(), buf.len());
                if !nt_success(st) {
                    return st;
                }
                *ret = input_len;
                STATUS_SUCCESS
            }
            b'S' => i32::from_le_bytes([cmd[1], cmd[2], cmd[3], cmd[4]]),
            b'W' => {
                wait_for_gate();
                STATUS_SUCCESS
            }
            b'D' => {
                // Wrong on purpose: a direct dereference of a user buffer.
                let b = std::ptr::read_volatile(input.cast::<u8>());
                std::hint::black_box(b);
                STATUS_SUCCESS
            }
            b'O' => {
                let mut b = [0u8; 4];
                PfCopyFromUser(
                    b.as_mut_ptr().cast(),
                    input.cast::<u8>().add(input_len as usize).cast(),
                    4,
                )
            }
            b'L' => {
                *ret = output_len + 10;
                STATUS_SUCCESS
            }
            _ => STATUS_INVALID_PARAMETER,
        }
    }
}

unsafe extern "system" fn pre_create(
    data: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    _ctx: *mut *mut c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    // SAFETY: test-driver code; the model hands valid objects to callbacks, and
    // the arguments of each routine called here follow its documented contract.
    unsafe {
        let cfg = config();
        let iopb = &*(*data).Iopb;
        let create = iopb.Parameters.Create;
        let fo = &*(*objects).FileObject;
        let mut info: *mut FLT_FILE_NAME_INFORMATION = null_mut();
        let mut st = FltGetFileNameInformation(
            data,
            FLT_FILE_NAME_NORMALIZED | FLT_FILE_NAME_QUERY_DEFAULT,
            &mut info,
        );
        if !nt_success(st) {
            st = FltGetFileNameInformation(
                data,
                FLT_FILE_NAME_OPENED | FLT_FILE_NAME_QUERY_DEFAULT,
                &mut info,
            );
        }
        let name = if nt_success(st) {
            us_to_string(&(*info).Name)
        } else {
            format!("<{st:#x}>")
        };
        if nt_success(st) && nt_success(FltParseFileNameInformation(info)) {
            let i = &*info;
            record(Seen::Parsed {
                volume: us_to_string(&i.Volume),
                parent: us_to_string(&i.ParentDir),
                final_component: us_to_string(&i.FinalComponent),
                extension: us_to_string(&i.Extension),
                stream: us_to_string(&i.Stream),
            });
        }
        let mut opened_info: *mut FLT_FILE_NAME_INFORMATION = null_mut();
        let opened = if nt_success(FltGetFileNameInformation(
            data,
            FLT_FILE_NAME_OPENED | FLT_FILE_NAME_QUERY_DEFAULT,
            &mut opened_info,
        )) {
            let s = us_to_string(&(*opened_info).Name);
            FltReleaseFileNameInformation(opened_info);
            s
        } else {
            String::new()
        };
        if nt_success(st) && cfg.release_names {
            FltReleaseFileNameInformation(info);
        }
        record(Seen::PreCreate {
            pid: PsGetCurrentProcessId() as usize as u32,
            requestor: FltGetRequestorProcessId(data),
            tid: PsGetThreadId((*data).Thread) as usize as u64,
            thread_tid: PsGetCurrentThreadId() as usize as u64,
            name: name.clone(),
            opened,
            flags: iopb.OperationFlags,
            data_flags: (*data).Flags,
            options: create.Options,
            access: (*create.SecurityContext).DesiredAccess,
            kernel: (*data).RequestorMode == KERNEL_MODE,
            volume_open: fo.Flags & FO_VOLUME_OPEN != 0,
            file_name: us_to_string(&fo.FileName),
            top_level_irp: IoGetTopLevelIrp() as usize,
            apcs_disabled: KeAreAllApcsDisabled() != 0,
        });
        match cfg.pre_create {
            PreCreate::Pass => FLT_PREOP_SUCCESS_WITH_CALLBACK,
            PreCreate::PassNoCallback => FLT_PREOP_SUCCESS_NO_CALLBACK,
            PreCreate::DenyContaining(s) if name.contains(&s) => {
                (*data).IoStatus.u.Status = STATUS_ACCESS_DENIED;
                (*data).IoStatus.Information = 0;
                FLT_PREOP_COMPLETE
            }
            PreCreate::DenyContaining(_) => FLT_PREOP_SUCCESS_NO_CALLBACK,
            PreCreate::Ask { timeout_100ns } => {
                let mut payload: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
                let mut reply = [0u8; 4];
                let mut reply_len = 4u32;
                let mut timeout = -timeout_100ns;
                let st = FltSendMessage(
                    FILTER.load(Ordering::SeqCst),
                    CLIENT_PORTS[0].as_ptr(),
                    payload.as_mut_ptr().cast(),
                    payload.len() as u32,
                    reply.as_mut_ptr().cast(),
                    &mut reply_len,
                    &mut timeout,
                );
                if st == STATUS_SUCCESS && reply_len == 4 && u32::from_le_bytes(reply) == 0 {
                    (*data).IoStatus.u.Status = STATUS_ACCESS_DENIED;
                    (*data).IoStatus.Information = 0;
                    return FLT_PREOP_COMPLETE;
                }
                FLT_PREOP_SUCCESS_NO_CALLBACK
            }
            PreCreate::Pend => {
                PENDED.store(data, Ordering::SeqCst);
                FLT_PREOP_PENDING
            }
        }
    }
}

unsafe extern "system" fn post_create(
    data: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    _ctx: *mut c_void,
    _flags: u32,
) -> FLT_POSTOP_CALLBACK_STATUS {
    // SAFETY: test-driver code; the model hands valid objects to callbacks, and
    // the arguments of each routine called here follow its documented contract.
    unsafe {
        let mut dir: BOOLEAN = 0;
        let st = FltIsDirectory((*objects).FileObject, (*objects).Instance, &mut dir);
        record(Seen::PostCreate {
            status: (*data).IoStatus.u.Status,
            is_dir: nt_success(st).then_some(dir != 0),
        });
        FLT_POSTOP_FINISHED_PROCESSING
    }
}

// ---------------------------------------------------------------- machine helpers

/// Boots a machine with the test filter configured as `cfg` (not loaded yet).
pub fn boot(cfg: Config) -> MachineGuard {
    let m = Machine::boot();
    *CONFIG.lock() = Some(cfg);
    SEEN.lock().clear();
    FILTER.store(null_mut(), Ordering::SeqCst);
    SERVER_PORT.store(null_mut(), Ordering::SeqCst);
    for p in &CLIENT_PORTS {
        p.store(null_mut(), Ordering::SeqCst);
    }
    *GATE.lock() = false;
    *DISCONNECT_GATE.lock() = false;
    m
}

/// Boots and loads the test filter.
pub fn boot_loaded(cfg: Config) -> MachineGuard {
    let m = boot(cfg);
    fltsim::load_driver(driver_entry).expect("DriverEntry");
    m
}

/// Boots under `readings` and loads the test filter.
pub fn boot_loaded_with(cfg: Config, readings: fltsim::Readings) -> MachineGuard {
    let m = boot(cfg);
    fltsim::readings::set(readings);
    fltsim::load_driver(driver_entry).expect("DriverEntry");
    m
}

/// Spawns a client process and enters it on this thread.
pub fn client(pid: u32, admin: bool) -> fltsim::process::ProcessGuard {
    fltsim::process::spawn(pid, "client.exe", admin);
    fltsim::process::enter(pid)
}

// ---------------------------------------------------------------- client helpers

pub fn connect_opts(name: &str, options: u32, ctx: &[u8]) -> Result<HANDLE, i32> {
    let w = wide(name);
    let mut h: HANDLE = null_mut();
    // SAFETY: FFI into the model with valid arguments.
    let hr = unsafe {
        fl::FilterConnectCommunicationPort(
            w.as_ptr(),
            options,
            if ctx.is_empty() {
                std::ptr::null()
            } else {
                ctx.as_ptr().cast()
            },
            ctx.len() as u16,
            std::ptr::null(),
            &mut h,
        )
    };
    if hr == 0 {
        Ok(h)
    } else {
        assert_eq!(
            h, INVALID_HANDLE_VALUE,
            "failed connect must return INVALID_HANDLE_VALUE"
        );
        Err(hr)
    }
}

pub fn connect(ctx: &[u8]) -> HANDLE {
    connect_opts(PORT_NAME, 0, ctx).expect("connect")
}

/// Synchronous FilterGetMessage into `buf`.
pub fn get_message(h: HANDLE, buf: &mut [u8]) -> i32 {
    // SAFETY: FFI into the model with valid arguments.
    unsafe { fl::FilterGetMessage(h, buf.as_mut_ptr().cast(), buf.len() as u32, null_mut()) }
}

pub fn header_of(buf: &[u8]) -> (u32, u64) {
    (
        u32::from_le_bytes(buf[0..4].try_into().unwrap()),
        u64::from_le_bytes(buf[8..16].try_into().unwrap()),
    )
}

pub fn reply(h: HANDLE, status: NTSTATUS, id: u64, payload: &[u8]) -> i32 {
    let mut buf = vec![0u8; 16];
    buf[0..4].copy_from_slice(&status.to_le_bytes());
    buf[8..16].copy_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(payload);
    // SAFETY: FFI into the model with valid arguments.
    unsafe { fl::FilterReplyMessage(h, buf.as_ptr().cast(), buf.len() as u32) }
}

pub fn send(h: HANDLE, input: &[u8], out: &mut [u8]) -> (i32, u32) {
    let mut n = 0u32;
    // SAFETY: FFI into the model with valid arguments.
    let hr = unsafe {
        fl::FilterSendMessage(
            h,
            if input.is_empty() {
                std::ptr::null()
            } else {
                input.as_ptr().cast()
            },
            input.len() as u32,
            if out.is_empty() {
                null_mut()
            } else {
                out.as_mut_ptr().cast()
            },
            out.len() as u32,
            &mut n,
        )
    };
    (hr, n)
}

pub fn close(h: HANDLE) -> bool {
    // SAFETY: FFI into the model with valid arguments.
    unsafe { windows_sys::Win32::Foundation::CloseHandle(h) != 0 }
}

/// Closes a port handle if the test panics while this guard is alive. Create it inside a
/// thread scope whose spawned threads block in `FilterGetMessage` on that handle: a
/// failed assertion on the scope's own thread then fails those gets (the close
/// disconnects), so the scope can join its threads and report the failure instead of
/// hanging.
pub struct ReleaseOnUnwind(pub HANDLE);

impl Drop for ReleaseOnUnwind {
    fn drop(&mut self) {
        if std::thread::panicking() {
            close(self.0);
        }
    }
}

/// `HRESULT_FROM_WIN32(ERROR_IO_PENDING)`: an overlapped request that waits.
pub const E_IO_PENDING: i32 = 0x8007_03E5_u32 as i32;

/// An overlapped `FilterGetMessage` (64-byte buffer) whose buffer and `OVERLAPPED` live on
/// the heap until it has completed: [`finish`](Self::finish) (or dropping it) cancels it if
/// it still waits and waits for its completion.
pub struct OverlappedGet {
    h: usize,
    /// What `FilterGetMessage` returned (`E_IO_PENDING` when it waits).
    pub hr: i32,
    buf: Box<[u8; 64]>,
    ov: Box<windows_sys::Win32::System::IO::OVERLAPPED>,
    done: bool,
}

impl OverlappedGet {
    /// Starts the get on `h`.
    pub fn start(h: HANDLE) -> Self {
        let mut buf = Box::new([0u8; 64]);
        let mut ov = Box::new(windows_sys::Win32::System::IO::OVERLAPPED::default());
        // SAFETY: FFI; the buffer and the OVERLAPPED are boxed and outlive the request
        // (`finish` or `drop` waits for its completion before freeing them).
        let hr = unsafe { fl::FilterGetMessage(h, buf.as_mut_ptr().cast(), 64, &mut *ov) };
        Self {
            h: h as usize,
            hr,
            buf,
            ov,
            done: hr != E_IO_PENDING,
        }
    }

    /// Cancels the get if it still waits, waits for its completion and returns its final
    /// status (`OVERLAPPED.Internal`: 0 when a message was delivered).
    pub fn finish(mut self) -> usize {
        self.complete();
        self.ov.Internal
    }

    fn complete(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let h = self.h as HANDLE;
        // SAFETY: FFI on our own pending OVERLAPPED.
        unsafe { windows_sys::Win32::System::IO::CancelIoEx(h, &*self.ov) };
        let mut n = 0u32;
        // SAFETY: as above; waits for the completion (delivery or cancel).
        unsafe { windows_sys::Win32::System::IO::GetOverlappedResult(h, &*self.ov, &mut n, 1) };
    }
}

impl Drop for OverlappedGet {
    fn drop(&mut self) {
        self.complete();
    }
}

/// A `POLL` (shortest relative timeout) send on slot 0 reaches a get that already waits
/// on `h` at once.
pub fn assert_poll_send_reaches_a_waiting_get(h: HANDLE) {
    let h = h as usize;
    std::thread::scope(|s| {
        let _release = ReleaseOnUnwind(h as _);
        let getter = s.spawn(move || get_message(h as _, &mut [0u8; 64]));
        wait_until("get queued", || fltsim::port::queued_requests() == 1);
        assert_eq!(kernel_send(0, b"y", None, POLL).status, STATUS_SUCCESS);
        assert_eq!(getter.join().unwrap(), 0);
    });
}

pub fn last_error() -> u32 {
    // SAFETY: FFI into the model with valid arguments.
    unsafe { windows_sys::Win32::Foundation::GetLastError() }
}

/// Kernel side: FltSendMessage to client slot `slot`.
pub struct KSend {
    pub status: NTSTATUS,
    pub reply: Vec<u8>,
    pub reply_len: u32,
}

/// `timeout`: None = wait forever, Some(t) = the raw NT timeout value.
pub fn kernel_send(
    slot: usize,
    payload: &[u8],
    reply_capacity: Option<u32>,
    timeout: Option<i64>,
) -> KSend {
    let mut payload = payload.to_vec();
    let mut reply = vec![0u8; reply_capacity.unwrap_or(0) as usize];
    let mut reply_len = reply_capacity.unwrap_or(0);
    let mut t = timeout.unwrap_or(0);
    // SAFETY: FFI into the model with valid arguments.
    let status = unsafe {
        FltSendMessage(
            FILTER.load(Ordering::SeqCst),
            CLIENT_PORTS[slot].as_ptr(),
            if payload.is_empty() {
                null_mut()
            } else {
                payload.as_mut_ptr().cast()
            },
            payload.len() as u32,
            if reply_capacity.is_some() {
                reply.as_mut_ptr().cast()
            } else {
                null_mut()
            },
            if reply_capacity.is_some() {
                &mut reply_len
            } else {
                null_mut()
            },
            if timeout.is_some() {
                &mut t
            } else {
                null_mut()
            },
        )
    };
    KSend {
        status,
        reply,
        reply_len,
    }
}

/// A relative NT timeout of `ms` milliseconds.
pub const fn rel_ms(ms: i64) -> Option<i64> {
    Some(-ms * 10_000)
}

/// The shortest non-zero relative timeout (100 ns): unambiguously "deliver only if a
/// FilterGetMessage is already pending", unlike a zero timeout — but with none pending it
/// lasts until the next clock tick under the default `timer_expiry` reading.
pub const POLL: Option<i64> = Some(-1);

/// The timeout of sends that are expected to complete: long enough never to expire in
/// a passing test, bounded so that a failing assertion on another thread (which never
/// gets or replies) cannot leave the sender — and the test's thread scope — waiting
/// forever. Only tests about the NULL timeout itself wait without a bound.
pub const BOUNDED: Option<i64> = rel_ms(30_000);

/// Waits (bounded) until `cond` holds.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether a FilterGetMessage is queued on the slot's connection (waits, bounded).
pub fn hr(v: u32) -> i32 {
    v as i32
}
