//! Shared harness for the driver's end-to-end tests: boots fltsim, loads the real driver,
//! and plays user-mode clients through the fltlib functions as windows-sys declares them
//! (fltsim defines them on Linux). Every wait is bounded.
#![allow(dead_code, clippy::missing_panics_doc, missing_docs)]

use fltsim::{CreateOutcome, CreateRequest, MachineGuard};
use portfilter_protocol::{
    BatchView, CONFIG_MAX_BYTES, CONNECT_CONTEXT_BYTES, Command, Config, ConnectContext, EventView,
    GET_MESSAGE_BUFFER_BYTES, HELLO_REPLY_BYTES, HelloReply, KernelMessage, Role, STATS_BYTES,
    Stats, VERDICT_REPLY_BYTES, Verdict, decode_kernel_message, encode_request,
    message::split_filter_message,
};
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use windows_sys::Win32::Foundation::{CloseHandle, GetLastError, HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::Foundation::{WAIT_FAILED, WAIT_OBJECT_0};
use windows_sys::Win32::Storage::InstallableFileSystems::{
    FILTER_MESSAGE_HEADER, FILTER_REPLY_HEADER, FilterConnectCommunicationPort, FilterGetMessage,
    FilterReplyMessage, FilterSendMessage,
};
use windows_sys::Win32::System::IO::{CancelIoEx, GetOverlappedResult, OVERLAPPED};
use windows_sys::Win32::System::Threading::{CreateEventW, WaitForSingleObject};

/// The longest a test waits for the driver's unload or a port handle's close.
pub const UNLOAD_LIMIT: Duration = Duration::from_secs(20);

/// The longest a test client waits in `FilterGetMessage` (as `join_within`'s 20 s).
pub const GET_MESSAGE_LIMIT_MS: u32 = 20_000;

/// The port name, NUL-terminated UTF-16.
pub fn port_name() -> Vec<u16> {
    portfilter::PORT_NAME
        .encode_utf16()
        .chain(std::iter::once(0))
        .collect()
}

/// HRESULTs the tests check (FltLib's mapping of the driver's statuses).
pub mod hr {
    pub const S_OK: i32 = 0;
    pub const E_INVALIDARG: i32 = 0x8007_0057_u32 as i32;
    pub const E_ACCESSDENIED: i32 = 0x8007_0005_u32 as i32;
    pub const CONNECTION_LIMIT: i32 = 0x8007_04D6_u32 as i32;
    pub const SHARING_VIOLATION: i32 = 0x8007_0020_u32 as i32;
    pub const REVISION_MISMATCH: i32 = 0x8007_051A_u32 as i32;
    pub const NOT_SUPPORTED: i32 = 0x8007_0032_u32 as i32;
    pub const INFO_LENGTH_MISMATCH: i32 = 0x8007_0018_u32 as i32;
    pub const BUFFER_TOO_SMALL: i32 = 0x8007_007A_u32 as i32;
    pub const NOACCESS: i32 = 0x8007_03E6_u32 as i32;
    pub const INVALID_HANDLE: i32 = 0x8007_0006_u32 as i32;
    pub const NO_WAITER: i32 = 0x801F_0020_u32 as i32;
    pub const NOT_FOUND: i32 = 0x8007_0002_u32 as i32;
}

/// A heap buffer aligned to 8.
pub struct Buf {
    words: Vec<u64>,
    len: usize,
}

impl Buf {
    pub fn new(len: usize) -> Self {
        Self {
            words: vec![0; len.div_ceil(8).max(1)],
            len,
        }
    }
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut b = Self::new(bytes.len());
        b.bytes_mut().copy_from_slice(bytes);
        b
    }
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `words` holds at least `len` initialised bytes.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, exclusively borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), self.len) }
    }
    pub fn ptr(&mut self) -> *mut c_void {
        self.words.as_mut_ptr().cast()
    }
    pub fn len(&self) -> usize {
        self.len
    }
}

