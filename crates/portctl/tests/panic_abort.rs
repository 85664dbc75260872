//! Issue 10, item 3: a handler panic in a real `portctl` build. The workspace's dev and
//! release profiles set `panic = "abort"`, so the engine's `catch_unwind` contains
//! nothing there; test binaries always unwind, so this test builds `portctl` itself with
//! `panic = "abort"` (dev profile, in its own target directory — the first run compiles
//! portctl's dependencies once) and runs it as a decider against a real
//! `portfilter-sim`, with the hidden test hook that makes the handler panic.
//!
//! Expected: one line on stderr saying what panicked and that the decider stops, exit
//! code 8; the driver applies its default verdict to the create that was being decided
//! (at once: the connection closes) and to later ones.
#![cfg(unix)]

mod common;

use common::{Host, Proc, WAIT, portctl_bin};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// `portctl` built in the dev profile with `panic = "abort"` (whatever the profile
/// settings of the build running this test), in `target/panic-abort`.
fn abort_build_of_portctl() -> PathBuf {
    let target = portctl_bin()
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/portctl")
        .join("panic-abort");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "portctl"])
        .args(["--config", "profile.dev.panic=\"abort\""])
        .arg("--target-dir")
        .arg(&target)
        .env_remove("CARGO_PROFILE_DEV_PANIC")
        .env_remove("CARGO_TARGET_DIR")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    let mut build = Proc::spawn(&mut cmd);
    let status = build.wait_exit(Duration::from_secs(1800));
    assert!(status.success(), "cargo build failed:\n{}", build.stderr());
    let path = target.join("debug").join("portctl");
    assert!(path.exists(), "{} missing", path.display());
    path
}

#[test]
fn a_panicking_guard_handler_stops_portctl_loudly_with_exit_code_8() {
    let portctl = abort_build_of_portctl();
    let host = Host::start();
    let set = host.portctl(&[
        "config",
        "set",
        "default-verdict=deny",
        "reply-timeout-ms=30000",
    ]);
    assert_eq!(set.code, Some(0), "{}", set.stderr);

    let mut guard = Proc::spawn(host.command(&portctl).args([
        "guard",
        "--deny-ext",
        "exe",
        "--test-panic-on",
        "boom",
    ]));
    host.wait_counter("deciders", 1);
    assert_eq!(
        host.create(r"C:\before\ok.txt").code,
        Some(0),
        "allowed by guard"
    );
    assert_eq!(
        host.create(r"C:\before\tool.exe").code,
        Some(1),
        "denied by guard"
    );

    let start = Instant::now();
    let create = host.create(r"C:\data\boom.txt");
    assert_eq!(
        create.code,
        Some(1),
        "the default verdict (deny) decided: {}",
        create.stdout
    );
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "released when the decider went away, not at the 30 s reply timeout"
    );
    let status = guard.wait_exit(WAIT);
    let stderr = guard.stderr();
    assert_eq!(status.code(), Some(8), "exit code 8\nstderr:\n{stderr}");
    assert!(
        stderr.contains("(panic strategy of this build: abort)"),
        "the binary under test aborts on panic: {stderr}"
    );
    let fatal: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("portctl: test hook:"))
        .collect();
    assert_eq!(fatal.len(), 1, "one line:\n{stderr}");
    let line = fatal[0];
    assert!(
        line.starts_with("portctl: fatal: panic in thread 'portfilter-worker-"),
        "{line}"
    );
    assert!(
        line.contains(r"the handler panicked on \Device\HarddiskVolume3\data\boom.txt"),
        "{line}"
    );
    assert!(line.contains("the decider stops"), "{line}");
    assert!(line.contains("default verdict"), "{line}");
    assert!(line.ends_with("exit code 8"), "{line}");

    // Until a decider connects again, the default verdict decides.
    assert_eq!(host.create(r"C:\after\ok.txt").code, Some(1));
    let report = host.stop();
    assert!(report.contains("pool: no leaks"), "{report}");
}
