//! The user side (FltLib) of docs/port-semantics.md, called through windows-sys: a
//! client crate's calls link against fltsim's exports and run here.

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

mod common;
use common::*;
use portfilter_bindings::*;
use std::ptr::null_mut;
use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, HANDLE, INVALID_HANDLE_VALUE, SetLastError, WAIT_OBJECT_0,
    WAIT_TIMEOUT,
};
use windows_sys::Win32::Storage::InstallableFileSystems::{
    FILTER_MESSAGE_HEADER, FilterGetMessage, FilterReplyMessage, FilterSendMessage,
};
use windows_sys::Win32::System::IO::{
    CancelIoEx, CreateIoCompletionPort, GetOverlappedResult, GetQueuedCompletionStatus,
    GetQueuedCompletionStatusEx, OVERLAPPED, OVERLAPPED_ENTRY, PostQueuedCompletionStatus,
};
use windows_sys::Win32::System::Threading::{
    CreateEventW, ResetEvent, SetEvent, WaitForSingleObject,
};

const E_NOT_FOUND: i32 = 0x8007_0002_u32 as i32;
const E_INVALIDARG: i32 = 0x8007_0057_u32 as i32;
const E_HANDLE: i32 = 0x8007_0006_u32 as i32;
const E_IO_PENDING: i32 = 0x8007_03E5_u32 as i32;
const E_INSUFFICIENT_BUFFER: i32 = 0x8007_007A_u32 as i32;
const E_NO_WAITER: i32 = 0x801F_0020_u32 as i32;
const ERROR_INVALID_HANDLE: u32 = 6;
const ERROR_INVALID_PARAMETER: u32 = 87;
const ERROR_OPERATION_ABORTED: u32 = 995;
const ERROR_IO_INCOMPLETE: u32 = 996;
const ERROR_NOT_FOUND: u32 = 1168;
const ERROR_ABANDONED_WAIT_0: u32 = 735;

fn ov() -> Box<OVERLAPPED> {
    Box::new(OVERLAPPED::default())
}

fn get_overlapped(h: HANDLE, buf: &mut [u8], o: &mut OVERLAPPED) -> i32 {
    // SAFETY: the buffer and OVERLAPPED outlive the request in every test below.
    unsafe {
        FilterGetMessage(
            h,
            buf.as_mut_ptr().cast::<FILTER_MESSAGE_HEADER>(),
            buf.len() as u32,
            o,
        )
    }
}

fn iocp_for(h: HANDLE, key: usize) -> HANDLE {
    // SAFETY: FFI into the model.
    let port = unsafe { CreateIoCompletionPort(h, null_mut(), key, 0) };
    assert!(!port.is_null());
    port
}

fn dequeue(port: HANDLE, ms: u32) -> (i32, u32, usize, *mut OVERLAPPED, u32) {
    let (mut n, mut key, mut o) = (0u32, 0usize, null_mut());
    // SAFETY: valid out pointers.
    let ok = unsafe { GetQueuedCompletionStatus(port, &mut n, &mut key, &mut o, ms) };
    // SAFETY: FFI.
    let err = if ok == 0 {
        // SAFETY: FFI into the model with valid arguments (misuse is the point where noted).
        unsafe { GetLastError() }
    } else {
        0
    };
    (ok, n, key, o, err)
}

// ------------------------------------------------ FilterConnectCommunicationPort

#[test]
fn connect_to_a_missing_port_gives_0x80070002_and_invalid_handle_value() {
    let _m = boot_loaded(Config::default());
    assert_eq!(
        connect_opts(r"\NoSuchPort", 0, &[]).err(),
        Some(E_NOT_FOUND)
    );
}

