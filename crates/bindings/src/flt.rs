//! Filter Manager structures (`fltkernel.h`, x64) and callback signatures.

use crate::io::{FILE_OBJECT, IO_SECURITY_CONTEXT};
use crate::ntdef::{
    IO_STATUS_BLOCK, KPROCESSOR_MODE, LARGE_INTEGER, LIST_ENTRY, NTSTATUS, PETHREAD, UNICODE_STRING,
};
use core::ffi::c_void;
use core::mem::{offset_of, size_of};

/// `PFLT_FILTER` (opaque).
pub type PFLT_FILTER = *mut c_void;
/// `PFLT_PORT` (opaque).
pub type PFLT_PORT = *mut c_void;
/// `PFLT_INSTANCE` (opaque).
pub type PFLT_INSTANCE = *mut c_void;
/// `PFLT_VOLUME` (opaque).
pub type PFLT_VOLUME = *mut c_void;

/// `FLT_PREOP_CALLBACK_STATUS`.
pub type FLT_PREOP_CALLBACK_STATUS = i32;
/// Continue, and call the post-operation callback.
pub const FLT_PREOP_SUCCESS_WITH_CALLBACK: FLT_PREOP_CALLBACK_STATUS = 0;
/// Continue, no post-operation callback.
pub const FLT_PREOP_SUCCESS_NO_CALLBACK: FLT_PREOP_CALLBACK_STATUS = 1;
/// The filter will complete or resume the operation later.
pub const FLT_PREOP_PENDING: FLT_PREOP_CALLBACK_STATUS = 2;
/// Disallow the fast I/O path.
pub const FLT_PREOP_DISALLOW_FASTIO: FLT_PREOP_CALLBACK_STATUS = 3;
/// The filter completed the operation: `IoStatus` holds the result.
pub const FLT_PREOP_COMPLETE: FLT_PREOP_CALLBACK_STATUS = 4;
/// Call the post-operation callback synchronously.
pub const FLT_PREOP_SYNCHRONIZE: FLT_PREOP_CALLBACK_STATUS = 5;

/// `FLT_POSTOP_CALLBACK_STATUS`.
pub type FLT_POSTOP_CALLBACK_STATUS = i32;
/// Post-operation processing is finished.
pub const FLT_POSTOP_FINISHED_PROCESSING: FLT_POSTOP_CALLBACK_STATUS = 0;

/// `FLTFL_CALLBACK_DATA_IRP_OPERATION`: the operation is IRP-based.
pub const FLTFL_CALLBACK_DATA_IRP_OPERATION: u32 = 0x0000_0001;
/// `FLTFL_CALLBACK_DATA_FAST_IO_OPERATION`: the operation is a fast I/O.
pub const FLTFL_CALLBACK_DATA_FAST_IO_OPERATION: u32 = 0x0000_0002;
/// `FLTFL_POST_OPERATION_DRAINING`: the instance is being torn down.
pub const FLTFL_POST_OPERATION_DRAINING: u32 = 0x0000_0001;
/// `FLTFL_FILTER_UNLOAD_MANDATORY`: the unload cannot be refused.
pub const FLTFL_FILTER_UNLOAD_MANDATORY: u32 = 0x0000_0001;

/// `FLT_REGISTRATION_VERSION_0203` (Windows 8 and later).
pub const FLT_REGISTRATION_VERSION: u16 = 0x0203;

