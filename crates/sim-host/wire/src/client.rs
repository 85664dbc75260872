//! The client end of a socket: hello, then requests from any number of threads,
//! multiplexed by request id, with one reader thread delivering answers.
//!
//! Used by the fltlib shim (one per process) and by `portfilter-sim`'s control
//! commands.

use crate::frame::{FRAME_DEADLINE, Incoming, read_frame, write_frame};
use crate::message::{Envelope, FromHost, ToHost, WIRE_VERSION, decode, encode};
use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// Time the host gets to answer the hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The socket went away before the answer arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkDown;

impl std::fmt::Display for LinkDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the connection to portfilter-sim was lost")
    }
}

impl std::error::Error for LinkDown {}

/// What the host said in its hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloInfo {
    /// The host's process id.
    pub host_pid: u32,
    /// Our simulated process id.
    pub sim_pid: u32,
    /// Whether we are an administrator.
    pub admin: bool,
}

/// Called by the reader thread for each unsolicited message (`GetDone`).
pub type OnUnsolicited = Box<dyn Fn(FromHost) + Send + Sync>;
/// Called once when the link goes down.
pub type OnDown = Box<dyn Fn() + Send + Sync>;

/// A connected, greeted socket.
pub struct Client {
    writer: Mutex<UnixStream>,
    next_id: AtomicU64,
    waiters: Mutex<HashMap<u64, mpsc::SyncSender<FromHost>>>,
    dead: AtomicBool,
    on_down: Mutex<Option<OnDown>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Client {
    /// Connects to `path`, checks who serves it (root or our own user only:
    /// [`location::check_server`](crate::location::check_server)), exchanges hellos and
    /// starts the reader thread.
    ///
    /// # Errors
    /// Connect errors (`NotFound`/`ConnectionRefused`: no host; `PermissionDenied`);
    /// `PermissionDenied` carrying a
    /// [`location::UntrustedServer`](crate::location::UntrustedServer) when another user
    /// serves the socket; `Unsupported` when the host speaks another wire version;
    /// `TimedOut`, `InvalidData` for a host that does not answer the hello properly.
    pub fn connect(
        path: &Path,
        drop_admin: bool,
        unsolicited: OnUnsolicited,
        on_down: OnDown,
    ) -> io::Result<(Arc<Self>, HelloInfo)> {
        let mut stream = UnixStream::connect(path)?;
        // Nothing is sent to a host we do not trust.
        crate::location::check_server(&stream, path)?;
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
        let info = match answer {
            FromHost::Hello {
                version,
                host_pid,
                sim_pid,
                admin,
            } if version == WIRE_VERSION => HelloInfo {
                host_pid,
                sim_pid,
                admin,
            },
            FromHost::Hello { version, .. } => {
                return Err(io::Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "portfilter-sim speaks wire version {version}, we speak {WIRE_VERSION}"
                    ),
                ));
            }
            _ => return Err(ErrorKind::InvalidData.into()),
        };
        stream.set_read_timeout(None)?;
        let reader = stream.try_clone()?;
        let client = Arc::new(Self {
            writer: Mutex::new(stream),
            next_id: AtomicU64::new(1),
            waiters: Mutex::new(HashMap::new()),
            dead: AtomicBool::new(false),
            on_down: Mutex::new(Some(on_down)),
        });
        let c = client.clone();
        std::thread::Builder::new()
            .name("portfilter-sim-link".into())
            .spawn(move || c.read_loop(reader, &unsolicited))?;
        Ok((client, info))
    }

    /// Whether the link is down.
    #[must_use]
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// Sends a request and waits for its answer (no timeout: the host answers every
    /// request, and a host that goes away ends the wait).
    ///
    /// # Errors
    /// [`LinkDown`].
    pub fn call(&self, body: ToHost) -> Result<FromHost, LinkDown> {
        if self.is_dead() {
            return Err(LinkDown);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::sync_channel(1);
        lock(&self.waiters).insert(id, tx);
        // `fail` sets `dead` before it clears the waiters: either it dropped ours, or we
        // see `dead` here.
        if self.is_dead() {
            lock(&self.waiters).remove(&id);
            return Err(LinkDown);
        }
        let frame = encode(&Envelope { id, body });
        if write_frame(&mut *lock(&self.writer), &frame).is_err() {
            lock(&self.waiters).remove(&id);
            self.fail();
            return Err(LinkDown);
        }
        rx.recv().map_err(|_| LinkDown)
    }

    /// Closes the socket (the host then closes everything this client had).
    pub fn close(&self) {
        self.fail();
    }

    fn read_loop(self: Arc<Self>, mut stream: UnixStream, unsolicited: &OnUnsolicited) {
        loop {
            let frame = match read_frame(&mut stream, FRAME_DEADLINE) {
                Ok(Incoming::Frame(f)) => f,
                Ok(Incoming::Idle) => continue,
                Ok(Incoming::Closed) | Err(_) => break,
            };
            let Ok(Envelope { id, body }) = decode::<FromHost>(&frame) else {
                break;
            };
            if id == 0 {
                unsolicited(body);
            } else if let Some(tx) = lock(&self.waiters).remove(&id) {
                let _ = tx.send(body);
            }
        }
        self.fail();
    }

    fn fail(&self) {
        self.dead.store(true, Ordering::Release);
        let _ = lock(&self.writer).shutdown(std::net::Shutdown::Both);
        lock(&self.waiters).clear();
        let on_down = lock(&self.on_down).take();
        if let Some(f) = on_down {
            f();
        }
    }
}
