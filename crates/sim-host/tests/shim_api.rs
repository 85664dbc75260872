//! `libfltlib_shim.so` loaded with dlopen into this test process (which links no other
//! provider of the symbols) and driven call by call against a running `portfilter-sim`:
//! the Win32 results a client sees across the socket — bad and misaligned command
//! buffers, output too small, untouched output bytes, overlapped gets on an I/O
//! completion port, CancelIoEx, and the host going away.
//!
//! One test function: the shim's socket is process-wide, like a real client's.

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

mod common;

use common::{Host, build};
use std::ffi::{CString, c_void};
use std::ptr::null_mut;

type Handle = *mut c_void;
type ConnectFn =
    unsafe extern "C" fn(*const u16, u32, *const c_void, u16, *const c_void, *mut Handle) -> i32;
type SendFn = unsafe extern "C" fn(Handle, *const c_void, u32, *mut c_void, u32, *mut u32) -> i32;
type GetFn = unsafe extern "C" fn(Handle, *mut c_void, u32, *mut Overlapped) -> i32;
type CloseFn = unsafe extern "C" fn(Handle) -> i32;
type CreateIocpFn = unsafe extern "C" fn(Handle, Handle, usize, u32) -> Handle;
type GqcsFn = unsafe extern "C" fn(Handle, *mut u32, *mut usize, *mut *mut Overlapped, u32) -> i32;
type CancelFn = unsafe extern "C" fn(Handle, *const Overlapped) -> i32;
type LastErrorFn = unsafe extern "C" fn() -> u32;

/// `OVERLAPPED` (x64 layout).
#[repr(C)]
#[derive(Default)]
struct Overlapped {
    internal: usize,
    internal_high: usize,
    offset: u32,
    offset_high: u32,
    h_event: usize,
}

struct Lib {
    connect: ConnectFn,
    send: SendFn,
    get: GetFn,
    close: CloseFn,
    create_iocp: CreateIocpFn,
    gqcs: GqcsFn,
    cancel: CancelFn,
    last_error: LastErrorFn,
}

fn sym<T: Copy>(lib: *mut c_void, name: &str) -> T {
    let c = CString::new(name).unwrap();
    // SAFETY: a live handle from dlopen and a NUL-terminated name.
    let p = unsafe { libc::dlsym(lib, c.as_ptr()) };
    assert!(!p.is_null(), "{name} not exported");
    assert_eq!(size_of::<T>(), size_of::<*mut c_void>());
    // SAFETY: T is the function pointer type of the exported symbol.
    unsafe { std::mem::transmute_copy(&p) }
}

fn load() -> Lib {
    let path = build("fltlib-shim", "libfltlib_shim.so");
    let c = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: loading a shared library (its initialisers are Rust's, side-effect free).
    let lib = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!lib.is_null(), "dlopen {} failed", path.display());
    Lib {
        connect: sym(lib, "FilterConnectCommunicationPort"),
        send: sym(lib, "FilterSendMessage"),
        get: sym(lib, "FilterGetMessage"),
        close: sym(lib, "CloseHandle"),
        create_iocp: sym(lib, "CreateIoCompletionPort"),
        gqcs: sym(lib, "GetQueuedCompletionStatus"),
        cancel: sym(lib, "CancelIoEx"),
        last_error: sym(lib, "GetLastError"),
    }
}

const PORT: &str = "\\PortFilterPort";
const E_IO_PENDING: u32 = 0x8007_03E5;
const E_NOACCESS: u32 = 0x8007_03E6;
const E_INVALIDARG: u32 = 0x8007_0057;
const E_INSUFFICIENT_BUFFER: u32 = 0x8007_007A;
const E_FILE_NOT_FOUND: u32 = 0x8007_0002;
const ERROR_OPERATION_ABORTED: u32 = 995;
const INVALID_HANDLE_VALUE: Handle = usize::MAX as Handle;

fn port_name() -> Vec<u16> {
    PORT.encode_utf16().chain([0]).collect()
}

fn observer_context() -> [u8; 16] {
    // pf_connect_context: header (magic "PF", version 2, kind 4, reserved 0), role 2.
    let mut c = [0u8; 16];
    c[0..2].copy_from_slice(&0x4650u16.to_le_bytes());
    c[2..4].copy_from_slice(&2u16.to_le_bytes());
    c[4..6].copy_from_slice(&4u16.to_le_bytes());
    c[8..12].copy_from_slice(&2u32.to_le_bytes());
    c
}

