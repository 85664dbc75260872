//! Shared harness of the driver fuzz targets: one simulated machine per fuzzing process
//! with the real driver loaded, a connection of each role, and raw `FilterSendMessage`
//! calls whose buffers may be NULL or fault.
#![allow(clippy::missing_panics_doc)]

use fltsim::MachineGuard;
use portfilter_protocol::{CONNECT_CONTEXT_BYTES, ConnectContext, Role};
use std::cell::RefCell;
use std::ffi::c_void;
use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::Storage::InstallableFileSystems::{
    FilterConnectCommunicationPort, FilterSendMessage,
};

/// Process id of the simulated client process the harness connects as.
pub const CLIENT_PID: u32 = 4242;

/// The bytes of a stateful target's script, read front to back; every read past the end
/// gives zeros, so any input is a complete script.
pub struct Script<'a>(&'a [u8]);

impl<'a> Script<'a> {
    /// A script over `data`.
    #[must_use]
    pub fn new(data: &'a [u8]) -> Self {
        Self(data)
    }

    /// The next byte, 0 once the script is exhausted.
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// The next four bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// Up to `n` bytes (fewer at the end of the script).
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head.to_vec()
    }

    /// Whether the script is exhausted.
    #[must_use]
    pub fn done(&self) -> bool {
        self.0.is_empty()
    }
}

/// The port name, NUL-terminated UTF-16.
#[must_use]
pub fn port_name() -> Vec<u16> {
    portfilter::PORT_NAME
        .encode_utf16()
        .chain(std::iter::once(0))
        .collect()
}

/// Connects as the current simulated process with raw context bytes; the handle or the
/// HRESULT.
pub fn connect_raw(context: *const c_void, len: u16) -> Result<HANDLE, i32> {
    let name = port_name();
    let mut handle: HANDLE = INVALID_HANDLE_VALUE;
    // SAFETY: a NUL-terminated name, a context valid for `len` bytes (or NULL with 0 — or
    // deliberately not, which fltlib must reject), and an out pointer to a local.
    let hr = unsafe {
        FilterConnectCommunicationPort(
            name.as_ptr(),
            0,
            context,
            len,
            std::ptr::null(),
            &mut handle,
        )
    };
    if hr == 0 { Ok(handle) } else { Err(hr) }
}

/// Connects with a well-formed context for `role`.
#[must_use]
pub fn connect(role: Role) -> HANDLE {
    let mut context = [0u8; CONNECT_CONTEXT_BYTES];
    ConnectContext::new(role)
        .encode(&mut context)
        .expect("a context encodes");
    connect_raw(context.as_ptr().cast(), CONNECT_CONTEXT_BYTES as u16).expect("connect succeeds")
}

/// One inaccessible page: a pointer into it faults on any access.
#[must_use]
pub fn faulting_page() -> *mut c_void {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let addr = *PAGE.get_or_init(|| {
        // SAFETY: an anonymous private mapping with no access; never unmapped.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap of the faulting page");
        p as usize
    });
    addr as *mut c_void
}

/// How a buffer is passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferKind {
    /// A real, accessible buffer.
    Valid,
    /// NULL.
    Null,
    /// A pointer into an inaccessible page.
    Faulting,
}

impl BufferKind {
    /// From two bits of a mode byte (bit `null` set: NULL, else bit `fault` set: faulting).
    #[must_use]
    pub fn from_bits(mode: u8, null: u8, fault: u8) -> Self {
        if mode & null != 0 {
            Self::Null
        } else if mode & fault != 0 {
            Self::Faulting
        } else {
            Self::Valid
        }
    }
}

