//! The real `portctl` binary as a separate process, reaching the driver hosted by
//! `portfilter-sim` through the fltlib shim (issue #6).

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

mod common;

use common::{Host, Proc, WAIT, build, counter, run};
use std::process::Command;

#[test]
fn portctl_over_socket() {
    portctl_against(Host::start(&[]));
}

/// The same, with the host running the cross-built image (`serve --image`), not the
/// driver linked into it. SKIPs loudly without the image unless
/// `PORTFILTER_REQUIRE_SYS=1`.
#[test]
fn portctl_against_the_shipped_image() {
    let out = std::env::var_os("PORTFILTER_OUT").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../out"),
        std::path::PathBuf::from,
    );
    let image = out.join("portfilter.sys");
    if !image.exists() {
        assert_ne!(
            std::env::var("PORTFILTER_REQUIRE_SYS").as_deref(),
            Ok("1"),
            "{} missing: run scripts/build-sys.sh",
            image.display()
        );
        eprintln!("\n*** SKIP: {} not found ***\n", image.display());
        return;
    }
    let image = image.to_str().expect("UTF-8 path");
    let host = Host::start(&["--image", image]);
    assert!(
        host.proc.stdout().contains("driver image "),
        "{}",
        host.proc.stdout()
    );
    portctl_against(host);
}

/// ping, stats, an admin-only refusal, guard deciding creates, a clean stop.
fn portctl_against(host: Host) {
    let portctl = build("portctl", "portctl");

    let ping = run(host.command(&portctl).arg("ping"), WAIT);
    assert!(ping.status.success(), "{}{}", ping.stdout, ping.stderr);
    assert!(
        ping.stdout.contains("pong from \\PortFilterPort"),
        "{}",
        ping.stdout
    );
    assert!(ping.stdout.contains("protocol 3"), "{}", ping.stdout);

    let create = host.sim(&["create", r"C:\before\guard.txt"]);
    assert!(create.status.success());
    let stats = run(host.command(&portctl).arg("stats"), WAIT);
    assert!(stats.status.success(), "{}", stats.stderr);
    assert_eq!(counter(&stats.stdout, "events_seen"), 1, "{}", stats.stdout);

    // A standard user is refused by the admin-only port: exit code 4.
    let denied = run(
        host.command(&portctl)
            .arg("ping")
            .env("PORTFILTER_SIM_NON_ADMIN", "1"),
        WAIT,
    );
    assert_eq!(denied.status.code(), Some(4), "{}", denied.stderr);
    assert!(denied.stderr.contains("0x80070005"), "{}", denied.stderr);

    // guard decides; creates in the host see its verdicts.
    let mut guard = Proc::spawn(host.command(&portctl).args(["guard", "--deny-ext", "exe"]));
    host.proc.wait_for("(portctl) uid");
    let deny = wait_for_decider(&host, r"C:\Users\eve\Downloads\tool.exe");
    assert_eq!(deny.status.code(), Some(1), "{}", deny.stdout);
    assert!(
        deny.stdout.contains("STATUS_ACCESS_DENIED"),
        "{}",
        deny.stdout
    );
    let allow = host.sim(&["create", r"C:\Users\eve\notes.txt"]);
    assert_eq!(allow.status.code(), Some(0), "{}", allow.stdout);
    guard.wait_for("tool.exe");
    guard.wait_for("notes.txt");
    let out = guard.stdout();
    assert!(
        out.lines()
            .any(|l| l.starts_with("DENY") && l.contains("tool.exe")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("ALLOW") && l.contains("notes.txt")),
        "{out}"
    );
    guard.signal(libc::SIGINT);
    assert!(guard.wait_exit(WAIT).success(), "{}", guard.stderr());

    let (status, report) = host.stop();
    assert!(status.success(), "{report}");
    assert_eq!(counter(&report, "replies_deny"), 1, "{report}");
    assert!(report.contains("pool: no leaks"), "{report}");

    // The host is gone: "driver not loaded", exit code 3.
    let gone = run(host_less(&portctl).arg("ping"), WAIT);
    assert_eq!(gone.status.code(), Some(3), "{}", gone.stderr);
    assert!(gone.stderr.contains("0x80070002"), "{}", gone.stderr);
}

/// Creates `path` until the decider's verdict (not the default "no decider" allow)
/// shows: guard connects asynchronously.
fn wait_for_decider(host: &Host, path: &str) -> common::Output {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let out = host.sim(&["create", path]);
        if out.status.code() != Some(0) || std::time::Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn host_less(program: &std::path::Path) -> Command {
    let mut c = Command::new(program);
    c.env("PORTFILTER_SIM_SOCKET", "/nonexistent/portfilter-sim.sock");
    c
}

#[test]
fn workload_under_portctl_guard_is_decided_create_by_create() {
    let portctl = build("portctl", "portctl");
    let host = Host::start(&[]);
    let mut guard = Proc::spawn(host.command(&portctl).args(["guard", "--deny-ext", "pf"]));
    host.proc.wait_for("(portctl) uid");
    // Wait until the guard is the decider (a .pf create is denied).
    let probe = wait_for_decider(&host, r"C:\Windows\Prefetch\PROBE.EXE-0.pf");
    assert_eq!(probe.status.code(), Some(1), "{}", probe.stdout);

    let n = 300;
    let out = host.sim(&[
        "workload",
        "-n",
        &n.to_string(),
        "--rate",
        "0",
        "--processes",
        "4",
    ]);
    assert!(out.status.success(), "{}{}", out.stdout, out.stderr);

    // The trace's own creates are decided by the guard, except those of a process that
    // happens to have the guard's pid (the driver never holds a client's own creates).
    let rows = trace_rows(n);
    let guard_pid = guard.pid();
    let expected_denied = rows
        .iter()
        .filter(|(pid, path)| path.to_ascii_lowercase().ends_with(".pf") && *pid != guard_pid)
        .count();
    assert!(expected_denied > 10, "the sample has prefetch files");
    let summary = out
        .stdout
        .lines()
        .find(|l| l.contains(" creates in "))
        .unwrap();
    assert!(
        summary.contains(&format!(
            "{} allowed, {expected_denied} denied, 0 other failures, 0 errors",
            n - expected_denied
        )),
        "{summary}"
    );
    assert!(out.stdout.contains("create latency"), "{}", out.stdout);
    guard.signal(libc::SIGINT);
    assert!(guard.wait_exit(WAIT).success(), "{}", guard.stderr());
    let (status, report) = host.stop();
    assert!(status.success(), "{report}");
    assert_eq!(
        counter(&report, "replies_deny"),
        expected_denied as u64 + 1,
        "{report}"
    );
}

/// (pid, path) of the first `n` rows of the embedded trace sample.
fn trace_rows(n: usize) -> Vec<(u32, String)> {
    let text = include_str!("../data/file-creates-sample.csv");
    text.lines()
        .skip(1)
        .take(n)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1].parse().unwrap(), f[4].to_owned())
        })
        .collect()
}
