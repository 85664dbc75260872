//! The create path: [`create`] performs a file create on the calling thread the way the
//! I/O manager and the Filter Manager present it to a minifilter — a real
//! `FLT_CALLBACK_DATA`, `FLT_IO_PARAMETER_BLOCK`, `FLT_PARAMETERS.Create`,
//! `IO_SECURITY_CONTEXT`, `FILE_OBJECT` and `FLT_RELATED_OBJECTS` — calls the filter's
//! pre-create (in the requestor's process and thread context, at PASSIVE_LEVEL) and,
//! when asked for, its post-create, and returns the status the caller would see.

use crate::image::win64::driver_call;
use crate::kernel::context;
use crate::kernel::irql::{self, PASSIVE_LEVEL};
use crate::kernel::thread;
use crate::registration::{instance_on, related_objects};
use crate::verifier::{self, rule};
use crate::{filter, names, process, volumes};
use parking_lot::Mutex;
use portfilter_bindings::{
    BOOLEAN, FILE_ATTRIBUTE_NORMAL, FILE_DIRECTORY_FILE, FILE_OBJECT, FILE_OPEN, FILE_SHARE_READ,
    FILE_SHARE_WRITE, FLT_CALLBACK_DATA, FLT_IO_PARAMETER_BLOCK, FLT_PARAMETERS,
    FLT_PARAMETERS_CREATE, FLT_POSTOP_FINISHED_PROCESSING, FLT_PREOP_COMPLETE, FLT_PREOP_PENDING,
    FLT_PREOP_SUCCESS_NO_CALLBACK, FLT_PREOP_SUCCESS_WITH_CALLBACK, FLT_PREOP_SYNCHRONIZE,
    FLTFL_CALLBACK_DATA_IRP_OPERATION, FO_VOLUME_OPEN, IO_SECURITY_CONTEXT, IO_STATUS_BLOCK,
    IO_STATUS_BLOCK_0, IO_TYPE_FILE, IRP_MJ_CREATE, KPROCESSOR_MODE, NTSTATUS, PETHREAD,
    PFLT_INSTANCE, SL_CASE_SENSITIVE, SL_FORCE_ACCESS_CHECK, SL_OPEN_PAGING_FILE,
    SL_OPEN_TARGET_DIRECTORY, STATUS_CANCELLED, STATUS_INVALID_PARAMETER, STATUS_PENDING,
    STATUS_SUCCESS, UNICODE_STRING, USER_MODE,
};
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};

/// `STATUS_OBJECT_PATH_NOT_FOUND`: the path names no simulated volume.
pub const STATUS_OBJECT_PATH_NOT_FOUND: NTSTATUS = 0xC000_003A_u32.cast_signed();
/// `FILE_OPENED`, the default `IoStatus.Information` of a successful open.
pub const FILE_OPENED: usize = 1;
/// `FILE_READ_DATA | FILE_READ_EA | FILE_READ_ATTRIBUTES | READ_CONTROL | SYNCHRONIZE`.
pub const FILE_GENERIC_READ: u32 = 0x0012_0089;
/// `FILE_SYNCHRONOUS_IO_NONALERT`.
pub const FILE_SYNCHRONOUS_IO_NONALERT: u32 = 0x0000_0020;

