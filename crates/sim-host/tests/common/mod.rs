//! Helpers for the cross-process tests: child processes that are killed when a test
//! fails (guards), output collected line by line with bounded waits, a running
//! `portfilter-sim` on a private temporary socket, and locating (building if needed)
//! `libfltlib_shim.so` and `portctl`.
#![allow(dead_code)] // each test file uses a subset

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Generous bound for anything a test waits for (CI machines are slow and shared).
pub const WAIT: Duration = Duration::from_secs(60);

/// The host binary under test.
pub fn sim_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_portfilter-sim"))
}

/// `target/<profile>` of this build.
pub fn profile_dir() -> PathBuf {
    sim_bin()
        .parent()
        .expect("the binary lives in target/<profile>")
        .to_path_buf()
}

/// Builds `package` with cargo (a no-op when it is up to date) in this build's profile
/// and returns `target/<profile>/<artifact>`.
pub fn build(package: &str, artifact: &str) -> PathBuf {
    let dir = profile_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", package]);
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    // The workspace root: crates/sim-host/../..
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    let out = run(&mut cmd, Duration::from_secs(900));
    assert!(
        out.status.success(),
        "cargo build -p {package} failed:\n{}",
        out.stderr
    );
    let path = dir.join(artifact);
    assert!(path.exists(), "{} missing after the build", path.display());
    path
}

/// A finished command.
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a command to completion within `limit` (killed and failed otherwise).
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
        let mut r = BufReader::new(stream);
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    into.text.lock().unwrap().push_str(&line);
                    into.changed.notify_all();
                }
            }
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
    /// Spawns `cmd` with piped stdout/stderr.
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
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.out.text.lock().unwrap().clone()
    }

    /// Everything printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.err.text.lock().unwrap().clone()
    }

    /// Waits until stdout contains `needle` `times` times; panics after `limit`.
    pub fn wait_for_count(&self, needle: &str, times: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
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
    pub fn wait_for(&self, needle: &str) {
        self.wait_for_count(needle, 1, WAIT);
    }

    /// Waits for the process to exit; kills it and panics after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        if let Some(s) = self.exited {
            return s;
        }
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                self.exited = Some(s);
                // Let the collectors drain the pipes to their end.
                self.out.wait_ended(DRAIN);
                self.err.wait_ended(DRAIN);
                return s;
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

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
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

/// A temporary directory that every user can enter and read: for what a process running
/// as another uid must reach (the socket of a `--shared` host, the programs it runs and
/// the libraries they load).
///
/// It is made under `/tmp` (mode 1777 on Debian), never under `TMPDIR` or the checkout:
/// either may lie below a directory that only its owner can enter (`/root` is 0700, and so
/// is every `mktemp -d` directory), and then another user cannot reach anything inside,
/// whatever the file's own mode. Panics, naming the directory, if some ancestor is still
/// closed to other users, rather than letting a test fail later with an obscure
/// "cannot open shared object file".
pub fn world_readable_dir() -> tempfile::TempDir {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::Builder::new()
        .prefix("portfilter-test-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for a in dir.path().ancestors() {
        let mode = std::fs::metadata(a).unwrap().mode();
        assert!(
            mode & 0o001 != 0,
            "{} (mode {mode:o}) cannot be entered by other users",
            a.display()
        );
    }
    dir
}

/// Copies `file` into `dir` with mode `mode` and returns the copy's path.
pub fn copy_into(dir: &Path, file: &Path, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let to = dir.join(file.file_name().expect("a file name"));
    std::fs::copy(file, &to)
        .unwrap_or_else(|e| panic!("copy {} -> {}: {e}", file.display(), to.display()));
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).unwrap();
    to
}

/// A running `portfilter-sim serve` on a socket in its own temporary directory.
pub struct Host {
    pub proc: Proc,
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Host {
    /// Starts a host (with extra `serve` arguments) and waits until it serves.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_with(extra, false)
    }

    /// Like [`start`](Self::start); with `open_dir` the socket's directory is
    /// traversable by other users (for `--shared` tests).
    pub fn start_with(extra: &[&str], open_dir: bool) -> Self {
        let dir = if open_dir {
            world_readable_dir()
        } else {
            tempfile::tempdir().unwrap()
        };
        let socket = dir.path().join("sim.sock");
        let mut cmd = Command::new(sim_bin());
        cmd.arg("serve").arg("--socket").arg(&socket).args(extra);
        cmd.env_remove("PORTFILTER_SIM_SOCKET");
        let proc = Proc::spawn(&mut cmd);
        proc.wait_for("serving on");
        Self {
            proc,
            socket,
            _dir: dir,
        }
    }

    /// A command with `PORTFILTER_SIM_SOCKET` pointing at this host.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("PORTFILTER_SIM_SOCKET", &self.socket);
        c.env_remove("PORTFILTER_SIM_NON_ADMIN");
        c
    }

    /// `portfilter-sim <args>` against this host, run to completion.
    pub fn sim(&self, args: &[&str]) -> Output {
        run(self.command(sim_bin()).args(args), WAIT)
    }

    /// `portfilter-sim stop`, then waits for the host to exit; returns its exit status
    /// and stdout.
    pub fn stop(mut self) -> (ExitStatus, String) {
        let out = self.sim(&["stop"]);
        assert!(out.status.success(), "stop failed: {}", out.stderr);
        let status = self.proc.wait_exit(WAIT);
        (status, self.proc.stdout())
    }
}

/// The value of a counter in the host's shutdown report (`  name   value`).
pub fn counter(report: &str, name: &str) -> u64 {
    report
        .lines()
        .find_map(|l| {
            let mut it = l.split_whitespace();
            (it.next() == Some(name)).then(|| it.next().unwrap().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no counter {name} in:\n{report}"))
}
