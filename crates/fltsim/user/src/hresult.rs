//! NTSTATUS → Win32 error → HRESULT, as FltLib and kernel32 convert them.
//!
//! Rules (docs/port-semantics.md, "NTSTATUS → HRESULT"):
//! * `STATUS_SUCCESS` → `S_OK`;
//! * Filter Manager facility (0x1C): `(s & 0x8000FFFF) | 0x001F0000`;
//! * everything else: `HRESULT_FROM_WIN32(RtlNtStatusToDosError(s))`, with
//!   `RtlNtStatusToDosError` modelled by the table in [`ntstatus_to_win32`].
#![allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)]

use portfilter_bindings::NTSTATUS;
use windows_sys::core::HRESULT;

/// `S_OK`.
pub const S_OK: HRESULT = 0;
/// `E_INVALIDARG` as FltLib reports it (`HRESULT_FROM_WIN32(ERROR_INVALID_PARAMETER)`).
pub const E_INVALIDARG_WIN32: HRESULT = 0x8007_0057_u32 as HRESULT;
/// `HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE)`.
pub const E_HANDLE_WIN32: HRESULT = 0x8007_0006_u32 as HRESULT;
/// `HRESULT_FROM_WIN32(ERROR_IO_PENDING)`: an overlapped `FilterGetMessage` was queued.
pub const E_IO_PENDING: HRESULT = 0x8007_03E5_u32 as HRESULT;
/// `ERROR_FLT_NO_WAITER_FOR_REPLY` (already an HRESULT).
pub const ERROR_FLT_NO_WAITER_FOR_REPLY: HRESULT = 0x801F_0020_u32 as HRESULT;

/// Win32 error codes used by the model.
pub mod win32 {
    /// `ERROR_SUCCESS`.
    pub const SUCCESS: u32 = 0;
    /// `ERROR_INVALID_FUNCTION`.
    pub const INVALID_FUNCTION: u32 = 1;
    /// `ERROR_FILE_NOT_FOUND`.
    pub const FILE_NOT_FOUND: u32 = 2;
    /// `ERROR_PATH_NOT_FOUND`.
    pub const PATH_NOT_FOUND: u32 = 3;
    /// `ERROR_ACCESS_DENIED`.
    pub const ACCESS_DENIED: u32 = 5;
    /// `ERROR_INVALID_HANDLE`.
    pub const INVALID_HANDLE: u32 = 6;
    /// `ERROR_BAD_COMMAND`.
    pub const BAD_COMMAND: u32 = 22;
    /// `ERROR_BAD_LENGTH`.
    pub const BAD_LENGTH: u32 = 24;
    /// `ERROR_GEN_FAILURE`.
    pub const GEN_FAILURE: u32 = 31;
    /// `ERROR_SHARING_VIOLATION`.
    pub const SHARING_VIOLATION: u32 = 32;
    /// `ERROR_NOT_SUPPORTED`.
    pub const NOT_SUPPORTED: u32 = 50;
    /// `ERROR_INVALID_PARAMETER`.
    pub const INVALID_PARAMETER: u32 = 87;
    /// `ERROR_INSUFFICIENT_BUFFER`.
    pub const INSUFFICIENT_BUFFER: u32 = 122;
    /// `ERROR_INVALID_NAME`.
    pub const INVALID_NAME: u32 = 123;
    /// `ERROR_BUSY`.
    pub const BUSY: u32 = 170;
    /// `ERROR_ALREADY_EXISTS`.
    pub const ALREADY_EXISTS: u32 = 183;
    /// `ERROR_MORE_DATA`.
    pub const MORE_DATA: u32 = 234;
    /// `WAIT_TIMEOUT` (also an error code).
    pub const WAIT_TIMEOUT: u32 = 258;
    /// `ERROR_NO_MORE_ITEMS`.
    pub const NO_MORE_ITEMS: u32 = 259;
    /// `ERROR_MR_MID_NOT_FOUND`: what `RtlNtStatusToDosError` returns for unknown codes.
    pub const MR_MID_NOT_FOUND: u32 = 317;
    /// `ERROR_ABANDONED_WAIT_0`: the completion port was closed during a wait.
    pub const ABANDONED_WAIT_0: u32 = 735;
    /// `ERROR_OPERATION_ABORTED`.
    pub const OPERATION_ABORTED: u32 = 995;
    /// `ERROR_IO_INCOMPLETE`.
    pub const IO_INCOMPLETE: u32 = 996;
    /// `ERROR_IO_PENDING`.
    pub const IO_PENDING: u32 = 997;
    /// `ERROR_NOACCESS`.
    pub const NOACCESS: u32 = 998;
    /// `ERROR_NOT_FOUND`.
    pub const NOT_FOUND: u32 = 1168;
    /// `ERROR_CONNECTION_COUNT_LIMIT`.
    pub const CONNECTION_COUNT_LIMIT: u32 = 1238;
    /// `ERROR_REVISION_MISMATCH`.
    pub const REVISION_MISMATCH: u32 = 1306;
    /// `ERROR_NO_SYSTEM_RESOURCES`.
    pub const NO_SYSTEM_RESOURCES: u32 = 1450;
    /// `ERROR_INVALID_USER_BUFFER`.
    pub const INVALID_USER_BUFFER: u32 = 1784;
}