/// A file create to simulate (builder style; [`CreateRequest::new`] has sensible
/// defaults: a user-mode open of an existing file for reading by process 1000).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    /// `C:\dir\file` (mapped through the volume table), `\??\C:\...`, or an NT path
    /// `\Device\HarddiskVolume3\...`.
    pub path: String,
    /// The normalized (long-name) form, if it differs from `path`.
    pub long_path: Option<String>,
    /// Requestor process id (`FltGetRequestorProcessId`, `PsGetCurrentProcessId`).
    pub pid: u32,
    /// Requestor thread id (`PsGetThreadId(Data->Thread)`, `PsGetCurrentThreadId`);
    /// `None`: the calling thread's simulated id.
    pub tid: Option<u64>,
    /// `Data->RequestorMode`.
    pub requestor_mode: KPROCESSOR_MODE,
    /// `SecurityContext->DesiredAccess`.
    pub desired_access: u32,
    /// `Parameters.Create.ShareAccess`.
    pub share_access: u16,
    /// Disposition (`FILE_OPEN`, `FILE_CREATE`, …).
    pub disposition: u32,
    /// Create options (low 24 bits).
    pub options: u32,
    /// File attributes.
    pub attributes: u16,
    /// `SL_OPEN_PAGING_FILE`.
    pub paging_file: bool,
    /// `FO_VOLUME_OPEN` (the path is only a volume; the file name is empty).
    pub volume_open: bool,
    /// `SL_OPEN_TARGET_DIRECTORY`.
    pub target_directory: bool,
    /// `SL_CASE_SENSITIVE`.
    pub case_sensitive: bool,
    /// `SL_FORCE_ACCESS_CHECK`: a kernel-mode caller asks for the access check a
    /// user-mode request gets (e.g. the SMB server opening a file for a remote user).
    pub force_access_check: bool,
    /// The requestor thread's `TopLevelIrp` while the callbacks run (0: none; else a
    /// file-system IRP or an `FSRTL_*_TOP_LEVEL_IRP` value): the thread holds
    /// file-system resources (a create from inside a file system, the cache manager or
    /// the modified page writer).
    pub top_level_irp: usize,
    /// The requestor thread is inside a guarded region (all APCs disabled) while the
    /// callbacks run.
    pub apcs_disabled: bool,
    /// What the file system returns when the filter lets the create through.
    pub fs_status: NTSTATUS,
    /// `IoStatus.Information` the file system returns (`FILE_OPENED`, `FILE_CREATED`, …).
    pub fs_information: usize,
    /// Every `FltGetFileNameInformation` fails with this status.
    pub name_failure: Option<NTSTATUS>,
    /// Only normalized-name queries fail with this status.
    pub normalized_failure: Option<NTSTATUS>,
}

