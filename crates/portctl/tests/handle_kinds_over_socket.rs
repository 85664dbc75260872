//! The handle kinds (docs/port-semantics.md, "Handle kinds") across the socket: this
//! process calls the fltlib functions of the shim (fltlib-remote, what `portctl` links)
//! against a real `portfilter-sim`, and gets the same rules as in-process:
//!
//! * a synchronous handle serializes: a `FilterSendMessage` waits while another thread's
//!   `FilterGetMessage` holds the handle (until `CancelIoEx` releases it);
//! * a NULL-OVERLAPPED `FilterGetMessage` on an overlapped handle is woken by another
//!   call's completion and returns early; the shim forwards the violation and the host's
//!   verifier reports it (exit status 3).
//!
//! One test function: the shim's socket is process-wide.
#![cfg(unix)]

mod common;

use common::Host;
use fltlib_shim as _;
use portfilter_client::protocol::{
    CONNECT_CONTEXT_BYTES, Command, ConnectContext, HELLO_REPLY_BYTES, Role, encode_request,
};
use std::ffi::c_void;
use std::ptr::{null, null_mut};
use std::time::Duration;
use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::Storage::InstallableFileSystems::{
    FILTER_MESSAGE_HEADER, FilterConnectCommunicationPort, FilterGetMessage, FilterSendMessage,
};
use windows_sys::Win32::System::IO::CancelIoEx;

const FLT_PORT_FLAG_SYNC_HANDLE: u32 = 1;
const E_OPERATION_ABORTED: i32 = 0x8007_03E3_u32.cast_signed();

fn connect(options: u32) -> usize {
    let mut context = [0u8; CONNECT_CONTEXT_BYTES];
    ConnectContext {
        role: Role::Control,
    }
    .encode(&mut context)
    .unwrap();
    let name: Vec<u16> = "\\PortFilterPort".encode_utf16().chain([0]).collect();
    let mut port: HANDLE = INVALID_HANDLE_VALUE;
    // SAFETY: a NUL-terminated name, a context of its size, a valid out pointer.
    let hr = unsafe {
        FilterConnectCommunicationPort(
            name.as_ptr(),
            options,
            context.as_ptr().cast(),
            CONNECT_CONTEXT_BYTES as u16,
            null(),
            &mut port,
        )
    };
    assert_eq!(hr, 0, "connect: {hr:#x}");
    port as usize
}

/// A Hello command (8-aligned buffers, as the driver wants); returns the HRESULT.
fn hello(port: usize) -> i32 {
    let mut input = [0u64; 2];
    // SAFETY: u64 → bytes view of our own array.
    let input_bytes =
        unsafe { std::slice::from_raw_parts_mut(input.as_mut_ptr().cast::<u8>(), 16) };
    let len = encode_request(Command::Hello, input_bytes).unwrap();
    let mut output = [0u64; HELLO_REPLY_BYTES / 8];
    let mut returned = 0u32;
    // SAFETY: buffers valid for their sizes; a valid out pointer.
    unsafe {
        FilterSendMessage(
            port as HANDLE,
            input.as_ptr().cast::<c_void>(),
            len as u32,
            output.as_mut_ptr().cast::<c_void>(),
            HELLO_REPLY_BYTES as u32,
            &mut returned,
        )
    }
}

/// A NULL-OVERLAPPED get into a leaked 4 KiB buffer (a request woken early still writes
/// into it later); returns the HRESULT and the buffer's address.
fn get_without_overlapped(port: usize, fill: u8) -> (i32, usize) {
    let buffer: &'static mut [u8; 4096] = Box::leak(Box::new([fill; 4096]));
    let addr = buffer.as_mut_ptr() as usize;
    // SAFETY: a leaked buffer of 4096 bytes.
    let hr = unsafe {
        FilterGetMessage(
            port as HANDLE,
            addr as *mut FILTER_MESSAGE_HEADER,
            4096,
            null_mut(),
        )
    };
    (hr, addr)
}

fn wait_finished<T>(what: &str, thread: &std::thread::JoinHandle<T>, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    while !thread.is_finished() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_shim_reproduces_the_handle_kinds_across_the_socket() {
    let host = Host::start();
    // SAFETY: set before any other thread of this test reads the environment.
    unsafe { std::env::set_var("PORTFILTER_SIM_SOCKET", &host.socket) };

    // A synchronous handle: the command waits for the blocked get.
    let sync = connect(FLT_PORT_FLAG_SYNC_HANDLE);
    let get = std::thread::spawn(move || get_without_overlapped(sync, 0).0);
    std::thread::sleep(Duration::from_millis(300));
    let command = std::thread::spawn(move || hello(sync));
    std::thread::sleep(Duration::from_millis(300));
    let held = !command.is_finished();
    // SAFETY: FFI; cancels every request of the handle (not an I/O on it: not held).
    assert_eq!(unsafe { CancelIoEx(sync as HANDLE, null()) }, 1);
    wait_finished("the get ends when cancelled", &get, Duration::from_secs(10));
    assert_eq!(get.join().unwrap(), E_OPERATION_ABORTED);
    wait_finished(
        "the command runs once the get returned",
        &command,
        Duration::from_secs(10),
    );
    assert_eq!(command.join().unwrap(), 0);
    assert!(
        held,
        "FilterSendMessage waited while FilterGetMessage held the synchronous handle"
    );
    // SAFETY: our handle.
    unsafe { CloseHandle(sync as HANDLE) };

    // An overlapped handle: a NULL-OVERLAPPED get returns early when a command completes.
    let overlapped = connect(0);
    let get = std::thread::spawn(move || get_without_overlapped(overlapped, 0xEE));
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..50 {
        assert_eq!(hello(overlapped), 0);
        if get.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_finished(
        "the NULL-OVERLAPPED get woken by the command",
        &get,
        Duration::from_secs(10),
    );
    let (hr, buffer) = get.join().unwrap();
    assert_eq!(hr, 0, "S_OK");
    // SAFETY: the leaked buffer; its request is still queued at the host, which has no
    // message for a control connection.
    let header = unsafe { std::slice::from_raw_parts(buffer as *const u8, 16) };
    assert_eq!(header, &[0xEE; 16], "the buffer is unwritten");
    // SAFETY: our handle (its queued request completes with the disconnect).
    unsafe { CloseHandle(overlapped as HANDLE) };

    let (status, report) = host.stop_with_status();
    assert_eq!(status.code(), Some(3), "verifier violation: {report}");
    assert!(report.contains("verifier: 1 violation(s)"), "{report}");
    assert!(
        report.contains(
            "FilterGetMessage with a NULL OVERLAPPED on an overlapped handle returned early"
        ),
        "{report}"
    );
}