/// `FilterSendMessage` on `port` with `input` (or a NULL/faulting pointer claiming its
/// length) and an output buffer of `out_len` bytes; returns the HRESULT and bytes returned.
#[must_use]
pub fn send(
    port: HANDLE,
    input: &[u8],
    input_kind: BufferKind,
    out_len: usize,
    output_kind: BufferKind,
) -> (i32, u32) {
    // 8-aligned copies, as a client's buffers usually are (alignment is not required).
    let mut in_words = vec![0u64; input.len().div_ceil(8).max(1)];
    // SAFETY: `in_words` holds at least `input.len()` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(input.as_ptr(), in_words.as_mut_ptr().cast(), input.len());
    }
    let mut out_words = vec![0u64; out_len.div_ceil(8).max(1)];
    let in_ptr = match input_kind {
        BufferKind::Valid => in_words.as_mut_ptr().cast::<c_void>(),
        BufferKind::Null => std::ptr::null_mut(),
        BufferKind::Faulting => faulting_page(),
    };
    let out_ptr = match output_kind {
        BufferKind::Valid => out_words.as_mut_ptr().cast::<c_void>(),
        BufferKind::Null => std::ptr::null_mut(),
        BufferKind::Faulting => faulting_page(),
    };
    let in_len = u32::try_from(input.len()).unwrap_or(u32::MAX);
    let out_len = u32::try_from(out_len).unwrap_or(u32::MAX);
    let mut returned = 0u32;
    // SAFETY: valid buffers are live for the call and as long as claimed; NULL and
    // faulting pointers are what this harness feeds on purpose — fltsim reaches them
    // only through its fault-tolerant copy, as the Filter Manager does.
    let hr = unsafe { FilterSendMessage(port, in_ptr, in_len, out_ptr, out_len, &mut returned) };
    assert!(
        returned <= out_len || hr != 0,
        "{returned} bytes returned for an output of {out_len}"
    );
    (hr, returned)
}

/// The driver loaded in a simulated machine, with a connection of each role, kept for
/// the whole fuzzing process (libFuzzer calls the target on one thread).
pub struct Driver {
    machine: MachineGuard,
    /// Connections: decider, observer, control (none in a bare driver).
    pub ports: Vec<HANDLE>,
    calls: u64,
}

thread_local! {
    static DRIVER: RefCell<Option<Driver>> = const { RefCell::new(None) };
}

/// What [`Driver::with`] boots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// A connection of each role is open.
    Connected,
    /// No connection: every role (the single decider slot too) is free for the target.
    Bare,
}

impl Driver {
    fn boot(setup: Setup) -> Self {
        let machine = fltsim::Machine::boot();
        fltsim::load_driver(portfilter::DriverEntry).expect("DriverEntry succeeds");
        fltsim::process::spawn(CLIENT_PID, "fuzz.exe", true);
        let _p = fltsim::process::enter(CLIENT_PID);
        let ports = match setup {
            Setup::Connected => vec![
                connect(Role::Decider),
                connect(Role::Observer),
                connect(Role::Control),
            ],
            Setup::Bare => Vec::new(),
        };
        Self {
            machine,
            ports,
            calls: 0,
        }
    }

    /// Runs `f` with the process's driver (booted with `setup` on first use; a fuzz target
    /// uses one setup), as the client process.
    pub fn with<R>(setup: Setup, f: impl FnOnce(&mut Self) -> R) -> R {
        DRIVER.with(|cell| {
            let mut slot = cell.borrow_mut();
            let driver = slot.get_or_insert_with(|| Self::boot(setup));
            let _p = fltsim::process::enter(CLIENT_PID);
            let r = f(driver);
            driver.check();
            r
        })
    }

    /// The connection for a role byte (taken modulo the number of connections).
    #[must_use]
    pub fn port(&self, role: u8) -> HANDLE {
        self.ports[usize::from(role) % self.ports.len()]
    }

    /// After every call: the verifier found nothing; every 4096 calls the driver still
    /// answers a well-formed Hello on a fresh control connection.
    fn check(&mut self) {
        let found = self.machine.violations();
        assert!(found.is_empty(), "verifier: {found:?}");
        self.calls += 1;
        if self.calls % 4096 == 0 {
            let port = connect(Role::Control);
            let mut request = [0u8; 8];
            portfilter_protocol::encode_request(portfilter_protocol::Command::Hello, &mut request)
                .expect("hello encodes");
            let (hr, n) = send(
                port,
                &request,
                BufferKind::Valid,
                portfilter_protocol::HELLO_REPLY_BYTES,
                BufferKind::Valid,
            );
            assert_eq!(
                (hr, n as usize),
                (0, portfilter_protocol::HELLO_REPLY_BYTES)
            );
            // SAFETY: our handle, closed once.
            unsafe { CloseHandle(port) };
        }
    }
}
