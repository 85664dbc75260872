//! `portctl watch`, `guard` and `service run --console` stay through driver reloads: the
//! host (`portfilter-sim`, the real driver under fltsim) is stopped and started again on
//! the same socket while they run, as separate processes reaching it through the fltlib
//! shim. Events after the reload arrive, decisions resume, the gap is reported; with
//! `--no-reconnect` or past `--reconnect-limit` they exit 7; a driver of another protocol
//! version after the reload makes them exit 6 after one attempt.
#![cfg(unix)]

mod common;

use common::{Host, Proc, WAIT, portctl_bin};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The smoke test's deny rule: creates of `C:\portfilter-smoke\denied*`.
const RULES: &str = "[[rule]]\naction = \"deny\"\npath = \"C:\\\\portfilter-smoke\\\\denied*\"\n";

fn write_rules(dir: &Path) -> String {
    let rules = dir.join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    rules.to_str().unwrap().to_owned()
}

/// JSON lines of `proc`'s stdout of the given `type`.
fn lines_of(proc: &Proc, kind: &str) -> Vec<serde_json::Value> {
    proc.stdout()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|value| value["type"] == kind)
        .collect()
}

fn interrupt_and_wait(proc: &mut Proc) -> Option<i32> {
    proc.interrupt();
    proc.wait_exit(WAIT).code()
}

/// A reply budget no slow machine exceeds; the reloaded driver starts with defaults.
fn patient(host: &Host) {
    let set = host.portctl(&["config", "set", "reply-timeout-ms=20000"]);
    assert_eq!(set.code, Some(0), "{}", set.stderr);
}

/// `portctl guard` in `mode` (`None`: no `--mode`, the default) with the smoke test's
/// rules and the arguments `rest`.
fn spawn_guard(host: &Host, mode: Option<&str>, rest: &[&str]) -> Proc {
    let rules = write_rules(host.dir.path());
    let mut cmd = host.command(&portctl_bin());
    cmd.arg("guard");
    if let Some(mode) = mode {
        cmd.args(["--mode", mode]);
    }
    Proc::spawn(cmd.args(["--rules", &rules]).args(rest))
}

/// `proc` (started with `--no-reconnect`) exits 7 once the driver is gone, saying why.
fn assert_exits_7_without_reconnecting(proc: &mut Proc) {
    let status = proc.wait_exit(WAIT);
    assert_eq!(status.code(), Some(7), "{}", proc.stderr());
    let stderr = proc.stderr();
    assert!(
        stderr.ends_with("portctl: error: the driver closed the connection (driver unloaded or port closed) and --no-reconnect was given\n"),
        "{stderr}"
    );
}

/// What every reload test does with `procs` (a `guard --json` first, then any `watch
/// --json`), whatever the guard's mode: two creates decided and seen, the driver unloaded
/// (all are told and keep running, the guard waits), loaded again (all reconnect by
/// themselves), two more creates decided and seen. Returns the second denied create.
fn decide_across_a_reload(host: &mut Host, procs: &mut [&mut Proc]) -> common::Ran {
    let watching = procs.len() > 1;
    host.wait_counter("deciders", 1);
    if watching {
        host.wait_counter("observers", 1);
    }
    let denied = host.create(r"C:\portfilter-smoke\denied-1.txt");
    assert_eq!(denied.code, Some(1), "{}{}", denied.stdout, denied.stderr);
    assert_eq!(
        host.create(r"C:\portfilter-smoke\allowed-1.txt").code,
        Some(0)
    );
    for proc in procs.iter() {
        proc.wait_for_count("\"type\":\"event\"", 2);
    }

    // `fltmc unload`: all are told, and all keep running.
    let report = host.shutdown();
    assert!(report.contains("pool: no leaks"), "{report}");
    for proc in procs.iter() {
        proc.wait_for_count("\"type\":\"disconnected\"", 1);
    }
    procs[0].wait_for_count("\"type\":\"waiting\"", 1);
    for proc in procs.iter_mut() {
        assert!(proc.is_running(), "{}", proc.stderr());
    }

    // `fltmc load`: they reconnect by themselves.
    host.serve_again();
    host.wait_counter("deciders", 1);
    if watching {
        host.wait_counter("observers", 1);
    }
    for proc in procs.iter() {
        proc.wait_for_count("\"type\":\"connected\"", 1);
    }
    patient(host);
    let denied = host.create(r"C:\portfilter-smoke\denied-2.txt");
    assert_eq!(denied.code, Some(1), "decisions resume: {}", denied.stdout);
    assert_eq!(
        host.create(r"C:\portfilter-smoke\allowed-2.txt").code,
        Some(0)
    );
    for proc in procs.iter() {
        proc.wait_for_count("\"type\":\"event\"", 4);
    }
    denied
}