#[test]
fn connect_context_and_size_must_be_both_set_or_both_empty() {
    let _m = boot_loaded(Config::default());
    let w = wide(PORT_NAME);
    let mut h: HANDLE = null_mut();
    let ctx = [1u8; 4];
    // SAFETY: valid pointers; the mismatch is the point.
    let hr = unsafe {
        windows_sys::Win32::Storage::InstallableFileSystems::FilterConnectCommunicationPort(
            w.as_ptr(),
            0,
            ctx.as_ptr().cast(),
            0,
            std::ptr::null(),
            &mut h,
        )
    };
    assert_eq!((hr, h), (E_INVALIDARG, INVALID_HANDLE_VALUE));
    // SAFETY: as above.
    let hr = unsafe {
        windows_sys::Win32::Storage::InstallableFileSystems::FilterConnectCommunicationPort(
            w.as_ptr(),
            0,
            std::ptr::null(),
            4,
            std::ptr::null(),
            &mut h,
        )
    };
    assert_eq!((hr, h), (E_INVALIDARG, INVALID_HANDLE_VALUE));
    assert_eq!(
        connect_opts(PORT_NAME, 2, &[]).err(),
        Some(E_INVALIDARG),
        "unknown option"
    );
}

#[test]
fn sync_handle_option_gives_a_handle_that_cannot_join_a_completion_port() {
    let _m = boot_loaded(Config::default());
    let h = connect_opts(PORT_NAME, FLT_PORT_FLAG_SYNC_HANDLE, &[]).unwrap();
    // SAFETY: FFI.
    let port = unsafe { CreateIoCompletionPort(h, null_mut(), 1, 0) };
    assert!(port.is_null());
    // SAFETY: FFI.
    assert_eq!(unsafe { GetLastError() }, ERROR_INVALID_PARAMETER);
    close(h);
}

// ------------------------------------------------ FilterGetMessage

#[test]
fn get_message_without_overlapped_returns_at_once_when_a_message_waits() {
    let _m = boot_loaded(Config::default());
    let h = connect(&[]) as usize;
    std::thread::scope(|s| {
        let sender = s.spawn(|| kernel_send(0, b"now", None, BOUNDED).status);
        wait_until("sender waiting", || fltsim::port::waiting_senders() == 1);
        let mut buf = [0u8; 32];
        assert_eq!(get_message(h as _, &mut buf), 0);
        assert_eq!(&buf[16..19], b"now");
        assert_eq!(sender.join().unwrap(), STATUS_SUCCESS);
    });
    close(h as _);
}

#[test]
fn get_message_payload_starts_at_offset_16_and_padding_bytes_4_to_8_are_not_written() {
    let _m = boot_loaded(Config::default());
    let h = connect(&[]) as usize;
    std::thread::scope(|s| {
        let _release = ReleaseOnUnwind(h as _);
        let c = s.spawn(move || {
            let mut buf = [0xEEu8; 32];
            assert_eq!(get_message(h as _, &mut buf), 0);
            buf
        });
        assert_eq!(
            kernel_send(0, b"P", None, rel_ms(5000)).status,
            STATUS_SUCCESS
        );
        let buf = c.join().unwrap();
        assert_eq!(&buf[4..8], &[0xEE; 4], "padding untouched");
        assert_eq!(buf[16], b'P');
        assert_eq!(buf[17], 0xEE, "nothing past the payload");
    });
    close(h as _);
}

#[test]
fn overlapped_get_message_returns_0x800703e5_and_completes_through_the_event() {
    let _m = boot_loaded(Config::default());
    let h = connect(&[]);
    // SAFETY: FFI.
    let ev = unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) };
    let mut o = ov();
    o.hEvent = ev;
    let mut buf = vec![0u8; 64];
    assert_eq!(get_overlapped(h, &mut buf, &mut o), E_IO_PENDING);
    // SAFETY: FFI.
    assert_eq!(unsafe { WaitForSingleObject(ev, 0) }, WAIT_TIMEOUT);
    assert_eq!(
        kernel_send(0, b"12345", None, rel_ms(5000)).status,
        STATUS_SUCCESS
    );
    // SAFETY: FFI.
    assert_eq!(unsafe { WaitForSingleObject(ev, 5000) }, WAIT_OBJECT_0);
    let mut n = 0u32;
    // SAFETY: the OVERLAPPED completed.
    assert_eq!(unsafe { GetOverlappedResult(h, &*o, &mut n, 0) }, 1);
    assert_eq!(n, 16 + 5, "bytes transferred = 16 + SenderBufferLength");
    assert_eq!(o.Internal, 0, "Internal = NTSTATUS");
    assert_eq!(o.InternalHigh, 21, "InternalHigh = bytes");
    close(h);
    close(ev);
}

