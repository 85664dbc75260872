//! The process's one socket to `portfilter-sim`.
//!
//! Opened lazily by the first `FilterConnectCommunicationPort`, kept for the life of the
//! process (the host treats the socket as the process: when it closes — normal exit,
//! crash, `kill -9` — the host closes every connection the process had). Requests from
//! any number of threads are multiplexed by request id; one reader thread delivers the
//! answers and completes queued `FilterGetMessage` requests. If the host goes away, every
//! waiter fails and every queued request completes with `STATUS_PORT_DISCONNECTED`; the
//! next connect opens a new socket.

use fltsim_user::GetRequest;
use parking_lot::Mutex;
use portfilter_bindings::{
    NTSTATUS, STATUS_ACCESS_DENIED, STATUS_OBJECT_NAME_NOT_FOUND, STATUS_REVISION_MISMATCH,
};
use portfilter_sim_wire::{
    Envelope, FRAME_DEADLINE, FromHost, Incoming, ToHost, WIRE_VERSION, decode, encode, location,
    read_frame, write_frame,
};
use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

/// Environment variable: when `1`, the process asks the host to treat it as a
/// non-administrator (a test knob; it can only lower privilege).
pub const NON_ADMIN_ENV: &str = "PORTFILTER_SIM_NON_ADMIN";

/// Time the host gets to answer the hello of a new socket.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The socket went away (host exited or broke the protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkDown;

/// One socket to the host.
pub struct Link {
    writer: Mutex<UnixStream>,
    next_id: AtomicU64,
    waiters: Mutex<HashMap<u64, mpsc::SyncSender<FromHost>>>,
    gets: Mutex<HashMap<u64, GetRequest>>,
    dead: AtomicBool,
}

static CURRENT: Mutex<Option<Arc<Link>>> = Mutex::new(None);

/// The live link, opening one if needed.
///
/// # Errors
/// The NTSTATUS a connect fails with when the host cannot be reached:
/// `STATUS_OBJECT_NAME_NOT_FOUND` (no host: "driver not loaded"),
/// `STATUS_ACCESS_DENIED` (the socket exists but we may not connect to it),
/// `STATUS_REVISION_MISMATCH` (host speaks another wire version).
pub fn current() -> Result<Arc<Link>, NTSTATUS> {
    let mut cur = CURRENT.lock();
    if let Some(l) = cur.as_ref().filter(|l| !l.is_dead()) {
        return Ok(l.clone());
    }
    let link = Link::open().map_err(|e| match e.kind() {
        ErrorKind::PermissionDenied => STATUS_ACCESS_DENIED,
        ErrorKind::Unsupported => STATUS_REVISION_MISMATCH,
        _ => STATUS_OBJECT_NAME_NOT_FOUND,
    })?;
    *cur = Some(link.clone());
    Ok(link)
}

impl Link {
    fn open() -> io::Result<Arc<Self>> {
        let path = location::resolve(None);
        let mut stream = UnixStream::connect(&path)?;
        let drop_admin = std::env::var(NON_ADMIN_ENV).is_ok_and(|v| v == "1");
        let hello = encode(&Envelope {
            id: 0,
            body: ToHost::Hello {
                version: WIRE_VERSION,
                drop_admin,
            },
        });
        write_frame(&mut stream, &hello)?;
        stream.set_read_timeout(Some(HELLO_TIMEOUT))?;
        let answer = match read_frame(&mut stream, FRAME_DEADLINE)? {
            Incoming::Frame(f) => {
                decode::<FromHost>(&f)
                    .map_err(|e| io::Error::new(ErrorKind::InvalidData, e))?
                    .body
            }
            Incoming::Idle => return Err(ErrorKind::TimedOut.into()),
            Incoming::Closed => return Err(ErrorKind::ConnectionReset.into()),
        };
        match answer {
            FromHost::Hello { version, .. } if version == WIRE_VERSION => {}
            FromHost::Hello { .. } => return Err(ErrorKind::Unsupported.into()),
            _ => return Err(ErrorKind::InvalidData.into()),
        }
        stream.set_read_timeout(None)?;
        let reader = stream.try_clone()?;
        let link = Arc::new(Self {
            writer: Mutex::new(stream),
            next_id: AtomicU64::new(1),
            waiters: Mutex::new(HashMap::new()),
            gets: Mutex::new(HashMap::new()),
            dead: AtomicBool::new(false),
        });
        let l = link.clone();
        std::thread::Builder::new()
            .name("fltlib-shim-reader".into())
            .spawn(move || l.read_loop(reader))?;
        Ok(link)
    }

    fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// Sends a request and waits for its answer.
    ///
    /// # Errors
    /// [`LinkDown`] when the socket is (or goes) away before the answer arrives.
    pub fn call(&self, body: ToHost) -> Result<FromHost, LinkDown> {
        if self.is_dead() {
            return Err(LinkDown);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::sync_channel(1);
        self.waiters.lock().insert(id, tx);
        // `fail` sets `dead` before it clears the waiters: either it dropped ours, or we
        // see `dead` here.
        if self.is_dead() {
            self.waiters.lock().remove(&id);
            return Err(LinkDown);
        }
        let frame = encode(&Envelope { id, body });
        let sent = write_frame(&mut *self.writer.lock(), &frame);
        if sent.is_err() {
            self.waiters.lock().remove(&id);
            self.fail();
            return Err(LinkDown);
        }
        // `fail` drops every sender, which ends this wait.
        rx.recv().map_err(|_| LinkDown)
    }

    /// Parks a queued request until the host completes it.
    pub fn park_get(&self, token: u64, request: GetRequest) {
        self.gets.lock().insert(token, request);
        // A link that died meanwhile has drained the map already: fail this one too.
        if self.is_dead() {
            drop(self.gets.lock().remove(&token));
        }
    }

    /// Takes a parked request back (it failed at once, or completes now).
    pub fn unpark_get(&self, token: u64) -> Option<GetRequest> {
        self.gets.lock().remove(&token)
    }

    /// Whether a request is parked.
    pub fn has_get(&self, token: u64) -> bool {
        self.gets.lock().contains_key(&token)
    }

    fn read_loop(self: Arc<Self>, mut stream: UnixStream) {
        loop {
            let frame = match read_frame(&mut stream, FRAME_DEADLINE) {
                Ok(Incoming::Frame(f)) => f,
                Ok(Incoming::Idle) => continue,
                Ok(Incoming::Closed) | Err(_) => break,
            };
            let Ok(Envelope { id, body }) = decode::<FromHost>(&frame) else {
                break;
            };
            match body {
                FromHost::GetDone {
                    token,
                    status,
                    information,
                    segments,
                } => {
                    if let Some(request) = self.unpark_get(token) {
                        let parts: Vec<(usize, &[u8])> = segments
                            .iter()
                            .map(|s| (s.offset as usize, s.data.as_slice()))
                            .collect();
                        let information = usize::try_from(information).unwrap_or(usize::MAX);
                        request.complete_segments(status, &parts, information);
                    }
                }
                other => {
                    if let Some(tx) = self.waiters.lock().remove(&id) {
                        let _ = tx.send(other);
                    }
                }
            }
        }
        self.fail();
    }

    /// Marks the link dead: wakes every waiter (with [`LinkDown`]) and completes every
    /// parked request with `STATUS_PORT_DISCONNECTED` (by dropping it).
    fn fail(&self) {
        self.dead.store(true, Ordering::Release);
        let _ = self.writer.lock().shutdown(std::net::Shutdown::Both);
        self.waiters.lock().clear();
        let parked: Vec<GetRequest> = self.gets.lock().drain().map(|(_, r)| r).collect();
        drop(parked);
        let mut cur = CURRENT.lock();
        if cur
            .as_ref()
            .is_some_and(|l| std::ptr::eq(Arc::as_ptr(l), self))
        {
            *cur = None;
        }
    }
}
