//! Every constant of the bindings against a primary source, and the crate documentation's
//! list of constants against the source code.
//!
//! * [`every_constant_matches_the_windows_metadata`]: the value windows-sys 0.61 generates
//!   from Microsoft's Windows and WDK metadata (win32metadata / wdkmetadata, produced from
//!   the SDK and WDK headers, `fltKernel.h` included) — independent of this crate's own
//!   transcription. The constants mingw-w64's headers also define are checked once more
//!   by `tests/layout_mingw.rs` (a C compile).
//! * Constants the metadata does not carry (`POOL_FLAG_*`, `FLT_PORT_ALL_ACCESS`,
//!   `DPFLTR_*`, the `KPROCESSOR_MODE`/`EVENT_TYPE`/`KWAIT_REASON` enumerators under our
//!   names, `FILTER_HEADER_SIZE`) are checked here against what they are defined from, and
//!   listed with their source in the crate documentation (`src/lib.rs`).
//! * [`the_crate_documentation_lists_every_constant`]: the table in `src/lib.rs` names
//!   exactly the constants the sources declare, so a new constant cannot go unlisted.

use portfilter_bindings as b;
use std::collections::BTreeSet;
use windows_sys::Wdk::Storage::FileSystem as wfs;
use windows_sys::Wdk::Storage::FileSystem::Minifilters as flt;
use windows_sys::Wdk::System::SystemServices as ss;
use windows_sys::Win32::Foundation as f;
use windows_sys::Win32::Storage::FileSystem as fs;
use windows_sys::Win32::Storage::InstallableFileSystems as ifs;

/// `(name, ours, windows-sys)` as i128, so that the integer types may differ (windows-sys
/// types some of them after the metadata's enum, e.g. `IRP_MJ_CREATE` as u32).
macro_rules! pairs {
    ($($name:ident => $theirs:expr),* $(,)?) => {
        vec![$((stringify!($name), i128::from(b::$name), i128::from($theirs)),)*]
    };
}

