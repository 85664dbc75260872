//! I/O manager pieces a create path reads: the file object, the security context of a
//! create, and the create flags, options and dispositions.

use crate::ntdef::{ACCESS_MASK, KEVENT, LIST_ENTRY, PDEVICE_OBJECT, UNICODE_STRING};
use core::ffi::c_void;
use core::mem::{offset_of, size_of};

/// `FILE_OBJECT` (x64). portfilter reads only `Flags` and `FileName`; the whole layout is
/// declared so that fltsim can build real file objects.
#[repr(C)]
pub struct FILE_OBJECT {
    /// `IO_TYPE_FILE` (5).
    pub Type: i16,
    /// `size_of::<FILE_OBJECT>()`.
    pub Size: i16,
    /// Device object of the volume.
    pub DeviceObject: PDEVICE_OBJECT,
    /// Volume parameter block.
    pub Vpb: *mut c_void,
    /// File system context.
    pub FsContext: *mut c_void,
    /// File system context 2.
    pub FsContext2: *mut c_void,
    /// Section object pointers.
    pub SectionObjectPointer: *mut c_void,
    /// Cache manager map.
    pub PrivateCacheMap: *mut c_void,
    /// Final status.
    pub FinalStatus: i32,
    /// Related file object (relative opens).
    pub RelatedFileObject: *mut FILE_OBJECT,
    /// Lock operation flag.
    pub LockOperation: u8,
    /// Delete pending flag.
    pub DeletePending: u8,
    /// Read access granted.
    pub ReadAccess: u8,
    /// Write access granted.
    pub WriteAccess: u8,
    /// Delete access granted.
    pub DeleteAccess: u8,
    /// Shared read.
    pub SharedRead: u8,
    /// Shared write.
    pub SharedWrite: u8,
    /// Shared delete.
    pub SharedDelete: u8,
    /// `FO_*` flags.
    pub Flags: u32,
    /// Name as opened (valid during create only).
    pub FileName: UNICODE_STRING,
    /// Current byte offset.
    pub CurrentByteOffset: i64,
    /// Waiters.
    pub Waiters: u32,
    /// Busy.
    pub Busy: u32,
    /// Last lock.
    pub LastLock: *mut c_void,
    /// Lock event.
    pub Lock: KEVENT,
    /// Event.
    pub Event: KEVENT,
    /// Completion context.
    pub CompletionContext: *mut c_void,
    /// IRP list lock (`KSPIN_LOCK`).
    pub IrpListLock: usize,
    /// IRP list.
    pub IrpList: LIST_ENTRY,
    /// File object extension.
    pub FileObjectExtension: *mut c_void,
}
const _: () = assert!(size_of::<FILE_OBJECT>() == 216);
const _: () = assert!(offset_of!(FILE_OBJECT, Type) == 0);
const _: () = assert!(offset_of!(FILE_OBJECT, Size) == 2);
const _: () = assert!(offset_of!(FILE_OBJECT, DeviceObject) == 8);
const _: () = assert!(offset_of!(FILE_OBJECT, FinalStatus) == 56);
const _: () = assert!(offset_of!(FILE_OBJECT, RelatedFileObject) == 64);
const _: () = assert!(offset_of!(FILE_OBJECT, Flags) == 80);
const _: () = assert!(offset_of!(FILE_OBJECT, FileName) == 88);
const _: () = assert!(offset_of!(FILE_OBJECT, CurrentByteOffset) == 104);
const _: () = assert!(offset_of!(FILE_OBJECT, Lock) == 128);
const _: () = assert!(offset_of!(FILE_OBJECT, Event) == 152);
const _: () = assert!(offset_of!(FILE_OBJECT, IrpList) == 192);
const _: () = assert!(offset_of!(FILE_OBJECT, FileObjectExtension) == 208);

/// `IO_TYPE_FILE`, the `Type` of a [`FILE_OBJECT`].
pub const IO_TYPE_FILE: i16 = 5;
/// `FO_VOLUME_OPEN`: the create opens the volume itself.
pub const FO_VOLUME_OPEN: u32 = 0x0040_0000;

/// `IO_SECURITY_CONTEXT` of a create.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IO_SECURITY_CONTEXT {
    /// Security quality of service.
    pub SecurityQos: *mut c_void,
    /// Access state.
    pub AccessState: *mut c_void,
    /// The access the caller asked for.
    pub DesiredAccess: ACCESS_MASK,
    /// Create options as the caller passed them.
    pub FullCreateOptions: u32,
}
const _: () = assert!(size_of::<IO_SECURITY_CONTEXT>() == 24);
const _: () = assert!(offset_of!(IO_SECURITY_CONTEXT, SecurityQos) == 0);
const _: () = assert!(offset_of!(IO_SECURITY_CONTEXT, AccessState) == 8);
const _: () = assert!(offset_of!(IO_SECURITY_CONTEXT, DesiredAccess) == 16);
const _: () = assert!(offset_of!(IO_SECURITY_CONTEXT, FullCreateOptions) == 20);

