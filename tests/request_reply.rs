//! Request-reply through fltsim: the decider's verdict decides the create; timeouts,
//! disconnects, bad replies and a missing decider apply the default verdict; the
//! decider's own creates are never held.

mod common;

use common::{
    Buf, Decide, Seen, Sim, config_with, connect, create_as, nt, spawn_decider, wait_until,
};
use fltsim::CreateRequest;
use fltsim::readings::DisconnectWake;
use portfilter_bindings::{
    FILE_CREATE, FILE_SHARE_READ, GENERIC_WRITE, STATUS_ACCESS_DENIED, STATUS_SUCCESS,
};
use portfilter_protocol::{
    Decision, EVENT_FLAG_REQUEST, GET_MESSAGE_BUFFER_BYTES, Role, Verdict,
    message::split_filter_message,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const DECIDER: u32 = 2001;
const APP: u32 = 1000;
/// STATUS_OBJECT_NAME_NOT_FOUND: an error status a decider may fail a create with.
const NOT_FOUND: i32 = 0xC000_0034_u32 as i32;

fn deny_secrets() -> Arc<Decide> {
    Arc::new(|e: &Seen| {
        Some(if e.name.ends_with(".secret") {
            Verdict::deny(e.sequence)
        } else if e.name.ends_with(".gone") {
            Verdict::deny_with(e.sequence, NOT_FOUND)
        } else {
            Verdict::allow(e.sequence)
        })
    })
}

#[test]
fn decider_allows_and_denies_and_sees_every_field() {
    let sim = Sim::start();
    let decider = spawn_decider(DECIDER, deny_secrets());

    let allowed = fltsim::create(
        &CreateRequest::new(r"C:\Users\a\notes.txt")
            .pid(APP)
            .tid(77)
            .access(GENERIC_WRITE)
            .share(FILE_SHARE_READ)
            .disposition(FILE_CREATE)
            .attributes(0x20),
    );
    assert_eq!(allowed.status, STATUS_SUCCESS);
    let denied = create_as(APP, r"C:\Users\a\plans.secret");
    assert_eq!(denied.status, STATUS_ACCESS_DENIED);
    assert_eq!(denied.information, 0);
    let custom = create_as(APP, r"C:\Users\a\file.gone");
    assert_eq!(custom.status, NOT_FOUND);

    let events = decider.received.snapshot();
    assert_eq!(events.len(), 3);
    let first = &events[0];
    assert_eq!(first.name, nt(r"C:\Users\a\notes.txt"));
    assert_eq!(first.path, r"\Users\a\notes.txt");
    assert_eq!(first.pid, APP);
    assert_eq!(first.tid, 77);
    assert_eq!(first.desired_access, GENERIC_WRITE);
    assert_eq!(first.share, FILE_SHARE_READ);
    assert_eq!(u32::from(first.disposition), FILE_CREATE);
    assert_eq!(first.attributes, 0x20);
    assert!(first.flags & EVENT_FLAG_REQUEST != 0);
    assert!(first.timestamp > 0);
    // Sequences increase by one per reported event.
    assert_eq!(events[1].sequence, first.sequence + 1);
    assert_eq!(events[2].sequence, first.sequence + 2);

    let stats = decider.port.stats();
    assert_eq!(stats.requests_sent, 3);
    assert_eq!(stats.replies_allow, 1);
    assert_eq!(stats.replies_deny, 2);
    assert_eq!(stats.default_verdicts, 0);
    decider.stop();
    sim.unload_and_check_pool();
}

#[test]
fn timeout_applies_the_default_verdict_within_the_timeout() {
    let sim = Sim::start();
    // A decider that never answers.
    let decider = spawn_decider(DECIDER, Arc::new(|_: &Seen| None));
    decider
        .port
        .set_config(&config_with(|c| c.reply_timeout_ms = 100));

    let t0 = Instant::now();
    let out = create_as(APP, r"C:\slow\a.txt");
    let took = t0.elapsed();
    assert_eq!(out.status, STATUS_SUCCESS, "default verdict allow");
    assert!(took >= Duration::from_millis(90), "waited {took:?}");
    assert!(took < Duration::from_secs(5), "waited {took:?}");

    decider.port.set_config(&config_with(|c| {
        c.reply_timeout_ms = 100;
        c.default_verdict = Decision::Deny;
    }));
    assert_eq!(
        create_as(APP, r"C:\slow\b.txt").status,
        STATUS_ACCESS_DENIED,
        "default verdict deny"
    );
    let stats = decider.port.stats();
    assert_eq!(stats.reply_timeouts, 2);
    assert_eq!(stats.default_verdicts, 2);
    decider.stop();
    sim.unload_and_check_pool();
}

#[test]
fn late_reply_gets_no_waiter_and_does_not_change_the_outcome() {
    let sim = Sim::start();
    let port = Arc::new(connect(DECIDER, Role::Decider));
    port.set_config(&config_with(|c| c.reply_timeout_ms = 50));
    let reader = {
        let port = Arc::clone(&port);
        std::thread::spawn(move || {
            let mut buf = Buf::new(GET_MESSAGE_BUFFER_BYTES);
            assert_eq!(port.get_message(&mut buf), 0);
            let (header, payload) = split_filter_message(buf.bytes()).unwrap();
            let event = portfilter_protocol::decode_event(payload).unwrap();
            let sequence = event.fields.sequence;
            // Answer after the driver gave up.
            std::thread::sleep(Duration::from_millis(300));
            port.reply(header.message_id, &Verdict::deny(sequence))
        })
    };
    let out = create_as(APP, r"C:\late.txt");
    assert_eq!(out.status, STATUS_SUCCESS);
    let late = common::join_within(reader, Duration::from_secs(20));
    assert_eq!(late, common::hr::NO_WAITER);
    assert_eq!(port.stats().reply_timeouts, 1);
    Arc::try_unwrap(port).ok().unwrap().close();
    sim.unload_and_check_pool();
}

#[test]
fn decider_killed_mid_request_releases_waiting_creates_promptly() {
    // Under both readings of when the Filter Manager wakes a disconnecting client's
    // senders: before Disconnect ([re] fltmgr) or only at FltCloseClientPort (ReactOS).
    for wake in common::DISCONNECT_WAKES {
        decider_killed_mid_request(wake);
    }
}

fn decider_killed_mid_request(wake: DisconnectWake) {
    let sim = Sim::start_with(fltsim::Readings::HARSHEST.with_disconnect_wake(wake));
    let decider = spawn_decider(DECIDER, Arc::new(|_: &Seen| None));
    // A long timeout: only the disconnect can release the creates quickly.
    decider.port.set_config(&config_with(|c| {
        c.reply_timeout_ms = 30_000;
        c.default_verdict = Decision::Deny;
    }));
    let creators: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let t0 = Instant::now();
                let out = create_as(APP + i, &format!(r"C:\held\{i}.txt"));
                (out.status, t0.elapsed())
            })
        })
        .collect();
    assert!(
        wait_until(Duration::from_secs(10), || decider.received.count() == 4),
        "all four creates reached the decider"
    );
    let killed = Instant::now();
    fltsim::process::exit(DECIDER);
    for c in creators {
        let (status, took) = common::join_within(c, Duration::from_secs(20));
        assert_eq!(
            status, STATUS_ACCESS_DENIED,
            "{wake:?}: the default verdict"
        );
        assert!(took < Duration::from_secs(10), "{wake:?}: held {took:?}");
    }
    assert!(killed.elapsed() < Duration::from_secs(5), "{wake:?}");
    decider.join();
    sim.unload_and_check_pool();
}