/// Both readings of when a disconnecting client's blocked senders wake (before Disconnect,
/// or only at `FltCloseClientPort`): the disconnect tests run under each.
pub const DISCONNECT_WAKES: [fltsim::readings::DisconnectWake; 2] = [
    fltsim::readings::DisconnectWake::AtClientPortClose,
    fltsim::readings::DisconnectWake::BeforeDisconnect,
];

/// A booted machine with the real driver loaded.
pub struct Sim {
    pub machine: MachineGuard,
}

impl Sim {
    pub fn start() -> Self {
        let machine = fltsim::Machine::boot();
        load_driver().expect("DriverEntry succeeds");
        Self { machine }
    }

    /// Starts under `readings` (instead of the harshest ones, the default).
    pub fn start_with(readings: fltsim::Readings) -> Self {
        let machine = fltsim::Machine::boot_with(readings);
        fltsim::load_driver(portfilter::DriverEntry).expect("DriverEntry succeeds");
        Self { machine }
    }

    /// Unloads and checks that no pool allocation of the driver is left. Bounded: an
    /// unload that does not return within [`UNLOAD_LIMIT`] (a driver waiting for good)
    /// aborts the test process, which fails the test instead of hanging it.
    pub fn unload_and_check_pool(self) {
        within_or_abort("the driver's unload", fltsim::unload_driver).expect("unload succeeds");
        assert_eq!(
            fltsim::kernel::pool::live_bytes(portfilter::POOL_TAG),
            0,
            "driver pool left after unload: {:?}",
            fltsim::kernel::pool::outstanding()
        );
        let violations = self.machine.shutdown();
        assert!(violations.is_empty(), "verifier: {violations:?}");
    }
}

/// Loads the driver: the rlib linked into the tests, or the cross-built image when
/// `FLTSIM_IMAGE` names one (the switch between the two runs of these suites).
pub fn load_driver() -> Result<(), i32> {
    fltsim::image::load_driver_from_env(portfilter::DriverEntry)
}

/// Runs `f` on this thread; if it has not returned within [`UNLOAD_LIMIT`] (the driver
/// waits for good in a callback), aborts the test process, which fails the test instead
/// of hanging it (unwinding could not stop `f`).
pub fn within_or_abort<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let (done, watched) = mpsc::channel::<()>();
    let what_owned = what.to_owned();
    let watchdog = std::thread::spawn(move || {
        if watched.recv_timeout(UNLOAD_LIMIT) == Err(mpsc::RecvTimeoutError::Timeout) {
            eprintln!("{what_owned} did not return within {UNLOAD_LIMIT:?}");
            std::process::abort();
        }
    });
    let result = f();
    drop(done);
    watchdog.join().expect("watchdog");
    result
}

/// Spawns a simulated admin process (if needed).
pub fn process(pid: u32, image: &str) {
    if fltsim::process::info(pid).is_none() {
        fltsim::process::spawn(pid, image, true);
    }
}

/// A client connection (handle owned by process `pid`).
pub struct Port {
    pub handle: HANDLE,
    pub pid: u32,
}
// SAFETY: the handle is a plain value; fltsim's handle table is thread-safe.
unsafe impl Send for Port {}
// SAFETY: as above.
unsafe impl Sync for Port {}

/// Connects as `pid` with `role` (`None`: no context at all).
pub fn try_connect(pid: u32, role: Option<Role>) -> Result<Port, i32> {
    process(pid, "client.exe");
    let _p = fltsim::process::enter(pid);
    let mut context = [0u8; CONNECT_CONTEXT_BYTES];
    let (ctx, len) = match role {
        Some(role) => {
            ConnectContext::new(role).encode(&mut context).unwrap();
            (
                context.as_ptr().cast::<c_void>(),
                CONNECT_CONTEXT_BYTES as u16,
            )
        }
        None => (std::ptr::null(), 0),
    };
    try_connect_raw(ctx, len).map(|handle| Port { handle, pid })
}

