//! The real `portctl` binary as a separate process, reaching the real driver hosted by
//! `portfilter-sim` through the fltlib shim (Unix socket): ping, stats, config, guard with
//! a rules file and Ctrl-C, watch with --count, and the exit codes of the failure cases.
#![cfg(not(windows))]

mod common;

use common::{Host, Proc, WAIT, portctl_bin};
use std::process::Command;

#[test]
fn portctl_drives_the_hosted_driver_through_the_shim() {
    let host = Host::start();

    let ping = host.portctl(&["ping"]);
    assert_eq!(ping.code, Some(0), "{}", ping.stderr);
    assert!(
        ping.stdout
            .starts_with("pong from \\PortFilterPort: driver "),
        "{}",
        ping.stdout
    );

    let stats = host.portctl(&["stats"]);
    assert_eq!(stats.code, Some(0));
    assert!(
        stats.stdout.lines().any(|l| l.starts_with("events_seen")),
        "{}",
        stats.stdout
    );

    let set = host.portctl(&[
        "config",
        "set",
        "reply-timeout-ms=20000",
        "default-verdict=allow",
    ]);
    assert_eq!(set.code, Some(0), "{}", set.stderr);
    assert!(
        set.stdout.contains("reply-timeout-ms=20000\n"),
        "{}",
        set.stdout
    );
    let get = host.portctl(&["config", "get", "--json"]);
    let config: serde_json::Value = serde_json::from_str(get.stdout.trim()).unwrap();
    assert_eq!(config["reply_timeout_ms"], 20000);
    let bad = host.portctl(&["config", "set", "reply-timeout-ms=0"]);
    assert_eq!(bad.code, Some(2), "usage error: {}", bad.stderr);
    assert!(
        bad.stderr
            .starts_with("portctl: error: invalid configuration"),
        "{}",
        bad.stderr
    );

    // guard with the smoke test's rules file, as a decider.
    let rules = host.dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\naction = \"deny\"\npath = \"C:\\\\portfilter-smoke\\\\denied*\"\n",
    )
    .unwrap();
    let rules_arg = rules.to_str().unwrap();
    let guard = Proc::spawn(
        host.command(&portctl_bin())
            .args(["guard", "--rules", rules_arg, "--json"]),
    );
    host.wait_counter("deciders", 1);

    // Only one decider at a time.
    let second = host.portctl(&["guard", "--deny-ext", "exe"]);
    assert_eq!(second.code, Some(5), "{}", second.stderr);
    assert!(second.stderr.contains("0x80070020"), "{}", second.stderr);

    let denied = host.create(r"C:\portfilter-smoke\denied-1.txt");
    assert_eq!(denied.code, Some(1), "{}{}", denied.stdout, denied.stderr);
    assert!(
        denied.stdout.contains("STATUS_ACCESS_DENIED"),
        "{}",
        denied.stdout
    );
    let allowed = host.create(r"C:\portfilter-smoke\allowed.txt");
    assert_eq!(
        allowed.code,
        Some(0),
        "{}{}",
        allowed.stdout,
        allowed.stderr
    );
    guard.wait_for_count("\"type\":\"event\"", 2);

    // Ctrl-C: a clean exit with the summary.
    guard.interrupt();
    let mut guard = guard;
    let status = guard.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "{}", guard.stderr());
    let out = guard.stdout();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect(l))
        .collect();
    let decisions: Vec<(&str, &str)> = lines
        .iter()
        .filter(|v| v["type"] == "event")
        .map(|v| {
            (
                v["name"].as_str().unwrap(),
                v["decision"]["verdict"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [
            (
                r"\Device\HarddiskVolume3\portfilter-smoke\denied-1.txt",
                "deny"
            ),
            (
                r"\Device\HarddiskVolume3\portfilter-smoke\allowed.txt",
                "allow"
            ),
        ]
    );
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["ended"], "stopped");
    assert_eq!(
        (summary["allowed"].as_u64(), summary["denied"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(summary["driver"]["replies_deny"], 1);

    // watch stops by itself after --count events.
    let mut watch = Proc::spawn(host.command(&portctl_bin()).args(["watch", "--count", "2"]));
    host.wait_counter("observers", 1);
    for name in ["one.txt", "two.txt"] {
        assert_eq!(host.create(&format!(r"C:\watched\{name}")).code, Some(0));
    }
    let status = watch.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "{}", watch.stderr());
    let out = watch.stdout();
    assert!(out.lines().next().unwrap().contains("NAME"), "{out}");
    assert!(
        out.contains(r"\watched\one.txt") && out.contains(r"\watched\two.txt"),
        "{out}"
    );
    assert!(out.contains("-- stopped: 2 events"), "{out}");

    // A non-administrator is refused (the shim's test knob lowers the privilege).
    let mut cmd = host.command(&portctl_bin());
    cmd.arg("ping").env("PORTFILTER_SIM_NON_ADMIN", "1");
    let mut user = Proc::spawn(&mut cmd);
    assert_eq!(user.wait_exit(WAIT).code(), Some(4), "{}", user.stderr());
    assert!(user.stderr().contains("0x80070005"), "{}", user.stderr());

    let report = host.stop();
    assert!(report.contains("pool: no leaks"), "{report}");
}

#[test]
fn portctl_without_a_host_says_the_driver_is_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(portctl_bin());
    cmd.arg("ping")
        .env("PORTFILTER_SIM_SOCKET", dir.path().join("nobody.sock"));
    let mut proc = Proc::spawn(&mut cmd);
    let status = proc.wait_exit(WAIT);
    assert_eq!(status.code(), Some(3), "{}", proc.stderr());
    let stderr = proc.stderr();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.starts_with(
            "portctl: error: cannot connect to \\PortFilterPort: HRESULT 0x80070002 (port not found"
        ),
        "{stderr}"
    );
}

#[test]
fn bad_rules_file_is_a_usage_error_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "default = \"allow\"\n[[rule]]\naction = \"deny\"\npath = \"dir\\\\x\"\n",
    )
    .unwrap();
    let mut cmd = Command::new(portctl_bin());
    cmd.args(["guard", "--check", "--rules"]).arg(&rules);
    let mut proc = Proc::spawn(&mut cmd);
    assert_eq!(proc.wait_exit(WAIT).code(), Some(2));
    let stderr = proc.stderr();
    assert!(
        stderr.contains("rules.toml:4:8: path pattern `dir\\x` must be absolute"),
        "{stderr}"
    );

    let mut ok = Command::new(portctl_bin());
    ok.args([
        "guard",
        "--check",
        "--deny-ext",
        "tmp",
        "--allow-pid",
        "7",
        "--default",
        "deny",
    ]);
    let mut proc = Proc::spawn(&mut ok);
    assert_eq!(proc.wait_exit(WAIT).code(), Some(0), "{}", proc.stderr());
    assert_eq!(
        proc.stdout(),
        "rule 1 allow pid 7\nrule 2 deny ext tmp\ndefault deny\n"
    );
}
