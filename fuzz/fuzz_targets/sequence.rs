//! A stateful target: the input is a script of operations on a fresh machine with the
//! real driver — connect and close connections of any role, overlapped gets of any size
//! (bound to an I/O completion port), replies with any bytes and any message id (also
//! late ones), cancels, raw commands, SetConfig, creates (each on its own thread, so a
//! create can wait for a verdict while the script goes on), short sleeps — then unload.
//!
//! At the end: every create completed, with success or a deny status; the statistics are
//! consistent (every create seen was reported or skipped; no more verdicts than requests);
//! unload succeeds; no driver pool is left; no verifier finding.
#![no_main]

use fltsim::{CreateRequest, Machine};
use libfuzzer_sys::fuzz_target;
use portfilter_fuzz::{BufferKind, CLIENT_PID, Script, connect_raw, send};
use portfilter_protocol::{
    CONFIG_MAX_BYTES, CONNECT_CONTEXT_BYTES, Command, Config, ConnectContext, Decision, Delivery,
    Role, STATS_BYTES, Stats, VERDICT_REPLY_BYTES, Verdict, encode_request,
};
use std::ffi::c_void;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
use windows_sys::Win32::Storage::InstallableFileSystems::{
    FILTER_MESSAGE_HEADER, FILTER_REPLY_HEADER, FilterGetMessage, FilterReplyMessage,
};
use windows_sys::Win32::System::IO::{
    CancelIoEx, CreateIoCompletionPort, GetQueuedCompletionStatus, OVERLAPPED,
};

const STATUS_SUCCESS: i32 = 0;
const MAX_CONNECTIONS: usize = 6;
const MAX_CREATES: usize = 12;
const MAX_GETS: usize = 16;

/// An overlapped get in flight: the OVERLAPPED and the buffer stay put until it completes.
struct Get {
    overlapped: Box<OVERLAPPED>,
    buffer: Vec<u64>,
}

struct Conn {
    handle: HANDLE,
    pid: u32,
}

struct World {
    iocp: HANDLE,
    conns: Vec<Option<Conn>>,
    gets: Vec<Get>,
    /// (message id, sequence) of requests received.
    requests: Vec<(u64, u64)>,
    creates: Vec<JoinHandle<()>>,
    /// Each create thread sends its final status here when fltsim::create returns, so the
    /// end of the script waits exactly as long as the slowest create (no polling).
    done_tx: Sender<i32>,
    done_rx: Receiver<i32>,
}

const PATHS: [&str; 6] = [
    r"C:\Users\alice\Downloads\setup.exe",
    r"C:\Windows\System32\drivers\etc\hosts",
    r"C:\temp\x.evil",
    r"C:\Program Files\App\app.dll",
    r"C:\Users\bob\Documents\report.docx",
    r"D:\data\",
];

impl World {
    fn conn(&self, index: u8) -> Option<&Conn> {
        let n = self.conns.len();
        if n == 0 {
            return None;
        }
        self.conns[usize::from(index) % n].as_ref()
    }

    fn connect(&mut self, script: &mut Script<'_>) {
        if self.conns.len() >= MAX_CONNECTIONS {
            return;
        }
        let role = script.byte();
        let pid = CLIENT_PID + u32::from(script.byte() % 3);
        if fltsim::process::info(pid).is_none() {
            fltsim::process::spawn(pid, "client.exe", true);
        }
        let _p = fltsim::process::enter(pid);
        let mut context = [0u8; CONNECT_CONTEXT_BYTES];
        let role = match role % 4 {
            0 => Some(Role::Decider),
            1 => Some(Role::Observer),
            2 => Some(Role::Control),
            _ => None,
        };
        let result = match role {
            Some(role) => {
                ConnectContext::new(role)
                    .encode(&mut context)
                    .expect("a context encodes");
                connect_raw(context.as_ptr().cast(), CONNECT_CONTEXT_BYTES as u16)
            }
            None => {
                let raw = script.bytes(CONNECT_CONTEXT_BYTES);
                connect_raw(raw.as_ptr().cast(), u16::try_from(raw.len()).unwrap_or(0))
            }
        };
        if let Ok(handle) = result {
            let key = self.conns.len();
            // SAFETY: binds our connection handle to our completion port.
            let bound = unsafe { CreateIoCompletionPort(handle, self.iocp, key, 0) };
            assert_eq!(
                bound, self.iocp,
                "binding a connection to the completion port"
            );
            self.conns.push(Some(Conn { handle, pid }));
        }
    }