/// `FLT_FILE_NAME_NORMALIZED`.
pub const FLT_FILE_NAME_NORMALIZED: u32 = 0x01;
/// `FLT_FILE_NAME_OPENED`.
pub const FLT_FILE_NAME_OPENED: u32 = 0x02;
/// `FLT_FILE_NAME_SHORT`.
pub const FLT_FILE_NAME_SHORT: u32 = 0x03;
/// `FLT_FILE_NAME_QUERY_DEFAULT`.
pub const FLT_FILE_NAME_QUERY_DEFAULT: u32 = 0x0100;
/// `FLT_FILE_NAME_QUERY_CACHE_ONLY`.
pub const FLT_FILE_NAME_QUERY_CACHE_ONLY: u32 = 0x0200;
/// `FLT_FILE_NAME_QUERY_FILESYSTEM_ONLY`.
pub const FLT_FILE_NAME_QUERY_FILESYSTEM_ONLY: u32 = 0x0300;
/// `FLT_FILE_NAME_QUERY_ALWAYS_ALLOW_CACHE_LOOKUP`.
pub const FLT_FILE_NAME_QUERY_ALWAYS_ALLOW_CACHE_LOOKUP: u32 = 0x0400;

/// `FLT_FILESYSTEM_TYPE` value for NTFS (the enum runs `FLT_FSTYPE_UNKNOWN` 0, `RAW` 1,
/// `NTFS` 2, `FAT` 3, …).
pub const FLT_FSTYPE_NTFS: i32 = 2;
/// `FILE_DEVICE_DISK_FILE_SYSTEM`.
pub const FILE_DEVICE_DISK_FILE_SYSTEM: u32 = 0x0000_0008;
/// `FILE_DEVICE_NETWORK_FILE_SYSTEM`.
pub const FILE_DEVICE_NETWORK_FILE_SYSTEM: u32 = 0x0000_0014;

/// `FLT_PARAMETERS`: a 48-byte union on x64 (its largest members, e.g. `Others` with six
/// pointer-sized arguments, are 48 bytes). Only `Create` is typed; the rest is raw.
#[repr(C)]
#[derive(Clone, Copy)]
pub union FLT_PARAMETERS {
    /// `Parameters.Create`, laid out with its `POINTER_ALIGNMENT` members.
    pub Create: FLT_PARAMETERS_CREATE,
    /// `Parameters.Others` (`Argument1`..`Argument6`).
    pub Others: [*mut c_void; 6],
}
const _: () = assert!(size_of::<FLT_PARAMETERS>() == 48);

/// `Parameters.Create` exactly as fltkernel.h lays it out on x64 (48 bytes), with the
/// padding that `POINTER_ALIGNMENT` inserts made explicit.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FLT_PARAMETERS_CREATE {
    /// Security context: desired access lives here.
    pub SecurityContext: *mut IO_SECURITY_CONTEXT,
    /// Disposition in the high 8 bits, create options in the low 24.
    pub Options: u32,
    /// Padding before `FileAttributes` (`POINTER_ALIGNMENT`).
    pub _pad0: u32,
    /// File attributes.
    pub FileAttributes: u16,
    /// Share access.
    pub ShareAccess: u16,
    /// Padding before `EaLength` (`POINTER_ALIGNMENT`).
    pub _pad1: u32,
    /// EA buffer length.
    pub EaLength: u32,
    /// Padding after `EaLength`.
    pub _pad2: u32,
    /// EA buffer.
    pub EaBuffer: *mut c_void,
    /// Initial allocation size.
    pub AllocationSize: LARGE_INTEGER,
}
const _: () = assert!(size_of::<FLT_PARAMETERS_CREATE>() == 48);
const _: () = assert!(offset_of!(FLT_PARAMETERS_CREATE, SecurityContext) == 0);
const _: () = assert!(offset_of!(FLT_PARAMETERS_CREATE, Options) == 8);
const _: () = assert!(offset_of!(FLT_PARAMETERS_CREATE, FileAttributes) == 16);
const _: () = assert!(offset_of!(FLT_PARAMETERS_CREATE, ShareAccess) == 18);
const _: () = assert!(offset_of!(FLT_PARAMETERS_CREATE, EaLength) == 24);
const _: () = assert!(offset_of!(FLT_PARAMETERS_CREATE, EaBuffer) == 32);
const _: () = assert!(offset_of!(FLT_PARAMETERS_CREATE, AllocationSize) == 40);