/// Connects as the calling thread's current process with raw context bytes.
pub fn try_connect_raw(ctx: *const c_void, len: u16) -> Result<HANDLE, i32> {
    let name = port_name();
    let mut handle: HANDLE = INVALID_HANDLE_VALUE;
    // SAFETY: valid name, context (or null with 0) and out pointer.
    let hr = unsafe {
        FilterConnectCommunicationPort(name.as_ptr(), 0, ctx, len, std::ptr::null(), &mut handle)
    };
    if hr == 0 { Ok(handle) } else { Err(hr) }
}

pub fn connect(pid: u32, role: Role) -> Port {
    try_connect(pid, Some(role)).expect("connect succeeds")
}

/// Connects as the asynchronous decider (`CONNECT_FLAG_ASYNC`) of process `pid`
/// (`decider.exe`, spawned if needed).
pub fn connect_async_decider(pid: u32) -> Port {
    process(pid, "decider.exe");
    let _p = fltsim::process::enter(pid);
    let mut ctx = [0u8; CONNECT_CONTEXT_BYTES];
    ConnectContext::async_decider().encode(&mut ctx).unwrap();
    let handle = try_connect_raw(ctx.as_ptr().cast::<c_void>(), ctx.len() as u16)
        .expect("the asynchronous decider connects");
    Port { handle, pid }
}

impl Port {
    /// Closes the handle (as its process).
    pub fn close(self) {
        self.release();
    }

    /// Closes the handle without consuming the port: from a failure path, to release
    /// threads blocked on it (a later `close` then fails harmlessly).
    pub fn release(&self) {
        let _p = fltsim::process::enter(self.pid);
        // Bounded: the driver's Disconnect callback runs inside the close.
        // SAFETY: our handle.
        within_or_abort("closing a port handle", || unsafe {
            CloseHandle(self.handle)
        });
    }

    /// Sends raw command bytes; returns (HRESULT, output bytes, bytes returned).
    pub fn send_raw(&self, input: &mut Buf, out_len: usize) -> (i32, Vec<u8>, u32) {
        let mut out = Buf::new(out_len);
        let mut returned = 0u32;
        let _p = fltsim::process::enter(self.pid);
        let out_ptr = if out_len == 0 {
            std::ptr::null_mut()
        } else {
            out.ptr()
        };
        // SAFETY: buffers valid for the given sizes.
        let hr = unsafe {
            FilterSendMessage(
                self.handle,
                input.ptr(),
                input.len() as u32,
                out_ptr,
                out_len as u32,
                &mut returned,
            )
        };
        (hr, out.bytes().to_vec(), returned)
    }

    fn header_command(&self, command: Command, out_len: usize) -> (i32, Vec<u8>, u32) {
        let mut input = Buf::new(8);
        encode_request(command, input.bytes_mut()).unwrap();
        self.send_raw(&mut input, out_len)
    }

    pub fn hello(&self) -> HelloReply {
        let (hr, out, n) = self.header_command(Command::Hello, HELLO_REPLY_BYTES);
        assert_eq!(hr, 0, "hello: {hr:#x}");
        assert_eq!(n as usize, HELLO_REPLY_BYTES);
        HelloReply::decode(&out).expect("hello reply decodes")
    }

    pub fn stats(&self) -> Stats {
        let (hr, out, n) = self.header_command(Command::GetStats, STATS_BYTES);
        assert_eq!(hr, 0, "stats: {hr:#x}");
        assert_eq!(n as usize, STATS_BYTES);
        Stats::decode(&out).expect("stats decode")
    }

    pub fn config(&self) -> Config {
        let (hr, out, n) = self.header_command(Command::GetConfig, CONFIG_MAX_BYTES);
        assert_eq!(hr, 0, "get config: {hr:#x}");
        Config::decode(&out[..n as usize], Command::GetConfig).expect("config decodes")
    }

