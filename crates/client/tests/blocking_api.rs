//! The blocking API against the real driver under fltsim: receive / reply, late replies,
//! commands, and the end of the stream when the driver unloads.

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

mod common;

use common::{
    APP_PID, STATUS_ACCESS_DENIED, STATUS_SUCCESS, Sim, configure, connect, create, notify_mode,
};
use portfilter_client::protocol::{Decision, EVENT_FLAG_REQUEST};
use portfilter_client::{Error, MessageBuffer, Payload, ReplyOutcome, Role, Verdict};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;
use test_support::decider_threads::{self, join_within};

/// Receives one message, which must be a single event.
fn receive_event(
    connection: &portfilter_client::Connection,
    buffer: &mut MessageBuffer,
) -> (portfilter_client::Event, Option<portfilter_client::ReplyTo>) {
    let received = connection
        .receive(buffer)
        .expect("receive")
        .expect("not disconnected");
    let reply_to = received.reply_to();
    match received.payload {
        Payload::Event(view) => (portfilter_client::Event::from_view(&view), reply_to),
        Payload::Batch(_) => panic!("expected a single event"),
    }
}

#[test]
fn decider_receives_requests_and_its_verdicts_decide_the_creates() {
    let _sim = Sim::boot();
    configure(|c| c.reply_timeout_ms = 10_000);
    let decider = connect(Role::Decider);
    let creates = thread::spawn(|| {
        [
            create(r"C:\data\allowed.txt"),
            create(r"C:\data\denied.txt"),
            create(r"C:\data\custom.txt"),
        ]
    });
    let mut buffer = MessageBuffer::new();
    let verdicts = [
        Verdict::Allow,
        Verdict::Deny,
        Verdict::DenyWith(0xC000_0043_u32.cast_signed()),
    ];
    for (index, verdict) in verdicts.into_iter().enumerate() {
        let (event, reply_to) = receive_event(&decider, &mut buffer);
        assert!(event.request && event.flags & EVENT_FLAG_REQUEST != 0);
        assert_eq!(event.process_id, APP_PID);
        assert_eq!(event.volume, r"\Device\HarddiskVolume3");
        let expected = [
            r"\data\allowed.txt",
            r"\data\denied.txt",
            r"\data\custom.txt",
        ][index];
        assert_eq!(event.name, format!(r"\Device\HarddiskVolume3{expected}"));
        let reply_to = reply_to.expect("a request carries a message id");
        assert_eq!(reply_to.sequence, event.sequence);
        assert_eq!(
            decider.reply(reply_to, verdict).expect("reply"),
            ReplyOutcome::Delivered
        );
    }
    let statuses = creates.join().unwrap();
    assert_eq!(
        statuses,
        [
            STATUS_SUCCESS,
            STATUS_ACCESS_DENIED,
            0xC000_0043_u32.cast_signed()
        ]
    );
    assert_eq!(decider.replies_delivered(), 3);
    let stats = decider.stats().unwrap();
    assert_eq!(
        (stats.replies_allow, stats.replies_deny, stats.reply_bad),
        (1, 2, 0)
    );
}

#[test]
fn a_reply_after_the_driver_timeout_is_late_not_an_error() {
    let _sim = Sim::boot();
    configure(|c| {
        c.reply_timeout_ms = 50;
        c.default_verdict = Decision::Deny;
    });
    let decider = connect(Role::Decider);
    let (done, finished) = mpsc::channel();
    let creator = thread::spawn(move || {
        let status = create(r"C:\slow.txt");
        done.send(status).unwrap();
    });
    let mut buffer = MessageBuffer::new();
    let (_event, reply_to) = receive_event(&decider, &mut buffer);
    // Do not answer: the create comes back when the driver's 50 ms budget is spent, with
    // the default verdict.
    let status = finished
        .recv_timeout(Duration::from_secs(10))
        .expect("the create returned");
    assert_eq!(status, STATUS_ACCESS_DENIED, "default verdict deny");
    creator.join().unwrap();
    let outcome = decider
        .reply(reply_to.unwrap(), Verdict::Allow)
        .expect("a late reply is not an error");
    assert_eq!(outcome, ReplyOutcome::Late);
    assert_eq!(decider.late_replies(), 1);
    assert_eq!(decider.replies_delivered(), 0);
    let stats = decider.stats().unwrap();
    assert_eq!(stats.reply_timeouts, 1);
    assert_eq!(stats.default_verdicts, 1);
}