impl FLT_PARAMETERS_CREATE {
    /// The create disposition (`FILE_OPEN`, `FILE_CREATE`, …): the high 8 bits of `Options`.
    #[must_use]
    pub const fn disposition(&self) -> u32 {
        self.Options >> 24
    }
    /// The create options: the low 24 bits of `Options`.
    #[must_use]
    pub const fn create_options(&self) -> u32 {
        self.Options & crate::io::FILE_VALID_OPTION_FLAGS
    }
}

/// `FLT_IO_PARAMETER_BLOCK`.
#[repr(C)]
pub struct FLT_IO_PARAMETER_BLOCK {
    /// IRP flags.
    pub IrpFlags: u32,
    /// `IRP_MJ_*`.
    pub MajorFunction: u8,
    /// `IRP_MN_*`.
    pub MinorFunction: u8,
    /// `SL_*` flags.
    pub OperationFlags: u8,
    /// Reserved.
    pub Reserved: u8,
    /// The file object of the operation.
    pub TargetFileObject: *mut FILE_OBJECT,
    /// The instance the operation is sent to.
    pub TargetInstance: PFLT_INSTANCE,
    /// Operation-specific parameters.
    pub Parameters: FLT_PARAMETERS,
}
const _: () = assert!(size_of::<FLT_IO_PARAMETER_BLOCK>() == 72);
const _: () = assert!(offset_of!(FLT_IO_PARAMETER_BLOCK, IrpFlags) == 0);
const _: () = assert!(offset_of!(FLT_IO_PARAMETER_BLOCK, MajorFunction) == 4);
const _: () = assert!(offset_of!(FLT_IO_PARAMETER_BLOCK, MinorFunction) == 5);
const _: () = assert!(offset_of!(FLT_IO_PARAMETER_BLOCK, OperationFlags) == 6);
const _: () = assert!(offset_of!(FLT_IO_PARAMETER_BLOCK, TargetFileObject) == 8);
const _: () = assert!(offset_of!(FLT_IO_PARAMETER_BLOCK, TargetInstance) == 16);
const _: () = assert!(offset_of!(FLT_IO_PARAMETER_BLOCK, Parameters) == 24);

/// `FLT_CALLBACK_DATA`.
#[repr(C)]
pub struct FLT_CALLBACK_DATA {
    /// `FLTFL_CALLBACK_DATA_*`.
    pub Flags: u32,
    /// The thread that started the operation.
    pub Thread: PETHREAD,
    /// The parameter block.
    pub Iopb: *mut FLT_IO_PARAMETER_BLOCK,
    /// Status of the operation; set it when returning `FLT_PREOP_COMPLETE`.
    pub IoStatus: IO_STATUS_BLOCK,
    /// Reparse tag data.
    pub TagData: *mut c_void,
    /// `QueueLinks`/`QueueContext` or `FilterContext[4]`.
    pub QueueLinks: LIST_ENTRY,
    /// Second half of the queue/filter context union.
    pub QueueContext: [*mut c_void; 2],
    /// Kernel or user mode origin of the request.
    pub RequestorMode: KPROCESSOR_MODE,
}
const _: () = assert!(size_of::<FLT_CALLBACK_DATA>() == 88);
const _: () = assert!(offset_of!(FLT_CALLBACK_DATA, Flags) == 0);
const _: () = assert!(offset_of!(FLT_CALLBACK_DATA, Thread) == 8);
const _: () = assert!(offset_of!(FLT_CALLBACK_DATA, Iopb) == 16);
const _: () = assert!(offset_of!(FLT_CALLBACK_DATA, IoStatus) == 24);
const _: () = assert!(offset_of!(FLT_CALLBACK_DATA, TagData) == 40);
const _: () = assert!(offset_of!(FLT_CALLBACK_DATA, QueueLinks) == 48);
const _: () = assert!(offset_of!(FLT_CALLBACK_DATA, RequestorMode) == 80);