/// The Filter Manager's NTSTATUS facility.
const FACILITY_FILTER_MANAGER: u32 = 0x1C;
/// `FACILITY_NTWIN32`: NTSTATUS values that carry a Win32 code in their low word.
const FACILITY_NTWIN32: u32 = 0x7;

/// `RtlNtStatusToDosError` for the codes the model produces (others give
/// `ERROR_MR_MID_NOT_FOUND`, as the real routine does for codes it does not know).
#[must_use]
pub fn ntstatus_to_win32(status: NTSTATUS) -> u32 {
    let s = status as u32;
    if s == 0 {
        return win32::SUCCESS;
    }
    if (s >> 16) & 0x0FFF == FACILITY_NTWIN32 && s & 0xC000_0000 != 0 {
        return s & 0xFFFF;
    }
    match s {
        0x0000_0102 => win32::WAIT_TIMEOUT,
        0x0000_0103 => win32::IO_PENDING,
        0x8000_0005 => win32::MORE_DATA,
        0x8000_0011 => win32::BUSY,
        0x8000_001A => win32::NO_MORE_ITEMS,
        0xC000_0001 => win32::GEN_FAILURE,
        0xC000_0002 | 0xC000_0010 => win32::INVALID_FUNCTION,
        0xC000_0004 => win32::BAD_LENGTH,
        0xC000_0005 | 0xC000_02C5 => win32::NOACCESS,
        0xC000_0008 | 0xC000_0037 => win32::INVALID_HANDLE,
        0xC000_000D => win32::INVALID_PARAMETER,
        0xC000_0022 | 0xC000_004B => win32::ACCESS_DENIED,
        0xC000_0023 => win32::INSUFFICIENT_BUFFER,
        0xC000_0033 => win32::INVALID_NAME,
        0xC000_0034 => win32::FILE_NOT_FOUND,
        0xC000_0035 => win32::ALREADY_EXISTS,
        0xC000_003A => win32::PATH_NOT_FOUND,
        0xC000_0043 => win32::SHARING_VIOLATION,
        0xC000_0059 => win32::REVISION_MISMATCH,
        0xC000_009A => win32::NO_SYSTEM_RESOURCES,
        0xC000_00BB => win32::NOT_SUPPORTED,
        0xC000_0120 => win32::OPERATION_ABORTED,
        0xC000_0184 => win32::BAD_COMMAND,
        0xC000_0206 => win32::INVALID_USER_BUFFER,
        0xC000_0246 => win32::CONNECTION_COUNT_LIMIT,
        _ => win32::MR_MID_NOT_FOUND,
    }
}

/// `HRESULT_FROM_WIN32`.
#[must_use]
pub const fn hresult_from_win32(error: u32) -> HRESULT {
    if error == 0 {
        S_OK
    } else {
        ((error & 0xFFFF) | 0x8007_0000) as HRESULT
    }
}

/// How FltLib turns a kernel status into the HRESULT a `Filter*` function returns.
#[must_use]
pub fn hresult_from_ntstatus(status: NTSTATUS) -> HRESULT {
    let s = status as u32;
    if s == 0 {
        return S_OK;
    }
    if (s >> 16) & 0x0FFF == FACILITY_FILTER_MANAGER {
        return ((s & 0x8000_FFFF) | 0x001F_0000) as HRESULT;
    }
    hresult_from_win32(ntstatus_to_win32(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of docs/port-semantics.md, entry by entry.
    #[test]
    fn semantics_page_table_maps_entry_by_entry() {
        let table: [(u32, u32); 15] = [
            (0x0000_0000, 0x0000_0000),
            (0xC000_000D, 0x8007_0057),
            (0xC000_0022, 0x8007_0005),
            (0xC000_0034, 0x8007_0002),
            (0xC000_0246, 0x8007_04D6),
            (0xC000_0037, 0x8007_0006),
            (0xC000_0023, 0x8007_007A),
            (0x8000_0005, 0x8007_00EA),
            (0xC000_0010, 0x8007_0001),
            (0x8000_001A, 0x8007_0103),
            (0xC000_009A, 0x8007_05AA),
            (0xC000_0120, 0x8007_03E3),
            (0x0000_0103, 0x8007_03E5),
            (0xC01C_0020, 0x801F_0020),
            (0xC01C_000B, 0x801F_000B),
        ];
        for (status, hr) in table {
            assert_eq!(
                hresult_from_ntstatus(status as i32) as u32,
                hr,
                "NTSTATUS {status:#010x}"
            );
        }
    }

    #[test]
    fn status_timeout_maps_to_wait_timeout_hresult() {
        assert_eq!(hresult_from_ntstatus(0x102) as u32, 0x8007_0102);
    }

    #[test]
    fn filter_manager_facility_keeps_code_and_severity_bit() {
        assert_eq!(
            hresult_from_ntstatus(0xC01C_000F_u32 as i32) as u32,
            0x801F_000F
        );
    }

    #[test]
    fn ntwin32_facility_status_carries_its_win32_code() {
        assert_eq!(ntstatus_to_win32(0xC007_0005_u32 as i32), 5);
    }

    #[test]
    fn unknown_status_maps_to_mr_mid_not_found() {
        assert_eq!(
            ntstatus_to_win32(0xC0AB_CDEF_u32 as i32),
            win32::MR_MID_NOT_FOUND
        );
        assert_eq!(hresult_from_win32(0), S_OK);
    }
}