#[test]
fn watch_and_guard_keep_working_across_a_driver_reload() {
    let mut host = Host::start();
    patient(&host);
    let mut guard = spawn_guard(&host, None, &["--json"]);
    let mut watch = Proc::spawn(host.command(&portctl_bin()).args(["watch", "--json"]));
    decide_across_a_reload(&mut host, &mut [&mut guard, &mut watch]);
    // The reloaded driver numbers from 1 again: said, not hidden.
    guard.wait_for_count("\"type\":\"sequence_restarted\"", 1);
    watch.wait_for_count("\"type\":\"sequence_restarted\"", 1);

    assert_eq!(
        interrupt_and_wait(&mut guard),
        Some(0),
        "{}",
        guard.stderr()
    );
    assert_eq!(
        interrupt_and_wait(&mut watch),
        Some(0),
        "{}",
        watch.stderr()
    );

    let gone = &lines_of(&guard, "disconnected")[0];
    assert_eq!(gone["connection"], 1);
    assert_eq!(gone["events"], 2);
    assert_eq!(gone["reconnecting"], true);
    let back = &lines_of(&guard, "connected")[0];
    assert_eq!(back["connection"], 2);
    assert_eq!(back["last_sequence_before"], gone["last_sequence"]);
    assert!(back["missed_events"].is_null(), "not invented: {back}");
    assert!(back["attempts"].as_u64().unwrap() >= 1, "{back}");
    let decisions: Vec<(String, String)> = lines_of(&guard, "event")
        .iter()
        .map(|v| {
            let name = v["name"].as_str().unwrap();
            let leaf = name.rsplit('\\').next().unwrap().to_owned();
            (leaf, v["decision"]["verdict"].as_str().unwrap().to_owned())
        })
        .collect();
    let expected = [
        ("denied-1.txt", "deny"),
        ("allowed-1.txt", "allow"),
        ("denied-2.txt", "deny"),
        ("allowed-2.txt", "allow"),
    ]
    .map(|(a, b)| (a.to_owned(), b.to_owned()));
    assert_eq!(decisions, expected);
    for proc in [&guard, &watch] {
        let summary = lines_of(proc, "summary");
        assert_eq!(summary.len(), 1, "{}", proc.stdout());
        assert_eq!(summary[0]["ended"], "stopped");
        assert_eq!(summary[0]["connections"], 2);
        assert_eq!(summary[0]["events"], 4);
    }
    let summary = &lines_of(&guard, "summary")[0];
    assert_eq!(
        (summary["allowed"].as_u64(), summary["denied"].as_u64()),
        (Some(2), Some(2))
    );
    host.stop();
}

#[test]
fn with_no_reconnect_they_exit_7_when_the_driver_goes() {
    let mut host = Host::start();
    let mut guard = spawn_guard(&host, None, &["--no-reconnect"]);
    let mut watch =
        Proc::spawn(
            host.command(&portctl_bin())
                .args(["watch", "--json", "--no-reconnect"]),
        );
    host.wait_counter("deciders", 1);
    host.wait_counter("observers", 1);
    host.shutdown();
    for proc in [&mut guard, &mut watch] {
        assert_exits_7_without_reconnecting(proc);
    }
    assert!(
        guard
            .stdout()
            .contains("-- driver closed the connection: 0 events"),
        "{}",
        guard.stdout()
    );
    let summary = &lines_of(&watch, "summary")[0];
    assert_eq!(summary["ended"], "driver closed the connection");
}

