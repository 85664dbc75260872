//! Helpers for the cross-process tests: the shared ones of `test-support` (child
//! processes killed when a test fails, output collected with bounded waits, world-readable
//! directories), plus what is particular to this crate: a running `portfilter-sim` on a
//! private temporary socket, locating (building if needed) `libfltlib_shim.so` and
//! `portctl`, and reading the host's report.
#![allow(dead_code, unused_imports)] // each test file uses a subset

use std::path::PathBuf;
use std::process::{Command, ExitStatus};

pub use test_support::{Output, Proc, WAIT, copy_into, run, world_readable_dir};

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
    test_support::build(&profile_dir(), package, artifact)
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
        let proc = test_support::serve(&sim_bin(), &socket, extra);
        Self {
            proc,
            socket,
            _dir: dir,
        }
    }

    /// A command with `PORTFILTER_SIM_SOCKET` pointing at this host.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        test_support::client_command(program, &self.socket)
    }

    /// `portfilter-sim <args>` against this host, run to completion.
    pub fn sim(&self, args: &[&str]) -> Output {
        run(self.command(sim_bin()).args(args), WAIT)
    }

    /// `portfilter-sim stop`, then waits for the host to exit; returns its exit status
    /// and stdout.
    pub fn stop(mut self) -> (ExitStatus, String) {
        let status = test_support::stop(&sim_bin(), &self.socket, &mut self.proc);
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