#[test]
fn observer_in_notify_mode_receives_events_without_reply() {
    let _sim = Sim::boot();
    configure(notify_mode);
    let observer = connect(Role::Observer);
    let creator = thread::spawn(|| create(r"C:\notes\a.log"));
    let mut buffer = MessageBuffer::new();
    let (event, reply_to) = receive_event(&observer, &mut buffer);
    assert!(reply_to.is_none());
    assert!(!event.request);
    assert!(event.name.ends_with(r"\notes\a.log"), "{}", event.name);
    assert_eq!(creator.join().unwrap(), STATUS_SUCCESS);
}

#[test]
fn unloading_the_driver_ends_the_stream_cleanly() {
    let _sim = Sim::boot();
    let observer = connect(Role::Observer);
    let receiver = thread::spawn(move || {
        let mut buffer = MessageBuffer::new();
        let end = observer.receive(&mut buffer).map(|m| m.is_none());
        // Every later call reports the closed connection.
        let reply = observer.reply(
            portfilter_client::ReplyTo {
                message_id: 1,
                sequence: 1,
            },
            Verdict::Allow,
        );
        (
            end,
            matches!(reply, Err(Error::Disconnected)),
            matches!(observer.stats(), Err(Error::Disconnected)),
        )
    });
    // Whether the receive is already blocked or starts after the unload, it must end
    // with Ok(None): a blocked request fails with the disconnect, a later one with the
    // closed handle.
    fltsim::unload_driver().expect("unload");
    let (end, reply_disconnected, stats_disconnected) = receiver.join().unwrap();
    assert!(end.expect("no error"), "receive returned None");
    assert!(reply_disconnected);
    assert!(stats_disconnected);
}

#[test]
fn commands_ping_stats_and_config_round_trip() {
    let _sim = Sim::boot();
    let control = connect(Role::Observer);
    let pong = control.ping().unwrap();
    assert_eq!(
        pong.hello.protocol_version,
        portfilter_client::protocol::PROTOCOL_VERSION
    );
    assert_eq!(pong.hello.role, Role::Observer);
    assert_eq!(control.hello_info().connection_id, pong.hello.connection_id);
    let stats = control.stats().unwrap();
    assert_eq!(stats.connected_clients, 1);
    assert_eq!(stats.observers, 1);

    let mut config = control.config().unwrap();
    config.reply_timeout_ms = 1234;
    config
        .filters
        .push_str(
            portfilter_client::protocol::FilterKind::ExcludePrefix,
            r"\Windows\",
        )
        .unwrap();
    let applied = control.set_config(&config).unwrap();
    assert_eq!(applied, config);
    assert_eq!(control.config().unwrap(), config);

    config.reply_timeout_ms = 0;
    let error = control.set_config(&config).unwrap_err();
    assert!(
        matches!(error, Error::InvalidConfig(_)),
        "checked before sending: {error:?}"
    );
    assert_eq!(
        control.config().unwrap().reply_timeout_ms,
        1234,
        "nothing was sent"
    );
}

/// Item 1 of issue 10: the default handle is overlapped, and `Connection` is `Sync`. A
/// decider that receives on one thread while others reply and send commands on the same
/// connection must get every message once, in order, in its own buffer: a receive that
/// waited on the handle (a NULL OVERLAPPED) would be woken by the others' completions,
/// return a buffer the driver had not written, and have its message written there later
/// (fltsim records `NULL_OVERLAPPED_GET_WOKEN_EARLY`; the machine fails the test).
#[test]
fn a_decider_receiving_on_one_thread_while_others_reply_and_send_commands() {
    const CREATES: usize = 20;
    let _sim = Sim::boot();
    configure(|c| {
        c.reply_timeout_ms = 10_000;
        c.default_verdict = Decision::Allow;
    });
    let decider = std::sync::Arc::new(connect(Role::Decider));
    decider_threads::run(
        &decider,
        decider_threads::Creates {
            count: CREATES,
            create,
            allowed: STATUS_SUCCESS,
            denied: STATUS_ACCESS_DENIED,
            within: Duration::from_secs(60),
        },
    );
    assert_eq!(decider.replies_delivered(), CREATES as u64);
    let stats = decider.stats().unwrap();
    assert_eq!((stats.replies_allow, stats.replies_deny), (10, 10));
    assert_eq!((stats.reply_timeouts, stats.default_verdicts), (0, 0));
    // Dropping the machine fails the test on any verifier violation.
}

