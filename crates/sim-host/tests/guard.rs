//! `portfilter-sim serve --guard DIR` (issue #14): real opens below DIR wait for the hosted
//! driver's verdict through fanotify permission events. Needs root (CAP_SYS_ADMIN) and a
//! kernel with fanotify: each test SKIPs loudly with the reason otherwise (and fails
//! instead when `PORTFILTER_REQUIRE_FANOTIFY=1`). Every wait is bounded; the guarded
//! directory is always a fresh temporary directory.

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

mod common;

use common::{Host, Proc, WAIT, build, counter, run};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Bound for one real command in the guarded directory.
const CMD: Duration = Duration::from_secs(5);

/// Why fanotify permission events are unavailable here, if they are.
fn fanotify_unavailable() -> Option<String> {
    // SAFETY: fanotify_init has no memory arguments; the descriptor is closed at once.
    let fd = unsafe {
        libc::fanotify_init(
            libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC,
            u32::try_from(libc::O_RDONLY).unwrap(),
        )
    };
    if fd >= 0 {
        // SAFETY: our own descriptor.
        unsafe { libc::close(fd) };
        return None;
    }
    Some(format!(
        "fanotify_init(FAN_CLASS_CONTENT) failed: {} (needs root and CONFIG_FANOTIFY_ACCESS_PERMISSIONS)",
        std::io::Error::last_os_error()
    ))
}

/// True when the test must be skipped (printed loudly), false when it may run.
fn skip() -> bool {
    let Some(why) = fanotify_unavailable() else {
        return false;
    };
    assert_ne!(
        std::env::var("PORTFILTER_REQUIRE_FANOTIFY").as_deref(),
        Ok("1"),
        "{why}"
    );
    eprintln!("\n*** SKIP: {why} ***\n");
    true
}

/// A guarded directory with `ok.txt` and `x.evil`.
fn guarded_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("portfilter-guard-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::write(d.path().join("ok.txt"), "fine\n").unwrap();
    std::fs::write(d.path().join("x.evil"), "payload\n").unwrap();
    d
}

fn cat(path: &Path) -> common::Output {
    run(Command::new("cat").arg(path), CMD)
}

/// The guard's summary line's counter (`name=value`), 0 when absent.
fn guard_counter(report: &str, name: &str) -> u64 {
    let line = report
        .lines()
        .find(|l| l.contains("portfilter-sim: guard /"))
        .unwrap_or_else(|| panic!("no guard summary in:\n{report}"));
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .map_or(0, |v| v.parse().unwrap())
}

