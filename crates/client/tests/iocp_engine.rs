//! The I/O completion port engine against the real driver under fltsim: many creating
//! threads and several workers with no lost or duplicated replies, replies out of order,
//! shutdown that answers what was received and drains every request, disconnects,
//! handler panics, option checks.

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

mod common;

use common::{STATUS_ACCESS_DENIED, STATUS_SUCCESS, Sim, configure, connect, create};
use parking_lot::Mutex;
use portfilter_client::protocol::{Decision, EventView};
use portfilter_client::{
    ConnectOptions, Connection, EndReason, Engine, EngineOptions, Error, Handler, PendingReply,
    Role, Verdict,
};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Denies `*.deny`, allows the rest, and remembers every sequence number it saw.
#[derive(Default)]
struct ByExtension {
    seen: Mutex<HashSet<u64>>,
    duplicates: Mutex<u64>,
}

impl Handler for ByExtension {
    fn on_event(&self, event: &EventView<'_>) -> Verdict {
        if !self.seen.lock().insert(event.fields.sequence) {
            *self.duplicates.lock() += 1;
        }
        if event.name.to_string_lossy().ends_with(".deny") {
            Verdict::Deny
        } else {
            Verdict::Allow
        }
    }
}

fn concurrent_run(options: EngineOptions, threads: usize, per_thread: usize) {
    let _sim = Sim::boot();
    configure(|c| c.reply_timeout_ms = 20_000);
    let decider = Arc::new(connect(Role::Decider));
    let handler = Arc::new(ByExtension::default());
    let engine = Engine::start(Arc::clone(&decider), handler.clone(), options).expect("engine");

    let creators: Vec<_> = (0..threads)
        .map(|t| {
            thread::spawn(move || {
                let mut wrong = Vec::new();
                for i in 0..per_thread {
                    let deny = (t + i) % 3 == 0;
                    let path =
                        format!(r"C:\load\t{t}\f{i}.{}", if deny { "deny" } else { "allow" });
                    let expected = if deny {
                        STATUS_ACCESS_DENIED
                    } else {
                        STATUS_SUCCESS
                    };
                    let status = create(&path);
                    if status != expected {
                        wrong.push((path, status));
                    }
                }
                wrong
            })
        })
        .collect();
    for creator in creators {
        let wrong = creator.join().unwrap();
        assert!(
            wrong.is_empty(),
            "creates with the wrong outcome: {wrong:?}"
        );
    }
    let total = (threads * per_thread) as u64;
    let denied = (0..threads)
        .flat_map(|t| (0..per_thread).map(move |i| (t + i) % 3 == 0))
        .filter(|deny| *deny)
        .count() as u64;

    let driver = decider.stats().unwrap();
    let (reason, stats) = engine.stop();
    assert_eq!(reason, EndReason::Stopped);
    assert_eq!(stats.requests, total, "{stats:?}");
    assert_eq!(
        (stats.allowed, stats.denied),
        (total - denied, denied),
        "{stats:?}"
    );
    assert_eq!(
        (stats.late_replies, stats.failed_replies, stats.unanswered),
        (0, 0, 0),
        "{stats:?}"
    );
    assert_eq!(
        (stats.malformed, stats.handler_panics, stats.io_errors),
        (0, 0, 0),
        "{stats:?}"
    );
    assert_eq!(*handler.duplicates.lock(), 0);
    assert_eq!(
        handler.seen.lock().len() as u64,
        total,
        "every event exactly once"
    );
    assert_eq!(driver.requests_sent, total);
    assert_eq!(
        (driver.replies_allow, driver.replies_deny),
        (total - denied, denied)
    );
    assert_eq!(
        (
            driver.reply_timeouts,
            driver.reply_bad,
            driver.default_verdicts
        ),
        (0, 0, 0),
        "{driver:?}"
    );
}

#[test]
fn one_request_one_worker_serves_concurrent_creates() {
    concurrent_run(
        EngineOptions {
            requests: 1,
            workers: 1,
        },
        4,
        50,
    );
}

#[test]
fn many_requests_several_workers_lose_and_duplicate_nothing() {
    concurrent_run(
        EngineOptions {
            requests: 16,
            workers: 4,
        },
        8,
        100,
    );
}