impl CreateRequest {
    /// A user-mode `FILE_OPEN` of `path` for `FILE_GENERIC_READ`, share read|write,
    /// by process 1000, that the file system completes with `STATUS_SUCCESS`.
    #[must_use]
    pub fn new(path: &str) -> Self {
        Self {
            path: path.to_owned(),
            long_path: None,
            pid: 1000,
            tid: None,
            requestor_mode: USER_MODE,
            desired_access: FILE_GENERIC_READ,
            share_access: FILE_SHARE_READ | FILE_SHARE_WRITE,
            disposition: FILE_OPEN,
            options: FILE_SYNCHRONOUS_IO_NONALERT,
            attributes: u16::try_from(FILE_ATTRIBUTE_NORMAL).unwrap_or(0),
            paging_file: false,
            volume_open: false,
            target_directory: false,
            case_sensitive: false,
            force_access_check: false,
            top_level_irp: 0,
            apcs_disabled: false,
            fs_status: STATUS_SUCCESS,
            fs_information: FILE_OPENED,
            name_failure: None,
            normalized_failure: None,
        }
    }
    /// Requestor process.
    #[must_use]
    pub fn pid(mut self, pid: u32) -> Self {
        self.pid = pid;
        self
    }
    /// Requestor thread id.
    #[must_use]
    pub fn tid(mut self, tid: u64) -> Self {
        self.tid = Some(tid);
        self
    }
    /// A kernel-mode requestor.
    #[must_use]
    pub fn kernel_mode(mut self) -> Self {
        self.requestor_mode = portfilter_bindings::KERNEL_MODE;
        self
    }
    /// Desired access.
    #[must_use]
    pub fn access(mut self, access: u32) -> Self {
        self.desired_access = access;
        self
    }
    /// Share access.
    #[must_use]
    pub fn share(mut self, share: u16) -> Self {
        self.share_access = share;
        self
    }
    /// Disposition.
    #[must_use]
    pub fn disposition(mut self, disposition: u32) -> Self {
        self.disposition = disposition;
        self
    }
    /// Create options (replaces them).
    #[must_use]
    pub fn options(mut self, options: u32) -> Self {
        self.options = options;
        self
    }
    /// File attributes.
    #[must_use]
    pub fn attributes(mut self, attributes: u16) -> Self {
        self.attributes = attributes;
        self
    }
    /// A directory open (`FILE_DIRECTORY_FILE`).
    #[must_use]
    pub fn directory(mut self) -> Self {
        self.options |= FILE_DIRECTORY_FILE;
        self
    }
    /// A paging file open (`SL_OPEN_PAGING_FILE`).
    #[must_use]
    pub fn paging_file(mut self) -> Self {
        self.paging_file = true;
        self
    }
    /// A volume open (`FO_VOLUME_OPEN`).
    #[must_use]
    pub fn volume_open(mut self) -> Self {
        self.volume_open = true;
        self
    }
    /// `SL_OPEN_TARGET_DIRECTORY` (rename target).
    #[must_use]
    pub fn target_directory(mut self) -> Self {
        self.target_directory = true;
        self
    }
    /// `SL_FORCE_ACCESS_CHECK` (a kernel-mode request made on behalf of a user).
    #[must_use]
    pub fn force_access_check(mut self) -> Self {
        self.force_access_check = true;
        self
    }
    /// Issued by a thread whose `TopLevelIrp` is set (`FSRTL_CACHE_TOP_LEVEL_IRP`: the
    /// cache manager is the top-level component, e.g. a create from a write-behind).
    #[must_use]
    pub fn top_level_irp(self) -> Self {
        self.top_level_irp_value(crate::kernel::context::FSRTL_CACHE_TOP_LEVEL_IRP)
    }
    /// Issued by a thread whose `TopLevelIrp` is `value` (0: none).
    #[must_use]
    pub fn top_level_irp_value(mut self, value: usize) -> Self {
        self.top_level_irp = value;
        self
    }
    /// Issued by a thread inside a guarded region (all APCs disabled).
    #[must_use]
    pub fn apcs_disabled(mut self) -> Self {
        self.apcs_disabled = true;
        self
    }
    /// What the file system answers when the create reaches it.
    #[must_use]
    pub fn fs_result(mut self, status: NTSTATUS, information: usize) -> Self {
        self.fs_status = status;
        self.fs_information = information;
        self
    }
    /// The normalized (long) name, e.g. `C:\Users\pedro.gusmao\x.txt` for
    /// `C:\Users\PEDRO~1.GUS\x.txt`.
    #[must_use]
    pub fn long_name(mut self, path: &str) -> Self {
        self.long_path = Some(path.to_owned());
        self
    }
    /// Every name query fails with `status`.
    #[must_use]
    pub fn fail_names(mut self, status: NTSTATUS) -> Self {
        self.name_failure = Some(status);
        self
    }
    /// Normalized name queries fail with `status` (opened names still work).
    #[must_use]
    pub fn fail_normalized_name(mut self, status: NTSTATUS) -> Self {
        self.normalized_failure = Some(status);
        self
    }
}

/// What a simulated create ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateOutcome {
    /// The status the caller sees.
    pub status: NTSTATUS,
    /// `IoStatus.Information`.
    pub information: usize,
    /// Whether the filter's callbacks saw the create (an instance on the volume and a
    /// create registration).
    pub filtered: bool,
    /// What the pre-create callback returned, if it ran.
    pub pre_status: Option<i32>,
    /// Whether the post-create callback ran.
    pub post_called: bool,
}

/// What the name routines need to know about a create in progress.
#[derive(Debug, Clone)]
pub(crate) struct OpNames {
    pub id: u64,
    pub normalized: String,
    pub opened: String,
    pub volume: String,
    pub name_failure: Option<NTSTATUS>,
    pub normalized_failure: Option<NTSTATUS>,
}