#[test]
fn a_driver_that_stays_away_ends_them_at_the_limit_or_on_ctrl_c() {
    let mut host = Host::start();
    let mut limited = Proc::spawn(host.command(&portctl_bin()).args([
        "watch",
        "--json",
        "--reconnect-limit",
        "1",
    ]));
    let mut guard = spawn_guard(&host, None, &["--json"]);
    host.wait_counter("deciders", 1);
    host.wait_counter("observers", 1);
    let gone = Instant::now();
    host.shutdown();

    let status = limited.wait_exit(WAIT);
    assert_eq!(status.code(), Some(7), "{}", limited.stderr());
    assert!(gone.elapsed() >= Duration::from_secs(1));
    assert!(
        limited
            .stderr()
            .contains("the driver did not come back within 1."),
        "{}",
        limited.stderr()
    );
    assert_eq!(
        lines_of(&limited, "summary")[0]["ended"],
        "gave up waiting for the driver"
    );

    // Without a limit, guard waits for as long as it takes…
    guard.wait_for_count("\"type\":\"waiting\"", 1);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(guard.is_running(), "{}", guard.stderr());
    let waiting = &lines_of(&guard, "waiting")[0];
    assert_eq!(waiting["hresult"], "0x80070002", "{waiting}");
    // …and ends when asked, promptly, with success.
    let asked = Instant::now();
    assert_eq!(
        interrupt_and_wait(&mut guard),
        Some(0),
        "{}",
        guard.stderr()
    );
    assert!(asked.elapsed() < Duration::from_secs(10));
    assert_eq!(lines_of(&guard, "summary")[0]["ended"], "stopped");
}

#[test]
fn a_newer_driver_after_the_reload_is_exit_6_after_one_attempt() {
    let mut host = Host::start();
    let mut watch = Proc::spawn(host.command(&portctl_bin()).args(["watch", "--json"]));
    host.wait_counter("observers", 1);
    host.shutdown();
    watch.wait_for_count("\"type\":\"disconnected\"", 1);

    // The port comes back, served by a driver that refuses this protocol version.
    let connects = Arc::new(AtomicU32::new(0));
    let _ = std::fs::remove_file(&host.socket);
    let listener = UnixListener::bind(&host.socket).unwrap();
    let counted = Arc::clone(&connects);
    std::thread::spawn(move || newer_driver::serve(&listener, &counted));

    let status = watch.wait_exit(WAIT);
    assert_eq!(status.code(), Some(6), "{}", watch.stderr());
    let stderr = watch.stderr();
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(
            "portctl: error: cannot reconnect to the driver: protocol version mismatch"
        ) && last.contains("0x8007051A"),
        "{stderr}"
    );
    assert_eq!(connects.load(Ordering::SeqCst), 1, "no retry loop");
    assert_eq!(
        lines_of(&watch, "summary")[0]["ended"],
        "failed to reconnect"
    );
}

