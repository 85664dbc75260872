//! Issue 10, item 2, across the socket: on a synchronous connection a reply or a command
//! from another thread while a receive waits is refused at once (the I/O manager — and
//! the shim's Win32 layer — serializes a synchronous handle, so it would wait for the
//! next message); the receiving thread itself replies normally.
//!
//! One test function: the shim's socket is process-wide.
#![cfg(unix)]

mod common;

use common::Host;
use fltlib_shim as _;
use portfilter_client::protocol::Decision;
use portfilter_client::{
    ConnectOptions, Connection, Error, Event, MessageBuffer, Payload, ReplyOutcome, ReplyTo, Role,
    Verdict,
};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

fn receive_request(connection: &Connection, buffer: &mut MessageBuffer) -> (String, ReplyTo) {
    let received = connection.receive(buffer).expect("receive").expect("open");
    let to = received.reply_to().expect("a request");
    match received.payload {
        Payload::Event(view) => (Event::from_view(&view).name, to),
        Payload::Batch(_) => panic!("a batch"),
    }
}

/// Runs `call` on another thread; panics if it has not returned within 5 s (it waited
/// behind the receive instead of being refused).
fn bounded<T: Send + 'static>(what: &str, call: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(call());
    });
    rx.recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|_| panic!("{what} waited behind the blocked receive"))
}

#[test]
fn a_synchronous_connection_refuses_calls_from_other_threads_over_the_socket() {
    let host = Arc::new(Host::start());
    // SAFETY: set before any other thread of this test reads the environment.
    unsafe { std::env::set_var("PORTFILTER_SIM_SOCKET", &host.socket) };
    {
        let control = Connection::connect(Role::Control, &ConnectOptions::default()).unwrap();
        let mut config = control.config().unwrap();
        config.reply_timeout_ms = 1_000;
        config.default_verdict = Decision::Allow;
        control.set_config(&config).unwrap();
    }
    let options = ConnectOptions {
        synchronous: true,
        ..ConnectOptions::default()
    };
    let decider = Arc::new(Connection::connect(Role::Decider, &options).unwrap());
    let (first_tx, first) = mpsc::channel();
    let receiver = {
        let decider = decider.clone();
        thread::spawn(move || {
            let mut buffer = MessageBuffer::new();
            let (_, to) = receive_request(&decider, &mut buffer);
            first_tx.send(to).unwrap();
            let (name, to) = receive_request(&decider, &mut buffer);
            (
                name,
                decider.reply(to, Verdict::Deny).map_err(|e| e.to_string()),
            )
        })
    };
    let first_create = {
        let host = host.clone();
        thread::spawn(move || host.create(r"C:\sync\first.txt").code)
    };
    let first_to = first
        .recv_timeout(Duration::from_secs(30))
        .expect("first event");

    // Until the second receive holds the handle, a command goes through; then it is
    // refused at once.
    let mut refused = None;
    for _ in 0..500 {
        let d = decider.clone();
        match bounded("FilterSendMessage(GetStats)", move || d.stats().map(|_| ())) {
            Ok(()) => thread::sleep(Duration::from_millis(10)),
            Err(error) => {
                refused = Some(error);
                break;
            }
        }
    }
    let refused = refused.expect("a command refused while the receive waits");
    assert!(
        matches!(
            refused,
            Error::SynchronousHandleBusy {
                operation: "FilterSendMessage(GetStats)",
                holder: "FilterGetMessage"
            }
        ),
        "{refused:?}"
    );
    let d = decider.clone();
    let reply = bounded("FilterReplyMessage", move || {
        d.reply(first_to, Verdict::Deny)
    });
    assert!(
        matches!(
            reply,
            Err(Error::SynchronousHandleBusy {
                operation: "FilterReplyMessage",
                ..
            })
        ),
        "{reply:?}"
    );
    // The first create gets the default verdict (allow) at the driver's timeout; the
    // second reaches the waiting receive, whose thread denies it.
    assert_eq!(first_create.join().unwrap(), Some(0));
    assert_eq!(host.create(r"C:\sync\second.txt").code, Some(1));
    let (name, outcome) = receiver.join().unwrap();
    assert!(name.ends_with(r"\sync\second.txt"), "{name}");
    assert_eq!(outcome, Ok(ReplyOutcome::Delivered));
    drop(decider);

    let host = Arc::into_inner(host).expect("no other user of the host");
    let (status, report) = host.stop_with_status();
    assert!(report.contains("verifier: no violations"), "{report}");
    assert!(status.success(), "{report}");
}