fn command_header(kind: u16) -> [u64; 1] {
    let mut h = [0u8; 8];
    h[0..2].copy_from_slice(&0x4650u16.to_le_bytes());
    h[2..4].copy_from_slice(&2u16.to_le_bytes());
    h[4..6].copy_from_slice(&kind.to_le_bytes());
    [u64::from_le_bytes(h)]
}

fn connect(lib: &Lib) -> Result<Handle, u32> {
    let name = port_name();
    let ctx = observer_context();
    let mut port: Handle = null_mut();
    // SAFETY: valid name, context and out pointer.
    let hr = unsafe {
        (lib.connect)(
            name.as_ptr(),
            0,
            ctx.as_ptr().cast(),
            16,
            std::ptr::null(),
            &mut port,
        )
    };
    if hr == 0 {
        Ok(port)
    } else {
        assert_eq!(
            port, INVALID_HANDLE_VALUE,
            "a failed connect leaves INVALID_HANDLE_VALUE"
        );
        Err(hr as u32)
    }
}

fn send(
    lib: &Lib,
    port: Handle,
    input: *const c_void,
    in_len: u32,
    output: *mut c_void,
    out_len: u32,
) -> (u32, u32) {
    let mut returned = 0u32;
    // SAFETY: the shim accesses the buffers fault-tolerantly; that is what is tested.
    let hr = unsafe { (lib.send)(port, input, in_len, output, out_len, &mut returned) };
    (hr as u32, returned)
}