/// The harness side of the test above: a decider loop's thread comes round for its next
/// message after the test killed its process. It must end with an error, not panic on the
/// forgotten pid (which, from a loop thread, aborted the test binary under load).
#[test]
fn a_client_thread_of_a_killed_process_gets_an_error_for_its_next_message() {
    let sim = Sim::start();
    let port = connect(DECIDER, Role::Decider);
    let _as_decider = fltsim::process::enter(DECIDER);
    fltsim::process::exit(DECIDER);
    let mut buf = Buf::new(GET_MESSAGE_BUFFER_BYTES);
    assert_eq!(port.get_message(&mut buf), common::hr::INVALID_HANDLE);
    sim.unload_and_check_pool();
}

#[test]
fn malformed_replies_apply_the_default_verdict_and_are_counted() {
    let sim = Sim::start();
    let port = Arc::new(connect(DECIDER, Role::Decider));
    port.set_config(&config_with(|c| {
        c.reply_timeout_ms = 5_000;
        c.default_verdict = Decision::Allow;
    }));
    // Each case: how to build the reply bytes from (message id, sequence).
    type Bad = fn(u64, u64) -> Buf;
    let cases: [(&str, Bad); 5] = [
        ("wrong sequence", |id, seq| {
            let mut b = Buf::new(40);
            Verdict::deny(seq + 1000)
                .encode_reply(id, b.bytes_mut())
                .unwrap();
            b
        }),
        ("bad magic", |id, seq| {
            let mut b = Buf::new(40);
            Verdict::deny(seq).encode_reply(id, b.bytes_mut()).unwrap();
            b.bytes_mut()[16] = b'X';
            b
        }),
        ("verdict value 9", |id, seq| {
            let mut b = Buf::new(40);
            Verdict::deny(seq).encode_reply(id, b.bytes_mut()).unwrap();
            b.bytes_mut()[32] = 9;
            b
        }),
        ("short reply", |id, seq| {
            let mut full = Buf::new(40);
            Verdict::deny(seq)
                .encode_reply(id, full.bytes_mut())
                .unwrap();
            Buf::from_bytes(&full.bytes()[..30])
        }),
        ("long reply", |id, seq| {
            let mut b = Buf::new(64);
            Verdict::deny(seq).encode_reply(id, b.bytes_mut()).unwrap();
            b
        }),
    ];
    let expected = cases.len() as u64;
    let answering = {
        let port = Arc::clone(&port);
        std::thread::spawn(move || {
            for (what, make) in cases {
                let mut buf = Buf::new(GET_MESSAGE_BUFFER_BYTES);
                assert_eq!(port.get_message(&mut buf), 0, "{what}");
                let (header, payload) = split_filter_message(buf.bytes()).unwrap();
                let seq = portfilter_protocol::decode_event(payload)
                    .unwrap()
                    .fields
                    .sequence;
                let mut reply = make(header.message_id, seq);
                let _ = port.reply_raw(&mut reply);
            }
        })
    };
    for i in 0..expected {
        let out = create_as(APP, &format!(r"C:\bad\{i}.txt"));
        assert_eq!(
            out.status, STATUS_SUCCESS,
            "case {i}: default verdict allow"
        );
    }
    common::join_within(answering, Duration::from_secs(20));
    let stats = port.stats();
    assert_eq!(stats.reply_bad, expected);
    assert_eq!(stats.default_verdicts, expected);
    assert_eq!(stats.replies_deny, 0);
    Arc::try_unwrap(port).ok().unwrap().close();
    sim.unload_and_check_pool();
}

