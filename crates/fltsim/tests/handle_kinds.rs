//! The two kinds of port handle (docs/port-semantics.md, "Handle kinds"; docs/fltsim.md):
//!
//! * an overlapped handle (no `FLT_PORT_FLAG_SYNC_HANDLE`): a `FilterGetMessage` with a
//!   NULL OVERLAPPED waits on the file handle, which any other I/O completing on the
//!   handle signals — it returns early, and its message lands in the buffer later; the
//!   verifier records it. With an OVERLAPPED and its own event, nothing disturbs it;
//! * a synchronous handle: every I/O call waits for the one in progress, so a blocked
//!   `FilterGetMessage` holds `FilterReplyMessage` and `FilterSendMessage` on other threads.

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

mod common;
use common::*;
use portfilter_bindings::*;
use std::ptr::null_mut;
use std::time::Duration;
use windows_sys::Win32::Foundation::{HANDLE, WAIT_OBJECT_0, WAIT_TIMEOUT};
use windows_sys::Win32::Storage::InstallableFileSystems::{
    FILTER_MESSAGE_HEADER, FilterGetMessage,
};
use windows_sys::Win32::System::IO::{GetOverlappedResult, OVERLAPPED};
use windows_sys::Win32::System::Threading::{CreateEventW, WaitForSingleObject};

const E_IO_PENDING: i32 = 0x8007_03E5_u32 as i32;
const E_NO_WAITER: i32 = 0x801F_0020_u32 as i32;

/// A buffer that outlives every request made into it: a request the model (like
/// Windows) still holds after its call returned writes into it later.
fn leaked_buffer(fill: u8) -> usize {
    Box::leak(Box::new([fill; 64])).as_mut_ptr() as usize
}

/// The 64 bytes at `addr`, read volatile (the model writes them from another thread).
fn bytes_at(addr: usize) -> Vec<u8> {
    (0..64)
        // SAFETY: `addr` is a leaked 64-byte buffer.
        .map(|i| unsafe { std::ptr::read_volatile((addr as *const u8).add(i)) })
        .collect()
}

fn get_into(h: usize, addr: usize, overlapped: *mut OVERLAPPED) -> i32 {
    // SAFETY: a leaked 64-byte buffer; `overlapped` is null or outlives the request.
    unsafe {
        FilterGetMessage(
            h as HANDLE,
            addr as *mut FILTER_MESSAGE_HEADER,
            64,
            overlapped,
        )
    }
}

/// Boots the machine with the test filter loaded, connects with `options` (0: an
/// overlapped handle) and leaks a buffer filled with `fill`: `(machine, handle, buffer)`.
fn set_up(options: u32, fill: u8) -> (fltsim::MachineGuard, usize, usize) {
    let m = boot_loaded(Config::default());
    let h = connect_opts(PORT_NAME, options, &[]).expect("connect") as usize;
    (m, h, leaked_buffer(fill))
}

/// A NULL-OVERLAPPED `FilterGetMessage` on `h` into `buffer`, on a thread of `s`, once the
/// model has queued its request.
fn blocked_get<'scope>(
    s: &'scope std::thread::Scope<'scope, '_>,
    h: usize,
    buffer: usize,
) -> std::thread::ScopedJoinHandle<'scope, i32> {
    let get = s.spawn(move || get_into(h, buffer, null_mut()));
    wait_until("get queued", || fltsim::port::queued_requests() == 1);
    get
}

/// The verifier has recorded exactly one violation, of `rule`; returns its detail.
fn the_one_violation(m: &fltsim::MachineGuard, rule: &'static str) -> String {
    let violations = m.violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].rule, rule);
    violations[0].detail.clone()
}

/// The request that returned early is still queued: the next message the driver sends is
/// written into `buffer`, which its caller believes it got back.
fn the_next_message_lands_in(buffer: usize) {
    assert_eq!(
        kernel_send(0, b"late", None, BOUNDED).status,
        STATUS_SUCCESS
    );
    assert_eq!(&bytes_at(buffer)[16..20], b"late");
}

