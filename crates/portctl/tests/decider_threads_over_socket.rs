//! Issue 10, item 1, across the socket: a decider built on portfilter-client's blocking
//! API receives on one thread while other threads reply and send commands on the same
//! (overlapped) connection, through the shim (what `portctl` links) to a real
//! `portfilter-sim`. Every event arrives once, in order; every create gets its verdict;
//! the host's verifier sees no handle-rule violation (a receive waiting on the handle
//! would be woken by the other threads' calls: the shim reports that to the host).
//!
//! One test function: the shim's socket is process-wide.
#![cfg(unix)]

mod common;

use common::Host;
use fltlib_shim as _;
use portfilter_client::protocol::Decision;
use portfilter_client::{
    ConnectOptions, Connection, Event, MessageBuffer, Payload, ReplyOutcome, ReplyTo, Role, Verdict,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const CREATES: usize = 12;

fn join_within<T>(thread: thread::JoinHandle<T>, limit: Duration, what: &str) -> T {
    let deadline = Instant::now() + limit;
    while !thread.is_finished() {
        assert!(
            Instant::now() < deadline,
            "{what}: not done within {limit:?}"
        );
        thread::sleep(Duration::from_millis(5));
    }
    thread.join().expect(what)
}

#[test]
fn a_decider_receiving_on_one_thread_while_others_reply_and_send_commands_over_the_socket() {
    let host = Arc::new(Host::start());
    // SAFETY: set before any other thread of this test reads the environment.
    unsafe { std::env::set_var("PORTFILTER_SIM_SOCKET", &host.socket) };
    {
        let control = Connection::connect(Role::Control, &ConnectOptions::default()).unwrap();
        let mut config = control.config().unwrap();
        config.reply_timeout_ms = 10_000;
        config.default_verdict = Decision::Allow;
        control.set_config(&config).unwrap();
    }
    let decider = Arc::new(Connection::connect(Role::Decider, &ConnectOptions::default()).unwrap());
    let (to_replier, replies) = mpsc::channel::<(ReplyTo, String)>();
    let receiver = {
        let decider = decider.clone();
        thread::spawn(move || {
            // Leaked: a request woken early would still be written into it later.
            let buffer: &'static mut MessageBuffer = Box::leak(Box::new(MessageBuffer::new()));
            let (mut names, mut errors) = (Vec::new(), Vec::new());
            while names.len() < CREATES && errors.len() < 10 {
                match decider.receive(buffer) {
                    Ok(Some(received)) => {
                        let reply_to = received.reply_to();
                        if let Payload::Event(view) = received.payload {
                            let event = Event::from_view(&view);
                            names.push(event.name.clone());
                            if let Some(to) = reply_to {
                                to_replier.send((to, event.name)).unwrap();
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(error) => errors.push(error.to_string()),
                }
            }
            (names, errors)
        })
    };
    let replier = {
        let decider = decider.clone();
        thread::spawn(move || {
            replies
                .into_iter()
                .map(|(to, name)| {
                    let verdict = if name.contains("deny") {
                        Verdict::Deny
                    } else {
                        Verdict::Allow
                    };
                    decider.reply(to, verdict).map_err(|e| e.to_string())
                })
                .collect::<Vec<_>>()
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (first_round_done, first_round) = std::sync::mpsc::channel();
    let commander = {
        let (decider, stop) = (decider.clone(), stop.clone());
        thread::spawn(move || {
            let mut commands = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Err(error) = decider.stats().and_then(|_| decider.ping()) {
                    return (commands, Some(error.to_string()));
                }
                commands += 2;
                if commands == 2 {
                    let _ = first_round_done.send(());
                }
            }
            (commands, None)
        })
    };
    // The creates start once commands are flowing, so that they overlap the receiving
    // and replying (on a loaded machine the creates could otherwise all finish before
    // the command thread is first scheduled).
    let _ = first_round.recv_timeout(Duration::from_secs(30));
    let paths: Vec<String> = (0..CREATES)
        .map(|i| {
            let kind = if i % 2 == 0 { "allow" } else { "deny" };
            format!(r"C:\threads\{kind}-{i}.txt")
        })
        .collect();
    // `portfilter-sim create`: exit code 0 allowed, 1 denied.
    let expected_codes: Vec<Option<i32>> = (0..CREATES).map(|i| Some((i % 2) as i32)).collect();
    let creator = {
        let (host, paths, expected) = (host.clone(), paths.clone(), expected_codes.clone());
        thread::spawn(move || {
            let mut codes = Vec::new();
            for (path, expected) in paths.iter().zip(expected) {
                codes.push(host.create(path).code);
                if codes.last() != Some(&expected) {
                    break;
                }
            }
            codes
        })
    };
    let codes = join_within(creator, Duration::from_secs(120), "creates");
    stop.store(true, Ordering::Relaxed);
    let (commands, command_error) =
        join_within(commander, Duration::from_secs(30), "command thread");
    assert_eq!(codes, expected_codes, "each create got its verdict");
    assert_eq!(command_error, None);
    assert!(commands > 0);
    let (names, errors) = join_within(receiver, Duration::from_secs(30), "receiving thread");
    let outcomes = join_within(replier, Duration::from_secs(30), "replying thread");
    assert!(errors.is_empty(), "receive errors: {errors:?}");
    let expected_names: Vec<String> = paths
        .iter()
        .map(|p| format!(r"\Device\HarddiskVolume3{}", &p[2..]))
        .collect();
    assert_eq!(names, expected_names, "every event once, in order");
    assert!(
        outcomes.iter().all(|o| o == &Ok(ReplyOutcome::Delivered)),
        "{outcomes:?}"
    );
    assert_eq!(decider.late_replies(), 0);
    drop(decider);

    let host = Arc::into_inner(host).expect("the creator thread is done");
    let (status, report) = host.stop_with_status();
    assert!(report.contains("verifier: no violations"), "{report}");
    assert!(status.success(), "{report}");
}
