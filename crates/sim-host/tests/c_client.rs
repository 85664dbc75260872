//! The C example (examples/c-client) compiled with `cc` against `libfltlib_shim.so`, run as
//! a separate process against a running `portfilter-sim`: "any fltlib client" works.

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

mod common;

use common::{Host, Proc, WAIT, build, counter, run};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Compiles the example once per test process (into a temporary directory that lives
/// as long as the process).
///
/// The credential test runs this client as another user (uid 65534), so everything that
/// process loads must be readable by that user wherever the checkout lives: the checkout
/// (and its `target/`) may sit below a directory only its owner can enter (`/root`, any
/// `mktemp -d`). The client and a copy of `libfltlib_shim.so` therefore live together in a
/// world-readable directory under `/tmp`, and the client finds the library through
/// `$ORIGIN`, never through a path into the checkout.
fn c_client() -> &'static Path {
    static BIN: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = common::world_readable_dir();
        let lib = common::copy_into(
            dir.path(),
            &build("fltlib-shim", "libfltlib_shim.so"),
            0o644,
        );
        let libdir = lib.parent().unwrap();
        let bin = dir.path().join("client");
        let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
        let out = run(
            Command::new(cc)
                .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-I"])
                .arg(root.join("include"))
                .arg(root.join("examples/c-client/client.c"))
                .arg("-L")
                .arg(libdir)
                .arg("-lfltlib_shim")
                // Literal `$ORIGIN` (no shell here): the directory of the client itself.
                .arg("-Wl,-rpath,$ORIGIN")
                .arg("-o")
                .arg(&bin),
            WAIT,
        );
        assert!(
            out.status.success(),
            "cc failed:\n{}{}",
            out.stdout,
            out.stderr
        );
        (dir, bin)
    })
    .1
}

#[test]
fn c_observer_receives_injected_creates() {
    let host = Host::start(&[]);
    let client = Proc::spawn(host.command(c_client()).args(["-n", "3"]));
    client.wait_for("ready");
    for name in ["one.txt", "two.docx", "three.exe"] {
        let out = host.sim(&["create", &format!(r"C:\Users\bob\{name}"), "--pid", "777"]);
        assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    }
    client.wait_for("done: 3 event(s)");
    let out = client.stdout();
    assert!(
        out.contains("connected to \\PortFilterPort as observer"),
        "{out}"
    );
    assert!(out.contains("hello: driver 0.1.0 protocol 3"), "{out}");
    assert!(out.contains("stats: events_seen=0"), "{out}");
    for name in ["one.txt", "two.docx", "three.exe"] {
        let line = out
            .lines()
            .find(|l| l.ends_with(&format!(r"\Device\HarddiskVolume3\Users\bob\{name}")))
            .unwrap_or_else(|| panic!("no event for {name}:\n{out}"));
        assert!(line.contains("pid=777"), "{line}");
    }
    let (status, report) = host.stop();
    assert!(status.success(), "{report}");
}

/// One create answered deny by the C client started with `-n 1` and `decide` (its
/// deciding mode): the create fails with `STATUS_ACCESS_DENIED` and the client ends after
/// that one event. Returns the client's stdout and the host's report.
fn c_client_denies_one_create(decide: &[&str], path: &str) -> (String, String) {
    let host = Host::start(&[]);
    let client = Proc::spawn(host.command(c_client()).args(["-n", "1"]).args(decide));
    client.wait_for("ready");
    let out = host.sim(&["create", path]);
    assert_eq!(out.status.code(), Some(1), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("0xC0000022 STATUS_ACCESS_DENIED"),
        "{}",
        out.stdout
    );
    client.wait_for("done: 1 event(s)");
    let (status, report) = host.stop();
    assert!(status.success(), "{report}");
    (client.stdout(), report)
}

#[test]
fn c_decider_denies_and_the_create_fails() {
    let (stdout, report) =
        c_client_denies_one_create(&["--decide", "deny"], r"C:\temp\payload.exe");
    assert!(
        stdout.contains("verdict deny for seq=1: HRESULT 0x00000000"),
        "{stdout}"
    );
    assert_eq!(counter(&report, "replies_deny"), 1, "{report}");
}

#[test]
fn c_async_decider_answers_a_batch_with_one_send_message() {
    let (stdout, report) =
        c_client_denies_one_create(&["--decide-async", "deny"], r"C:\temp\pended.exe");
    assert!(stdout.contains("as asynchronous decider"), "{stdout}");
    assert!(
        stdout.contains("verdict batch: 1 sent, 1 applied, 0 late, 0 unknown, 0 invalid"),
        "{stdout}"
    );
    assert_eq!(counter(&report, "verdicts_applied"), 1, "{report}");
    assert_eq!(counter(&report, "async_pended"), 1, "{report}");
}