    fn close(&mut self, index: u8) {
        let n = self.conns.len();
        if n == 0 {
            return;
        }
        if let Some(conn) = self.conns[usize::from(index) % n].take() {
            let _p = fltsim::process::enter(conn.pid);
            // SAFETY: our handle, closed once (taken out of the table).
            unsafe { CloseHandle(conn.handle) };
        }
    }

    fn get(&mut self, index: u8, size: u16) {
        if self.gets.len() >= MAX_GETS {
            return;
        }
        let Some(conn) = self.conn(index) else {
            return;
        };
        let (handle, pid) = (conn.handle, conn.pid);
        // SAFETY: OVERLAPPED is plain data; all-zero is its initial state.
        let mut get = Get {
            overlapped: Box::new(unsafe { std::mem::zeroed() }),
            buffer: vec![0u64; usize::from(size).div_ceil(8).max(1)],
        };
        let _p = fltsim::process::enter(pid);
        // SAFETY: the buffer and OVERLAPPED are heap blocks kept in `self.gets` until the
        // completion port returns them (or the script ends and every port is closed).
        let hr = unsafe {
            FilterGetMessage(
                handle,
                get.buffer.as_mut_ptr().cast::<FILTER_MESSAGE_HEADER>(),
                u32::from(size),
                &mut *get.overlapped,
            )
        };
        if hr == 0x8007_03E5_u32 as i32 || hr == 0 {
            // Pending (or completed at once): the completion arrives through the port.
            self.gets.push(get);
        }
    }

    /// Takes completions without waiting (or up to `wait`).
    fn poll(&mut self, wait: u32) {
        loop {
            let mut bytes = 0u32;
            let mut key = 0usize;
            let mut overlapped: *mut OVERLAPPED = std::ptr::null_mut();
            // SAFETY: out pointers to locals.
            let ok = unsafe {
                GetQueuedCompletionStatus(self.iocp, &mut bytes, &mut key, &mut overlapped, wait)
            };
            if overlapped.is_null() {
                return;
            }
            let Some(at) = self
                .gets
                .iter()
                .position(|g| std::ptr::eq(&*g.overlapped, overlapped))
            else {
                panic!("a completion for an OVERLAPPED that is not ours");
            };
            let get = self.gets.swap_remove(at);
            if ok != 0 && bytes >= 16 {
                // SAFETY: the buffer holds at least `bytes` bytes written by the get.
                let raw = unsafe {
                    std::slice::from_raw_parts(get.buffer.as_ptr().cast::<u8>(), bytes as usize)
                };
                let message_id = u64::from_le_bytes(raw[8..16].try_into().unwrap());
                if let Ok(portfilter_protocol::KernelMessage::Event(view)) =
                    portfilter_protocol::decode_kernel_message(&raw[16..])
                {
                    if message_id != 0 {
                        self.requests.push((message_id, view.fields.sequence));
                    }
                }
            }
        }
    }

