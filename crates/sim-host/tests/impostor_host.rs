//! Who is on the other end of the socket (issue 10, item 4): a client trusts only a host
//! run by root or by its own user. Here another user (uid 65534) runs a real
//! `portfilter-sim` in a directory it owns — what a user who creates
//! `/tmp/portfilter-sim-<victim uid>/` first would do — and root's clients refuse it
//! before sending anything, with one line naming the socket and the uid found.
//!
//! Needs root (to run the impostor as uid 65534); skipped otherwise. Everything uid
//! 65534 runs lives in a world-readable directory outside the checkout, which may be
//! under a 0700 directory.

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

mod common;

use common::{Proc, WAIT, build, run};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

const OTHER_UID: u32 = 65534;

fn world_readable_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("portfilter-impostor-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[test]
fn clients_refuse_a_host_run_by_another_user() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to run a host as uid {OTHER_UID}");
        return;
    }
    let portctl = build("portctl", "portctl");
    // The impostor's binary: a copy of the host, where uid 65534 can execute it.
    let bin_dir = world_readable_dir();
    let sim = bin_dir.path().join("portfilter-sim");
    std::fs::copy(common::sim_bin(), &sim).unwrap();
    std::fs::set_permissions(&sim, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The impostor's private directory, as `ensure_private_dir` would accept it for
    // uid 65534 — and as a victim's default location would look if squatted.
    let squat = world_readable_dir();
    let socket_dir = squat.path().join(format!("portfilter-sim-{OTHER_UID}"));
    std::fs::create_dir(&socket_dir).unwrap();
    std::os::unix::fs::chown(&socket_dir, Some(OTHER_UID), Some(OTHER_UID)).unwrap();
    std::fs::set_permissions(&socket_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let socket = socket_dir.join("sim.sock");

    let mut cmd = Command::new(&sim);
    cmd.arg("serve")
        .arg("--socket")
        .arg(&socket)
        // Root could connect to it anyway; shared makes it connectable for everybody.
        .arg("--shared")
        .current_dir("/")
        .env_remove("PORTFILTER_SIM_SOCKET")
        .env_remove("XDG_RUNTIME_DIR")
        .uid(OTHER_UID)
        .gid(OTHER_UID);
    // In the image run (FLTSIM_IMAGE) the impostor hosts the shipped image as well: a copy
    // beside its binary, since uid 65534 cannot read the checkout's out/ when the checkout
    // lies below a private directory.
    if let Some(image) = std::env::var_os("FLTSIM_IMAGE") {
        let copy = bin_dir.path().join("portfilter.sys");
        std::fs::copy(&image, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
        cmd.env("FLTSIM_IMAGE", &copy);
    }
    let mut impostor = Proc::spawn(&mut cmd);
    impostor.wait_for("serving on");

    let ping = run(client(&portctl, &socket).arg("ping"), WAIT);
    assert_eq!(
        ping.status.code(),
        Some(4),
        "refused as access denied\nstdout:\n{}\nstderr:\n{}",
        ping.stdout,
        ping.stderr
    );
    let line = ping
        .stderr
        .lines()
        .find(|l| l.starts_with("libfltlib: "))
        .unwrap_or_else(|| panic!("no line from the shim:\n{}", ping.stderr));
    assert_eq!(
        line,
        format!(
            "libfltlib: refusing portfilter-sim socket {}: it is served by uid {OTHER_UID}, \
             which is neither root nor this user (uid 0)",
            socket.display()
        )
    );
    assert!(
        ping.stderr.contains("0x80070005"),
        "portctl's own line: {}",
        ping.stderr
    );

    // The control commands refuse it the same way.
    let create = run(
        client(&common::sim_bin(), &socket).args(["create", r"C:\x.txt"]),
        WAIT,
    );
    assert!(!create.status.success(), "{}", create.stdout);
    assert!(
        create
            .stderr
            .contains(&format!("served by uid {OTHER_UID}")),
        "{}",
        create.stderr
    );

    // Nothing reached the impostor: no client ever said hello.
    impostor.signal(libc::SIGTERM);
    let _ = impostor.wait_exit(WAIT);
    let log = impostor.stdout();
    assert!(!log.contains("connected as"), "{log}");
}

fn client(program: &Path, socket: &Path) -> Command {
    let mut c = Command::new(program);
    c.env("PORTFILTER_SIM_SOCKET", socket)
        .env_remove("PORTFILTER_SIM_NON_ADMIN")
        .env_remove("PORTCTL_LOG");
    c
}
