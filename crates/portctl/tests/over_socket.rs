//! The real `portctl` binary as a separate process, reaching the real driver hosted by
//! `portfilter-sim` through the fltlib shim (Unix socket): ping, stats, config, guard with
//! a rules file and Ctrl-C, watch with --count, and the exit codes of the failure cases.
#![cfg(not(windows))]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Bound for anything the test waits for (CI machines are shared and slow).
const WAIT: Duration = Duration::from_secs(60);

fn portctl_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_portctl"))
}

/// Builds `portfilter-sim` in this build's profile (a no-op when up to date).
fn sim_bin() -> PathBuf {
    let dir = portctl_bin()
        .parent()
        .expect("target/<profile>")
        .to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "portfilter-sim"]);
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    let mut build = Proc::spawn(&mut cmd);
    let status = build.wait_exit(Duration::from_secs(900));
    assert!(
        status.success(),
        "cargo build -p portfilter-sim failed:\n{}",
        build.stderr()
    );
    let path = dir.join("portfilter-sim");
    assert!(path.exists(), "{} missing", path.display());
    path
}

#[derive(Default)]
struct Collected {
    text: Mutex<String>,
    changed: Condvar,
}

/// A child process with collected output, killed on drop if still running.
struct Proc {
    child: Child,
    out: Arc<Collected>,
    err: Arc<Collected>,
    exited: Option<ExitStatus>,
    what: String,
}

fn collect(stream: impl Read + Send + 'static, into: Arc<Collected>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            into.text.lock().unwrap().push_str(&line);
            into.changed.notify_all();
            line.clear();
        }
    });
}

impl Proc {
    fn spawn(cmd: &mut Command) -> Self {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let (out, err) = (
            Arc::new(Collected::default()),
            Arc::new(Collected::default()),
        );
        collect(child.stdout.take().unwrap(), out.clone());
        collect(child.stderr.take().unwrap(), err.clone());
        Self {
            child,
            out,
            err,
            exited: None,
            what,
        }
    }

    fn stdout(&self) -> String {
        self.out.text.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.err.text.lock().unwrap().clone()
    }

    /// Waits until stdout holds `needle` `times` times.
    fn wait_for_count(&self, needle: &str, times: usize) {
        let deadline = Instant::now() + WAIT;
        let mut text = self.out.text.lock().unwrap();
        while text.matches(needle).count() < times {
            let now = Instant::now();
            assert!(
                now < deadline,
                "timed out waiting for {needle:?} from {}\nstdout:\n{}\nstderr:\n{}",
                self.what,
                *text,
                self.stderr()
            );
            text = self
                .out
                .changed
                .wait_timeout(text, deadline - now)
                .unwrap()
                .0;
        }
    }

    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        if let Some(status) = self.exited {
            return status;
        }
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.exited = Some(status);
                // Let the collectors drain the pipes.
                std::thread::sleep(Duration::from_millis(50));
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not exit in {limit:?}\n{}\n{}",
                    self.what,
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn interrupt(&self) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child process.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A finished command.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// A `portfilter-sim serve` on a private socket.
struct Host {
    proc: Proc,
    socket: PathBuf,
    sim: PathBuf,
    dir: tempfile::TempDir,
}

impl Host {
    fn start() -> Self {
        let sim = sim_bin();
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("sim.sock");
        let mut cmd = Command::new(&sim);
        cmd.arg("serve")
            .arg("--socket")
            .arg(&socket)
            .env_remove("PORTFILTER_SIM_SOCKET");
        let proc = Proc::spawn(&mut cmd);
        proc.wait_for_count("serving on", 1);
        Self {
            proc,
            socket,
            sim,
            dir,
        }
    }

    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("PORTFILTER_SIM_SOCKET", &self.socket)
            .env_remove("PORTFILTER_SIM_NON_ADMIN")
            .env_remove("PORTCTL_LOG");
        cmd
    }

    fn run(&self, program: &Path, args: &[&str]) -> Ran {
        let mut proc = Proc::spawn(self.command(program).args(args));
        let status = proc.wait_exit(WAIT);
        Ran {
            code: status.code(),
            stdout: proc.stdout(),
            stderr: proc.stderr(),
        }
    }

    fn portctl(&self, args: &[&str]) -> Ran {
        self.run(&portctl_bin(), args)
    }

    /// `portfilter-sim create PATH`: the exit code (0 allowed, 1 denied) and output.
    fn create(&self, path: &str) -> Ran {
        self.run(&self.sim, &["create", path])
    }

    /// Waits until the driver reports `counter` ≥ `at_least` (`portctl stats --json`).
    fn wait_counter(&self, counter: &str, at_least: u64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let ran = self.portctl(&["stats", "--json"]);
            assert_eq!(ran.code, Some(0), "{}", ran.stderr);
            let value: serde_json::Value =
                serde_json::from_str(ran.stdout.trim()).expect("stats JSON");
            if value[counter].as_u64().unwrap_or(0) >= at_least {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{counter} never reached {at_least}: {value}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(mut self) -> String {
        let ran = self.run(&self.sim.clone(), &["stop"]);
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        let status = self.proc.wait_exit(WAIT);
        let report = self.proc.stdout();
        assert!(status.success(), "host exit {status}: {report}");
        report
    }
}

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