#[test]
fn watch_can_wait_for_a_driver_that_is_not_loaded_yet() {
    let mut host = Host::not_serving();
    // With a limit and no driver ever: "not loaded", as without waiting (exit 3).
    let started = Instant::now();
    let mut gives_up = Proc::spawn(host.command(&portctl_bin()).args([
        "watch",
        "--wait-for-driver",
        "--reconnect-limit",
        "0.5",
    ]));
    assert_eq!(
        gives_up.wait_exit(WAIT).code(),
        Some(3),
        "{}",
        gives_up.stderr()
    );
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(
        gives_up.stderr().contains("0x80070002"),
        "{}",
        gives_up.stderr()
    );

    let mut watch = Proc::spawn(host.command(&portctl_bin()).args([
        "watch",
        "--json",
        "--wait-for-driver",
        "--count",
        "1",
    ]));
    watch.wait_for_count("\"type\":\"waiting\"", 1);
    host.serve_again();
    host.wait_counter("observers", 1);
    assert_eq!(host.create(r"C:\late\first.txt").code, Some(0));
    assert_eq!(watch.wait_exit(WAIT).code(), Some(0), "{}", watch.stderr());
    let connected = &lines_of(&watch, "connected")[0];
    assert_eq!(connected["connection"], 1);
    assert!(connected["last_sequence_before"].is_null(), "{connected}");
    assert_eq!(lines_of(&watch, "event").len(), 1);
    host.stop();
}

#[test]
fn the_service_runs_guard_in_a_console_waits_for_the_driver_and_survives_a_reload() {
    // The driver is not loaded yet: the service waits for it.
    let mut host = Host::not_serving();
    let rules = write_rules(host.dir.path());
    let log = host.dir.path().join("logs").join("guard.log");
    let mut service = Proc::spawn(host.command(&portctl_bin()).args([
        "service",
        "run",
        "--console",
        "--rules",
        &rules,
        "--log-file",
        log.to_str().unwrap(),
        "--log-decisions",
    ]));
    let wait_log = |needle: &str| {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} never logged:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_log("state=running");
    wait_log("waiting for the driver");

    host.serve_again();
    host.wait_counter("deciders", 1);
    patient(&host);
    assert_eq!(
        host.create(r"C:\portfilter-smoke\denied-1.txt").code,
        Some(1)
    );
    host.shutdown();
    host.serve_again();
    host.wait_counter("deciders", 1);
    patient(&host);
    assert_eq!(
        host.create(r"C:\portfilter-smoke\denied-2.txt").code,
        Some(1)
    );
    assert_eq!(
        host.create(r"C:\portfilter-smoke\allowed.txt").code,
        Some(0)
    );
    wait_log("allowed.txt");

    assert_eq!(
        interrupt_and_wait(&mut service),
        Some(0),
        "{}",
        service.stderr()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let states: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("service state"))
        .filter_map(|l| l.split("state=").nth(1)?.split(' ').next())
        .collect();
    assert_eq!(
        states,
        ["start", "running", "stop", "stopped"],
        "(first words of each state) {text}"
    );
    assert!(
        text.contains("the driver closed the connection; reconnecting"),
        "{text}"
    );
    assert!(
        text.contains("connected to the driver again; events during the outage"),
        "{text}"
    );
    assert!(
        text.contains("-- stopped: 3 events (3 requests: 1 allowed, 2 denied"),
        "{text}"
    );
    assert!(text.contains("2 connections"), "{text}");
    assert!(
        service.stdout().is_empty(),
        "everything goes to the log: {}",
        service.stdout()
    );
    host.stop();
}

