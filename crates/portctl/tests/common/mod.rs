//! Shared by the tests that run the real `portctl` and `portfilter-sim` binaries: the
//! child processes of `test-support`, and a host on a private socket that can be stopped
//! and started again (a driver reload as another process sees it).
#![allow(dead_code, unused_imports)] // each test binary uses a subset

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

pub use test_support::{Proc, WAIT};

/// The `portctl` binary under test.
pub fn portctl_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_portctl"))
}

/// Builds `portfilter-sim` in this build's profile (a no-op when up to date).
pub fn sim_bin() -> PathBuf {
    let dir = portctl_bin()
        .parent()
        .expect("target/<profile>")
        .to_path_buf();
    test_support::build(&dir, "portfilter-sim", "portfilter-sim")
}

/// A finished command.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

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
        self.proc = Some(test_support::serve(&self.sim, &self.socket, &[]));
    }

    /// `portfilter-sim stop` (the driver unloads: clients are disconnected) and waits for
    /// the host to exit cleanly; returns its report.
    pub fn shutdown(&mut self) -> String {
        let (status, report) = self.stop_host();
        assert!(status.success(), "host exit {status}: {report}");
        report
    }

    /// `portfilter-sim stop`, then the host's exit status and report.
    fn stop_host(&mut self) -> (ExitStatus, String) {
        let mut proc = self.proc.take().expect("a host serves");
        let status = test_support::stop(&self.sim, &self.socket, &mut proc);
        (status, proc.stdout())
    }

    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = test_support::client_command(program, &self.socket);
        cmd.env_remove("PORTCTL_LOG");
        cmd
    }

    pub fn run(&self, program: &Path, args: &[&str]) -> Ran {
        let out = test_support::run(self.command(program).args(args), WAIT);
        Ran {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
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
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let ran = self.portctl(&["stats", "--json"]);
            assert_eq!(ran.code, Some(0), "{}", ran.stderr);
            let value: serde_json::Value =
                serde_json::from_str(ran.stdout.trim()).expect("stats JSON");
            if value[counter].as_u64().unwrap_or(0) >= at_least {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{counter} never reached {at_least}: {value}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn stop(mut self) -> String {
        self.shutdown()
    }

    /// `portfilter-sim stop`, then the host's exit status (not required to be a success:
    /// a host whose verifier found something exits non-zero) and its report.
    pub fn stop_with_status(mut self) -> (ExitStatus, String) {
        self.stop_host()
    }
}