    fn reply(&mut self, script: &mut Script<'_>) {
        let index = script.byte();
        let how = script.byte();
        let Some(conn) = self.conn(index) else {
            return;
        };
        let (handle, pid) = (conn.handle, conn.pid);
        let mut words = vec![0u64; VERDICT_REPLY_BYTES.div_ceil(8) + 8];
        let len = {
            // SAFETY: `words` holds at least VERDICT_REPLY_BYTES + 64 bytes.
            let bytes = unsafe {
                std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 8)
            };
            let known = (!self.requests.is_empty())
                .then(|| self.requests[usize::from(script.byte()) % self.requests.len()]);
            match (how % 4, known) {
                (0 | 1, Some((id, seq))) => {
                    let verdict = if how % 4 == 0 {
                        Verdict::allow(seq)
                    } else {
                        Verdict::deny(seq)
                    };
                    verdict.encode_reply(id, bytes).expect("a reply encodes")
                }
                (2, Some((id, _))) => {
                    // The right message id, any payload.
                    let n = usize::from(script.byte() % 48);
                    let payload = script.bytes(n);
                    bytes[..8].fill(0);
                    bytes[8..16].copy_from_slice(&id.to_le_bytes());
                    bytes[16..16 + payload.len()].copy_from_slice(&payload);
                    16 + payload.len()
                }
                _ => {
                    let n = usize::from(script.byte() % 64);
                    let raw = script.bytes(n);
                    bytes[..raw.len()].copy_from_slice(&raw);
                    raw.len()
                }
            }
        };
        let _p = fltsim::process::enter(pid);
        // SAFETY: `words` is valid for `len` bytes.
        let _ = unsafe {
            FilterReplyMessage(
                handle,
                words.as_mut_ptr().cast::<FILTER_REPLY_HEADER>(),
                u32::try_from(len).unwrap_or(0),
            )
        };
    }

    fn cancel(&mut self, index: u8) {
        if let Some(conn) = self.conn(index) {
            let _p = fltsim::process::enter(conn.pid);
            // SAFETY: cancels every request of our own handle.
            let _ = unsafe { CancelIoEx(conn.handle, std::ptr::null()) };
        }
    }

    fn command(&mut self, script: &mut Script<'_>) {
        let index = script.byte();
        let out_len = usize::from(script.u16() % 4096);
        let len = usize::from(script.byte());
        let input = script.bytes(len);
        if let Some(conn) = self.conn(index) {
            let _p = fltsim::process::enter(conn.pid);
            let _ = send(
                conn.handle,
                &input,
                BufferKind::Valid,
                out_len,
                BufferKind::Valid,
            );
        }
    }

    fn set_config(&mut self, script: &mut Script<'_>) {
        let index = script.byte();
        let mut config = Config::new();
        let mode = script.byte();
        config.observer_delivery = if mode & 1 == 0 {
            Delivery::Queued
        } else {
            Delivery::Notify
        };
        config.default_verdict = if mode & 2 == 0 {
            Decision::Allow
        } else {
            Decision::Deny
        };
        config.skip_flags = u32::from(mode >> 2) & 3;
        // Short budgets keep an execution short; the driver validates the rest.
        config.reply_timeout_ms = 1 + u32::from(script.byte() % 40);
        config.notify_timeout_ms = 1 + u32::from(script.byte() % 20);
        config.queue_capacity = 1 + u32::from(script.byte() % 32);
        config.batch_max_events = 1 + u32::from(script.byte() % 16);
        let mut bytes = vec![0u8; CONFIG_MAX_BYTES];
        let Ok(n) = config.encode(Command::SetConfig, &mut bytes) else {
            return;
        };
        if let Some(conn) = self.conn(index) {
            let _p = fltsim::process::enter(conn.pid);
            let _ = send(
                conn.handle,
                &bytes[..n],
                BufferKind::Valid,
                CONFIG_MAX_BYTES,
                BufferKind::Valid,
            );
        }
    }

    fn create(&mut self, script: &mut Script<'_>) {
        if self.creates.len() >= MAX_CREATES {
            return;
        }
        let who = script.byte();
        let what = script.byte();
        let pid = match who % 4 {
            0 => 1000,
            1 => 1001,
            n => CLIENT_PID + u32::from(n - 2),
        };
        let mut request = CreateRequest::new(PATHS[usize::from(what) % PATHS.len()]).pid(pid);
        if what & 0x10 != 0 {
            request = request.kernel_mode();
        }
        if what & 0x20 != 0 {
            request = request.directory();
        }
        let done = self.done_tx.clone();
        self.creates.push(std::thread::spawn(move || {
            let _ = done.send(fltsim::create(&request).status);
        }));
    }
}