#[test]
fn overlapped_get_messages_complete_through_the_completion_port_in_any_order() {
    let _m = boot_loaded(Config::default());
    let h = connect(&[]);
    let port = iocp_for(h, 77);
    let mut bufs = [vec![0u8; 64], vec![0u8; 64], vec![0u8; 64]];
    let mut ovs = [ov(), ov(), ov()];
    for (b, o) in bufs.iter_mut().zip(ovs.iter_mut()) {
        assert_eq!(get_overlapped(h, b, o), E_IO_PENDING);
    }
    for m in [b"a", b"b", b"c"] {
        assert_eq!(kernel_send(0, m, None, rel_ms(5000)).status, STATUS_SUCCESS);
    }
    let mut done = Vec::new();
    for _ in 0..3 {
        let (ok, n, key, o, _) = dequeue(port, 5000);
        assert_eq!((ok, n, key), (1, 17, 77));
        let i = ovs
            .iter()
            .position(|x| std::ptr::eq(&**x, o))
            .expect("one of ours");
        done.push(bufs[i][16]);
    }
    done.sort_unstable();
    assert_eq!(done, b"abc");
    close(h);
    close(port);
}

#[test]
fn get_message_with_null_buffer_or_zero_size_gives_0x80070057() {
    let _m = boot_loaded(Config::default());
    let h = connect(&[]);
    // SAFETY: FFI; the null/zero arguments are the point.
    assert_eq!(
        // SAFETY: FFI into the model with valid arguments (misuse is the point where noted).
        unsafe { FilterGetMessage(h, null_mut(), 64, null_mut()) },
        E_INVALIDARG
    );
    let mut buf = [0u8; 8];
    // SAFETY: as above.
    assert_eq!(
        // SAFETY: FFI into the model with valid arguments (misuse is the point where noted).
        unsafe { FilterGetMessage(h, buf.as_mut_ptr().cast(), 0, null_mut()) },
        E_INVALIDARG
    );
    close(h);
}

#[test]
fn too_small_overlapped_get_completes_with_0x8007007a_and_the_message_stays() {
    let _m = boot_loaded(Config::default());
    let h = connect(&[]) as usize;
    std::thread::scope(|s| {
        let sender = s.spawn(|| kernel_send(0, &[1u8; 30], None, rel_ms(5000)).status);
        wait_until("sender waiting", || fltsim::port::waiting_senders() == 1);
        // SAFETY: FFI.
        let ev = unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) };
        let mut o = ov();
        o.hEvent = ev;
        let mut small = vec![0u8; 20];
        assert_eq!(get_overlapped(h as _, &mut small, &mut o), E_IO_PENDING);
        // SAFETY: FFI.
        assert_eq!(unsafe { WaitForSingleObject(ev, 5000) }, WAIT_OBJECT_0);
        let mut n = 0u32;
        // SAFETY: completed OVERLAPPED.
        assert_eq!(unsafe { GetOverlappedResult(h as _, &*o, &mut n, 1) }, 0);
        // SAFETY: FFI.
        assert_eq!(unsafe { GetLastError() }, 122, "ERROR_INSUFFICIENT_BUFFER");
        assert_eq!(n, 46, "the needed size is reported");
        let mut big = [0u8; 64];
        assert_eq!(get_message(h as _, &mut big), 0);
        assert_eq!(sender.join().unwrap(), STATUS_SUCCESS);
        close(ev);
    });
    close(h as _);
}

#[test]
fn get_message_on_a_disconnected_port_gives_0x80070006() {
    let _m = boot_loaded(Config::default());
    let h = connect(&[]);
    fltsim::unload_driver().unwrap();
    let mut buf = [0u8; 32];
    assert_eq!(get_message(h, &mut buf), E_HANDLE);
    let mut o = ov();
    assert_eq!(
        get_overlapped(h, &mut buf, &mut o),
        E_HANDLE,
        "fails at once, no completion"
    );
    close(h);
}