/// `FLT_RELATED_OBJECTS`.
#[repr(C)]
pub struct FLT_RELATED_OBJECTS {
    /// `size_of::<FLT_RELATED_OBJECTS>()`.
    pub Size: u16,
    /// Transaction context.
    pub TransactionContext: u16,
    /// The filter.
    pub Filter: PFLT_FILTER,
    /// The volume.
    pub Volume: PFLT_VOLUME,
    /// The instance.
    pub Instance: PFLT_INSTANCE,
    /// The file object.
    pub FileObject: *mut FILE_OBJECT,
    /// The transaction.
    pub Transaction: *mut c_void,
}
const _: () = assert!(size_of::<FLT_RELATED_OBJECTS>() == 48);
const _: () = assert!(offset_of!(FLT_RELATED_OBJECTS, Filter) == 8);
const _: () = assert!(offset_of!(FLT_RELATED_OBJECTS, Volume) == 16);
const _: () = assert!(offset_of!(FLT_RELATED_OBJECTS, Instance) == 24);
const _: () = assert!(offset_of!(FLT_RELATED_OBJECTS, FileObject) == 32);
const _: () = assert!(offset_of!(FLT_RELATED_OBJECTS, Transaction) == 40);

/// `FLT_FILE_NAME_INFORMATION`.
#[repr(C)]
pub struct FLT_FILE_NAME_INFORMATION {
    /// `size_of::<FLT_FILE_NAME_INFORMATION>()`.
    pub Size: u16,
    /// `FLTFL_FILE_NAME_PARSED_*` bits.
    pub NamesParsed: u16,
    /// `FLT_FILE_NAME_*` format of `Name`.
    pub Format: u32,
    /// The full name, e.g. `\Device\HarddiskVolume3\Users\a\b.txt`.
    pub Name: UNICODE_STRING,
    /// The volume part.
    pub Volume: UNICODE_STRING,
    /// The share part (network names).
    pub Share: UNICODE_STRING,
    /// The extension (after the last dot of the final component).
    pub Extension: UNICODE_STRING,
    /// The stream part (`:stream`).
    pub Stream: UNICODE_STRING,
    /// The final component.
    pub FinalComponent: UNICODE_STRING,
    /// The parent directory.
    pub ParentDir: UNICODE_STRING,
}
const _: () = assert!(size_of::<FLT_FILE_NAME_INFORMATION>() == 120);
const _: () = assert!(offset_of!(FLT_FILE_NAME_INFORMATION, NamesParsed) == 2);
const _: () = assert!(offset_of!(FLT_FILE_NAME_INFORMATION, Format) == 4);
const _: () = assert!(offset_of!(FLT_FILE_NAME_INFORMATION, Name) == 8);
const _: () = assert!(offset_of!(FLT_FILE_NAME_INFORMATION, Volume) == 24);
const _: () = assert!(offset_of!(FLT_FILE_NAME_INFORMATION, Share) == 40);
const _: () = assert!(offset_of!(FLT_FILE_NAME_INFORMATION, Extension) == 56);
const _: () = assert!(offset_of!(FLT_FILE_NAME_INFORMATION, Stream) == 72);
const _: () = assert!(offset_of!(FLT_FILE_NAME_INFORMATION, FinalComponent) == 88);
const _: () = assert!(offset_of!(FLT_FILE_NAME_INFORMATION, ParentDir) == 104);

/// `FLTFL_FILE_NAME_PARSED_FINAL_COMPONENT`.
pub const FLTFL_FILE_NAME_PARSED_FINAL_COMPONENT: u16 = 0x0001;
/// `FLTFL_FILE_NAME_PARSED_EXTENSION`.
pub const FLTFL_FILE_NAME_PARSED_EXTENSION: u16 = 0x0002;
/// `FLTFL_FILE_NAME_PARSED_STREAM`.
pub const FLTFL_FILE_NAME_PARSED_STREAM: u16 = 0x0004;
/// `FLTFL_FILE_NAME_PARSED_PARENT_DIR`.
pub const FLTFL_FILE_NAME_PARSED_PARENT_DIR: u16 = 0x0008;

