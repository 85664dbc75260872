//! Declarations of the Windows kernel and Filter Manager types, constants and functions
//! that portfilter uses — written from Microsoft's documented x64 layouts, with every
//! struct's size and the offset of every field we use asserted at compile time.
//!
//! * On Windows targets the functions import from `ntoskrnl.exe` and `fltmgr.sys` with
//!   `raw-dylib`, so no WDK import library is needed.
//! * On every other target they are plain `extern "system"` symbols; `fltsim` (the
//!   user-mode Filter Manager model) defines them, so the same driver code runs in tests.
//!
//! Layouts that Debian's mingw-w64 DDK headers also define are cross-checked by a C
//! compile in `tests/layout_mingw.rs`.
//!
//! Deliberately *not* taken from `windows-sys`'s `Wdk` module: its `FLT_PARAMETERS.Create`
//! drops `POINTER_ALIGNMENT`, and it binds kernel routines to `ntdll.dll`.
//!
//! ## Constants and where each value comes from
//!
//! Values as in the WDK 10.0.22621 headers. Every one is compared with windows-sys's
//! values, which are generated from Microsoft's Windows/WDK metadata (`tests/constants.rs`),
//! except where noted; those that mingw-w64's headers also define are compiled against
//! them too (`tests/layout_mingw.rs`). A test keeps this table and the sources in step.
//!
//! | constant | value | header | checked against |
//! |---|---|---|---|
//! | `FLT_PREOP_SUCCESS_WITH_CALLBACK` | 0 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `FLT_PREOP_SUCCESS_NO_CALLBACK` | 1 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `FLT_PREOP_PENDING` | 2 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `FLT_PREOP_DISALLOW_FASTIO` | 3 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `FLT_PREOP_COMPLETE` | 4 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `FLT_PREOP_SYNCHRONIZE` | 5 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `FLT_POSTOP_FINISHED_PROCESSING` | 0 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `FLTFL_CALLBACK_DATA_IRP_OPERATION` | 0x0000_0001 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `FLTFL_CALLBACK_DATA_FAST_IO_OPERATION` | 0x0000_0002 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `FLTFL_POST_OPERATION_DRAINING` | 0x0000_0001 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `FLTFL_FILTER_UNLOAD_MANDATORY` | 0x0000_0001 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `FLT_REGISTRATION_VERSION` | 0x0203 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `FLT_FILE_NAME_NORMALIZED` | 0x01 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `FLT_FILE_NAME_OPENED` | 0x02 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `FLT_FILE_NAME_SHORT` | 0x03 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `FLT_FILE_NAME_QUERY_DEFAULT` | 0x0100 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `FLT_FILE_NAME_QUERY_CACHE_ONLY` | 0x0200 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `FLT_FILE_NAME_QUERY_FILESYSTEM_ONLY` | 0x0300 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `FLT_FILE_NAME_QUERY_ALWAYS_ALLOW_CACHE_LOOKUP` | 0x0400 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `FLT_FSTYPE_NTFS` | 2 | fltUserStructures.h | metadata: `Win32::Storage::InstallableFileSystems`; mingw `fltuserstructures.h` |
//! | `FILE_DEVICE_DISK_FILE_SYSTEM` | 0x0000_0008 | devioctl.h | metadata; mingw `ntifs.h` (compiled) |
//! | `FILE_DEVICE_NETWORK_FILE_SYSTEM` | 0x0000_0014 | devioctl.h | metadata; mingw `ntifs.h` (compiled) |
//! | `FLTFL_FILE_NAME_PARSED_FINAL_COMPONENT` | 0x0001 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `FLTFL_FILE_NAME_PARSED_EXTENSION` | 0x0002 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `FLTFL_FILE_NAME_PARSED_STREAM` | 0x0004 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `FLTFL_FILE_NAME_PARSED_PARENT_DIR` | 0x0008 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `FILTER_HEADER_SIZE` | 16 | fltUserStructures.h | size of `FILTER_MESSAGE_HEADER`/`FILTER_REPLY_HEADER` (metadata; mingw) |
//! | `FLT_PORT_CONNECT` | 0x0001 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `FLT_PORT_ALL_ACCESS` | 0x001F_0001 | fltKernel.h | `FLT_PORT_CONNECT \| STANDARD_RIGHTS_ALL` (metadata for both) |
//! | `FLT_PORT_FLAG_SYNC_HANDLE` | 0x0000_0001 | fltUser.h | metadata: `Win32::Storage::InstallableFileSystems` |
//! | `IO_TYPE_FILE` | 5 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `FO_VOLUME_OPEN` | 0x0040_0000 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `IRP_MJ_CREATE` | 0x00 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `IRP_MJ_OPERATION_END` | 0x80 | fltKernel.h | metadata: `Wdk::Storage::FileSystem::Minifilters` |
//! | `SL_FORCE_ACCESS_CHECK` | 0x01 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `SL_OPEN_PAGING_FILE` | 0x02 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `SL_OPEN_TARGET_DIRECTORY` | 0x04 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `SL_CASE_SENSITIVE` | 0x80 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `FILE_VALID_OPTION_FLAGS` | 0x00FF_FFFF | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `FILE_DIRECTORY_FILE` | 0x0000_0001 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `FILE_WRITE_THROUGH` | 0x0000_0002 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `FILE_NON_DIRECTORY_FILE` | 0x0000_0040 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `FILE_DELETE_ON_CLOSE` | 0x0000_1000 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `FILE_OPEN_BY_FILE_ID` | 0x0000_2000 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `FILE_SUPERSEDE` | 0 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `FILE_OPEN` | 1 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `FILE_CREATE` | 2 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `FILE_OPEN_IF` | 3 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `FILE_OVERWRITE` | 4 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `FILE_OVERWRITE_IF` | 5 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `FILE_ATTRIBUTE_DIRECTORY` | 0x0000_0010 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `FILE_ATTRIBUTE_NORMAL` | 0x0000_0080 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `FILE_READ_DATA` | 0x0001 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `FILE_WRITE_DATA` | 0x0002 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `FILE_APPEND_DATA` | 0x0004 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `DELETE` | 0x0001_0000 | winnt.h / wdm.h | metadata; mingw `ntifs.h` (compiled) |
//! | `SYNCHRONIZE` | 0x0010_0000 | winnt.h / wdm.h | metadata; mingw `ntifs.h` (compiled) |
//! | `GENERIC_READ` | 0x8000_0000 | winnt.h / wdm.h | metadata; mingw `ntifs.h` (compiled) |
//! | `GENERIC_WRITE` | 0x4000_0000 | winnt.h / wdm.h | metadata; mingw `ntifs.h` (compiled) |
//! | `FILE_SHARE_READ` | 0x0001 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `FILE_SHARE_WRITE` | 0x0002 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `FILE_SHARE_DELETE` | 0x0004 | wdm.h / ntifs.h | metadata; mingw `ntifs.h` (compiled) |
//! | `KERNEL_MODE` | 0 | wdm.h (`KernelMode`) | metadata; mingw `ntifs.h` (compiled) |
//! | `USER_MODE` | 1 | wdm.h (`UserMode`) | metadata; mingw `ntifs.h` (compiled) |
//! | `TRUE` | 1 | ntdef.h | metadata; mingw `ntifs.h` (compiled) |
//! | `FALSE` | 0 | ntdef.h | metadata; mingw `ntifs.h` (compiled) |
//! | `OBJ_CASE_INSENSITIVE` | 0x0000_0040 | ntdef.h | metadata; mingw `ntifs.h` (compiled) |
//! | `OBJ_KERNEL_HANDLE` | 0x0000_0200 | ntdef.h | metadata; mingw `ntifs.h` (compiled) |
//! | `NOTIFICATION_EVENT` | 0 | ntdef.h (`NotificationEvent`) | metadata; mingw `ntifs.h` (compiled) |
//! | `SYNCHRONIZATION_EVENT` | 1 | ntdef.h (`SynchronizationEvent`) | metadata; mingw `ntifs.h` (compiled) |
//! | `EXECUTIVE` | 0 | wdm.h (`Executive`) | metadata; mingw `ntifs.h` (compiled) |
//! | `THREAD_ALL_ACCESS` | 0x001F_FFFF | winnt.h / wdm.h | metadata; mingw `ntifs.h` (compiled) |
//! | `POOL_FLAG_NON_PAGED` | 0x0000_0000_0000_0040 | wdm.h | MS docs `POOL_FLAGS` page (not in the metadata or mingw) |
//! | `POOL_FLAG_PAGED` | 0x0000_0000_0000_0100 | wdm.h | MS docs `POOL_FLAGS` page (not in the metadata or mingw) |
//! | `POOL_FLAG_UNINITIALIZED` | 0x0000_0000_0000_0002 | wdm.h | MS docs `POOL_FLAGS` page (not in the metadata or mingw) |
//! | `DPFLTR_IHVDRIVER_ID` | 77 | dpfilter.h (via wdm.h) | mingw `dpfilter.h` (compiled); MS docs "Reading and filtering debugging messages" |
//! | `DPFLTR_ERROR_LEVEL` | 0 | dpfilter.h (via wdm.h) | mingw `dpfilter.h` (compiled); MS docs "Reading and filtering debugging messages" |
//! | `DPFLTR_WARNING_LEVEL` | 1 | dpfilter.h (via wdm.h) | mingw `dpfilter.h` (compiled); MS docs "Reading and filtering debugging messages" |
//! | `DPFLTR_TRACE_LEVEL` | 2 | dpfilter.h (via wdm.h) | mingw `dpfilter.h` (compiled); MS docs "Reading and filtering debugging messages" |
//! | `DPFLTR_INFO_LEVEL` | 3 | dpfilter.h (via wdm.h) | mingw `dpfilter.h` (compiled); MS docs "Reading and filtering debugging messages" |
//! | `STATUS_SUCCESS` | 0x0000_0000 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_TIMEOUT` | 0x0000_0102 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_PENDING` | 0x0000_0103 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_BUFFER_OVERFLOW` | 0x8000_0005 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_NO_MORE_ENTRIES` | 0x8000_001A | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_UNSUCCESSFUL` | 0xC000_0001 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_NOT_IMPLEMENTED` | 0xC000_0002 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_INFO_LENGTH_MISMATCH` | 0xC000_0004 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_ACCESS_VIOLATION` | 0xC000_0005 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_INVALID_HANDLE` | 0xC000_0008 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_INVALID_PARAMETER` | 0xC000_000D | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_INVALID_DEVICE_REQUEST` | 0xC000_0010 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_ACCESS_DENIED` | 0xC000_0022 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_BUFFER_TOO_SMALL` | 0xC000_0023 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_OBJECT_NAME_NOT_FOUND` | 0xC000_0034 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_OBJECT_NAME_COLLISION` | 0xC000_0035 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_PORT_DISCONNECTED` | 0xC000_0037 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_THREAD_IS_TERMINATING` | 0xC000_004B | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_REVISION_MISMATCH` | 0xC000_0059 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_INSUFFICIENT_RESOURCES` | 0xC000_009A | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_NOT_SUPPORTED` | 0xC000_00BB | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_CANCELLED` | 0xC000_0120 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_INVALID_BUFFER_SIZE` | 0xC000_0206 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_CONNECTION_COUNT_LIMIT` | 0xC000_0246 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_DATATYPE_MISALIGNMENT_ERROR` | 0xC000_02C5 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_INVALID_DEVICE_STATE` | 0xC000_0184 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_DEVICE_BUSY` | 0x8000_0011 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_FLT_DELETING_OBJECT` | 0xC01C_000B | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_FLT_DO_NOT_ATTACH` | 0xC01C_000F | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_FLT_NO_WAITER_FOR_REPLY` | 0xC01C_0020 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_FLT_NOT_INITIALIZED` | 0xC01C_0007 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
//! | `STATUS_FLT_INVALID_NAME_REQUEST` | 0xC01C_0005 | ntstatus.h | metadata: `Win32::Foundation`; mingw `ntstatus.h` |
#![no_std]
#![allow(non_camel_case_types, non_snake_case, clippy::upper_case_acronyms)]

pub mod flt;
pub mod fltuser;
pub mod functions;
pub mod io;
pub mod ntdef;
pub mod status;

pub use flt::*;
pub use fltuser::*;
pub use functions::*;
pub use io::*;
pub use ntdef::*;
pub use status::*;