/// Item 2 of issue 10: on a synchronous handle (`FLT_PORT_FLAG_SYNC_HANDLE`) the I/O
/// manager serializes every call, so a reply or a command from another thread while a
/// receive waits would wait for the next message (and the driver's timeout would decide).
/// The client refuses such a call at once; the receiving thread itself replies normally.
#[test]
fn a_synchronous_connection_refuses_calls_from_other_threads_while_it_receives() {
    let _sim = Sim::boot();
    configure(|c| {
        c.reply_timeout_ms = 1_000;
        c.default_verdict = Decision::Allow;
    });
    let options = portfilter_client::ConnectOptions {
        synchronous: true,
        ..portfilter_client::ConnectOptions::default()
    };
    let decider = std::sync::Arc::new(
        portfilter_client::Connection::connect(Role::Decider, &options).expect("connect"),
    );
    assert!(decider.is_synchronous());
    let (first_tx, first) = mpsc::channel();
    let receiver = {
        let decider = decider.clone();
        thread::spawn(move || {
            let mut buffer = MessageBuffer::new();
            let (_, to) = receive_event(&decider, &mut buffer);
            first_tx.send(to.expect("a request")).unwrap();
            // The second receive holds the handle until the second create arrives; this
            // thread answers it itself.
            let (event, to) = receive_event(&decider, &mut buffer);
            let outcome = decider.reply(to.expect("a request"), Verdict::Deny);
            (event.name, outcome.map_err(|e| e.to_string()))
        })
    };
    let first_create = thread::spawn(|| create(r"C:\sync\first.txt"));
    let first_to = first
        .recv_timeout(Duration::from_secs(10))
        .expect("first event");
    wait_for("the second receive to wait", || {
        fltsim::port::queued_requests() == 1
    });

    // From this thread, while the receive waits: refused at once, not held.
    let call = |what: &'static str, f: Box<dyn FnOnce() -> Result<(), Error> + Send>| {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || tx.send(f()).unwrap());
        rx.recv_timeout(Duration::from_secs(5)).unwrap_or_else(|_| {
            panic!("{what} waited behind the blocked receive instead of being refused")
        })
    };
    let reply = {
        let decider = decider.clone();
        call(
            "FilterReplyMessage",
            Box::new(move || decider.reply(first_to, Verdict::Deny).map(|_| ())),
        )
    };
    assert!(
        matches!(
            reply,
            Err(Error::SynchronousHandleBusy {
                operation: "FilterReplyMessage",
                holder: "FilterGetMessage"
            })
        ),
        "{reply:?}"
    );
    let message = reply.unwrap_err().to_string();
    assert!(message.contains("synchronous"), "{message}");
    let stats = {
        let decider = decider.clone();
        call(
            "FilterSendMessage",
            Box::new(move || decider.stats().map(|_| ())),
        )
    };
    assert!(
        matches!(
            stats,
            Err(Error::SynchronousHandleBusy {
                operation: "FilterSendMessage(GetStats)",
                ..
            })
        ),
        "{stats:?}"
    );
    // The unanswered first create gets the default verdict at the driver's timeout.
    assert_eq!(
        join_within(first_create, Duration::from_secs(10), "first create"),
        STATUS_SUCCESS
    );
    // The second create reaches the waiting receive; its thread denies it.
    let second = create(r"C:\sync\second.txt");
    assert_eq!(second, STATUS_ACCESS_DENIED);
    let (name, outcome) = join_within(receiver, Duration::from_secs(10), "receiver");
    assert!(name.ends_with(r"\sync\second.txt"), "{name}");
    assert_eq!(outcome, Ok(ReplyOutcome::Delivered));
    // No receive in progress now: any thread may call.
    assert_eq!(
        decider.reply(first_to, Verdict::Deny).expect("late reply"),
        ReplyOutcome::Late
    );
    assert_eq!(decider.stats().expect("stats").replies_deny, 1);
}

/// Waits (bounded) until `condition` holds.
fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}