#[test]
fn cancel_io_ex_completes_a_pending_get_with_0x800703e3() {
    let _m = boot_loaded(Config::default());
    let h = connect(&[]);
    let port = iocp_for(h, 5);
    let mut a = ov();
    let mut b = ov();
    let mut ba = vec![0u8; 64];
    let mut bb = vec![0u8; 64];
    assert_eq!(get_overlapped(h, &mut ba, &mut a), E_IO_PENDING);
    assert_eq!(get_overlapped(h, &mut bb, &mut b), E_IO_PENDING);
    // SAFETY: FFI with our OVERLAPPED.
    assert_eq!(unsafe { CancelIoEx(h, &*a) }, 1);
    let (ok, _, key, o, err) = dequeue(port, 5000);
    assert_eq!((ok, key, err), (0, 5, ERROR_OPERATION_ABORTED));
    assert!(std::ptr::eq(o, &*a));
    assert_eq!(a.Internal as u32, 0xC000_0120, "STATUS_CANCELLED");
    assert_eq!(
        fltsim_user::hresult::hresult_from_ntstatus(a.Internal as u32 as i32) as u32,
        0x8007_03E3
    );
    // NULL cancels everything left; then nothing is left.
    // SAFETY: FFI.
    assert_eq!(unsafe { CancelIoEx(h, std::ptr::null()) }, 1);
    let (ok, _, _, o, _) = dequeue(port, 5000);
    assert_eq!(ok, 0);
    assert!(std::ptr::eq(o, &*b));
    // SAFETY: FFI.
    assert_eq!(unsafe { CancelIoEx(h, std::ptr::null()) }, 0);
    // SAFETY: FFI.
    assert_eq!(unsafe { GetLastError() }, ERROR_NOT_FOUND);
    close(h);
    close(port);
}

#[test]
fn cancel_io_ex_releases_a_blocked_synchronous_get() {
    let _m = boot_loaded(Config::default());
    let h = connect(&[]) as usize;
    std::thread::scope(|s| {
        let g = s.spawn(move || get_message(h as _, &mut [0u8; 64]));
        wait_until("get queued", || fltsim::port::queued_requests() == 1);
        // SAFETY: FFI.
        assert_eq!(unsafe { CancelIoEx(h as _, std::ptr::null()) }, 1);
        assert_eq!(g.join().unwrap(), 0x8007_03E3_u32 as i32);
    });
    close(h as _);
}

// ------------------------------------------------ FilterReplyMessage / FilterSendMessage

#[test]
fn reply_shorter_than_the_16_byte_header_gives_0x80070057() {
    let _m = boot_loaded(Config::default());
    let h = connect(&[]);
    let b = [0u8; 15];
    // SAFETY: FFI with a 15-byte buffer.
    assert_eq!(
        // SAFETY: FFI into the model with valid arguments (misuse is the point where noted).
        unsafe { FilterReplyMessage(h, b.as_ptr().cast(), 15) },
        E_INVALIDARG
    );
    // SAFETY: FFI.
    assert_eq!(
        // SAFETY: FFI into the model with valid arguments (misuse is the point where noted).
        unsafe { FilterReplyMessage(h, std::ptr::null(), 16) },
        E_INVALIDARG
    );
    close(h);
}

#[test]
fn reply_without_a_waiter_gives_0x801f0020_message_id_0_duplicate_or_other_connection() {
    let _m = boot_loaded(Config::default());
    let a = connect(&[]) as usize;
    let b = connect(&[]) as usize;
    assert_eq!(reply(a as _, 0, 0, &[]), E_NO_WAITER);
    std::thread::scope(|s| {
        let _release = ReleaseOnUnwind(a as _);
        let c = s.spawn(move || {
            let mut buf = [0u8; 64];
            assert_eq!(get_message(a as _, &mut buf), 0);
            let id = header_of(&buf).1;
            assert_eq!(reply(b as _, 0, id, &[]), E_NO_WAITER, "other connection");
            assert_eq!(reply(a as _, 0, id, &[]), 0);
            assert_eq!(reply(a as _, 0, id, &[]), E_NO_WAITER, "duplicate");
        });
        assert_eq!(
            kernel_send(0, b"q", Some(4), rel_ms(5000)).status,
            STATUS_SUCCESS
        );
        c.join().unwrap();
    });
    close(a as _);
    close(b as _);
}