#[test]
fn c_client_without_a_host_gets_port_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        Command::new(c_client()).env("PORTFILTER_SIM_SOCKET", dir.path().join("none.sock")),
        WAIT,
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        out.stdout.contains("connect failed: HRESULT 0x80070002"),
        "{}",
        out.stdout
    );
}

#[test]
fn standard_user_is_refused_by_the_admin_only_port() {
    let host = Host::start(&[]);
    let out = run(
        host.command(c_client())
            .env("PORTFILTER_SIM_NON_ADMIN", "1"),
        WAIT,
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        out.stdout.contains("connect failed: HRESULT 0x80070005"),
        "{}",
        out.stdout
    );
    host.proc.wait_for("connected as standard user");
    let (status, report) = host.stop();
    assert!(status.success(), "{report}");
}

#[test]
fn killing_a_deciding_client_releases_its_waiting_create_at_once() {
    let host = Host::start(&[]);
    let portctl = build("portctl", "portctl");
    // A reply budget far above what this test waits: only the disconnect can release
    // the create in time.
    let set = run(
        host.command(&portctl).args([
            "config",
            "set",
            "reply-timeout-ms=60000",
            "default-verdict=allow",
        ]),
        WAIT,
    );
    assert!(set.status.success(), "{}{}", set.stdout, set.stderr);

    // A decider that receives requests and never answers them.
    let client = Proc::spawn(
        host.command(c_client())
            .args(["-n", "5", "--decide", "none"]),
    );
    client.wait_for("ready");
    let mut create = Proc::spawn(
        host.command(common::sim_bin())
            .args(["create", r"C:\held\file.txt"]),
    );
    client.wait_for(r"\held\file.txt");
    let start = std::time::Instant::now();
    client.signal(libc::SIGKILL);
    let status = create.wait_exit(std::time::Duration::from_secs(20));
    let waited = start.elapsed();
    assert!(status.success(), "{}", create.stdout());
    assert!(
        create.stdout().contains("STATUS_SUCCESS"),
        "{}",
        create.stdout()
    );
    assert!(
        waited < std::time::Duration::from_secs(20),
        "the create waited {waited:?} after the kill"
    );
    host.proc.wait_for("(client) gone");
    assert!(
        host.proc
            .stdout()
            .contains("closed 1 connection(s): disconnect sequence ran"),
        "{}",
        host.proc.stdout()
    );
    let (status, report) = host.stop();
    assert!(status.success(), "{report}");
    assert_eq!(counter(&report, "default_verdicts"), 1, "{report}");
    assert_eq!(counter(&report, "deciders"), 0, "{report}");
    assert!(report.contains("pool: no leaks"), "{report}");
}

/// The C client run to completion with `-n 0` (connect, then end) as user and group `id`.
fn c_client_as(host: &Host, id: u32) -> common::Output {
    use std::os::unix::process::CommandExt;
    run(
        host.command(c_client())
            .arg("-n")
            .arg("0")
            .uid(id)
            .gid(id)
            // A working directory that user can enter (the test's own is in the checkout).
            .current_dir(c_client().parent().unwrap()),
        WAIT,
    )
}

#[test]
fn peer_uid_decides_administrator_or_standard_user() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: running clients as another uid needs root");
        return;
    }
    const NOBODY: u32 = 65534;
    // --shared lets other users reach the socket; their uid is not an administrator's.
    let host = Host::start_with(&["--shared"], true);
    let out = c_client_as(&host, NOBODY);
    assert_eq!(out.status.code(), Some(3), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("HRESULT 0x80070005"), "{}", out.stdout);
    host.proc
        .wait_for(&format!("uid {NOBODY} connected as standard user"));
    let (status, _) = host.stop();
    assert!(status.success());

    // Listed with --admin-uid, the same user connects.
    let admin_uid = NOBODY.to_string();
    let host = Host::start_with(&["--shared", "--admin-uid", &admin_uid], true);
    let out = c_client_as(&host, NOBODY);
    assert_eq!(out.status.code(), Some(0), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("done: 0 event(s)"), "{}", out.stdout);
    host.proc
        .wait_for(&format!("uid {NOBODY} connected as administrator"));
    let (status, report) = host.stop();
    assert!(status.success(), "{report}");
}