/// The driver's statistics through a fresh control connection.
fn stats() -> Stats {
    let _p = fltsim::process::enter(CLIENT_PID);
    let mut context = [0u8; CONNECT_CONTEXT_BYTES];
    ConnectContext::new(Role::Control)
        .encode(&mut context)
        .expect("a context encodes");
    let handle = connect_raw(
        context.as_ptr().cast::<c_void>(),
        CONNECT_CONTEXT_BYTES as u16,
    )
    .expect("a control connection is always possible at the end");
    let mut request = [0u8; 8];
    encode_request(Command::GetStats, &mut request).expect("request encodes");
    let mut out = vec![0u64; STATS_BYTES.div_ceil(8)];
    let mut returned = 0u32;
    // SAFETY: buffers valid for the sizes given.
    let hr = unsafe {
        windows_sys::Win32::Storage::InstallableFileSystems::FilterSendMessage(
            handle,
            request.as_ptr().cast(),
            8,
            out.as_mut_ptr().cast(),
            STATS_BYTES as u32,
            &mut returned,
        )
    };
    assert_eq!((hr, returned as usize), (0, STATS_BYTES), "GetStats");
    // SAFETY: `out` holds STATS_BYTES initialised bytes.
    let bytes = unsafe { std::slice::from_raw_parts(out.as_ptr().cast::<u8>(), STATS_BYTES) };
    let stats = Stats::decode(bytes).expect("stats decode");
    // SAFETY: our handle.
    unsafe { CloseHandle(handle) };
    stats
}

fuzz_target!(|data: &[u8]| {
    let mut script = Script::new(data);
    let machine = Machine::boot();
    fltsim::load_driver(portfilter::DriverEntry).expect("DriverEntry succeeds");
    fltsim::process::spawn(CLIENT_PID, "client.exe", true);
    // SAFETY: creates a new completion port (no file handle).
    let iocp = unsafe {
        CreateIoCompletionPort(
            windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE,
            std::ptr::null_mut(),
            0,
            0,
        )
    };
    assert!(!iocp.is_null(), "a completion port");
    let (done_tx, done_rx) = channel();
    let mut world = World {
        iocp,
        conns: Vec::new(),
        gets: Vec::new(),
        requests: Vec::new(),
        creates: Vec::new(),
        done_tx,
        done_rx,
    };
    let mut steps = 0;
    while !script.done() && steps < 256 {
        steps += 1;
        match script.byte() % 10 {
            0 => world.connect(&mut script),
            1 => {
                let i = script.byte();
                world.close(i);
            }
            2 => {
                let i = script.byte();
                let size = script.u16();
                world.get(i, size);
            }
            3 => world.poll(0),
            4 => world.reply(&mut script),
            5 => world.command(&mut script),
            6 => world.set_config(&mut script),
            7 => world.create(&mut script),
            8 => std::thread::sleep(Duration::from_micros(u64::from(script.byte()) * 10)),
            _ => {
                let i = script.byte();
                world.cancel(i);
            }
        }
        world.poll(0);
    }

    // Quiesce: close every connection (pending gets complete with errors, waiting
    // creates get their default verdict), then every create must finish.
    for i in 0..world.conns.len() {
        world.close(u8::try_from(i).unwrap_or(0));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for _ in 0..world.creates.len() {
        let status = match world
            .done_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(status) => status,
            Err(RecvTimeoutError::Timeout) => panic!("a create did not complete"),
            Err(RecvTimeoutError::Disconnected) => unreachable!("World holds a sender"),
        };
        assert!(
            status == STATUS_SUCCESS || status < 0,
            "create ended with {status:#x}"
        );
    }
    for create in world.creates.drain(..) {
        create.join().expect("create thread");
    }
    // Drain the completions already queued for the closed handles (the counters below do
    // not depend on them: every create has returned, and each counts itself before it
    // returns; gets still in flight are completed by the unload or freed with `world`).
    world.poll(0);
    let s = stats();
    assert_eq!(
        s.events_seen,
        s.events_reported + s.events_skipped,
        "every create seen is reported or skipped: {s:?}"
    );
    assert!(
        s.replies_allow + s.replies_deny + s.reply_bad + s.reply_timeouts <= s.requests_sent,
        "more verdict outcomes than requests: {s:?}"
    );
    fltsim::unload_driver().expect("unload succeeds");
    world.poll(0);
    assert_eq!(
        fltsim::kernel::pool::live_bytes(portfilter::POOL_TAG),
        0,
        "driver pool left after unload: {:?}",
        fltsim::kernel::pool::outstanding()
    );
    // SAFETY: our completion port.
    unsafe { CloseHandle(iocp) };
    // Gets of closed handles may still sit in `world.gets`: their buffers are ours and
    // no longer referenced by the (closed) connections.
    drop(world);
    let violations = machine.shutdown();
    assert!(violations.is_empty(), "verifier: {violations:?}");
});