fn checked_against_metadata() -> Vec<(&'static str, i128, i128)> {
    pairs![
        // fltKernel.h (wdkmetadata: Wdk.Storage.FileSystem.Minifilters)
        FLT_PREOP_SUCCESS_WITH_CALLBACK => flt::FLT_PREOP_SUCCESS_WITH_CALLBACK,
        FLT_PREOP_SUCCESS_NO_CALLBACK => flt::FLT_PREOP_SUCCESS_NO_CALLBACK,
        FLT_PREOP_PENDING => flt::FLT_PREOP_PENDING,
        FLT_PREOP_DISALLOW_FASTIO => flt::FLT_PREOP_DISALLOW_FASTIO,
        FLT_PREOP_COMPLETE => flt::FLT_PREOP_COMPLETE,
        FLT_PREOP_SYNCHRONIZE => flt::FLT_PREOP_SYNCHRONIZE,
        FLT_POSTOP_FINISHED_PROCESSING => flt::FLT_POSTOP_FINISHED_PROCESSING,
        FLTFL_CALLBACK_DATA_IRP_OPERATION => flt::FLTFL_CALLBACK_DATA_IRP_OPERATION,
        FLTFL_CALLBACK_DATA_FAST_IO_OPERATION => flt::FLTFL_CALLBACK_DATA_FAST_IO_OPERATION,
        FLTFL_POST_OPERATION_DRAINING => flt::FLTFL_POST_OPERATION_DRAINING,
        FLTFL_FILTER_UNLOAD_MANDATORY => flt::FLTFL_FILTER_UNLOAD_MANDATORY,
        FLT_REGISTRATION_VERSION => flt::FLT_REGISTRATION_VERSION,
        FLT_FILE_NAME_NORMALIZED => flt::FLT_FILE_NAME_NORMALIZED,
        FLT_FILE_NAME_OPENED => flt::FLT_FILE_NAME_OPENED,
        FLT_FILE_NAME_SHORT => flt::FLT_FILE_NAME_SHORT,
        FLT_FILE_NAME_QUERY_DEFAULT => flt::FLT_FILE_NAME_QUERY_DEFAULT,
        FLT_FILE_NAME_QUERY_CACHE_ONLY => flt::FLT_FILE_NAME_QUERY_CACHE_ONLY,
        FLT_FILE_NAME_QUERY_FILESYSTEM_ONLY => flt::FLT_FILE_NAME_QUERY_FILESYSTEM_ONLY,
        FLT_FILE_NAME_QUERY_ALWAYS_ALLOW_CACHE_LOOKUP =>
            flt::FLT_FILE_NAME_QUERY_ALWAYS_ALLOW_CACHE_LOOKUP,
        FLTFL_FILE_NAME_PARSED_FINAL_COMPONENT => flt::FLTFL_FILE_NAME_PARSED_FINAL_COMPONENT,
        FLTFL_FILE_NAME_PARSED_EXTENSION => flt::FLTFL_FILE_NAME_PARSED_EXTENSION,
        FLTFL_FILE_NAME_PARSED_STREAM => flt::FLTFL_FILE_NAME_PARSED_STREAM,
        FLTFL_FILE_NAME_PARSED_PARENT_DIR => flt::FLTFL_FILE_NAME_PARSED_PARENT_DIR,
        IRP_MJ_OPERATION_END => flt::IRP_MJ_OPERATION_END,
        FLT_PORT_CONNECT => flt::FLT_PORT_CONNECT,
        // fltUserStructures.h / fltUser.h (win32metadata: Storage.InstallableFileSystems)
        FLT_FSTYPE_NTFS => ifs::FLT_FSTYPE_NTFS,
        FLT_PORT_FLAG_SYNC_HANDLE => ifs::FLT_PORT_FLAG_SYNC_HANDLE,
        // wdm.h / ntifs.h (wdkmetadata: System.SystemServices, Storage.FileSystem)
        IRP_MJ_CREATE => ss::IRP_MJ_CREATE,
        IO_TYPE_FILE => ss::IO_TYPE_FILE,
        FO_VOLUME_OPEN => ss::FO_VOLUME_OPEN,
        SL_FORCE_ACCESS_CHECK => ss::SL_FORCE_ACCESS_CHECK,
        SL_OPEN_PAGING_FILE => ss::SL_OPEN_PAGING_FILE,
        SL_OPEN_TARGET_DIRECTORY => ss::SL_OPEN_TARGET_DIRECTORY,
        SL_CASE_SENSITIVE => ss::SL_CASE_SENSITIVE,
        KERNEL_MODE => ss::KernelMode,
        USER_MODE => ss::UserMode,
        EXECUTIVE => ss::Executive,
        FILE_DIRECTORY_FILE => wfs::FILE_DIRECTORY_FILE,
        FILE_WRITE_THROUGH => wfs::FILE_WRITE_THROUGH,
        FILE_NON_DIRECTORY_FILE => wfs::FILE_NON_DIRECTORY_FILE,
        FILE_DELETE_ON_CLOSE => wfs::FILE_DELETE_ON_CLOSE,
        FILE_OPEN_BY_FILE_ID => wfs::FILE_OPEN_BY_FILE_ID,
        FILE_SUPERSEDE => wfs::FILE_SUPERSEDE,
        FILE_OPEN => wfs::FILE_OPEN,
        FILE_CREATE => wfs::FILE_CREATE,
        FILE_OPEN_IF => wfs::FILE_OPEN_IF,
        FILE_OVERWRITE => wfs::FILE_OVERWRITE,
        FILE_OVERWRITE_IF => wfs::FILE_OVERWRITE_IF,
        // winnt.h / ntdef.h / winioctl.h (win32metadata)
        FILE_VALID_OPTION_FLAGS =>
            windows_sys::Win32::System::WindowsProgramming::FILE_VALID_OPTION_FLAGS,
        FILE_DEVICE_DISK_FILE_SYSTEM => windows_sys::Win32::System::Ioctl::FILE_DEVICE_DISK_FILE_SYSTEM,
        FILE_DEVICE_NETWORK_FILE_SYSTEM =>
            windows_sys::Win32::System::Ioctl::FILE_DEVICE_NETWORK_FILE_SYSTEM,
        NOTIFICATION_EVENT => windows_sys::Win32::System::Kernel::NotificationEvent,
        SYNCHRONIZATION_EVENT => windows_sys::Win32::System::Kernel::SynchronizationEvent,
        THREAD_ALL_ACCESS => windows_sys::Win32::System::Threading::THREAD_ALL_ACCESS,
        FILE_ATTRIBUTE_DIRECTORY => fs::FILE_ATTRIBUTE_DIRECTORY,
        FILE_ATTRIBUTE_NORMAL => fs::FILE_ATTRIBUTE_NORMAL,
        FILE_READ_DATA => fs::FILE_READ_DATA,
        FILE_WRITE_DATA => fs::FILE_WRITE_DATA,
        FILE_APPEND_DATA => fs::FILE_APPEND_DATA,
        DELETE => fs::DELETE,
        SYNCHRONIZE => fs::SYNCHRONIZE,
        FILE_SHARE_READ => fs::FILE_SHARE_READ,
        FILE_SHARE_WRITE => fs::FILE_SHARE_WRITE,
        FILE_SHARE_DELETE => fs::FILE_SHARE_DELETE,
        GENERIC_READ => f::GENERIC_READ,
        GENERIC_WRITE => f::GENERIC_WRITE,
        OBJ_CASE_INSENSITIVE => f::OBJ_CASE_INSENSITIVE,
        OBJ_KERNEL_HANDLE => f::OBJ_KERNEL_HANDLE,
        TRUE => f::TRUE,
        FALSE => f::FALSE,
        // ntstatus.h (win32metadata: Foundation)
        STATUS_SUCCESS => f::STATUS_SUCCESS,
        STATUS_TIMEOUT => f::STATUS_TIMEOUT,
        STATUS_PENDING => f::STATUS_PENDING,
        STATUS_BUFFER_OVERFLOW => f::STATUS_BUFFER_OVERFLOW,
        STATUS_NO_MORE_ENTRIES => f::STATUS_NO_MORE_ENTRIES,
        STATUS_UNSUCCESSFUL => f::STATUS_UNSUCCESSFUL,
        STATUS_NOT_IMPLEMENTED => f::STATUS_NOT_IMPLEMENTED,
        STATUS_INFO_LENGTH_MISMATCH => f::STATUS_INFO_LENGTH_MISMATCH,
        STATUS_ACCESS_VIOLATION => f::STATUS_ACCESS_VIOLATION,
        STATUS_INVALID_HANDLE => f::STATUS_INVALID_HANDLE,
        STATUS_INVALID_PARAMETER => f::STATUS_INVALID_PARAMETER,
        STATUS_INVALID_DEVICE_REQUEST => f::STATUS_INVALID_DEVICE_REQUEST,
        STATUS_ACCESS_DENIED => f::STATUS_ACCESS_DENIED,
        STATUS_BUFFER_TOO_SMALL => f::STATUS_BUFFER_TOO_SMALL,
        STATUS_OBJECT_NAME_NOT_FOUND => f::STATUS_OBJECT_NAME_NOT_FOUND,
        STATUS_OBJECT_NAME_COLLISION => f::STATUS_OBJECT_NAME_COLLISION,
        STATUS_PORT_DISCONNECTED => f::STATUS_PORT_DISCONNECTED,
        STATUS_THREAD_IS_TERMINATING => f::STATUS_THREAD_IS_TERMINATING,
        STATUS_REVISION_MISMATCH => f::STATUS_REVISION_MISMATCH,
        STATUS_INSUFFICIENT_RESOURCES => f::STATUS_INSUFFICIENT_RESOURCES,
        STATUS_NOT_SUPPORTED => f::STATUS_NOT_SUPPORTED,
        STATUS_CANCELLED => f::STATUS_CANCELLED,
        STATUS_INVALID_BUFFER_SIZE => f::STATUS_INVALID_BUFFER_SIZE,
        STATUS_CONNECTION_COUNT_LIMIT => f::STATUS_CONNECTION_COUNT_LIMIT,
        STATUS_DATATYPE_MISALIGNMENT_ERROR => f::STATUS_DATATYPE_MISALIGNMENT_ERROR,
        STATUS_INVALID_DEVICE_STATE => f::STATUS_INVALID_DEVICE_STATE,
        STATUS_DEVICE_BUSY => f::STATUS_DEVICE_BUSY,
        STATUS_FLT_DELETING_OBJECT => f::STATUS_FLT_DELETING_OBJECT,
        STATUS_FLT_DO_NOT_ATTACH => f::STATUS_FLT_DO_NOT_ATTACH,
        STATUS_FLT_NO_WAITER_FOR_REPLY => f::STATUS_FLT_NO_WAITER_FOR_REPLY,
        STATUS_FLT_NOT_INITIALIZED => f::STATUS_FLT_NOT_INITIALIZED,
        STATUS_FLT_INVALID_NAME_REQUEST => f::STATUS_FLT_INVALID_NAME_REQUEST,
    ]
}