#[derive(Debug)]
struct Op {
    names: OpNames,
    pid: u32,
    file_object: usize,
    ethread: usize,
    tid: u64,
    is_directory: bool,
    opened: bool,
}

static OPS: Mutex<BTreeMap<usize, Op>> = Mutex::new(BTreeMap::new());
static NEXT_OP: AtomicU64 = AtomicU64::new(1);

pub(crate) fn reset() {
    OPS.lock().clear();
}

pub(crate) fn op_names(data: *mut FLT_CALLBACK_DATA) -> Option<OpNames> {
    OPS.lock().get(&(data as usize)).map(|o| o.names.clone())
}

pub(crate) fn thread_id_of(thread: PETHREAD) -> Option<u64> {
    OPS.lock()
        .values()
        .find(|o| o.ethread == thread as usize)
        .map(|o| o.tid)
}

/// Splits a path into its volume and the path inside it.
fn resolve(path: &str) -> Option<(std::sync::Arc<volumes::Volume>, String)> {
    let p = path.strip_prefix(r"\??\").unwrap_or(path);
    let bytes = p.as_bytes();
    if bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
        let rest = &p[2..];
        if !rest.is_empty() && !rest.starts_with('\\') {
            return None;
        }
        return volumes::by_letter(bytes[0] as char).map(|v| (v, rest.to_owned()));
    }
    volumes::by_nt_path(p)
}

fn not_filtered(status: NTSTATUS, information: usize) -> CreateOutcome {
    CreateOutcome {
        status,
        information,
        filtered: false,
        pre_status: None,
        post_called: false,
    }
}

fn io_status(status: NTSTATUS, information: usize) -> IO_STATUS_BLOCK {
    let mut s = IO_STATUS_BLOCK::ZERO;
    s.u = IO_STATUS_BLOCK_0 {
        Pointer: std::ptr::null_mut(),
    };
    s.u.Status = status;
    s.Information = information;
    s
}