#[test]
fn service_commands_outside_windows() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path());
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(portctl_bin());
        cmd.args(args).env("ProgramData", dir.path());
        let mut proc = Proc::spawn(&mut cmd);
        let code = proc.wait_exit(WAIT).code();
        (code, proc.stdout(), proc.stderr())
    };
    // What would be registered can be looked at anywhere.
    let (code, stdout, stderr) = run(&["service", "install", "--rules", &rules, "--dry-run"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("start:        automatic, after service portfilter"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("service run --name portfilter-guard --rules {rules} --port \\PortFilterPort --log-file {}", dir.path().join("portfilter").join("portfilter-guard.log").display())),
        "{stdout}"
    );
    // Registering needs Windows: a usage error that says what to do instead.
    let (code, _, stderr) = run(&["service", "install", "--rules", &rules]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("manages a Windows service"), "{stderr}");
    for command in ["status", "start", "stop", "uninstall"] {
        assert_eq!(run(&["service", command]).0, Some(2), "{command}");
    }
    // A rules file the service would fail on is refused before anything else.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[rule]]\naction = \"block\"\nextension = \"tmp\"\n").unwrap();
    let (code, _, stderr) = run(&[
        "service",
        "install",
        "--rules",
        bad.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("bad.toml:2:"), "{stderr}");
}

/// A stand-in host for a newer driver: speaks the socket protocol, and refuses every
/// connect with `STATUS_REVISION_MISMATCH`, as a driver of another protocol version
/// refuses this client's connection context.
mod newer_driver {
    use portfilter_sim_wire::{
        Envelope, FRAME_DEADLINE, FromHost, Incoming, ToHost, WIRE_VERSION, decode, encode,
        read_frame, write_frame,
    };
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::sync::atomic::{AtomicU32, Ordering};

    const STATUS_REVISION_MISMATCH: i32 = 0xC000_0059_u32.cast_signed();

    fn answer(stream: &mut UnixStream, id: u64, body: FromHost) -> bool {
        write_frame(stream, &encode(&Envelope { id, body })).is_ok()
    }

    pub fn serve(listener: &UnixListener, connects: &AtomicU32) {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            while let Ok(Incoming::Frame(frame)) = read_frame(&mut stream, FRAME_DEADLINE) {
                let Ok(Envelope { id, body }) = decode::<ToHost>(&frame) else {
                    break;
                };
                let reply = match body {
                    ToHost::Hello { .. } => FromHost::Hello {
                        version: WIRE_VERSION,
                        host_pid: std::process::id(),
                        sim_pid: 7000,
                        admin: true,
                    },
                    ToHost::Connect { .. } => {
                        connects.fetch_add(1, Ordering::SeqCst);
                        FromHost::Connected {
                            status: STATUS_REVISION_MISMATCH,
                            conn: 0,
                        }
                    }
                    _ => FromHost::Refused {
                        reason: "a newer driver".to_owned(),
                    },
                };
                if !answer(&mut stream, id, reply) {
                    break;
                }
            }
        }
    }
}

/// `guard --mode async` reconnects like `guard`: every connection is the asynchronous
/// decider (the driver pends the creates and takes verdict batches), and after the reload
/// the verdicts go back on the new connection.
#[test]
fn async_guard_keeps_deciding_across_a_driver_reload() {
    let mut host = Host::start();
    patient(&host);
    let mut guard = spawn_guard(&host, Some("async"), &["--json"]);
    let denied = decide_across_a_reload(&mut host, &mut [&mut guard]);
    assert!(
        denied.stdout.contains("STATUS_ACCESS_DENIED"),
        "{}",
        denied.stdout
    );
    // The reloaded driver pended them and took their verdicts (not a request-reply
    // decider, not default verdicts).
    let stats = host.portctl(&["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_str(stats.stdout.trim()).unwrap();
    assert_eq!(stats["async_pended"], 2, "{stats}");
    assert_eq!(stats["verdicts_applied"], 2, "{stats}");
    assert_eq!(stats["requests_sent"], 0, "{stats}");

    assert_eq!(
        interrupt_and_wait(&mut guard),
        Some(0),
        "{}",
        guard.stderr()
    );
    let back = &lines_of(&guard, "connected")[0];
    assert_eq!(back["connection"], 2);
    let summary = &lines_of(&guard, "summary")[0];
    assert_eq!(summary["ended"], "stopped");
    assert_eq!(summary["connections"], 2);
    assert_eq!(summary["events"], 4);
    let totals = &lines_of(&guard, "verdicts")[0];
    assert_eq!(totals["applied"], 4, "{totals}");
    host.stop();
}

#[test]
fn async_guard_with_no_reconnect_exits_7_when_the_driver_goes() {
    let mut host = Host::start();
    let mut guard = spawn_guard(&host, Some("async"), &["--no-reconnect"]);
    host.wait_counter("deciders", 1);
    host.shutdown();
    assert_exits_7_without_reconnecting(&mut guard);
}