#[test]
fn fewer_requests_than_workers_still_works() {
    concurrent_run(
        EngineOptions {
            requests: 2,
            workers: 4,
        },
        6,
        60,
    );
}

/// Holds every request's reply token until `expected` arrived, then answers them in
/// reverse order of arrival.
struct ReverseOrder {
    tokens: Mutex<Vec<(String, PendingReply)>>,
    expected: usize,
}

impl Handler for ReverseOrder {
    fn on_event(&self, _event: &EventView<'_>) -> Verdict {
        Verdict::Allow
    }

    fn on_request(&self, event: &EventView<'_>, reply: PendingReply) {
        let mut tokens = self.tokens.lock();
        tokens.push((event.name.to_string_lossy(), reply));
        if tokens.len() == self.expected {
            for (name, token) in tokens.drain(..).rev() {
                let verdict = if name.ends_with(".deny") {
                    Verdict::Deny
                } else {
                    Verdict::Allow
                };
                token.send(verdict).expect("reply");
            }
        }
    }
}

#[test]
fn replies_may_be_sent_later_and_in_any_order() {
    let _sim = Sim::boot();
    configure(|c| c.reply_timeout_ms = 20_000);
    let decider = Arc::new(connect(Role::Decider));
    let handler = Arc::new(ReverseOrder {
        tokens: Mutex::new(Vec::new()),
        expected: 4,
    });
    // Four requests queued so that four creates can be taken before any is answered.
    let engine = Engine::start(
        decider,
        handler,
        EngineOptions {
            requests: 4,
            workers: 2,
        },
    )
    .unwrap();
    let creators: Vec<_> = ["a.deny", "b.allow", "c.deny", "d.allow"]
        .into_iter()
        .map(|name| thread::spawn(move || (name, create(&format!(r"C:\order\{name}")))))
        .collect();
    for creator in creators {
        let (name, status) = creator.join().unwrap();
        let expected = if name.ends_with(".deny") {
            STATUS_ACCESS_DENIED
        } else {
            STATUS_SUCCESS
        };
        assert_eq!(status, expected, "{name}");
    }
    let (_, stats) = engine.stop();
    assert_eq!((stats.allowed, stats.denied, stats.unanswered), (2, 2, 0));
}

/// Blocks in the handler until released, then denies.
struct Gate {
    entered: Mutex<Option<mpsc::Sender<()>>>,
    release: Mutex<Option<mpsc::Receiver<()>>>,
}

impl Handler for Gate {
    fn on_event(&self, _event: &EventView<'_>) -> Verdict {
        if let Some(entered) = self.entered.lock().take() {
            entered.send(()).unwrap();
        }
        if let Some(release) = self.release.lock().take() {
            release.recv_timeout(WAIT).expect("released");
        }
        Verdict::Deny
    }
}

#[test]
fn stop_answers_what_was_received_and_drains_every_request() {
    let _sim = Sim::boot();
    configure(|c| {
        c.reply_timeout_ms = 20_000;
        c.default_verdict = Decision::Allow;
    });
    let decider = Arc::new(connect(Role::Decider));
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let handler = Arc::new(Gate {
        entered: Mutex::new(Some(entered_tx)),
        release: Mutex::new(Some(release_rx)),
    });
    let engine = Engine::start(
        Arc::clone(&decider),
        handler,
        EngineOptions {
            requests: 32,
            workers: 3,
        },
    )
    .unwrap();
    let creator = thread::spawn(|| create(r"C:\held\x.txt"));
    entered
        .recv_timeout(WAIT)
        .expect("the handler got the event");

    // Stop while the handler holds a received request; the 31 idle requests are
    // cancelled. The stop returns only after the held one was answered and every
    // request was freed.
    let stopper = engine.stopper();
    stopper.stop();
    assert!(!stopper.is_ended(), "one request is still being handled");
    release.send(()).unwrap();
    let (reason, stats) = engine.wait();
    assert_eq!(reason, EndReason::Stopped);
    assert_eq!(
        creator.join().unwrap(),
        STATUS_ACCESS_DENIED,
        "answered by the handler, not the default"
    );
    assert_eq!((stats.denied, stats.unanswered, stats.io_errors), (1, 0, 0));

    // Closing the connection (the last holders: our Arc and the stopper) removes the
    // decider: the driver's default verdict then applies at once.
    // (An observer stays connected so that the driver counts the default verdict.)
    let control = connect(Role::Observer);
    drop(stopper);
    drop(decider);
    assert_eq!(create(r"C:\held\y.txt"), STATUS_SUCCESS);
    let driver = control.stats().unwrap();
    assert_eq!(
        (
            driver.deciders,
            driver.default_verdicts,
            driver.reply_timeouts
        ),
        (0, 1, 0)
    );
}