/// Performs a file create on the calling thread (see the module documentation).
#[must_use]
#[allow(clippy::too_many_lines)]
pub fn create(req: &CreateRequest) -> CreateOutcome {
    let Some((volume, rest)) = resolve(&req.path) else {
        return not_filtered(STATUS_OBJECT_PATH_NOT_FOUND, 0);
    };
    let rest = if req.volume_open { String::new() } else { rest };
    let long_rest = req
        .long_path
        .as_deref()
        .and_then(resolve)
        .map_or_else(|| rest.clone(), |(_, r)| r);
    let fs = (req.fs_status, req.fs_information);
    let Some(f) = filter::current() else {
        return not_filtered(fs.0, fs.1);
    };
    let (Some(instance), Some(op)) = (instance_on(&f, &volume), f.operation(IRP_MJ_CREATE)) else {
        return not_filtered(fs.0, fs.1);
    };
    let Some(_running) = f.enter_callback() else {
        return not_filtered(fs.0, fs.1);
    };

    // The objects, boxed so their addresses stay put while the driver holds them.
    let mut file_name: Vec<u16> = rest.encode_utf16().collect();
    // SAFETY: FILE_OBJECT is plain data (integers, pointers, KEVENT words): all-zero is valid.
    let mut file_object: Box<FILE_OBJECT> = Box::new(unsafe { std::mem::zeroed() });
    file_object.Type = IO_TYPE_FILE;
    file_object.Size = i16::try_from(size_of::<FILE_OBJECT>()).unwrap_or(i16::MAX);
    file_object.DeviceObject = std::sync::Arc::as_ptr(&volume).cast_mut().cast();
    let name_bytes = u16::try_from(file_name.len() * 2).unwrap_or(0xFFFE);
    file_object.FileName = if file_name.is_empty() {
        UNICODE_STRING::EMPTY
    } else {
        UNICODE_STRING {
            Length: name_bytes,
            MaximumLength: name_bytes,
            Buffer: file_name.as_mut_ptr(),
        }
    };
    if req.volume_open {
        file_object.Flags |= FO_VOLUME_OPEN;
    }
    let options = req.options;
    let mut security = Box::new(IO_SECURITY_CONTEXT {
        SecurityQos: std::ptr::null_mut(),
        AccessState: std::ptr::null_mut(),
        DesiredAccess: req.desired_access,
        FullCreateOptions: options,
    });
    let mut operation_flags = 0u8;
    if req.paging_file {
        operation_flags |= SL_OPEN_PAGING_FILE;
    }
    if req.target_directory {
        operation_flags |= SL_OPEN_TARGET_DIRECTORY;
    }
    if req.case_sensitive {
        operation_flags |= SL_CASE_SENSITIVE;
    }
    if req.force_access_check {
        operation_flags |= SL_FORCE_ACCESS_CHECK;
    }
    let instance_ptr: PFLT_INSTANCE = std::sync::Arc::as_ptr(&instance).cast_mut().cast();
    let mut iopb = Box::new(FLT_IO_PARAMETER_BLOCK {
        IrpFlags: 0,
        MajorFunction: IRP_MJ_CREATE,
        MinorFunction: 0,
        OperationFlags: operation_flags,
        Reserved: 0,
        TargetFileObject: &raw mut *file_object,
        TargetInstance: instance_ptr,
        Parameters: FLT_PARAMETERS {
            Create: FLT_PARAMETERS_CREATE {
                SecurityContext: &raw mut *security,
                Options: (req.disposition << 24) | (options & 0x00FF_FFFF),
                _pad0: 0,
                FileAttributes: req.attributes,
                ShareAccess: req.share_access,
                _pad1: 0,
                EaLength: 0,
                _pad2: 0,
                EaBuffer: std::ptr::null_mut(),
                AllocationSize: 0,
            },
        },
    });
    let mut ethread = Box::new([0u64; 8]);
    let tid = req.tid.unwrap_or_else(thread::current_thread_id);
    // SAFETY: FLT_CALLBACK_DATA is plain data (integers, pointers, unions of them).
    let mut data: Box<FLT_CALLBACK_DATA> = Box::new(unsafe { std::mem::zeroed() });
    data.Flags = FLTFL_CALLBACK_DATA_IRP_OPERATION;
    data.Thread = ethread.as_mut_ptr().cast();
    data.Iopb = &raw mut *iopb;
    data.RequestorMode = req.requestor_mode;
    let data_ptr: *mut FLT_CALLBACK_DATA = &raw mut *data;
    let mut objects = related_objects(&f, &instance);
    objects.FileObject = &raw mut *file_object;

    let id = NEXT_OP.fetch_add(1, Ordering::Relaxed);
    OPS.lock().insert(
        data_ptr as usize,
        Op {
            names: OpNames {
                id,
                normalized: format!("{}{}", volume.device, long_rest),
                opened: format!("{}{}", volume.device, rest),
                volume: volume.device.clone(),
                name_failure: req.name_failure,
                normalized_failure: req.normalized_failure,
            },
            pid: req.pid,
            file_object: &raw const *file_object as usize,
            ethread: ethread.as_ptr() as usize,
            tid,
            is_directory: req.options & FILE_DIRECTORY_FILE != 0,
            opened: false,
        },
    );

    let outcome = {
        let _process = process::enter_unchecked(req.pid);
        let _thread = thread::override_thread_id(tid);
        let _irql = irql::raise(PASSIVE_LEVEL);
        let _top_level = context::set_top_level_irp(req.top_level_irp);
        let _guarded = req.apcs_disabled.then(context::enter_guarded_region);
        let mut completion_context: *mut c_void = std::ptr::null_mut();
        crate::pended::begin(data_ptr, tid, &req.path);
        let pre_status = op.pre.map(|pre| {
            // SAFETY: the driver's pre-create with objects valid for the call.
            unsafe {
                driver_call(
                    pre,
                    (data_ptr, &raw const objects, &raw mut completion_context),
                )
            }
        });
        if context::critical_regions() != 0 {
            verifier::report(rule::CRITICAL_REGION_UNBALANCED, req.path.clone());
        }
        // A pended create: this thread waits until the driver completes it; the
        // completion's status then decides as the pre-create's would have.
        let effective = if pre_status == Some(FLT_PREOP_PENDING) {
            match crate::pended::wait_completed(data_ptr) {
                Some(status) => Some(status),
                None => {
                    data.IoStatus = io_status(STATUS_CANCELLED, 0);
                    Some(FLT_PREOP_COMPLETE)
                }
            }
        } else {
            crate::pended::end_not_pended(data_ptr, pre_status);
            pre_status
        };
        let mut post_called = false;
        let pass = |data: &mut FLT_CALLBACK_DATA| data.IoStatus = io_status(fs.0, fs.1);
        match effective {
            Some(FLT_PREOP_COMPLETE) => {
                // SAFETY: the status member of the union the driver set.
                let status = unsafe { data.IoStatus.u.Status };
                if status == STATUS_PENDING {
                    verifier::report(rule::COMPLETE_WITH_PENDING, req.path.clone());
                }
            }
            None | Some(FLT_PREOP_SUCCESS_WITH_CALLBACK | FLT_PREOP_SYNCHRONIZE) => {
                pass(&mut data);
                if let Some(post) = op.post {
                    if let Some(o) = OPS.lock().get_mut(&(data_ptr as usize)) {
                        o.opened = true;
                    }
                    // SAFETY: the driver's post-create with objects valid for the call.
                    let s = unsafe {
                        driver_call(post, (data_ptr, &raw const objects, completion_context, 0))
                    };
                    post_called = true;
                    if s != FLT_POSTOP_FINISHED_PROCESSING {
                        verifier::report(
                            rule::BAD_PREOP_STATUS,
                            format!("post-create returned {s}"),
                        );
                    }
                }
            }
            Some(FLT_PREOP_SUCCESS_NO_CALLBACK) => pass(&mut data),
            Some(other) => {
                verifier::report(
                    rule::BAD_PREOP_STATUS,
                    format!(
                        "pre-create returned {other} (only SUCCESS_*, SYNCHRONIZE, COMPLETE are modelled)"
                    ),
                );
                pass(&mut data);
            }
        }
        CreateOutcome {
            // SAFETY: the status member of the union (set by us or the driver).
            status: unsafe { data.IoStatus.u.Status },
            information: data.IoStatus.Information,
            filtered: true,
            pre_status,
            post_called,
        }
    };
    OPS.lock().remove(&(data_ptr as usize));
    names::check_operation_end(id);
    drop((file_name, security, iopb, ethread));
    outcome
}

