//! A session outlives the driver: the real driver under fltsim is unloaded and loaded
//! again (`fltmc unload` / `fltmc load`) under a running observer and decider session;
//! events and decisions resume, the gap is reported (a reload restarts the sequence
//! numbers), a driver that never comes back ends the session only when asked or at the
//! configured limit, and a newer driver (another protocol version) ends it at once.
//!
//! In-process, the session's own thread acts as fltsim's System process (fltsim threads
//! do not inherit the simulated process of the thread that spawned them); the creates
//! come from another process, so this changes nothing the tests look at.

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

mod common;

use common::{STATUS_ACCESS_DENIED, STATUS_SUCCESS, Sim, configure, create, notify_mode};
use parking_lot::{Condvar, Mutex};
use portfilter_client::protocol::EventView;
use portfilter_client::session::{
    LinkChange, ReconnectPolicy, Session, SessionEnd, SessionHandler, SessionOptions,
};
use portfilter_client::{EngineOptions, Error, Handler, Hresult, Role, Verdict};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bound for anything a test waits for (shared, slow CI machines).
const WAIT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Event { sequence: u64, name: String },
    Link(LinkChange),
    End,
}

/// Records events (denying names that contain "deny") and link changes, in order.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Seen>>,
    changed: Condvar,
}

impl Recorder {
    fn push(&self, seen: Seen) {
        self.seen.lock().push(seen);
        self.changed.notify_all();
    }

    /// Waits until `done` holds for what was seen; returns a copy.
    fn wait_until(&self, what: &str, done: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
        let deadline = Instant::now() + WAIT;
        let mut seen = self.seen.lock();
        while !done(&seen) {
            assert!(
                !self.changed.wait_until(&mut seen, deadline).timed_out(),
                "timed out waiting for {what}; seen: {:#?}",
                *seen
            );
        }
        seen.clone()
    }

    fn wait_for_event(&self, name_part: &str) -> Vec<Seen> {
        self.wait_until(name_part, |seen| {
            seen.iter()
                .any(|s| matches!(s, Seen::Event { name, .. } if name.contains(name_part)))
        })
    }

    fn wait_for_link(&self, what: &str, want: impl Fn(&LinkChange) -> bool) -> LinkChange {
        let seen = self.wait_until(what, |seen| {
            seen.iter().any(|s| matches!(s, Seen::Link(c) if want(c)))
        });
        seen.into_iter()
            .find_map(|s| match s {
                Seen::Link(c) if want(&c) => Some(c),
                _ => None,
            })
            .expect("found")
    }

    fn snapshot(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }
}

impl Handler for Recorder {
    fn on_event(&self, event: &EventView<'_>) -> Verdict {
        let name = event.path_in_volume().to_string_lossy();
        let verdict = if name.contains("deny") {
            Verdict::Deny
        } else {
            Verdict::Allow
        };
        self.push(Seen::Event {
            sequence: event.fields.sequence,
            name,
        });
        verdict
    }

    fn on_end(&self, _reason: portfilter_client::EndReason) {
        self.push(Seen::End);
    }
}

impl SessionHandler for Recorder {
    fn on_link(&self, change: &LinkChange) {
        self.push(Seen::Link(change.clone()));
    }
}

fn options(role: Role, reconnect: ReconnectPolicy) -> SessionOptions {
    SessionOptions {
        engine: EngineOptions {
            requests: 2,
            workers: 2,
        },
        reconnect,
        ..SessionOptions::new(role)
    }
}

fn start(role: Role, reconnect: ReconnectPolicy) -> (Session, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let session = Session::start(options(role, reconnect), recorder.clone()).expect("session");
    (session, recorder)
}

