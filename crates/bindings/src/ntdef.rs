//! Basic NT types: handles, strings, object attributes, I/O status, lists, events.

use core::ffi::c_void;
use core::mem::{offset_of, size_of};

/// `NTSTATUS`: a signed 32-bit status code (see [`crate::status`]).
pub type NTSTATUS = i32;
/// `HANDLE`.
pub type HANDLE = *mut c_void;
/// `ACCESS_MASK`.
pub type ACCESS_MASK = u32;
/// `BOOLEAN` (one byte; 0 is FALSE).
pub type BOOLEAN = u8;
/// `KPROCESSOR_MODE` (`KernelMode` = 0, `UserMode` = 1).
pub type KPROCESSOR_MODE = i8;
/// `KernelMode`.
pub const KERNEL_MODE: KPROCESSOR_MODE = 0;
/// `UserMode`.
pub const USER_MODE: KPROCESSOR_MODE = 1;
/// `LARGE_INTEGER` as its 64-bit value (the union's `QuadPart`).
pub type LARGE_INTEGER = i64;
/// `PSECURITY_DESCRIPTOR` (opaque).
pub type PSECURITY_DESCRIPTOR = *mut c_void;
/// `PEPROCESS` (opaque).
pub type PEPROCESS = *mut c_void;
/// `PETHREAD` (opaque).
pub type PETHREAD = *mut c_void;
/// `PDRIVER_OBJECT` (opaque to a minifilter: only handed to `FltRegisterFilter`).
pub type PDRIVER_OBJECT = *mut c_void;
/// `PDEVICE_OBJECT` (opaque).
pub type PDEVICE_OBJECT = *mut c_void;
/// `PIRP` (opaque to a minifilter: only compared with NULL, from `IoGetTopLevelIrp`).
pub type PIRP = *mut c_void;

/// `TRUE` as a [`BOOLEAN`].
pub const TRUE: BOOLEAN = 1;
/// `FALSE` as a [`BOOLEAN`].
pub const FALSE: BOOLEAN = 0;

/// `UNICODE_STRING`: a counted UTF-16 string; lengths are in **bytes**, not NUL-terminated.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UNICODE_STRING {
    /// Length of the string in bytes (not counting any terminator).
    pub Length: u16,
    /// Size of the buffer in bytes.
    pub MaximumLength: u16,
    /// The UTF-16 code units.
    pub Buffer: *mut u16,
}
const _: () = assert!(size_of::<UNICODE_STRING>() == 16);
const _: () = assert!(offset_of!(UNICODE_STRING, Length) == 0);
const _: () = assert!(offset_of!(UNICODE_STRING, MaximumLength) == 2);
const _: () = assert!(offset_of!(UNICODE_STRING, Buffer) == 8);

impl UNICODE_STRING {
    /// An empty string (`Length` 0, no buffer).
    pub const EMPTY: Self = Self {
        Length: 0,
        MaximumLength: 0,
        Buffer: core::ptr::null_mut(),
    };
}

/// `OBJECT_ATTRIBUTES` (what `InitializeObjectAttributes` fills in).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OBJECT_ATTRIBUTES {
    /// `size_of::<OBJECT_ATTRIBUTES>()`.
    pub Length: u32,
    /// Directory the name is relative to, or null.
    pub RootDirectory: HANDLE,
    /// The object's name.
    pub ObjectName: *const UNICODE_STRING,
    /// `OBJ_*` flags.
    pub Attributes: u32,
    /// Security descriptor applied to the object, or null.
    pub SecurityDescriptor: PSECURITY_DESCRIPTOR,
    /// Security quality of service, or null.
    pub SecurityQualityOfService: *mut c_void,
}
const _: () = assert!(size_of::<OBJECT_ATTRIBUTES>() == 48);
const _: () = assert!(offset_of!(OBJECT_ATTRIBUTES, Length) == 0);
const _: () = assert!(offset_of!(OBJECT_ATTRIBUTES, RootDirectory) == 8);
const _: () = assert!(offset_of!(OBJECT_ATTRIBUTES, ObjectName) == 16);
const _: () = assert!(offset_of!(OBJECT_ATTRIBUTES, Attributes) == 24);
const _: () = assert!(offset_of!(OBJECT_ATTRIBUTES, SecurityDescriptor) == 32);
const _: () = assert!(offset_of!(OBJECT_ATTRIBUTES, SecurityQualityOfService) == 40);

/// `OBJ_CASE_INSENSITIVE`.
pub const OBJ_CASE_INSENSITIVE: u32 = 0x0000_0040;
/// `OBJ_KERNEL_HANDLE`: required by `FltCreateCommunicationPort`.
pub const OBJ_KERNEL_HANDLE: u32 = 0x0000_0200;