#[test]
fn filter_send_message_requires_bytes_returned() {
    let _m = boot_loaded(Config::default());
    let h = connect(&[]);
    // SAFETY: FFI; the NULL lpBytesReturned is the point.
    let hr = unsafe { FilterSendMessage(h, b"E".as_ptr().cast(), 1, null_mut(), 0, null_mut()) };
    assert_eq!(hr, E_INVALIDARG);
    close(h);
}

#[test]
fn unknown_handles_give_0x80070006_and_never_crash() {
    let _m = boot_loaded(Config::default());
    let bogus = 0x1234 as HANDLE;
    assert_eq!(get_message(bogus, &mut [0u8; 32]), E_HANDLE);
    assert_eq!(reply(bogus, 0, 1, &[]), E_HANDLE);
    assert_eq!(send(bogus, b"E", &mut []).0, E_HANDLE);
    // An event handle is not a port.
    // SAFETY: FFI.
    let ev = unsafe { CreateEventW(std::ptr::null(), 0, 0, std::ptr::null()) };
    assert_eq!(get_message(ev, &mut [0u8; 32]), E_HANDLE);
    close(ev);
}

// ------------------------------------------------ CloseHandle

#[test]
fn close_handle_twice_fails_with_error_invalid_handle() {
    let _m = boot_loaded(Config::default());
    let h = connect(&[]);
    assert!(close(h));
    // SAFETY: FFI.
    unsafe { SetLastError(0) };
    assert!(!close(h));
    // SAFETY: FFI.
    assert_eq!(unsafe { GetLastError() }, ERROR_INVALID_HANDLE);
    assert_eq!(
        seen()
            .iter()
            .filter(|s| matches!(s, Seen::Disconnect { .. }))
            .count(),
        1
    );
}

#[test]
fn closing_the_port_handle_fails_its_pending_gets() {
    let _m = boot_loaded(Config::default());
    let h = connect(&[]);
    let port = iocp_for(h, 9);
    let mut o = ov();
    let mut buf = vec![0u8; 64];
    assert_eq!(get_overlapped(h, &mut buf, &mut o), E_IO_PENDING);
    assert!(close(h));
    let (ok, _, key, op, err) = dequeue(port, 5000);
    assert_eq!((ok, key, err), (0, 9, ERROR_INVALID_HANDLE));
    assert!(std::ptr::eq(op, &*o));
    close(port);
}

#[test]
fn handles_belong_to_their_process() {
    let _m = boot_loaded(Config::default());
    fltsim::process::spawn(5001, "a.exe", true);
    fltsim::process::spawn(5002, "b.exe", true);
    let h = {
        let _a = fltsim::process::enter(5001);
        connect(&[])
    };
    {
        let _b = fltsim::process::enter(5002);
        assert_eq!(get_message(h, &mut [0u8; 32]), E_HANDLE);
        assert!(!close(h));
    }
    let _a = fltsim::process::enter(5001);
    assert!(close(h));
}

// ------------------------------------------------ completion ports and events

#[test]
fn post_queued_completion_status_and_timeouts() {
    let _m = boot_loaded(Config::default());
    // SAFETY: FFI.
    let port = unsafe { CreateIoCompletionPort(INVALID_HANDLE_VALUE, null_mut(), 0, 0) };
    assert!(!port.is_null());
    let (ok, _, _, o, err) = dequeue(port, 10);
    assert_eq!((ok, err), (0, WAIT_TIMEOUT));
    assert!(o.is_null(), "a timeout returns a NULL OVERLAPPED");
    // SAFETY: FFI.
    assert_eq!(
        // SAFETY: FFI into the model with valid arguments (misuse is the point where noted).
        unsafe { PostQueuedCompletionStatus(port, 3, 42, 0x10 as *const OVERLAPPED) },
        1
    );
    let (ok, n, key, o, _) = dequeue(port, 0);
    assert_eq!((ok, n, key, o as usize), (1, 3, 42, 0x10));
    close(port);
}

