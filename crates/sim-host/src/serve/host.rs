//! What every session of a running host shares.

use super::identity::{AdminPolicy, Processes};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

/// The running host.
pub struct Host {
    /// Who is an administrator.
    pub policy: AdminPolicy,
    /// Simulated client processes.
    pub processes: Processes,
    /// Print every injected create.
    pub verbose: bool,
    stopping: AtomicBool,
    stop: Mutex<Option<mpsc::Sender<String>>>,
    sockets: Mutex<HashMap<u64, UnixStream>>,
}

impl Host {
    /// A host whose stop requests go to `stop`.
    #[must_use]
    pub fn new(policy: AdminPolicy, verbose: bool, stop: mpsc::Sender<String>) -> Self {
        Self {
            policy,
            processes: Processes::default(),
            verbose,
            stopping: AtomicBool::new(false),
            stop: Mutex::new(Some(stop)),
            sockets: Mutex::new(HashMap::new()),
        }
    }

    /// Prints one line of the host's log (stdout).
    pub fn say(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "portfilter-sim: {line}");
        let _ = out.flush();
    }

    /// Whether shutdown began.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Asks the main thread to shut down (first request wins).
    pub fn request_stop(&self, why: &str) {
        if let Some(tx) = self.stop.lock().take() {
            let _ = tx.send(why.to_owned());
        }
    }

    /// Marks shutdown as begun.
    pub fn begin_stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Remembers a session's socket so shutdown can end it.
    pub fn track(&self, number: u64, stream: UnixStream) {
        self.sockets.lock().insert(number, stream);
    }

    /// Forgets a session's socket.
    pub fn untrack(&self, number: u64) {
        self.sockets.lock().remove(&number);
    }

    /// Ends every session (their readers see the socket close).
    pub fn close_all_sockets(&self) {
        for s in self.sockets.lock().values() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}
