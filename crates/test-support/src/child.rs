//! A child process with its output collected line by line and bounded waits on it.

use crate::WAIT;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A finished command.
pub struct Output {
    /// How it ended.
    pub status: ExitStatus,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

/// Runs a command to completion within `limit` (killed and failed otherwise).
///
/// # Panics
/// If the command cannot start or does not exit within `limit`.
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    let mut p = Proc::spawn(cmd);
    let status = p.wait_exit(limit);
    Output {
        status,
        stdout: p.stdout(),
        stderr: p.stderr(),
    }
}

#[derive(Default)]
struct Collected {
    text: Mutex<String>,
    changed: Condvar,
    /// The stream reached its end (set under `text`'s lock, then `changed` notified).
    ended: AtomicBool,
}

/// How long `wait_exit` waits, after the exit, for the output pipes to reach their end (a
/// grandchild that inherited them could hold them open; then the output so far is used).
const DRAIN: Duration = Duration::from_secs(10);

impl Collected {
    /// Waits until the stream has ended, at most `limit`: everything the process wrote is
    /// then in `text` (no fixed sleep, which a loaded machine outlasts).
    fn wait_ended(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut text = self.text.lock().unwrap();
        while !self.ended.load(Ordering::SeqCst) {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            text = self.changed.wait_timeout(text, deadline - now).unwrap().0;
        }
    }

    fn end(&self) {
        let _text = self.text.lock().unwrap();
        self.ended.store(true, Ordering::SeqCst);
        self.changed.notify_all();
    }
}

fn collect(stream: impl Read + Send + 'static, into: Arc<Collected>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            into.text.lock().unwrap().push_str(&line);
            into.changed.notify_all();
            line.clear();
        }
        into.end();
    });
}

/// A child process whose output is collected; killed (SIGKILL) on drop if still alive.
pub struct Proc {
    child: Child,
    out: Arc<Collected>,
    err: Arc<Collected>,
    exited: Option<ExitStatus>,
    what: String,
}

impl Proc {
    /// Spawns `cmd` with stdin from `/dev/null` and piped stdout/stderr.
    ///
    /// # Panics
    /// If it cannot start.
    pub fn spawn(cmd: &mut Command) -> Self {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let out = Arc::new(Collected::default());
        let err = Arc::new(Collected::default());
        collect(child.stdout.take().unwrap(), out.clone());
        collect(child.stderr.take().unwrap(), err.clone());
        Self {
            child,
            out,
            err,
            exited: None,
            what,
        }
    }

    /// Process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything printed on stdout so far.
    #[must_use]
    pub fn stdout(&self) -> String {
        self.out.text.lock().unwrap().clone()
    }

    /// Everything printed on stderr so far.
    #[must_use]
    pub fn stderr(&self) -> String {
        self.err.text.lock().unwrap().clone()
    }

    /// Waits until stdout contains `needle` `times` times.
    ///
    /// # Panics
    /// After [`WAIT`], with the output so far.
    pub fn wait_for_count(&self, needle: &str, times: usize) {
        let deadline = Instant::now() + WAIT;
        let mut text = self.out.text.lock().unwrap();
        while text.matches(needle).count() < times {
            let now = Instant::now();
            assert!(
                now < deadline,
                "timed out waiting for {times}x {needle:?} from {}\nstdout:\n{}\nstderr:\n{}",
                self.what,
                *text,
                self.stderr()
            );
            text = self
                .out
                .changed
                .wait_timeout(text, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Waits until stdout contains `needle`.
    ///
    /// # Panics
    /// After [`WAIT`], with the output so far.
    pub fn wait_for(&self, needle: &str) {
        self.wait_for_count(needle, 1);
    }

    /// Waits for the process to exit.
    ///
    /// # Panics
    /// After `limit` (the process is killed first).
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        if let Some(status) = self.exited {
            return status;
        }
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.exited = Some(status);
                // Let the collectors drain the pipes to their end.
                self.out.wait_ended(DRAIN);
                self.err.wait_ended(DRAIN);
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not exit within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                    self.what,
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process still runs (records its exit status when it ended).
    pub fn is_running(&mut self) -> bool {
        if self.exited.is_some() {
            return false;
        }
        match self.child.try_wait().unwrap() {
            Some(status) => {
                self.exited = Some(status);
                false
            }
            None => true,
        }
    }

    /// Sends signal `sig` to the process.
    ///
    /// # Panics
    /// If `kill(2)` fails.
    pub fn signal(&self, sig: i32) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child process.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    /// Stops the process with SIGSTOP and waits (at most [`WAIT`]) until every one of its
    /// threads is stopped. `kill(2)` only marks the signal pending: one thread is woken to
    /// start the group stop and the others stop when it tells them, so a thread already
    /// running — or woken by a message an instant later — can still act after `kill`
    /// returned (on a loaded machine, for hundreds of milliseconds). A test that needs a
    /// frozen process must wait for it.
    ///
    /// # Panics
    /// If `kill(2)` fails, the process ends, or a thread is still not stopped after [`WAIT`].
    pub fn freeze(&mut self) {
        self.signal(libc::SIGSTOP);
        let deadline = Instant::now() + WAIT;
        loop {
            let states = thread_states(self.child.id());
            if !states.is_empty() && states.iter().all(|&s| s == 'T' || s == 't') {
                return;
            }
            assert!(self.is_running(), "{} ended instead of stopping", self.what);
            assert!(
                Instant::now() < deadline,
                "{} not stopped after {WAIT:?}: thread states {states:?}",
                self.what
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Sends SIGINT (what Ctrl-C does).
    pub fn interrupt(&self) {
        self.signal(libc::SIGINT);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The state letter (`R`, `S`, `T`, …) of every thread of process `pid`, from
/// `/proc/PID/task/TID/stat` (empty when the process is gone).
fn thread_states(pid: u32) -> Vec<char> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .filter_map(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().next()?.chars().next()
        })
        .collect()
}
