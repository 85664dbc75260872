//! A client written only against windows-sys (as portfilter-client is) links against
//! fltsim's exported fltlib symbols and runs: on non-Windows targets windows-link's
//! `link!` expands to a plain `extern "system"` block, so the symbols resolve to the
//! `#[no_mangle]` definitions fltsim exports.

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

use fltsim::Machine;
use windows_sys::Win32::Foundation::{CloseHandle, GetLastError, HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::Storage::InstallableFileSystems::FilterConnectCommunicationPort;

#[test]
fn windows_sys_client_calls_resolve_to_fltsim() {
    let _m = Machine::boot();
    let name: Vec<u16> = r"\NobodyListens".encode_utf16().chain(Some(0)).collect();
    let mut port: HANDLE = std::ptr::null_mut();
    // SAFETY: valid NUL-terminated name and out pointer.
    let hr = unsafe {
        FilterConnectCommunicationPort(
            name.as_ptr(),
            0,
            std::ptr::null(),
            0,
            std::ptr::null(),
            &mut port,
        )
    };
    assert_eq!(hr as u32, 0x8007_0002, "no such port");
    assert_eq!(port, INVALID_HANDLE_VALUE);
    // SAFETY: FFI; closing an invalid handle fails cleanly.
    assert_eq!(unsafe { CloseHandle(0x10 as HANDLE) }, 0);
    // SAFETY: FFI.
    assert_eq!(unsafe { GetLastError() }, 6);
}