/// Constants the metadata does not carry, with what they are checked against here.
fn checked_against_their_definition() -> Vec<(&'static str, i128, i128)> {
    vec![
        // fltKernel.h: #define FLT_PORT_ALL_ACCESS (FLT_PORT_CONNECT | STANDARD_RIGHTS_ALL)
        (
            "FLT_PORT_ALL_ACCESS",
            i128::from(b::FLT_PORT_ALL_ACCESS),
            i128::from(flt::FLT_PORT_CONNECT | fs::STANDARD_RIGHTS_ALL),
        ),
        // fltUserStructures.h: the reply/message header size (both 16 on x64).
        (
            "FILTER_HEADER_SIZE",
            b::FILTER_HEADER_SIZE as i128,
            size_of::<ifs::FILTER_MESSAGE_HEADER>() as i128,
        ),
        (
            "FILTER_HEADER_SIZE (reply)",
            b::FILTER_HEADER_SIZE as i128,
            size_of::<ifs::FILTER_REPLY_HEADER>() as i128,
        ),
    ]
}

#[test]
fn every_constant_matches_the_windows_metadata() {
    let wrong: Vec<String> = checked_against_metadata()
        .into_iter()
        .chain(checked_against_their_definition())
        .filter(|(_, ours, theirs)| ours != theirs)
        .map(|(name, ours, theirs)| format!("{name}: ours {ours:#x}, metadata {theirs:#x}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "constants that differ:\n{}",
        wrong.join("\n")
    );
}

/// `pub const NAME` declared at item level in the crate's sources (associated constants
/// such as `UNICODE_STRING::EMPTY` are indented and excluded).
fn declared_constants() -> BTreeSet<String> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(&src).expect("read src").flatten() {
        let text = std::fs::read_to_string(entry.path()).expect("read source");
        for line in text.lines() {
            if let Some(rest) = line
                .strip_prefix("pub const ")
                .filter(|r| !r.starts_with("fn "))
            {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                names.insert(name);
            }
            // The status macro: `    STATUS_X = 0x…u32;`
            let trimmed = line.trim();
            if trimmed.starts_with("STATUS_") && trimmed.contains(" = 0x") {
                names.insert(trimmed.split(' ').next().unwrap_or_default().to_owned());
            }
        }
    }
    names
}