/// `IO_STATUS_BLOCK`. The first member is a union of `Status` and `Pointer`; we expose
/// it as `Status` plus the pointer-sized slot it shares.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IO_STATUS_BLOCK {
    /// `Status` / `Pointer` union.
    pub u: IO_STATUS_BLOCK_0,
    /// Operation-dependent information (bytes transferred, create disposition taken, …).
    pub Information: usize,
}
/// The `Status`/`Pointer` union of [`IO_STATUS_BLOCK`].
#[repr(C)]
#[derive(Clone, Copy)]
pub union IO_STATUS_BLOCK_0 {
    /// Completion status.
    pub Status: NTSTATUS,
    /// Reserved for internal use.
    pub Pointer: *mut c_void,
}
const _: () = assert!(size_of::<IO_STATUS_BLOCK>() == 16);
const _: () = assert!(offset_of!(IO_STATUS_BLOCK, u) == 0);
const _: () = assert!(offset_of!(IO_STATUS_BLOCK, Information) == 8);

impl IO_STATUS_BLOCK {
    /// A zeroed status block.
    pub const ZERO: Self = Self {
        u: IO_STATUS_BLOCK_0 {
            Pointer: core::ptr::null_mut(),
        },
        Information: 0,
    };
}

/// `LIST_ENTRY`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LIST_ENTRY {
    /// Next entry.
    pub Flink: *mut LIST_ENTRY,
    /// Previous entry.
    pub Blink: *mut LIST_ENTRY,
}
const _: () = assert!(size_of::<LIST_ENTRY>() == 16);

/// `KEVENT`: a dispatcher header (24 bytes) — opaque to us; only initialised, set,
/// cleared and waited on through the `Ke*` routines.
#[repr(C, align(8))]
pub struct KEVENT {
    /// The `DISPATCHER_HEADER`.
    pub Header: [u64; 3],
}
const _: () = assert!(size_of::<KEVENT>() == 24);

impl KEVENT {
    /// An all-zero event, to be initialised with `KeInitializeEvent` before use.
    pub const ZERO: Self = Self { Header: [0; 3] };
}

/// `EVENT_TYPE::NotificationEvent` (stays signalled until cleared).
pub const NOTIFICATION_EVENT: i32 = 0;
/// `EVENT_TYPE::SynchronizationEvent` (auto-reset: wakes one waiter).
pub const SYNCHRONIZATION_EVENT: i32 = 1;
/// `KWAIT_REASON::Executive`.
pub const EXECUTIVE: i32 = 0;

/// `EX_PUSH_LOCK`: one pointer-sized word, used through `FltAcquirePushLock*`.
pub type EX_PUSH_LOCK = usize;

/// `THREAD_ALL_ACCESS` for `PsCreateSystemThread`.
pub const THREAD_ALL_ACCESS: ACCESS_MASK = 0x001F_FFFF;

/// `KSTART_ROUTINE`: a system thread's entry point.
pub type KSTART_ROUTINE = unsafe extern "system" fn(StartContext: *mut c_void);

/// `POOL_FLAG_NON_PAGED` for `ExAllocatePool2`.
pub const POOL_FLAG_NON_PAGED: u64 = 0x0000_0000_0000_0040;
/// `POOL_FLAG_PAGED` for `ExAllocatePool2`.
pub const POOL_FLAG_PAGED: u64 = 0x0000_0000_0000_0100;
/// `POOL_FLAG_UNINITIALIZED`: do not zero the allocation.
pub const POOL_FLAG_UNINITIALIZED: u64 = 0x0000_0000_0000_0002;

/// `DPFLTR_IHVDRIVER_ID` (`DPFLTR_TYPE` in dpfilter.h): the `DbgPrintEx` component for
/// drivers that are not video, audio, network, streaming or bus drivers.
pub const DPFLTR_IHVDRIVER_ID: u32 = 77;
/// `DPFLTR_ERROR_LEVEL`: shown by default (importance bit 0x1 is in the default WIN2000
/// mask).
pub const DPFLTR_ERROR_LEVEL: u32 = 0;
/// `DPFLTR_WARNING_LEVEL` (importance 0x2: shown only when the component mask asks).
pub const DPFLTR_WARNING_LEVEL: u32 = 1;
/// `DPFLTR_TRACE_LEVEL` (importance 0x4).
pub const DPFLTR_TRACE_LEVEL: u32 = 2;
/// `DPFLTR_INFO_LEVEL` (importance 0x8; also the level of every `DbgPrint` message).
pub const DPFLTR_INFO_LEVEL: u32 = 3;