/// `IRP_MJ_CREATE`.
pub const IRP_MJ_CREATE: u8 = 0x00;
/// `IRP_MJ_OPERATION_END`: terminates an operation registration array.
pub const IRP_MJ_OPERATION_END: u8 = 0x80;

/// `SL_FORCE_ACCESS_CHECK` in `FLT_IO_PARAMETER_BLOCK::OperationFlags`: the I/O manager
/// must check access as for a user-mode request although `RequestorMode` is
/// `KernelMode` (a kernel component opening the file on behalf of a user, e.g. the SMB
/// server for a remote client).
pub const SL_FORCE_ACCESS_CHECK: u8 = 0x01;
/// `SL_OPEN_PAGING_FILE` in `FLT_IO_PARAMETER_BLOCK::OperationFlags`.
pub const SL_OPEN_PAGING_FILE: u8 = 0x02;
/// `SL_OPEN_TARGET_DIRECTORY` in `FLT_IO_PARAMETER_BLOCK::OperationFlags`.
pub const SL_OPEN_TARGET_DIRECTORY: u8 = 0x04;
/// `SL_CASE_SENSITIVE` in `FLT_IO_PARAMETER_BLOCK::OperationFlags`.
pub const SL_CASE_SENSITIVE: u8 = 0x80;

/// Create options occupy the low 24 bits of `Create.Options`.
pub const FILE_VALID_OPTION_FLAGS: u32 = 0x00FF_FFFF;
/// `FILE_DIRECTORY_FILE`.
pub const FILE_DIRECTORY_FILE: u32 = 0x0000_0001;
/// `FILE_WRITE_THROUGH`.
pub const FILE_WRITE_THROUGH: u32 = 0x0000_0002;
/// `FILE_NON_DIRECTORY_FILE`.
pub const FILE_NON_DIRECTORY_FILE: u32 = 0x0000_0040;
/// `FILE_DELETE_ON_CLOSE`.
pub const FILE_DELETE_ON_CLOSE: u32 = 0x0000_1000;
/// `FILE_OPEN_BY_FILE_ID`.
pub const FILE_OPEN_BY_FILE_ID: u32 = 0x0000_2000;

/// `FILE_SUPERSEDE` disposition.
pub const FILE_SUPERSEDE: u32 = 0;
/// `FILE_OPEN` disposition.
pub const FILE_OPEN: u32 = 1;
/// `FILE_CREATE` disposition.
pub const FILE_CREATE: u32 = 2;
/// `FILE_OPEN_IF` disposition.
pub const FILE_OPEN_IF: u32 = 3;
/// `FILE_OVERWRITE` disposition.
pub const FILE_OVERWRITE: u32 = 4;
/// `FILE_OVERWRITE_IF` disposition.
pub const FILE_OVERWRITE_IF: u32 = 5;

/// `FILE_ATTRIBUTE_DIRECTORY`.
pub const FILE_ATTRIBUTE_DIRECTORY: u32 = 0x0000_0010;
/// `FILE_ATTRIBUTE_NORMAL`.
pub const FILE_ATTRIBUTE_NORMAL: u32 = 0x0000_0080;

/// `FILE_READ_DATA`.
pub const FILE_READ_DATA: u32 = 0x0001;
/// `FILE_WRITE_DATA`.
pub const FILE_WRITE_DATA: u32 = 0x0002;
/// `FILE_APPEND_DATA`.
pub const FILE_APPEND_DATA: u32 = 0x0004;
/// `DELETE`.
pub const DELETE: u32 = 0x0001_0000;
/// `SYNCHRONIZE`.
pub const SYNCHRONIZE: u32 = 0x0010_0000;
/// `GENERIC_READ`.
pub const GENERIC_READ: u32 = 0x8000_0000;
/// `GENERIC_WRITE`.
pub const GENERIC_WRITE: u32 = 0x4000_0000;
/// `FILE_SHARE_READ`.
pub const FILE_SHARE_READ: u16 = 0x0001;
/// `FILE_SHARE_WRITE`.
pub const FILE_SHARE_WRITE: u16 = 0x0002;
/// `FILE_SHARE_DELETE`.
pub const FILE_SHARE_DELETE: u16 = 0x0004;