#[test]
fn no_decider_connected_applies_the_default_verdict() {
    let sim = Sim::start();
    // Nobody connected, default allow: creates pass and nothing is counted as reported.
    assert_eq!(create_as(APP, r"C:\free.txt").status, STATUS_SUCCESS);
    // An observer sets default deny and stays connected: no decider → denied.
    let observer = connect(2002, Role::Observer);
    observer.set_config(&config_with(|c| c.default_verdict = Decision::Deny));
    assert_eq!(
        create_as(APP, r"C:\closed.txt").status,
        STATUS_ACCESS_DENIED
    );
    let stats = observer.stats();
    assert_eq!(stats.default_verdicts, 1);
    assert_eq!(stats.requests_sent, 0);
    observer.set_config(&config_with(|_| {}));
    observer.close();
    sim.unload_and_check_pool();
}

#[test]
fn the_deciders_own_creates_are_never_held() {
    let sim = Sim::start();
    let answered = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&answered);
    // A decider that would deny everything, slowly.
    let decider = spawn_decider(
        DECIDER,
        Arc::new(move |e: &Seen| {
            flag.store(true, Ordering::Release);
            Some(Verdict::deny(e.sequence))
        }),
    );
    let t0 = Instant::now();
    let own = create_as(DECIDER, r"C:\ProgramData\decider\log.txt");
    assert_eq!(own.status, STATUS_SUCCESS);
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert!(
        !answered.load(Ordering::Acquire),
        "the decider was not asked"
    );
    let stats = decider.port.stats();
    assert_eq!(stats.self_excluded, 1);
    assert_eq!(stats.requests_sent, 0);
    // Another process's create is held and denied.
    assert_eq!(create_as(APP, r"C:\x.txt").status, STATUS_ACCESS_DENIED);
    decider.stop();
    sim.unload_and_check_pool();
}

#[test]
fn the_deciders_own_creates_are_allowed_when_the_default_verdict_is_deny() {
    let sim = Sim::start();
    // A decider that allows everything, under a fail-closed configuration: its own creates
    // must pass without asking it, not fall to the default (deny) verdict.
    let decider = spawn_decider(
        DECIDER,
        Arc::new(|e: &Seen| Some(Verdict::allow(e.sequence))),
    );
    decider
        .port
        .set_config(&config_with(|c| c.default_verdict = Decision::Deny));
    let own = create_as(DECIDER, r"C:\ProgramData\decider\state.db");
    assert_eq!(own.status, STATUS_SUCCESS, "the decider's own create");
    let stats = decider.port.stats();
    assert_eq!(stats.self_excluded, 1);
    assert_eq!(stats.default_verdicts, 0);
    assert_eq!(stats.requests_sent, 0);
    // Another process's create is asked and allowed.
    assert_eq!(create_as(APP, r"C:\x.txt").status, STATUS_SUCCESS);
    assert_eq!(decider.port.stats().requests_sent, 1);
    decider.port.set_config(&config_with(|_| {}));
    decider.stop();
    sim.unload_and_check_pool();
}