/// Pre-operation callback.
pub type PFLT_PRE_OPERATION_CALLBACK = unsafe extern "system" fn(
    Data: *mut FLT_CALLBACK_DATA,
    FltObjects: *const FLT_RELATED_OBJECTS,
    CompletionContext: *mut *mut c_void,
) -> FLT_PREOP_CALLBACK_STATUS;
/// Post-operation callback.
pub type PFLT_POST_OPERATION_CALLBACK = unsafe extern "system" fn(
    Data: *mut FLT_CALLBACK_DATA,
    FltObjects: *const FLT_RELATED_OBJECTS,
    CompletionContext: *mut c_void,
    Flags: u32,
) -> FLT_POSTOP_CALLBACK_STATUS;
/// Filter unload callback (`fltmc unload`, service stop).
pub type PFLT_FILTER_UNLOAD_CALLBACK = unsafe extern "system" fn(Flags: u32) -> NTSTATUS;
/// Instance setup callback: return `STATUS_FLT_DO_NOT_ATTACH` to skip a volume.
pub type PFLT_INSTANCE_SETUP_CALLBACK = unsafe extern "system" fn(
    FltObjects: *const FLT_RELATED_OBJECTS,
    Flags: u32,
    VolumeDeviceType: u32,
    VolumeFilesystemType: i32,
) -> NTSTATUS;
/// Instance query-teardown callback (manual detach).
pub type PFLT_INSTANCE_QUERY_TEARDOWN_CALLBACK =
    unsafe extern "system" fn(FltObjects: *const FLT_RELATED_OBJECTS, Flags: u32) -> NTSTATUS;
/// Instance teardown start/complete callback.
pub type PFLT_INSTANCE_TEARDOWN_CALLBACK =
    unsafe extern "system" fn(FltObjects: *const FLT_RELATED_OBJECTS, Reason: u32);

/// `FLT_OPERATION_REGISTRATION`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FLT_OPERATION_REGISTRATION {
    /// `IRP_MJ_*`, or `IRP_MJ_OPERATION_END` to terminate the array.
    pub MajorFunction: u8,
    /// `FLTFL_OPERATION_REGISTRATION_*`.
    pub Flags: u32,
    /// Pre-operation callback.
    pub PreOperation: Option<PFLT_PRE_OPERATION_CALLBACK>,
    /// Post-operation callback.
    pub PostOperation: Option<PFLT_POST_OPERATION_CALLBACK>,
    /// Reserved, null.
    pub Reserved1: *mut c_void,
}
const _: () = assert!(size_of::<FLT_OPERATION_REGISTRATION>() == 32);
const _: () = assert!(offset_of!(FLT_OPERATION_REGISTRATION, Flags) == 4);
const _: () = assert!(offset_of!(FLT_OPERATION_REGISTRATION, PreOperation) == 8);
const _: () = assert!(offset_of!(FLT_OPERATION_REGISTRATION, PostOperation) == 16);

// SAFETY: the registration tables are immutable statics of plain data and function pointers.
unsafe impl Sync for FLT_OPERATION_REGISTRATION {}