/// Waits until the session's engine is up (its requests are queued with the driver):
/// the handler hears about a connection just before that.
fn wait_engine(session: &Session) {
    let deadline = Instant::now() + WAIT;
    while !session.is_connected() {
        assert!(Instant::now() < deadline, "the engine never started");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A reply budget no slow machine exceeds (the reloaded driver starts with defaults).
fn patient(config: &mut portfilter_client::protocol::Config) {
    config.reply_timeout_ms = 20_000;
}

fn unload() {
    fltsim::unload_driver().expect("unload");
}

fn load() {
    fltsim::load_driver(portfilter::DriverEntry).expect("load");
}

fn is_disconnect(change: &LinkChange) -> bool {
    matches!(change, LinkChange::Disconnected(_))
}

fn is_connection(generation: u32) -> impl Fn(&LinkChange) -> bool {
    move |change| matches!(change, LinkChange::Connected(c) if c.generation == generation)
}

#[test]
fn observer_session_survives_a_driver_reload_and_reports_the_gap() {
    let _sim = Sim::boot();
    configure(notify_mode);
    let (session, recorder) = start(Role::Observer, ReconnectPolicy::default());
    wait_engine(&session);
    assert_eq!(create(r"C:\before\one.txt"), STATUS_SUCCESS);
    recorder.wait_for_event("one.txt");

    unload();
    let LinkChange::Disconnected(gone) = recorder.wait_for_link("disconnect", is_disconnect) else {
        unreachable!()
    };
    assert_eq!(
        (gone.generation, gone.events, gone.reconnecting),
        (1, 1, true)
    );
    let first_sequence = gone.last_sequence.expect("a sequence was seen");
    // With no driver loaded nobody sees this create; the session keeps trying meanwhile.
    assert_eq!(create(r"C:\during\lost.txt"), STATUS_SUCCESS);
    recorder.wait_for_link(
        "waiting for the driver",
        |c| matches!(c, LinkChange::Waiting(w) if w.hresult == Some(Hresult::FILE_NOT_FOUND)),
    );

    load();
    let LinkChange::Connected(again) = recorder.wait_for_link("reconnect", is_connection(2)) else {
        unreachable!()
    };
    let outage = again.outage.expect("a reconnect reports its outage");
    assert_eq!(outage.last_sequence_before, Some(first_sequence));
    assert!(outage.attempts >= 2, "{outage:?}");
    wait_engine(&session);
    // The reloaded driver has its default configuration (queued delivery): events come
    // in batches, which the same handler receives.
    assert_eq!(create(r"C:\after\two.txt"), STATUS_SUCCESS);
    let seen = recorder.wait_for_event("two.txt");

    let outcome = session.stop();
    assert!(matches!(outcome.end, SessionEnd::Stopped), "{outcome:?}");
    assert_eq!((outcome.connections, outcome.stats.events), (2, 2));
    assert!(outcome.driver_stats.is_some(), "read before closing");
    // In order: connect, event, disconnect, waiting…, reconnect, restart notice, event.
    let names: Vec<&str> = seen
        .iter()
        .map(|s| match s {
            Seen::Event { name, .. } if name.contains("one") => "one",
            Seen::Event { name, .. } if name.contains("two") => "two",
            Seen::Event { .. } => "other event",
            Seen::Link(LinkChange::Connected(_)) => "connected",
            Seen::Link(LinkChange::Disconnected(_)) => "disconnected",
            Seen::Link(LinkChange::Waiting(_)) => "waiting",
            Seen::Link(LinkChange::SequenceRestarted { .. }) => "restarted",
            Seen::Link(_) => "other link change",
            Seen::End => "end",
        })
        .collect();
    let mut deduped = names.clone();
    deduped.dedup();
    assert_eq!(
        deduped,
        [
            "connected",
            "one",
            "disconnected",
            "waiting",
            "connected",
            "restarted",
            "two"
        ],
        "{seen:#?}"
    );
    // The restart notice carries the two sequence numbers: the new driver counts from 1.
    assert!(
        seen.contains(&Seen::Link(LinkChange::SequenceRestarted {
            before: first_sequence,
            now: 1
        })),
        "{seen:#?}"
    );
    assert_eq!(recorder.snapshot().last(), Some(&Seen::End));
}

#[test]
fn decider_session_decides_again_after_a_reload() {
    let _sim = Sim::boot();
    configure(patient);
    let (session, recorder) = start(Role::Decider, ReconnectPolicy::default());
    wait_engine(&session);
    assert_eq!(create(r"C:\x\deny-1.txt"), STATUS_ACCESS_DENIED);

    unload();
    recorder.wait_for_link("disconnect", is_disconnect);
    // No driver: nothing decides this one.
    assert_eq!(create(r"C:\x\deny-2.txt"), STATUS_SUCCESS);
    load();
    recorder.wait_for_link("reconnect", is_connection(2));
    configure(patient);
    wait_engine(&session);
    assert_eq!(create(r"C:\x\deny-3.txt"), STATUS_ACCESS_DENIED);
    assert_eq!(create(r"C:\x\allow-1.txt"), STATUS_SUCCESS);

    let outcome = session.stop();
    assert!(matches!(outcome.end, SessionEnd::Stopped), "{outcome:?}");
    assert_eq!(
        (outcome.stats.denied, outcome.stats.allowed),
        (2, 1),
        "{outcome:?}"
    );
    let decided: Vec<String> = recorder
        .snapshot()
        .into_iter()
        .filter_map(|s| match s {
            Seen::Event { name, .. } => Some(name),
            _ => None,
        })
        .collect();
    assert_eq!(
        decided,
        [r"\x\deny-1.txt", r"\x\deny-3.txt", r"\x\allow-1.txt"]
    );
}

#[test]
fn a_driver_that_never_comes_back_ends_the_session_at_the_limit() {
    let _sim = Sim::boot();
    let limit = Duration::from_millis(400);
    let (session, recorder) = start(
        Role::Decider,
        ReconnectPolicy {
            give_up_after: Some(limit),
            ..ReconnectPolicy::default()
        },
    );
    let unloaded = Instant::now();
    unload();
    assert!(session.wait_timeout(WAIT), "the limit ends the session");
    let waited = unloaded.elapsed();
    let outcome = session.wait();
    let SessionEnd::GaveUp {
        last_error,
        ever_connected,
        waited: tried,
    } = &outcome.end
    else {
        panic!("{outcome:?}")
    };
    assert!(*ever_connected);
    assert!(
        matches!(last_error, Error::DriverNotLoaded { .. }),
        "{last_error:?}"
    );
    assert!(*tried >= limit && waited >= limit, "{tried:?} {waited:?}");
    assert_eq!(recorder.snapshot().last(), Some(&Seen::End));
}

#[test]
fn a_stop_ends_the_wait_for_a_driver_at_once() {
    let _sim = Sim::boot();
    // Long delays between attempts: only an interrupted sleep ends this quickly.
    let (session, recorder) = start(
        Role::Observer,
        ReconnectPolicy {
            first_delay: Duration::from_secs(120),
            max_delay: Duration::from_secs(120),
            ..ReconnectPolicy::default()
        },
    );
    unload();
    recorder.wait_for_link("waiting", |c| matches!(c, LinkChange::Waiting(_)));
    assert!(
        !session.wait_timeout(Duration::from_millis(200)),
        "no limit: still waiting"
    );
    let asked = Instant::now();
    session.stopper().stop();
    assert!(session.wait_timeout(Duration::from_secs(10)));
    assert!(asked.elapsed() < Duration::from_secs(10));
    let outcome = session.wait();
    assert!(matches!(outcome.end, SessionEnd::Stopped), "{outcome:?}");
    assert_eq!(outcome.connections, 1);
}

#[test]
fn without_reconnect_the_session_ends_when_the_driver_goes() {
    let _sim = Sim::boot();
    let (session, recorder) = start(Role::Observer, ReconnectPolicy::never());
    unload();
    assert!(session.wait_timeout(WAIT));
    let outcome = session.wait();
    assert!(
        matches!(outcome.end, SessionEnd::Disconnected),
        "{outcome:?}"
    );
    let LinkChange::Disconnected(gone) = recorder.wait_for_link("disconnect", is_disconnect) else {
        unreachable!()
    };
    assert!(!gone.reconnecting);
    // The driver comes back: nobody reconnects.
    load();
    std::thread::sleep(Duration::from_millis(200));
    let connects = recorder
        .snapshot()
        .iter()
        .filter(|s| matches!(s, Seen::Link(LinkChange::Connected(_))))
        .count();
    assert_eq!(connects, 1, "the first connection only");
}

#[test]
fn waiting_at_start_connects_when_the_driver_loads() {
    let _sim = Sim::boot_without_driver();
    let error = Session::start(
        options(Role::Observer, ReconnectPolicy::default()),
        Arc::new(Recorder::default()),
    )
    .expect_err("without waiting, no driver is an error at once");
    assert!(matches!(error, Error::DriverNotLoaded { .. }), "{error:?}");

    let (session, recorder) = start(
        Role::Observer,
        ReconnectPolicy {
            wait_at_start: true,
            ..ReconnectPolicy::default()
        },
    );
    recorder.wait_for_link("waiting", |c| matches!(c, LinkChange::Waiting(_)));
    load();
    let LinkChange::Connected(first) = recorder.wait_for_link("connect", is_connection(1)) else {
        unreachable!()
    };
    assert!(
        first
            .outage
            .is_some_and(|o| o.last_sequence_before.is_none())
    );
    configure(notify_mode);
    wait_engine(&session);
    assert_eq!(create(r"C:\late\arrival.txt"), STATUS_SUCCESS);
    recorder.wait_for_event("arrival.txt");
    let outcome = session.stop();
    assert!(matches!(outcome.end, SessionEnd::Stopped), "{outcome:?}");
}

#[test]
fn a_newer_driver_after_the_reload_ends_the_session_without_retrying() {
    let _sim = Sim::boot();
    let (session, recorder) = start(Role::Decider, ReconnectPolicy::default());
    unload();
    recorder.wait_for_link("disconnect", is_disconnect);
    newer_driver::load();
    assert!(
        session.wait_timeout(WAIT),
        "a version mismatch ends the session"
    );
    let outcome = session.wait();
    let SessionEnd::Failed(error) = &outcome.end else {
        panic!("{outcome:?}")
    };
    assert!(matches!(error, Error::VersionMismatch { .. }), "{error:?}");
    assert_eq!(error.hresult(), Some(Hresult::REVISION_MISMATCH));
    // One refused connect, no retry loop: nothing more arrives while we watch.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(newer_driver::connects(), 1);
    fltsim::unload_driver().expect("unload the newer driver");
}

/// A stand-in for a newer portfilter that speaks another protocol version: it opens
/// `\PortFilterPort` and refuses every connect with `STATUS_REVISION_MISMATCH`, as the
/// driver does for a connection context of another version.
mod newer_driver {
    use crate::common::stand_in;
    use portfilter_bindings::{NTSTATUS, PFLT_PORT, STATUS_REVISION_MISMATCH};
    use std::ffi::c_void;
    use std::sync::atomic::{AtomicU32, Ordering};

    static CONNECTS: AtomicU32 = AtomicU32::new(0);

    pub fn connects() -> u32 {
        CONNECTS.load(Ordering::SeqCst)
    }

    pub fn load() {
        CONNECTS.store(0, Ordering::SeqCst);
        stand_in::load(stand_in::Ports {
            name: "\\PortFilterPort",
            connect: on_connect,
            disconnect: on_disconnect,
            notify: None,
            max_connections: 1,
        });
    }

    unsafe extern "system" fn on_connect(
        _client: PFLT_PORT,
        _server_cookie: *mut c_void,
        _context: *mut c_void,
        _size: u32,
        _cookie: *mut *mut c_void,
    ) -> NTSTATUS {
        CONNECTS.fetch_add(1, Ordering::SeqCst);
        STATUS_REVISION_MISMATCH
    }

    unsafe extern "system" fn on_disconnect(_cookie: *mut c_void) {}
}
