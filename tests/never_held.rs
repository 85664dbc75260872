//! Creates the driver must never hold for user mode, though it reports them: those whose
//! requestor thread may hold file-system or memory-manager resources — a top-level IRP is
//! set (`IoGetTopLevelIrp() != NULL`: the create comes from inside a file system, the
//! cache manager or the modified page writer) or all APCs are disabled
//! (`KeAreAllApcsDisabled()`: a guarded region or IRQL ≥ APC_LEVEL). Waiting for a
//! user-mode decider there can deadlock the machine (the decider may need those very
//! resources to answer). They get the default verdict at once, carry
//! `EVENT_FLAG_UNSAFE_CONTEXT`, and are counted in `unsafe_context`. fltsim reports any
//! reply wait in such a context as a verifier violation.

mod common;

use common::{Seen, Sim, config_with, connect, spawn_decider, spawn_observer, wait_until};
use fltsim::CreateRequest;
use portfilter_bindings::{STATUS_ACCESS_DENIED, STATUS_SUCCESS};
use portfilter_protocol::{
    Decision, Delivery, EVENT_FLAG_NAME_UNAVAILABLE, EVENT_FLAG_REQUEST, EVENT_FLAG_UNSAFE_CONTEXT,
    Role, Verdict,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

const APP: u32 = 1000;
const DECIDER: u32 = 2001;
const OBSERVER: u32 = 2002;

/// The two unsafe contexts fltsim can issue a create in.
fn unsafe_creates() -> [(&'static str, CreateRequest); 2] {
    [
        (
            "top-level IRP",
            CreateRequest::new(r"C:\ctx\cache.txt")
                .pid(APP)
                .top_level_irp(),
        ),
        (
            "APCs disabled",
            CreateRequest::new(r"C:\ctx\guarded.txt")
                .pid(APP)
                .apcs_disabled(),
        ),
    ]
}

#[test]
fn creates_in_unsafe_contexts_are_reported_but_never_held_for_the_decider() {
    for default_verdict in [Decision::Allow, Decision::Deny] {
        let sim = Sim::start();
        // A decider that would deny everything, but answers only after a long pause.
        let decider = spawn_decider(
            DECIDER,
            Arc::new(|e: &Seen| {
                std::thread::sleep(Duration::from_millis(1_500));
                Some(Verdict::deny(e.sequence))
            }),
        );
        let observer = spawn_observer(OBSERVER, None);
        decider.port.set_config(&config_with(|c| {
            c.reply_timeout_ms = 5_000;
            c.default_verdict = default_verdict;
            c.observer_delivery = Delivery::Queued;
        }));
        let expected = match default_verdict {
            Decision::Allow => STATUS_SUCCESS,
            Decision::Deny => STATUS_ACCESS_DENIED,
        };
        for (what, req) in unsafe_creates() {
            let t0 = Instant::now();
            let out = fltsim::create(&req);
            let held = t0.elapsed();
            println!("{what}: create returned after {held:?}");
            assert_eq!(out.status, expected, "{what}: the default verdict");
            assert!(
                held < Duration::from_millis(500),
                "{what}: held {held:?} (the decider would have taken 1.5 s)"
            );
        }
        assert!(wait_until(Duration::from_secs(10), || observer
            .received
            .count()
            == 2));
        let events = observer.received.snapshot();
        for e in &events {
            assert_eq!(
                e.flags & EVENT_FLAG_UNSAFE_CONTEXT,
                EVENT_FLAG_UNSAFE_CONTEXT
            );
            assert_eq!(e.flags & EVENT_FLAG_REQUEST, 0);
        }
        // With a top-level IRP no name can be queried [doc]; the driver does not try.
        assert_eq!(
            events[0].flags & EVENT_FLAG_NAME_UNAVAILABLE,
            EVENT_FLAG_NAME_UNAVAILABLE
        );
        assert_eq!(events[1].path, r"\ctx\guarded.txt");
        let stats = decider.port.stats();
        assert_eq!(stats.unsafe_context, 2);
        assert_eq!(stats.requests_sent, 0, "the decider was never asked");
        assert_eq!(stats.default_verdicts, 2);
        assert_eq!(decider.received.count(), 0);
        decider.stop();
        observer.stop();
        // The verifier saw no reply wait in an unsafe context.
        sim.unload_and_check_pool();
    }
}

#[test]
fn a_plain_notify_observer_is_not_waited_for_in_an_unsafe_context() {
    let sim = Sim::start();
    // Connected but never reading.
    let frozen = connect(OBSERVER, Role::Observer);
    frozen.set_config(&config_with(|c| {
        c.observer_delivery = Delivery::Notify;
        c.notify_timeout_ms = 2_000;
    }));
    for (what, req) in unsafe_creates() {
        let t0 = Instant::now();
        assert_eq!(fltsim::create(&req).status, STATUS_SUCCESS);
        let held = t0.elapsed();
        assert!(
            held < Duration::from_millis(500),
            "{what}: waited {held:?} for an observer"
        );
    }
    let stats = frozen.stats();
    assert_eq!(stats.unsafe_context, 2);
    assert_eq!(stats.notify_failed, 2, "offered only to a pending request");
    frozen.close();
    sim.unload_and_check_pool();
}

#[test]
fn ordinary_creates_are_still_held_for_the_decider() {
    let sim = Sim::start();
    let decider = spawn_decider(
        DECIDER,
        Arc::new(|e: &Seen| Some(Verdict::deny(e.sequence))),
    );
    assert_eq!(
        fltsim::create(&CreateRequest::new(r"C:\ctx\plain.txt").pid(APP)).status,
        STATUS_ACCESS_DENIED
    );
    let stats = decider.port.stats();
    assert_eq!(stats.unsafe_context, 0);
    assert_eq!(stats.requests_sent, 1);
    decider.stop();
    sim.unload_and_check_pool();
}