/// Waits (bounded) until the thread has returned.
fn returns<T>(what: &str, t: &std::thread::ScopedJoinHandle<'_, T>) {
    wait_until(what, || t.is_finished());
}

/// Asserts that the thread is still blocked a while later.
fn stays_blocked<T>(what: &str, t: &std::thread::ScopedJoinHandle<'_, T>) {
    std::thread::sleep(Duration::from_millis(300));
    assert!(!t.is_finished(), "{what}");
}

#[test]
fn null_overlapped_get_on_an_overlapped_handle_returns_early_when_another_call_on_the_handle_completes()
 {
    let (mut m, h, buffer) = set_up(0, 0xEE);
    m.expect_violation(fltsim::rule::NULL_OVERLAPPED_GET_WOKEN_EARLY);
    std::thread::scope(|s| {
        let _release = ReleaseOnUnwind(h as HANDLE);
        let get = blocked_get(s, h, buffer);
        // A command from another thread on the same handle completes…
        assert_eq!(send(h as HANDLE, b"E1234", &mut [0u8; 8]), (0, 5));
        // …and wakes the get, which returns success without its message.
        returns("the NULL-OVERLAPPED get woken by the command", &get);
        assert_eq!(get.join().unwrap(), 0, "S_OK");
        assert_eq!(bytes_at(buffer), vec![0xEE; 64], "the buffer is unwritten");
        let detail = the_one_violation(&m, fltsim::rule::NULL_OVERLAPPED_GET_WOKEN_EARLY);
        assert!(detail.contains("NULL OVERLAPPED"), "{detail}");
        // Its request is still queued: the next message is written into the buffer the
        // caller believes it got back.
        assert_eq!(fltsim::port::queued_requests(), 1);
        the_next_message_lands_in(buffer);
    });
    close(h as HANDLE);
}

#[test]
fn null_overlapped_get_is_not_woken_by_completions_before_it_started() {
    let (_m, h, buffer) = set_up(0, 0);
    assert_eq!(send(h as HANDLE, b"E1", &mut [0u8; 8]), (0, 2));
    std::thread::scope(|s| {
        let _release = ReleaseOnUnwind(h as HANDLE);
        let get = blocked_get(s, h, buffer);
        stays_blocked("a get waits for its message", &get);
        assert_eq!(kernel_send(0, b"msg", None, BOUNDED).status, STATUS_SUCCESS);
        assert_eq!(get.join().unwrap(), 0);
        assert_eq!(&bytes_at(buffer)[16..19], b"msg");
    });
    close(h as HANDLE);
}

#[test]
fn get_with_its_own_overlapped_and_event_is_not_disturbed_by_other_calls_on_the_handle() {
    let (_m, h, buffer) = set_up(0, 0);
    // SAFETY: FFI into the model: a manual-reset event, not signalled.
    let event = unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) };
    assert!(!event.is_null());
    let mut overlapped = Box::new(OVERLAPPED {
        hEvent: event,
        ..OVERLAPPED::default()
    });
    assert_eq!(get_into(h, buffer, &raw mut *overlapped), E_IO_PENDING);
    // Replies and commands complete on the handle meanwhile.
    assert_eq!(send(h as HANDLE, b"E1234", &mut [0u8; 8]), (0, 5));
    assert_eq!(reply(h as HANDLE, 0, 99, &[]), E_NO_WAITER);
    // SAFETY: FFI into the model.
    assert_eq!(unsafe { WaitForSingleObject(event, 200) }, WAIT_TIMEOUT);
    assert_eq!(bytes_at(buffer), vec![0; 64]);
    assert_eq!(
        kernel_send(0, b"mine", None, BOUNDED).status,
        STATUS_SUCCESS
    );
    // SAFETY: FFI into the model.
    assert_eq!(unsafe { WaitForSingleObject(event, 10_000) }, WAIT_OBJECT_0);
    let mut bytes = 0u32;
    // SAFETY: the completed request's OVERLAPPED.
    let ok = unsafe { GetOverlappedResult(h as HANDLE, &*overlapped, &mut bytes, 0) };
    assert_eq!((ok, bytes), (1, 20));
    assert_eq!(&bytes_at(buffer)[16..20], b"mine");
    close(event);
    close(h as HANDLE);
}