/// An anonymous mapping of one page with `prot`.
fn page(prot: i32) -> *mut c_void {
    // SAFETY: a fresh private anonymous mapping.
    let p = unsafe {
        libc::mmap(
            null_mut(),
            4096,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    p
}

#[test]
fn shim_reproduces_the_win32_results_across_the_socket() {
    let lib = load();
    // The host's model under its harshest readings, whatever the environment says (the
    // expectations below depend on one of them).
    // SAFETY: the only test of this process; nothing else reads the environment now.
    unsafe { std::env::set_var("FLTSIM_READINGS", "harshest") };
    let host = Host::start(&[]);
    // SAFETY: as above.
    unsafe { std::env::set_var("PORTFILTER_SIM_SOCKET", &host.socket) };

    let port = connect(&lib).expect("connect");

    // Hello: 40 bytes come back; bytes past them stay as they were.
    let hello = command_header(16);
    let mut out = [0xABu8; 64 + 8];
    let aligned = out.as_mut_ptr().wrapping_add(out.as_ptr().align_offset(8));
    let (hr, n) = send(&lib, port, hello.as_ptr().cast(), 8, aligned.cast(), 64);
    assert_eq!((hr, n), (0, 40));
    // SAFETY: `aligned` points at 64 bytes inside `out`.
    let after = unsafe { std::slice::from_raw_parts(aligned.add(40), 24) };
    assert!(
        after.iter().all(|&b| b == 0xAB),
        "bytes past the answer untouched"
    );

    let mut big = [0u64; 64];
    let big_ptr: *mut c_void = big.as_mut_ptr().cast();
    // An input pointer that maps nothing / a PROT_NONE page: the driver's fault-tolerant
    // copy fails → STATUS_ACCESS_VIOLATION → ERROR_NOACCESS.
    assert_eq!(
        send(&lib, port, 0x10 as *const c_void, 8, big_ptr, 512).0,
        E_NOACCESS
    );
    let none = page(libc::PROT_NONE);
    assert_eq!(send(&lib, port, none, 8, big_ptr, 512).0, E_NOACCESS);
    // An output the caller cannot write.
    let read_only = page(libc::PROT_READ);
    assert_eq!(
        send(&lib, port, hello.as_ptr().cast(), 8, read_only, 512).0,
        E_NOACCESS
    );
    // Misaligned input: STATUS_DATATYPE_MISALIGNMENT_ERROR, also ERROR_NOACCESS.
    let mut unaligned = [0u8; 16];
    let base = unaligned
        .as_mut_ptr()
        .wrapping_add(unaligned.as_ptr().align_offset(8));
    // SAFETY: 9 bytes after an 8-aligned address inside `unaligned`.
    unsafe { std::ptr::copy_nonoverlapping(hello.as_ptr().cast::<u8>(), base.add(1), 8) };
    assert_eq!(
        send(&lib, port, base.wrapping_add(1).cast(), 8, big_ptr, 512).0,
        E_NOACCESS
    );
    // Null input: rejected by the Filter Manager before MessageNotify.
    assert_eq!(
        send(&lib, port, std::ptr::null(), 8, big_ptr, 512).0,
        E_INVALIDARG
    );
    // GetStats into 16 bytes: too small. The driver reports the needed size, but under
    // the documented reading (the harshest) no length reaches lpBytesReturned with an
    // error status: a client sizes its buffer with Command::max_output_bytes() instead.
    let stats = command_header(17);
    assert_eq!(
        send(&lib, port, stats.as_ptr().cast(), 8, big_ptr, 16),
        (E_INSUFFICIENT_BUFFER, 0)
    );
    assert_eq!(
        send(&lib, port, stats.as_ptr().cast(), 8, big_ptr, 512),
        (0, 264)
    );

    // Overlapped gets on a completion port: 4 outstanding, one completes with a batch
    // holding the injected create, the other 3 are cancelled.
    // SAFETY: valid handles; a new completion port bound to the port with key 7.
    let iocp = unsafe { (lib.create_iocp)(port, null_mut(), 7, 0) };
    assert!(!iocp.is_null());
    let mut ovs: Vec<Box<Overlapped>> = (0..4).map(|_| Box::default()).collect();
    let mut bufs: Vec<Vec<u64>> = (0..4).map(|_| vec![0u64; 65552 / 8]).collect();
    for (ov, buf) in ovs.iter_mut().zip(bufs.iter_mut()) {
        // SAFETY: buffer and OVERLAPPED outlive the requests (drained below).
        let hr = unsafe { (lib.get)(port, buf.as_mut_ptr().cast(), 65552, &mut **ov) };
        assert_eq!(hr as u32, E_IO_PENDING);
    }
    let created = host.sim(&["create", r"C:\iocp\seen.txt"]);
    assert!(created.status.success());
    let (mut bytes, mut key, mut done): (u32, usize, *mut Overlapped) = (0, 0, null_mut());
    // SAFETY: valid out pointers; bounded wait.
    let ok = unsafe { (lib.gqcs)(iocp, &mut bytes, &mut key, &mut done, 30_000) };
    assert_eq!(ok, 1, "a completion arrives");
    assert_eq!(key, 7);
    let which = ovs
        .iter()
        .position(|o| std::ptr::eq(&**o, done))
        .expect("one of ours");
    assert_eq!(
        ovs[which].internal, 0,
        "STATUS_SUCCESS in OVERLAPPED.Internal"
    );
    assert_eq!(ovs[which].internal_high, bytes as usize);
    let msg: Vec<u8> = bufs[which]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .take(bytes as usize)
        .collect();
    assert_eq!(
        u16::from_le_bytes([msg[20], msg[21]]),
        2,
        "a batch (kind 2) after the 16-byte header"
    );
    let name: Vec<u16> = "seen.txt".encode_utf16().collect();
    let utf16: Vec<u16> = msg
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    assert!(
        utf16.windows(name.len()).any(|w| w == name),
        "the event names the file"
    );

    // SAFETY: valid handle; null = every request of the handle.
    assert_eq!(unsafe { (lib.cancel)(port, std::ptr::null()) }, 1);
    for _ in 0..3 {
        // SAFETY: as above.
        let ok = unsafe { (lib.gqcs)(iocp, &mut bytes, &mut key, &mut done, 30_000) };
        assert_eq!(ok, 0, "a cancelled request completes with failure");
        // SAFETY: plain call.
        assert_eq!(unsafe { (lib.last_error)() }, ERROR_OPERATION_ABORTED);
        assert!(!done.is_null());
    }

    // The host goes away while a request is pending: it completes (with a failure),
    // and a new connect finds no port.
    let mut ov = Box::<Overlapped>::default();
    let mut buf = vec![0u64; 65552 / 8];
    // SAFETY: as above.
    let hr = unsafe { (lib.get)(port, buf.as_mut_ptr().cast(), 65552, &mut *ov) };
    assert_eq!(hr as u32, E_IO_PENDING);
    let (status, report) = host.stop();
    assert!(status.success(), "{report}");
    // SAFETY: as above.
    let ok = unsafe { (lib.gqcs)(iocp, &mut bytes, &mut key, &mut done, 30_000) };
    assert_eq!(ok, 0);
    assert!(std::ptr::eq(done, &*ov));
    // SAFETY: plain call. STATUS_PORT_DISCONNECTED → ERROR_INVALID_HANDLE.
    assert_eq!(unsafe { (lib.last_error)() }, 6);
    assert_eq!(connect(&lib), Err(E_FILE_NOT_FOUND));
    // SAFETY: valid handles.
    unsafe {
        assert_eq!((lib.close)(port), 1);
        assert_eq!((lib.close)(iocp), 1);
    }
}