#[test]
fn get_queued_completion_status_ex_removes_up_to_count_entries() {
    let _m = boot_loaded(Config::default());
    // SAFETY: FFI.
    let port = unsafe { CreateIoCompletionPort(INVALID_HANDLE_VALUE, null_mut(), 0, 0) };
    for k in 0..5 {
        // SAFETY: FFI.
        unsafe { PostQueuedCompletionStatus(port, k, k as usize, null_mut()) };
    }
    let mut entries = [OVERLAPPED_ENTRY::default(); 3];
    let mut n = 0u32;
    // SAFETY: array of 3 entries.
    assert_eq!(
        // SAFETY: FFI into the model with valid arguments (misuse is the point where noted).
        unsafe { GetQueuedCompletionStatusEx(port, entries.as_mut_ptr(), 3, &mut n, 0, 0) },
        1
    );
    assert_eq!(n, 3);
    assert_eq!(entries.map(|e| e.lpCompletionKey), [0, 1, 2]);
    // SAFETY: as above.
    assert_eq!(
        // SAFETY: FFI into the model with valid arguments (misuse is the point where noted).
        unsafe { GetQueuedCompletionStatusEx(port, entries.as_mut_ptr(), 3, &mut n, 0, 0) },
        1
    );
    assert_eq!(n, 2);
    // SAFETY: as above.
    assert_eq!(
        // SAFETY: FFI into the model with valid arguments (misuse is the point where noted).
        unsafe { GetQueuedCompletionStatusEx(port, entries.as_mut_ptr(), 3, &mut n, 0, 0) },
        0
    );
    // SAFETY: FFI.
    assert_eq!(unsafe { GetLastError() }, WAIT_TIMEOUT);
    close(port);
}

#[test]
fn closing_a_completion_port_releases_its_waiters_with_error_abandoned_wait_0() {
    let _m = boot_loaded(Config::default());
    // The waiter must be inside its wait when the port is closed, which a sleep can only
    // make likely: on a loaded machine (or under a sanitizer) the waiter may call only after
    // the close, and then gets ERROR_INVALID_HANDLE, Windows' answer for a closed handle.
    // That lost race is retried with a longer head start; any other outcome fails at once.
    for head_start_ms in [30, 100, 300, 1_000, 3_000, 10_000] {
        // SAFETY: FFI.
        let port =
            unsafe { CreateIoCompletionPort(INVALID_HANDLE_VALUE, null_mut(), 0, 0) } as usize;
        let outcome = std::thread::scope(|s| {
            let w = s.spawn(move || {
                let (ok, _, _, o, err) = dequeue(port as _, u32::MAX);
                (ok, o as usize, err)
            });
            std::thread::sleep(std::time::Duration::from_millis(head_start_ms));
            // SAFETY: FFI.
            assert_eq!(unsafe { CloseHandle(port as _) }, 1);
            w.join().unwrap()
        });
        if outcome == (0, 0, ERROR_INVALID_HANDLE) {
            eprintln!("the waiter called after the close ({head_start_ms} ms head start)");
            continue;
        }
        assert_eq!(outcome, (0, 0, ERROR_ABANDONED_WAIT_0));
        return;
    }
    panic!("the waiter never called before the close, even with a 10 s head start");
}

#[test]
fn a_handle_binds_to_one_completion_port_only() {
    let _m = boot_loaded(Config::default());
    let h = connect(&[]);
    let port = iocp_for(h, 1);
    // SAFETY: FFI.
    assert!(unsafe { CreateIoCompletionPort(h, port, 2, 0) }.is_null());
    // SAFETY: FFI.
    assert_eq!(unsafe { GetLastError() }, ERROR_INVALID_PARAMETER);
    close(h);
    close(port);
}

