//! `portfilter-sim` as a process: serve, inject creates, stop/signal, and robustness
//! against hostile socket peers.

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

mod common;

use common::{Host, Proc, WAIT, counter, run, sim_bin};
use portfilter_sim_wire::client::Client;
use portfilter_sim_wire::{Envelope, FromHost, ToHost, WIRE_VERSION, encode, write_frame};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::Command;

#[test]
fn serve_create_and_stop_reports_stats_and_no_leaks() {
    let host = Host::start(&[]);
    let ok = host.sim(&["create", r"C:\Users\alice\report.txt", "--pid", "4242"]);
    assert_eq!(ok.status.code(), Some(0), "{}{}", ok.stdout, ok.stderr);
    assert!(
        ok.stdout.contains("0x00000000 STATUS_SUCCESS allowed"),
        "{}",
        ok.stdout
    );

    let dir = host.sim(&[
        "create",
        r"C:\Users\alice",
        "--directory",
        "--access",
        "read,write",
    ]);
    assert_eq!(dir.status.code(), Some(0), "{}", dir.stderr);

    // A path on no simulated volume fails before the filter sees it.
    let missing = host.sim(&["create", r"Q:\nowhere.txt"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        missing.stdout.contains("STATUS_OBJECT_PATH_NOT_FOUND"),
        "{}",
        missing.stdout
    );

    let (status, report) = host.stop();
    assert!(status.success(), "host exit {status:?}\n{report}");
    assert_eq!(counter(&report, "events_seen"), 2, "{report}");
    assert!(report.contains("pool: no leaks"), "{report}");
    assert!(report.contains("verifier: no violations"), "{report}");
    assert!(report.contains("clean shutdown"), "{report}");
}

#[test]
fn sigterm_unloads_the_driver_and_exits_cleanly() {
    let mut host = Host::start(&[]);
    host.proc.signal(libc::SIGTERM);
    let status = host.proc.wait_exit(WAIT);
    let out = host.proc.stdout();
    assert!(status.success(), "{out}");
    assert!(out.contains("shutting down: signal received"), "{out}");
    assert!(out.contains("driver unloaded"), "{out}");
    assert!(out.contains("driver statistics:"), "{out}");
    assert!(!host.socket.exists(), "the socket file is removed");
}

#[test]
fn a_second_host_on_the_same_socket_is_refused() {
    let host = Host::start(&[]);
    let mut cmd = Command::new(sim_bin());
    cmd.arg("serve").arg("--socket").arg(&host.socket);
    let second = run(&mut cmd, WAIT);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        second.stderr.contains("another portfilter-sim serves"),
        "{}",
        second.stderr
    );
    let (status, _) = host.stop();
    assert!(status.success());
}

#[test]
fn control_commands_without_a_host_say_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        Command::new(sim_bin())
            .args(["create", r"C:\x.txt", "--socket"])
            .arg(dir.path().join("none.sock")),
        WAIT,
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        out.stderr.contains("portfilter-sim serve"),
        "{}",
        out.stderr
    );
}

#[test]
fn bad_create_options_are_usage_errors() {
    let out = run(
        Command::new(sim_bin()).args(["create", "C:\\x", "--access", "fly"]),
        WAIT,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr.contains("unknown access 'fly'"),
        "{}",
        out.stderr
    );
}

#[test]
fn control_requests_need_an_administrator() {
    let host = Host::start(&[]);
    // A peer that dropped its administrator rights (the shim's test knob) may connect
    // to the socket but not inject creates or stop the host.
    let (client, info) =
        Client::connect(&host.socket, true, Box::new(|_| {}), Box::new(|| {})).unwrap();
    assert!(!info.admin);
    assert_eq!(info.host_pid, host.proc.pid());
    match client.call(ToHost::Stop).unwrap() {
        FromHost::Refused { reason } => assert!(reason.contains("administrator"), "{reason}"),
        other => panic!("stop by a standard user answered {other:?}"),
    }
    client.close();
    let (status, report) = host.stop();
    assert!(status.success(), "{report}");
}

fn raw_hello(stream: &mut UnixStream) {
    let hello = encode(&Envelope {
        id: 1,
        body: ToHost::Hello {
            version: WIRE_VERSION,
            drop_admin: false,
        },
    });
    write_frame(stream, &hello).unwrap();
}

#[test]
fn hostile_peers_neither_crash_nor_block_the_host() {
    let host = Host::start(&[]);
    // 1. A frame length far above the limit.
    let mut a = UnixStream::connect(&host.socket).unwrap();
    a.write_all(&u32::MAX.to_le_bytes()).unwrap();
    // 2. Half a frame, then silence (the host gives up after its frame deadline).
    let mut b = UnixStream::connect(&host.socket).unwrap();
    b.write_all(&[100, 0, 0, 0, 1, 2, 3]).unwrap();
    // 3. A valid hello, then a frame of garbage.
    let mut c = UnixStream::connect(&host.socket).unwrap();
    raw_hello(&mut c);
    write_frame(&mut c, &[0xFF; 64]).unwrap();
    // 4. Requests naming connections and tokens that do not exist.
    let mut d = UnixStream::connect(&host.socket).unwrap();
    raw_hello(&mut d);
    for (id, body) in [
        ToHost::Get {
            conn: 99,
            token: 1,
            capacity: u32::MAX,
        },
        ToHost::Cancel { conn: 99, token: 1 },
        ToHost::Reply {
            conn: 99,
            data: vec![0; 16],
        },
        ToHost::Close { conn: 99 },
        ToHost::Hello {
            version: 9,
            drop_admin: false,
        },
    ]
    .into_iter()
    .enumerate()
    {
        write_frame(
            &mut d,
            &encode(&Envelope {
                id: id as u64 + 2,
                body,
            }),
        )
        .unwrap();
    }
    // 5. Connect and vanish.
    drop(UnixStream::connect(&host.socket).unwrap());
    // 6. A peer that never reads its answers.
    let mut e = UnixStream::connect(&host.socket).unwrap();
    raw_hello(&mut e);
    for i in 0..200u64 {
        let _ = write_frame(
            &mut e,
            &encode(&Envelope {
                id: 10 + i,
                body: ToHost::Cancel { conn: 1, token: i },
            }),
        );
    }

    // Meanwhile the host serves everybody else.
    for i in 0..3 {
        let out = host.sim(&["create", &format!(r"C:\ok\{i}.txt")]);
        assert_eq!(out.status.code(), Some(0), "{}{}", out.stdout, out.stderr);
    }
    let (status, report) = host.stop();
    assert!(status.success(), "{report}");
    assert!(report.contains("clean shutdown"), "{report}");
    drop((a, b, c, d, e));
}

#[test]
fn a_client_process_that_exits_is_noticed() {
    let host = Host::start(&[]);
    let mut p = Proc::spawn(host.command(sim_bin()).args(["create", r"C:\a.txt"]));
    assert!(p.wait_exit(WAIT).success());
    host.proc.wait_for("gone (socket closed)");
    let (status, _) = host.stop();
    assert!(status.success());
}
