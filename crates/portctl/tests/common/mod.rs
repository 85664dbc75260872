//! Shared by the tests that run the real `portctl` and `portfilter-sim` binaries: child
//! processes with collected output, and a host on a private socket that can be stopped
//! and started again (a driver reload as another process sees it).
#![allow(dead_code)] // each test binary uses a subset

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Bound for anything the test waits for (CI machines are shared and slow).
pub const WAIT: Duration = Duration::from_secs(60);

pub fn portctl_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_portctl"))
}

/// Builds `portfilter-sim` in this build's profile (a no-op when up to date).
pub fn sim_bin() -> PathBuf {
    let dir = portctl_bin()
        .parent()
        .expect("target/<profile>")
        .to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "portfilter-sim"]);
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    let mut build = Proc::spawn(&mut cmd);
    let status = build.wait_exit(Duration::from_secs(900));
    assert!(
        status.success(),
        "cargo build -p portfilter-sim failed:\n{}",
        build.stderr()
    );
    let path = dir.join("portfilter-sim");
    assert!(path.exists(), "{} missing", path.display());
    path
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

/// A child process with collected output, killed on drop if still running.
pub struct Proc {
    child: Child,
    out: Arc<Collected>,
    err: Arc<Collected>,
    exited: Option<ExitStatus>,
    what: String,
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

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Self {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let (out, err) = (
            Arc::new(Collected::default()),
            Arc::new(Collected::default()),
        );
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

    pub fn stdout(&self) -> String {
        self.out.text.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.err.text.lock().unwrap().clone()
    }

    /// Waits until stdout holds `needle` `times` times.
    pub fn wait_for_count(&self, needle: &str, times: usize) {
        let deadline = Instant::now() + WAIT;
        let mut text = self.out.text.lock().unwrap();
        while text.matches(needle).count() < times {
            let now = Instant::now();
            assert!(
                now < deadline,
                "timed out waiting for {needle:?} from {}\nstdout:\n{}\nstderr:\n{}",
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
                    "{} did not exit in {limit:?}\n{}\n{}",
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

    pub fn interrupt(&self) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child process.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
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

/// A finished command.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// A `portfilter-sim serve` on a private socket.
/// A `portfilter-sim serve` on a private socket. [`shutdown`](Self::shutdown) and
/// [`serve_again`](Self::serve_again) unload the driver and load it again behind the
/// same socket path — what a client sees of `fltmc unload` / `fltmc load`.
pub struct Host {
    proc: Option<Proc>,
    pub socket: PathBuf,
    pub sim: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Host {
    pub fn start() -> Self {
        let mut host = Self::not_serving();
        host.serve_again();
        host
    }

    /// A socket path where no host serves yet (the driver is not loaded).
    pub fn not_serving() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("sim.sock");
        Self {
            proc: None,
            socket,
            sim: sim_bin(),
            dir,
        }
    }

    /// Starts `portfilter-sim serve` on the socket (the driver loads) and waits until it
    /// serves.
    pub fn serve_again(&mut self) {
        assert!(self.proc.is_none(), "a host already serves");
        let mut cmd = Command::new(&self.sim);
        cmd.arg("serve")
            .arg("--socket")
            .arg(&self.socket)
            .env_remove("PORTFILTER_SIM_SOCKET");
        let proc = Proc::spawn(&mut cmd);
        proc.wait_for_count("serving on", 1);
        self.proc = Some(proc);
    }

    /// `portfilter-sim stop` (the driver unloads: clients are disconnected) and waits for
    /// the host to exit cleanly; returns its report.
    pub fn shutdown(&mut self) -> String {
        let ran = self.run(&self.sim.clone(), &["stop"]);
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        let mut proc = self.proc.take().expect("a host serves");
        let status = proc.wait_exit(WAIT);
        let report = proc.stdout();
        assert!(status.success(), "host exit {status}: {report}");
        report
    }
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("PORTFILTER_SIM_SOCKET", &self.socket)
            .env_remove("PORTFILTER_SIM_NON_ADMIN")
            .env_remove("PORTCTL_LOG");
        cmd
    }

    pub fn run(&self, program: &Path, args: &[&str]) -> Ran {
        let mut proc = Proc::spawn(self.command(program).args(args));
        let status = proc.wait_exit(WAIT);
        Ran {
            code: status.code(),
            stdout: proc.stdout(),
            stderr: proc.stderr(),
        }
    }

    pub fn portctl(&self, args: &[&str]) -> Ran {
        self.run(&portctl_bin(), args)
    }

    /// `portfilter-sim create PATH`: the exit code (0 allowed, 1 denied) and output.
    pub fn create(&self, path: &str) -> Ran {
        self.run(&self.sim, &["create", path])
    }

    /// Waits until the driver reports `counter` ≥ `at_least` (`portctl stats --json`).
    pub fn wait_counter(&self, counter: &str, at_least: u64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let ran = self.portctl(&["stats", "--json"]);
            assert_eq!(ran.code, Some(0), "{}", ran.stderr);
            let value: serde_json::Value =
                serde_json::from_str(ran.stdout.trim()).expect("stats JSON");
            if value[counter].as_u64().unwrap_or(0) >= at_least {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{counter} never reached {at_least}: {value}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(mut self) -> String {
        self.shutdown()
    }

    /// `portfilter-sim stop`, then the host's exit status (not required to be a success:
    /// a host whose verifier found something exits non-zero) and its report.
    pub fn stop_with_status(mut self) -> (ExitStatus, String) {
        let ran = self.run(&self.sim.clone(), &["stop"]);
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        let mut proc = self.proc.take().expect("a host serves");
        let status = proc.wait_exit(WAIT);
        (status, proc.stdout())
    }
}