    /// SetConfig; returns (HRESULT, applied config when it succeeded).
    pub fn try_set_config(&self, config: &Config) -> (i32, Option<Config>) {
        let mut bytes = vec![0u8; CONFIG_MAX_BYTES];
        let n = config.encode(Command::SetConfig, &mut bytes).unwrap();
        let mut input = Buf::from_bytes(&bytes[..n]);
        let (hr, out, returned) = self.send_raw(&mut input, CONFIG_MAX_BYTES);
        let applied = (hr == 0).then(|| {
            Config::decode(&out[..returned as usize], Command::SetConfig).expect("applied config")
        });
        (hr, applied)
    }

    pub fn set_config(&self, config: &Config) -> Config {
        let (hr, applied) = self.try_set_config(config);
        assert_eq!(hr, 0, "set config: {hr:#x}");
        applied.unwrap()
    }

    /// FilterGetMessage into `buf`, blocking until a message or disconnect (at most
    /// [`GET_MESSAGE_LIMIT_MS`]: no test waits longer for a message). The handle is
    /// overlapped and other threads send commands on it, so the call passes an OVERLAPPED
    /// with its own event and waits for that request: a NULL OVERLAPPED would wait on the
    /// handle, which any other completing call signals (docs/port-semantics.md, "Handle
    /// kinds").
    pub fn get_message(&self, buf: &mut Buf) -> i32 {
        const E_IO_PENDING: i32 = 0x8007_03E5_u32 as i32;
        // A client loop's thread already acts for the process (spawn_loop): entering it
        // again would panic once a test killed the process (`fltsim::process::exit`) and the
        // loop came round for its next message.
        let _p = (fltsim::process::declared() != Some(self.pid))
            .then(|| fltsim::process::enter(self.pid));
        // SAFETY: FFI: a manual-reset event, not signalled, closed below.
        let event = unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) };
        assert!(!event.is_null(), "CreateEventW");
        let mut overlapped = OVERLAPPED {
            hEvent: event,
            ..OVERLAPPED::default()
        };
        // SAFETY: buffer valid for its size; it and the OVERLAPPED outlive the request
        // (waited for below).
        let mut hr = unsafe {
            FilterGetMessage(
                self.handle,
                buf.ptr().cast::<FILTER_MESSAGE_HEADER>(),
                buf.len() as u32,
                &mut overlapped,
            )
        };
        if hr == E_IO_PENDING {
            // Bounded: a driver that never sends (a broken delivery) fails the test here
            // instead of hanging it. On timeout the request is cancelled and reaped first,
            // so that nothing completes into `buf` or `overlapped` after we return.
            // SAFETY: FFI on our event.
            let waited = unsafe { WaitForSingleObject(event, GET_MESSAGE_LIMIT_MS) };
            if waited == WAIT_FAILED && self.process_gone_within(Duration::from_secs(5)) {
                // The test killed our process (`fltsim::process::exit`) during the call: its
                // exit closed every handle the process held, this call's event with the port
                // handle, and the port's close completed the request. The process is
                // forgotten only after its handles are closed, so nothing writes into `buf`
                // or `overlapped` any more. (On Windows the thread would have died with it.)
                return hr::INVALID_HANDLE;
            }
            if waited != WAIT_OBJECT_0 {
                // SAFETY: FFI: our handle and our pending request's OVERLAPPED.
                unsafe { CancelIoEx(self.handle, &overlapped) };
                // SAFETY: FFI on our event.
                if unsafe { WaitForSingleObject(event, 5_000) } != WAIT_OBJECT_0 {
                    // The request may still complete into memory we are about to free.
                    eprintln!("FilterGetMessage: not cancelled; aborting");
                    std::process::abort();
                }
                // SAFETY: our event.
                unsafe { CloseHandle(event) };
                panic!("FilterGetMessage: no message within {GET_MESSAGE_LIMIT_MS} ms");
            }
            let mut bytes = 0u32;
            // SAFETY: our completed request's OVERLAPPED.
            let ok = unsafe { GetOverlappedResult(self.handle, &overlapped, &mut bytes, 1) };
            hr = if ok != 0 {
                0
            } else {
                // SAFETY: no preconditions.
                let error = unsafe { GetLastError() };
                (error & 0xFFFF | 0x8007_0000) as i32
            };
        }
        // SAFETY: our event.
        unsafe { CloseHandle(event) };
        hr
    }

    /// Whether this port's process has exited (polled up to `limit`: its exit closes the
    /// handles first and forgets the process last).
    fn process_gone_within(&self, limit: Duration) -> bool {
        wait_until(limit, || fltsim::process::info(self.pid).is_none())
    }

    /// FilterReplyMessage with exactly 16 + verdict bytes.
    pub fn reply(&self, message_id: u64, verdict: &Verdict) -> i32 {
        let mut buf = Buf::new(VERDICT_REPLY_BYTES);
        verdict.encode_reply(message_id, buf.bytes_mut()).unwrap();
        self.reply_raw(&mut buf)
    }

    /// FilterReplyMessage with arbitrary bytes (header included).
    pub fn reply_raw(&self, buf: &mut Buf) -> i32 {
        let _p = fltsim::process::enter(self.pid);
        // SAFETY: buffer valid for its size.
        unsafe {
            FilterReplyMessage(
                self.handle,
                buf.ptr().cast::<FILTER_REPLY_HEADER>(),
                buf.len() as u32,
            )
        }
    }
}