/// The constants named in the crate documentation's table (rows `| \`NAME\` | …`).
fn documented_constants() -> BTreeSet<String> {
    let lib = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"),
    )
    .expect("read lib.rs");
    lib.lines()
        .filter_map(|l| l.strip_prefix("//! | `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_crate_documentation_lists_every_constant() {
    let declared = declared_constants();
    let documented = documented_constants();
    assert!(declared.contains("FLT_PREOP_COMPLETE") && declared.contains("STATUS_SUCCESS"));
    let undocumented: Vec<_> = declared.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&declared).collect();
    assert!(
        undocumented.is_empty() && stale.is_empty(),
        "src/lib.rs's constant table: missing {undocumented:?}, not declared {stale:?}"
    );
}

#[test]
fn every_constant_is_checked_against_a_source() {
    let checked: BTreeSet<String> = checked_against_metadata()
        .into_iter()
        .chain(checked_against_their_definition())
        .map(|(name, _, _)| name.split(' ').next().unwrap_or_default().to_owned())
        .collect();
    // Checked only against mingw-w64's headers (tests/layout_mingw.rs) or Microsoft's
    // documentation (the POOL_FLAGS page; the metadata has no POOL_FLAGS).
    let elsewhere: BTreeSet<String> = [
        "DPFLTR_IHVDRIVER_ID",
        "DPFLTR_ERROR_LEVEL",
        "DPFLTR_WARNING_LEVEL",
        "DPFLTR_TRACE_LEVEL",
        "DPFLTR_INFO_LEVEL",
        "POOL_FLAG_NON_PAGED",
        "POOL_FLAG_PAGED",
        "POOL_FLAG_UNINITIALIZED",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let unchecked: Vec<_> = declared_constants()
        .into_iter()
        .filter(|n| !checked.contains(n) && !elsewhere.contains(n))
        .collect();
    assert!(
        unchecked.is_empty(),
        "constants no test checks: {unchecked:?}"
    );
}

#[test]
fn pool_flags_are_those_of_the_pool_flags_documentation() {
    // learn.microsoft.com/windows-hardware/drivers/kernel/pool_flags (wdm.h, WDK 10.0.19041+).
    assert_eq!(b::POOL_FLAG_UNINITIALIZED, 0x0000_0000_0000_0002);
    assert_eq!(b::POOL_FLAG_NON_PAGED, 0x0000_0000_0000_0040);
    assert_eq!(b::POOL_FLAG_PAGED, 0x0000_0000_0000_0100);
}