#[test]
fn get_overlapped_result_without_an_event_returns_early_when_another_call_on_the_handle_completes()
{
    let (mut m, h, buffer) = set_up(0, 0);
    m.expect_violation(fltsim::rule::NULL_EVENT_RESULT_WOKEN_EARLY);
    // No event: GetOverlappedResult waits on the file handle.
    let overlapped: &'static mut OVERLAPPED = Box::leak(Box::default());
    let ov = std::ptr::from_mut(overlapped) as usize;
    assert_eq!(get_into(h, buffer, ov as *mut OVERLAPPED), E_IO_PENDING);
    std::thread::scope(|s| {
        let _release = ReleaseOnUnwind(h as HANDLE);
        let wait = s.spawn(move || {
            let mut bytes = u32::MAX;
            // SAFETY: the leaked OVERLAPPED of our pending request.
            let ok =
                unsafe { GetOverlappedResult(h as HANDLE, ov as *const OVERLAPPED, &mut bytes, 1) };
            (ok, bytes)
        });
        stays_blocked("GetOverlappedResult waits", &wait);
        assert_eq!(send(h as HANDLE, b"E1234", &mut [0u8; 8]), (0, 5));
        returns("GetOverlappedResult woken by the command", &wait);
        // What kernelbase reports then: the OVERLAPPED still says STATUS_PENDING, a
        // success code: TRUE, 0 bytes.
        assert_eq!(wait.join().unwrap(), (1, 0));
        the_one_violation(&m, fltsim::rule::NULL_EVENT_RESULT_WOKEN_EARLY);
        the_next_message_lands_in(buffer);
    });
    close(h as HANDLE);
}

#[test]
fn a_get_blocked_on_a_synchronous_handle_holds_replies_and_commands_until_it_returns() {
    let (_m, h, buffer) = set_up(FLT_PORT_FLAG_SYNC_HANDLE, 0);
    std::thread::scope(|s| {
        let _release = ReleaseOnUnwind(h as HANDLE);
        let get = blocked_get(s, h, buffer);
        let command = s.spawn(move || send(h as HANDLE, b"E1234", &mut [0u8; 8]));
        let answer = s.spawn(move || reply(h as HANDLE, 0, 99, &[]));
        stays_blocked(
            "FilterSendMessage waits while a FilterGetMessage holds the synchronous handle",
            &command,
        );
        assert!(
            !answer.is_finished(),
            "FilterReplyMessage waits while a FilterGetMessage holds the synchronous handle"
        );
        assert_eq!(kernel_send(0, b"go", None, BOUNDED).status, STATUS_SUCCESS);
        assert_eq!(get.join().unwrap(), 0);
        assert_eq!(&bytes_at(buffer)[16..18], b"go");
        assert_eq!(command.join().unwrap(), (0, 5));
        assert_eq!(answer.join().unwrap(), E_NO_WAITER);
    });
    close(h as HANDLE);
}

#[test]
fn cancel_io_ex_is_not_held_by_a_blocked_synchronous_get() {
    let (_m, h, buffer) = set_up(FLT_PORT_FLAG_SYNC_HANDLE, 0);
    std::thread::scope(|s| {
        let _release = ReleaseOnUnwind(h as HANDLE);
        let get = blocked_get(s, h, buffer);
        // SAFETY: FFI into the model.
        let cancelled =
            unsafe { windows_sys::Win32::System::IO::CancelIoEx(h as HANDLE, std::ptr::null()) };
        assert_eq!(cancelled, 1);
        assert_eq!(get.join().unwrap(), 0x8007_03E3_u32 as i32);
    });
    close(h as HANDLE);
}
