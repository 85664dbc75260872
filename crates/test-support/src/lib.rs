//! Helpers shared by the cross-process tests of `portctl` and `portfilter-sim`: child
//! processes whose output is collected line by line, with bounded waits, killed when a
//! test fails; building a workspace package from a test; a `portfilter-sim serve` on a
//! private socket (start, command, stop); world-readable directories for what a process
//! running as another uid must reach; the decider-threads scenario of issue 10 that the
//! client's in-process tests and portctl's socket tests both run.
//!
//! Each test tree keeps its own `tests/common/mod.rs` for what is particular to it (which
//! binary is under test, its `Host` type) and builds on these.

// Linux only: the hosts and the shim do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

mod child;
pub mod decider_threads;

pub use child::{Output, Proc, run};

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

/// Generous bound for anything a test waits for (CI machines are slow and shared).
pub const WAIT: Duration = Duration::from_secs(60);

/// The workspace root (this crate lives in `crates/test-support`).
#[must_use]
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds `package` with cargo (a no-op when it is up to date) in the profile of
/// `profile_dir` (`target/<profile>`, where the calling test's binaries live) and returns
/// `profile_dir/<artifact>`.
///
/// # Panics
/// If the build fails or does not produce `artifact`.
#[must_use]
pub fn build(profile_dir: &Path, package: &str, artifact: &str) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", package]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    cmd.current_dir(workspace_root());
    let out = run(&mut cmd, Duration::from_secs(900));
    assert!(
        out.status.success(),
        "cargo build -p {package} failed:\n{}",
        out.stderr
    );
    let path = profile_dir.join(artifact);
    assert!(path.exists(), "{} missing after the build", path.display());
    path
}

/// A command for `program` with `PORTFILTER_SIM_SOCKET` pointing at `socket` and the
/// environment knobs that would change a client's behaviour (`PORTFILTER_SIM_NON_ADMIN`)
/// removed.
#[must_use]
pub fn client_command(program: impl AsRef<std::ffi::OsStr>, socket: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("PORTFILTER_SIM_SOCKET", socket)
        .env_remove("PORTFILTER_SIM_NON_ADMIN");
    cmd
}

/// Starts `sim serve --socket SOCKET EXTRA…` and waits until it serves.
#[must_use]
pub fn serve(sim: &Path, socket: &Path, extra: &[&str]) -> Proc {
    let mut cmd = Command::new(sim);
    cmd.arg("serve")
        .arg("--socket")
        .arg(socket)
        .args(extra)
        .env_remove("PORTFILTER_SIM_SOCKET");
    let proc = Proc::spawn(&mut cmd);
    proc.wait_for("serving on");
    proc
}

/// `sim stop` against the host `host` serving on `socket`, then waits for the host to exit;
/// returns its exit status (not required to be a success: a host whose verifier found
/// something exits non-zero).
///
/// # Panics
/// If `sim stop` fails or the host does not exit within [`WAIT`].
pub fn stop(sim: &Path, socket: &Path, host: &mut Proc) -> ExitStatus {
    let out = run(client_command(sim, socket).arg("stop"), WAIT);
    assert!(out.status.success(), "stop failed: {}", out.stderr);
    host.wait_exit(WAIT)
}

/// A temporary directory that every user can enter and read: for what a process running
/// as another uid must reach (the socket of a `--shared` host, the programs it runs and
/// the libraries they load).
///
/// It is made under `/tmp` (mode 1777 on Debian), never under `TMPDIR` or the checkout:
/// either may lie below a directory that only its owner can enter (`/root` is 0700, and so
/// is every `mktemp -d` directory), and then another user cannot reach anything inside,
/// whatever the file's own mode.
///
/// # Panics
/// Naming the directory, if some ancestor is still closed to other users, rather than
/// letting a test fail later with an obscure "cannot open shared object file".
#[must_use]
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
///
/// # Panics
/// If the copy fails.
pub fn copy_into(dir: &Path, file: &Path, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let to = dir.join(file.file_name().expect("a file name"));
    std::fs::copy(file, &to)
        .unwrap_or_else(|e| panic!("copy {} -> {}: {e}", file.display(), to.display()));
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).unwrap();
    to
}