/// An owned copy of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub sequence: u64,
    pub flags: u32,
    pub pid: u32,
    pub tid: u32,
    pub name: String,
    pub path: String,
    pub desired_access: u32,
    pub disposition: u8,
    pub options: u32,
    pub share: u16,
    pub attributes: u32,
    pub timestamp: u64,
}

impl Seen {
    pub fn of(view: &EventView<'_>) -> Self {
        Self {
            sequence: view.fields.sequence,
            flags: view.fields.flags,
            pid: view.fields.process_id,
            tid: view.fields.thread_id,
            name: view.name.to_string(),
            path: view.path_in_volume().to_string(),
            desired_access: view.fields.desired_access,
            disposition: view.fields.create_disposition,
            options: view.fields.create_options,
            share: view.fields.share_access,
            attributes: view.fields.file_attributes,
            timestamp: view.fields.timestamp,
        }
    }
}

/// What a background client received.
#[derive(Default)]
pub struct Received {
    pub events: Mutex<Vec<Seen>>,
    pub messages: AtomicU64,
    pub batches: AtomicU64,
    pub dropped_reported: AtomicU64,
    pub end_status: Mutex<Option<i32>>,
}

impl Received {
    pub fn count(&self) -> usize {
        self.events.lock().unwrap().len()
    }
    pub fn snapshot(&self) -> Vec<Seen> {
        self.events.lock().unwrap().clone()
    }
}

/// A client thread running a FilterGetMessage loop until its port is closed.
pub struct ClientThread {
    pub port: Arc<Port>,
    pub received: Arc<Received>,
    thread: Option<JoinHandle<()>>,
}

impl ClientThread {
    /// Closes the port (ending the loop) and joins the thread (bounded).
    pub fn stop(mut self) -> Arc<Received> {
        let port = Arc::clone(&self.port);
        {
            let _p = fltsim::process::enter(port.pid);
            // SAFETY: our handle; the loop's pending FilterGetMessage fails with it.
            unsafe { CloseHandle(port.handle) };
        }
        if let Some(t) = self.thread.take() {
            join_within(t, Duration::from_secs(20));
        }
        Arc::clone(&self.received)
    }

    /// Joins a thread whose port was closed by someone else (process exit, unload).
    pub fn join(mut self) -> Arc<Received> {
        if let Some(t) = self.thread.take() {
            join_within(t, Duration::from_secs(20));
        }
        Arc::clone(&self.received)
    }
}