/// `FltGetRequestorProcessId`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "system" fn FltGetRequestorProcessId(callback_data: *mut FLT_CALLBACK_DATA) -> u32 {
    let pid = OPS.lock().get(&(callback_data as usize)).map(|o| o.pid);
    match pid {
        Some(pid) => pid,
        None => {
            verifier::report(
                rule::INVALID_OBJECT,
                format!("FltGetRequestorProcessId({callback_data:p})"),
            );
            0
        }
    }
}

/// `FltIsDirectory`: valid once the file is open (post-create); before that the model
/// answers `STATUS_INVALID_PARAMETER` [inf].
///
/// # Safety
/// `is_directory` is writable.
#[inline(never)]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltIsDirectory(
    file_object: *mut FILE_OBJECT,
    _instance: PFLT_INSTANCE,
    is_directory: *mut BOOLEAN,
) -> NTSTATUS {
    if is_directory.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let answer = OPS
        .lock()
        .values()
        .find(|o| o.file_object == file_object as usize)
        .map(|o| (o.opened, o.is_directory));
    match answer {
        Some((true, dir)) => {
            // SAFETY: non-null, writable per the contract.
            unsafe { is_directory.write(BOOLEAN::from(dir)) };
            STATUS_SUCCESS
        }
        _ => STATUS_INVALID_PARAMETER,
    }
}