#[test]
fn event_low_bit_keeps_a_completion_off_the_port() {
    let _m = boot_loaded(Config::default());
    let h = connect(&[]);
    let port = iocp_for(h, 1);
    // SAFETY: FFI.
    let ev = unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) };
    let mut o = ov();
    o.hEvent = (ev as usize | 1) as HANDLE;
    let mut buf = vec![0u8; 64];
    assert_eq!(get_overlapped(h, &mut buf, &mut o), E_IO_PENDING);
    assert_eq!(
        kernel_send(0, b"x", None, rel_ms(5000)).status,
        STATUS_SUCCESS
    );
    // SAFETY: FFI.
    assert_eq!(unsafe { WaitForSingleObject(ev, 5000) }, WAIT_OBJECT_0);
    assert_eq!(dequeue(port, 0).0, 0, "no packet");
    close(h);
    close(port);
    close(ev);
}

#[test]
fn get_overlapped_result_reports_incomplete_or_waits() {
    let _m = boot_loaded(Config::default());
    let h = connect(&[]) as usize;
    let mut o = ov();
    let mut buf = vec![0u8; 64];
    assert_eq!(get_overlapped(h as _, &mut buf, &mut o), E_IO_PENDING);
    let mut n = 0u32;
    // SAFETY: pending OVERLAPPED of ours.
    assert_eq!(unsafe { GetOverlappedResult(h as _, &*o, &mut n, 0) }, 0);
    // SAFETY: FFI.
    assert_eq!(unsafe { GetLastError() }, ERROR_IO_INCOMPLETE);
    let op = &*o as *const OVERLAPPED as usize;
    std::thread::scope(|s| {
        let w = s.spawn(move || {
            let mut n = 0u32;
            // SAFETY: the OVERLAPPED outlives the scope.
            let ok = unsafe { GetOverlappedResult(h as _, op as *const OVERLAPPED, &mut n, 1) };
            (ok, n)
        });
        assert_eq!(
            kernel_send(0, b"abcd", None, rel_ms(5000)).status,
            STATUS_SUCCESS
        );
        assert_eq!(w.join().unwrap(), (1, 20));
    });
    close(h as _);
}

#[test]
fn events_auto_and_manual_reset() {
    let _m = boot_loaded(Config::default());
    // SAFETY: FFI throughout.
    unsafe {
        let auto = CreateEventW(std::ptr::null(), 0, 1, std::ptr::null());
        assert_eq!(WaitForSingleObject(auto, 0), WAIT_OBJECT_0);
        assert_eq!(
            WaitForSingleObject(auto, 0),
            WAIT_TIMEOUT,
            "auto-reset consumed"
        );
        let manual = CreateEventW(std::ptr::null(), 1, 0, std::ptr::null());
        assert_eq!(SetEvent(manual), 1);
        assert_eq!(WaitForSingleObject(manual, 0), WAIT_OBJECT_0);
        assert_eq!(
            WaitForSingleObject(manual, 0),
            WAIT_OBJECT_0,
            "manual stays set"
        );
        assert_eq!(ResetEvent(manual), 1);
        assert_eq!(WaitForSingleObject(manual, 0), WAIT_TIMEOUT);
        close(auto);
        close(manual);
        assert_eq!(SetEvent(manual), 0);
        assert_eq!(GetLastError(), ERROR_INVALID_HANDLE);
    }
}

#[test]
fn get_message_insufficient_buffer_sync_reports_0x8007007a() {
    let _m = boot_loaded(Config::default());
    let h = connect(&[]) as usize;
    std::thread::scope(|s| {
        let sender = s.spawn(|| kernel_send(0, &[0u8; 8], None, rel_ms(5000)).status);
        wait_until("sender waiting", || fltsim::port::waiting_senders() == 1);
        assert_eq!(get_message(h as _, &mut [0u8; 16]), E_INSUFFICIENT_BUFFER);
        assert_eq!(get_message(h as _, &mut [0u8; 24]), 0);
        assert_eq!(sender.join().unwrap(), STATUS_SUCCESS);
    });
    close(h as _);
}