/// Joins `t`, failing the test if it does not finish within `limit`.
/// Returns what the thread returned.
pub fn join_within<T>(t: JoinHandle<T>, limit: Duration) -> T {
    let deadline = Instant::now() + limit;
    while !t.is_finished() {
        assert!(
            Instant::now() < deadline,
            "thread did not finish within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    t.join().expect("thread panicked")
}

/// What a decider does with an event.
pub type Decide = dyn Fn(&Seen) -> Option<Verdict> + Send + Sync;

/// Starts a decider loop: each request is answered with `decide` (None: no reply).
pub fn spawn_decider(pid: u32, decide: Arc<Decide>) -> ClientThread {
    let port = Arc::new(connect(pid, Role::Decider));
    spawn_loop(port, Some(decide), None)
}

/// Starts an observer loop; `gate`, when given, must be set before each FilterGetMessage
/// (a stalled client: clear it to stop reading).
pub fn spawn_observer(pid: u32, gate: Option<Arc<AtomicBool>>) -> ClientThread {
    let port = Arc::new(connect(pid, Role::Observer));
    spawn_loop(port, None, gate)
}

fn spawn_loop(
    port: Arc<Port>,
    decide: Option<Arc<Decide>>,
    gate: Option<Arc<AtomicBool>>,
) -> ClientThread {
    let received = Arc::new(Received::default());
    let (ready_tx, ready_rx) = mpsc::channel();
    let thread = {
        let port = Arc::clone(&port);
        let received = Arc::clone(&received);
        std::thread::spawn(move || {
            let _p = fltsim::process::enter(port.pid);
            let _ = ready_tx.send(());
            let mut buf = Buf::new(GET_MESSAGE_BUFFER_BYTES);
            loop {
                if let Some(gate) = &gate {
                    while !gate.load(Ordering::Acquire) {
                        if fltsim::process::info(port.pid).is_none() {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                let hr = port.get_message(&mut buf);
                if hr != 0 {
                    *received.end_status.lock().unwrap() = Some(hr);
                    return;
                }
                received.messages.fetch_add(1, Ordering::Relaxed);
                let (header, payload) = split_filter_message(buf.bytes()).unwrap();
                match decode_kernel_message(payload).expect("driver message decodes") {
                    KernelMessage::Event(view) => {
                        let seen = Seen::of(&view);
                        received.events.lock().unwrap().push(seen.clone());
                        if view.is_request() {
                            assert_ne!(header.message_id, 0);
                            if let Some(v) = decide.as_ref().and_then(|d| d(&seen)) {
                                let _ = port.reply(header.message_id, &v);
                            }
                        }
                    }
                    KernelMessage::Batch(batch) => record_batch(&received, &batch),
                }
            }
        })
    };
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("client thread started");
    ClientThread {
        port,
        received,
        thread: Some(thread),
    }
}

fn record_batch(received: &Received, batch: &BatchView<'_>) {
    received.batches.fetch_add(1, Ordering::Relaxed);
    received
        .dropped_reported
        .fetch_add(u64::from(batch.dropped_before()), Ordering::Relaxed);
    let mut events = received.events.lock().unwrap();
    for view in batch.events() {
        events.push(Seen::of(&view));
    }
}

/// Polls `cond` until true or `limit` passes; returns whether it became true.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A create as process `pid` (requestor) of `path`.
pub fn create_as(pid: u32, path: &str) -> CreateOutcome {
    fltsim::create(&CreateRequest::new(path).pid(pid))
}

/// The NT name fltsim gives `C:\...`.
pub fn nt(path: &str) -> String {
    format!(r"\Device\HarddiskVolume3{}", &path[2..])
}

/// A configuration with `f` applied to the defaults.
pub fn config_with(f: impl FnOnce(&mut Config)) -> Config {
    let mut c = Config::new();
    f(&mut c);
    c
}

/// Rows of tests/data/sample-creates.csv: (pid, image, path).
pub fn sample_creates() -> Vec<(u32, String, String)> {
    let text = include_str!("../data/sample-creates.csv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("t_us,"))
        .filter_map(|l| {
            let f: Vec<&str> = l.splitn(6, ',').collect();
            let [_, pid, _, image, path, _] = f.as_slice() else {
                return None;
            };
            Some((pid.parse().ok()?, (*image).to_owned(), (*path).to_owned()))
        })
        .collect()
}