/// Starts a host guarding `dir` (with `extra` options), sets the driver's reply budget to
/// `budget_ms` with deny as the default verdict, and starts `portctl guard` as the decider.
fn host_with_decider(portctl: &Path, dir: &Path, extra: &[&str], budget_ms: u32) -> (Host, Proc) {
    let mut args = vec!["--guard", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let host = Host::start(&args);
    host.proc.wait_for("guard live");
    let budget = format!("reply-timeout-ms={budget_ms}");
    let set = run(
        host.command(portctl)
            .args(["config", "set", &budget, "default-verdict=deny"]),
        WAIT,
    );
    assert!(set.status.success(), "{}", set.stderr);
    let guard = start_decider(&host, portctl, dir);
    (host, guard)
}

/// Starts `portctl guard --deny-ext evil` and waits until it decides: `x.evil` denied
/// *and* `ok.txt` allowed. (A denial alone does not prove it: with `default-verdict=deny`
/// the driver denies by default while the decider is still starting, and a test that froze
/// the decider then would freeze a process that never connected.)
fn start_decider(host: &Host, portctl: &Path, dir: &Path) -> Proc {
    let guard = Proc::spawn(host.command(portctl).args(["guard", "--deny-ext", "evil"]));
    let deadline = Instant::now() + WAIT;
    loop {
        let denied = !cat(&dir.join("x.evil")).status.success();
        if denied && cat(&dir.join("ok.txt")).status.success() {
            return guard;
        }
        assert!(
            Instant::now() < deadline,
            "guard never became the decider\n{}",
            host.proc.stdout()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn real_opens_are_decided_by_portctl_guard() {
    if skip() {
        return;
    }
    let portctl = build("portctl", "portctl");
    let dir = guarded_dir();
    // A name that is not UTF-8, and a program to execute from the guarded directory.
    let bad_name = dir.path().join(OsStr::from_bytes(b"\xff\xfe.evil"));
    std::fs::write(&bad_name, "x").unwrap();
    common::copy_into(dir.path(), Path::new("/bin/true"), 0o755);
    let dir_arg = dir.path().to_str().unwrap();
    let host = Host::start(&["--guard", dir_arg, "-v"]);
    host.proc.wait_for("guard live");
    let mut watch = Proc::spawn(host.command(&portctl).arg("watch"));
    let mut guard = start_decider(&host, &portctl, dir.path());

    let denied = cat(&dir.path().join("x.evil"));
    assert!(!denied.status.success());
    assert!(
        denied.stderr.contains("Operation not permitted"),
        "FAN_DENY fails the open with EPERM: {}",
        denied.stderr
    );
    let allowed = cat(&dir.path().join("ok.txt"));
    assert!(allowed.status.success(), "{}", allowed.stderr);
    assert_eq!(allowed.stdout, "fine\n");
    // A non-UTF-8 name: decided on its U+FFFD form, which still ends in .evil.
    assert!(!cat(&bad_name).status.success());
    // An exec of a binary in the guarded directory (opened by execve) is decided too.
    let exec = run(&mut Command::new(dir.path().join("true")), CMD);
    assert!(exec.status.success(), "{}", exec.stderr);
    // A file created by the open itself (O_CREAT): decided as FILE_OVERWRITE_IF, write.
    let created = run(
        Command::new("sh").args(["-c", &format!("echo hi > {dir_arg}/new.evil")]),
        CMD,
    );
    assert!(!created.status.success(), "creating new.evil was allowed");
    // An unnamed O_TMPFILE: its name reads as "… (deleted)"; answered and counted.
    let tmp = tmpfile_in(dir.path());
    assert!(tmp.is_ok(), "O_TMPFILE open failed: {tmp:?}");

    guard.wait_for("x.evil");
    assert!(guard.stdout().contains(r"\Device\HarddiskVolume9\ok.txt"));
    guard.signal(libc::SIGINT);
    assert!(guard.wait_exit(WAIT).success(), "{}", guard.stderr());
    watch.signal(libc::SIGINT);
    let _ = watch.wait_exit(WAIT);
    assert!(
        watch.stdout().contains("ok.txt"),
        "the observer saw the real opens:\n{}",
        watch.stdout()
    );

    let (status, report) = host.stop();
    assert!(status.success(), "{report}");
    assert!(
        guard_counter(&report, "own") >= 1,
        "the self-open probe: {report}"
    );
    assert!(guard_counter(&report, "denied") >= 4, "{report}");
    assert!(guard_counter(&report, "allowed") >= 2, "{report}");
    assert_eq!(guard_counter(&report, "non_utf8"), 1, "{report}");
    assert!(guard_counter(&report, "deleted") >= 1, "{report}");
    assert_eq!(guard_counter(&report, "watchdog"), 0, "{report}");
    assert!(counter(&report, "replies_deny") >= 4, "{report}");
    assert!(
        report.contains(r"\Device\HarddiskVolume9\new.evil access 0x120116 disposition 5"),
        "O_WRONLY|O_CREAT|O_TRUNC maps to FILE_GENERIC_WRITE, FILE_OVERWRITE_IF:\n{report}"
    );
}

/// `open(dir, O_TMPFILE | O_RDWR)` by this test process (a guarded open like any other).
fn tmpfile_in(dir: &Path) -> std::io::Result<()> {
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path; the descriptor is closed at once.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_TMPFILE | libc::O_RDWR, 0o600) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: our own descriptor.
    unsafe { libc::close(fd) };
    Ok(())
}

#[test]
fn a_frozen_decider_gives_the_drivers_default_verdict_within_the_budget() {
    if skip() {
        return;
    }
    let portctl = build("portctl", "portctl");
    let dir = guarded_dir();
    let (host, mut guard) = host_with_decider(&portctl, dir.path(), &[], 300);
    guard.freeze();
    let start = Instant::now();
    let out = cat(&dir.path().join("ok.txt"));
    let took = start.elapsed();
    guard.signal(libc::SIGCONT);
    assert!(
        !out.status.success() && out.stderr.contains("Operation not permitted"),
        "the default verdict (deny) after the reply budget: {}",
        out.stderr
    );
    assert!(took >= Duration::from_millis(250), "waited only {took:?}");
    drop(guard);
    let (status, report) = host.stop();
    assert!(status.success(), "{report}");
    assert!(counter(&report, "reply_timeouts") >= 1, "{report}");
    assert_eq!(guard_counter(&report, "watchdog"), 0, "{report}");
}

#[test]
fn killing_the_host_releases_a_waiting_open() {
    if skip() {
        return;
    }
    let portctl = build("portctl", "portctl");
    let dir = guarded_dir();
    // The longest budget: only the host's death can end the wait within this test.
    let (mut host, mut guard) = host_with_decider(&portctl, dir.path(), &[], 60000);
    guard.freeze();
    let mut waiting = Proc::spawn(Command::new("cat").arg(dir.path().join("ok.txt")));
    wait_until_held_by_fanotify(&mut waiting);
    assert!(
        still_running(waiting.pid()),
        "cat did not wait for the frozen decider: {}",
        waiting.stderr()
    );
    host.proc.signal(libc::SIGKILL);
    let _ = host.proc.wait_exit(CMD);
    // The kernel allows what was pending when the fanotify descriptor closed.
    let status = waiting.wait_exit(CMD);
    assert!(status.success(), "{}", waiting.stderr());
    assert_eq!(waiting.stdout(), "fine\n");
    drop(guard);
}

/// Waits (at most [`WAIT`]) until `proc` is blocked in an open that fanotify holds for a
/// permission answer (`/proc/PID/wchan` names a fanotify function while it waits, e.g.
/// `fanotify_handle_event`): its event is then queued for the host, ahead of any open
/// started afterwards. A fixed sleep instead could end before a loaded machine ran `cat`.
fn wait_until_held_by_fanotify(proc: &mut Proc) {
    let deadline = Instant::now() + WAIT;
    loop {
        let wchan = std::fs::read_to_string(format!("/proc/{}/wchan", proc.pid()));
        if wchan.as_deref().is_ok_and(|w| w.contains("fanotify")) {
            return;
        }
        // Ended without being seen held: say how, rather than wait out WAIT.
        assert!(
            proc.is_running(),
            "the open ended before it was seen waiting for a permission answer: \
             stdout {:?}, stderr {:?}",
            proc.stdout(),
            proc.stderr()
        );
        assert!(
            Instant::now() < deadline,
            "the open never waited for a permission answer (wchan {wchan:?})"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether `pid` is alive and not a zombie (an exited, unreaped child).
fn still_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z")
    })
}

#[test]
fn guard_refuses_the_root_directory_and_non_directories() {
    if skip() {
        return;
    }
    let dir = guarded_dir();
    let file = dir.path().join("ok.txt");
    for (arg, why) in [
        ("/", "refusing to guard /"),
        (file.to_str().unwrap(), "is not a directory"),
    ] {
        let out = run(
            Command::new(common::sim_bin()).args([
                "serve",
                "--socket",
                dir.path().join("s.sock").to_str().unwrap(),
                "--guard",
                arg,
            ]),
            WAIT,
        );
        assert_eq!(out.status.code(), Some(1), "{}", out.stdout);
        assert!(out.stderr.contains(why), "{}", out.stderr);
    }
}

#[test]
fn opens_over_the_in_flight_limit_are_answered_at_once_and_counted() {
    if skip() {
        return;
    }
    let portctl = build("portctl", "portctl");
    let dir = guarded_dir();
    let (host, mut guard) = host_with_decider(
        &portctl,
        dir.path(),
        &["--guard-max-in-flight", "1", "--guard-workers", "1"],
        2000,
    );
    guard.freeze();
    // One open holds the only slot (the frozen decider keeps it up to 2 s) ...
    let mut held = Proc::spawn(Command::new("cat").arg(dir.path().join("ok.txt")));
    wait_until_held_by_fanotify(&mut held);
    // ... so the next is answered at once with the default verdict, without the driver.
    let start = Instant::now();
    let over = cat(&dir.path().join("ok.txt"));
    let took = start.elapsed();
    assert!(
        !over.status.success() && over.stderr.contains("Operation not permitted"),
        "{}",
        over.stderr
    );
    assert!(
        took < Duration::from_millis(1500),
        "the overloaded open waited {took:?}, as if queued behind the held one"
    );
    assert!(
        !held.wait_exit(CMD).success(),
        "the held open times out to deny"
    );
    guard.signal(libc::SIGCONT);
    drop(guard);
    let (status, report) = host.stop();
    assert!(status.success(), "{report}");
    assert!(guard_counter(&report, "overload") >= 1, "{report}");
}

#[test]
fn the_watchdog_answers_an_open_the_driver_has_not_decided_within_budget_and_margin() {
    if skip() {
        return;
    }
    let portctl = build("portctl", "portctl");
    let dir = guarded_dir();
    // One worker: a second open waits behind the first, so its driver call would end
    // only after two budgets; the watchdog answers it at one budget + 500 ms.
    let (host, mut guard) =
        host_with_decider(&portctl, dir.path(), &["--guard-workers", "1"], 2000);
    guard.freeze();
    let mut first = Proc::spawn(Command::new("cat").arg(dir.path().join("ok.txt")));
    wait_until_held_by_fanotify(&mut first);
    let mut second = Proc::spawn(Command::new("cat").arg(dir.path().join("ok.txt")));
    assert!(!first.wait_exit(CMD).success());
    assert!(
        !second.wait_exit(CMD).success(),
        "the default verdict (deny)"
    );
    // Let the second driver call end (its reply timeout) before stopping.
    std::thread::sleep(Duration::from_millis(2500));
    guard.signal(libc::SIGCONT);
    drop(guard);
    let (status, report) = host.stop();
    assert!(status.success(), "{report}");
    assert_eq!(guard_counter(&report, "watchdog"), 1, "{report}");
    assert_eq!(guard_counter(&report, "late"), 1, "{report}");
}