/// `FLT_REGISTRATION` (version 0x0203, 112 bytes on x64).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FLT_REGISTRATION {
    /// `size_of::<FLT_REGISTRATION>()`.
    pub Size: u16,
    /// [`FLT_REGISTRATION_VERSION`].
    pub Version: u16,
    /// `FLTFL_REGISTRATION_*`.
    pub Flags: u32,
    /// Context registrations, or null.
    pub ContextRegistration: *const c_void,
    /// Operation registrations, terminated by `IRP_MJ_OPERATION_END`.
    pub OperationRegistration: *const FLT_OPERATION_REGISTRATION,
    /// Unload callback; without one the filter cannot be unloaded.
    pub FilterUnloadCallback: Option<PFLT_FILTER_UNLOAD_CALLBACK>,
    /// Instance setup callback.
    pub InstanceSetupCallback: Option<PFLT_INSTANCE_SETUP_CALLBACK>,
    /// Instance query-teardown callback.
    pub InstanceQueryTeardownCallback: Option<PFLT_INSTANCE_QUERY_TEARDOWN_CALLBACK>,
    /// Instance teardown start callback.
    pub InstanceTeardownStartCallback: Option<PFLT_INSTANCE_TEARDOWN_CALLBACK>,
    /// Instance teardown complete callback.
    pub InstanceTeardownCompleteCallback: Option<PFLT_INSTANCE_TEARDOWN_CALLBACK>,
    /// Name provider callbacks (unused).
    pub GenerateFileNameCallback: *const c_void,
    /// Name provider callbacks (unused).
    pub NormalizeNameComponentCallback: *const c_void,
    /// Name provider callbacks (unused).
    pub NormalizeContextCleanupCallback: *const c_void,
    /// Transaction notification callback (unused).
    pub TransactionNotificationCallback: *const c_void,
    /// Name provider callbacks (unused).
    pub NormalizeNameComponentExCallback: *const c_void,
    /// Section conflict notification callback (unused).
    pub SectionNotificationCallback: *const c_void,
}
const _: () = assert!(size_of::<FLT_REGISTRATION>() == 112);
const _: () = assert!(offset_of!(FLT_REGISTRATION, Version) == 2);
const _: () = assert!(offset_of!(FLT_REGISTRATION, Flags) == 4);
const _: () = assert!(offset_of!(FLT_REGISTRATION, ContextRegistration) == 8);
const _: () = assert!(offset_of!(FLT_REGISTRATION, OperationRegistration) == 16);
const _: () = assert!(offset_of!(FLT_REGISTRATION, FilterUnloadCallback) == 24);
const _: () = assert!(offset_of!(FLT_REGISTRATION, InstanceSetupCallback) == 32);
const _: () = assert!(offset_of!(FLT_REGISTRATION, InstanceQueryTeardownCallback) == 40);
const _: () = assert!(offset_of!(FLT_REGISTRATION, InstanceTeardownStartCallback) == 48);
const _: () = assert!(offset_of!(FLT_REGISTRATION, InstanceTeardownCompleteCallback) == 56);
const _: () = assert!(offset_of!(FLT_REGISTRATION, GenerateFileNameCallback) == 64);
const _: () = assert!(offset_of!(FLT_REGISTRATION, TransactionNotificationCallback) == 88);
const _: () = assert!(offset_of!(FLT_REGISTRATION, SectionNotificationCallback) == 104);

// SAFETY: a registration is an immutable static of plain data and function pointers.
unsafe impl Sync for FLT_REGISTRATION {}

/// Connect notification for a communication port.
pub type PFLT_CONNECT_NOTIFY = unsafe extern "system" fn(
    ClientPort: PFLT_PORT,
    ServerPortCookie: *mut c_void,
    ConnectionContext: *mut c_void,
    SizeOfContext: u32,
    ConnectionPortCookie: *mut *mut c_void,
) -> NTSTATUS;
/// Disconnect notification for a communication port.
pub type PFLT_DISCONNECT_NOTIFY = unsafe extern "system" fn(ConnectionCookie: *mut c_void);
/// Message notification (`FilterSendMessage` from user mode). The buffers are raw
/// user-mode addresses.
pub type PFLT_MESSAGE_NOTIFY = unsafe extern "system" fn(
    PortCookie: *mut c_void,
    InputBuffer: *mut c_void,
    InputBufferLength: u32,
    OutputBuffer: *mut c_void,
    OutputBufferLength: u32,
    ReturnOutputBufferLength: *mut u32,
) -> NTSTATUS;