#[test]
fn unloading_the_driver_ends_the_engine_as_a_disconnect() {
    let _sim = Sim::boot();
    let decider = Arc::new(connect(Role::Decider));
    let engine = Engine::start(
        decider,
        Arc::new(|_: &EventView<'_>| Verdict::Allow),
        EngineOptions::default(),
    )
    .unwrap();
    assert_eq!(create(r"C:\before.txt"), STATUS_SUCCESS);
    fltsim::unload_driver().expect("unload");
    assert_eq!(engine.wait_timeout(WAIT), Some(EndReason::Disconnected));
    let (reason, stats) = engine.wait();
    assert_eq!(reason, EndReason::Disconnected);
    assert_eq!((stats.requests, stats.allowed, stats.io_errors), (1, 1, 0));
}

struct PanicsOnBoom;

impl Handler for PanicsOnBoom {
    fn on_event(&self, event: &EventView<'_>) -> Verdict {
        assert!(
            !event.name.to_string_lossy().contains("boom"),
            "handler bug"
        );
        Verdict::Deny
    }
}

#[test]
fn a_panicking_handler_costs_one_event_not_the_engine() {
    let _sim = Sim::boot();
    configure(|c| {
        c.reply_timeout_ms = 100;
        c.default_verdict = Decision::Allow;
    });
    let decider = Arc::new(connect(Role::Decider));
    let engine = Engine::start(
        decider,
        Arc::new(PanicsOnBoom),
        EngineOptions {
            requests: 2,
            workers: 1,
        },
    )
    .unwrap();
    // The panicking request is left unanswered: the driver's timeout and default apply.
    assert_eq!(create(r"C:\boom.txt"), STATUS_SUCCESS);
    // A long budget now, so that a loaded machine cannot turn the next verdict into the
    // default.
    configure(|c| c.reply_timeout_ms = 20_000);
    assert_eq!(
        create(r"C:\fine.txt"),
        STATUS_ACCESS_DENIED,
        "the engine still works"
    );
    let (_, stats) = engine.stop();
    assert_eq!(
        (stats.handler_panics, stats.unanswered, stats.denied),
        (1, 1, 1)
    );
}

#[test]
fn engine_options_and_handles_are_checked() {
    let _sim = Sim::boot();
    let handler: Arc<dyn Handler> = Arc::new(|_: &EventView<'_>| Verdict::Allow);
    let observer = Arc::new(connect(Role::Observer));
    let zero = Engine::start(
        Arc::clone(&observer),
        Arc::clone(&handler),
        EngineOptions {
            requests: 0,
            workers: 1,
        },
    );
    assert!(matches!(zero, Err(Error::InvalidOption(_))));
    let sync = Arc::new(
        Connection::connect(
            Role::Observer,
            &ConnectOptions {
                synchronous: true,
                ..ConnectOptions::default()
            },
        )
        .unwrap(),
    );
    assert!(matches!(
        Engine::start(sync, Arc::clone(&handler), EngineOptions::default()),
        Err(Error::InvalidOption(_))
    ));
    // One engine per connection: the handle is bound to its completion port.
    let first = Engine::start(
        Arc::clone(&observer),
        Arc::clone(&handler),
        EngineOptions::default(),
    )
    .unwrap();
    let second = Engine::start(observer, handler, EngineOptions::default());
    assert!(
        matches!(second, Err(Error::Call { .. })),
        "{:?}",
        second.err()
    );
    let (reason, _) = first.stop();
    assert_eq!(reason, EndReason::Stopped);
}
