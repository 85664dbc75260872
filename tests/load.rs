//! Under load: unloading while creates are in flight (every delivery mode, fast and
//! stalled clients), and configuration changes while creates run (each create sees one
//! whole configuration).

mod common;

use common::{
    Seen, Sim, config_with, connect, join_within, spawn_decider, spawn_observer, wait_until,
};
use fltsim::CreateRequest;
use portfilter_bindings::STATUS_ACCESS_DENIED;
use portfilter_protocol::{
    Config, Decision, Delivery, FilterKind, Role, SKIP_DIRECTORIES, Verdict,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const DECIDER: u32 = 2001;
const OBSERVER: u32 = 2002;

/// Threads creating files until `stop` is set; each counts its completed creates.
fn creators(n: u32, stop: &Arc<AtomicBool>, done: &Arc<AtomicU64>) -> Vec<JoinHandle<()>> {
    (0..n)
        .map(|k| {
            let (stop, done) = (Arc::clone(stop), Arc::clone(done));
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let _ = fltsim::create(
                        &CreateRequest::new(&format!(r"C:\load\{k}\{i}.txt")).pid(1000 + k),
                    );
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum Client {
    FastDecider,
    StalledDecider,
    FastObserver(Delivery),
    StalledObserver(Delivery),
}

fn unload_under_load(client: Client) {
    let sim = Sim::start();
    let gate = Arc::new(AtomicBool::new(false));
    let thread = match client {
        Client::FastDecider => spawn_decider(
            DECIDER,
            Arc::new(|e: &Seen| Some(Verdict::allow(e.sequence))),
        ),
        Client::StalledDecider => spawn_decider(DECIDER, Arc::new(|_: &Seen| None)),
        Client::FastObserver(_) => spawn_observer(OBSERVER, None),
        Client::StalledObserver(_) => spawn_observer(OBSERVER, Some(Arc::clone(&gate))),
    };
    thread.port.set_config(&config_with(|c| {
        // Long budgets: only the unload sequence can end the waits quickly.
        c.reply_timeout_ms = 30_000;
        c.notify_timeout_ms = 2_000;
        c.queue_capacity = 64;
        if let Client::FastObserver(d) | Client::StalledObserver(d) = client {
            c.observer_delivery = d;
        }
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let threads = creators(3, &stop, &done);
    // Let creates reach the client (and, for stalled clients, pile up).
    assert!(
        wait_until(Duration::from_secs(10), || thread
            .port
            .stats()
            .events_reported
            >= 3),
        "{client:?}: creates reached the driver"
    );
    std::thread::sleep(Duration::from_millis(50));

    let t0 = Instant::now();
    fltsim::unload_driver().expect("unload under load");
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "{client:?}: unload took {took:?}"
    );

    // Creates go on, unfiltered, and every thread finishes.
    let after = done.load(Ordering::Relaxed);
    assert!(wait_until(Duration::from_secs(10), || done
        .load(Ordering::Relaxed)
        > after + 10));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        join_within(t, Duration::from_secs(10));
    }
    gate.store(true, Ordering::Release);
    let received = thread.join();
    assert!(
        received.end_status.lock().unwrap().is_some(),
        "client saw the disconnect"
    );
    assert_eq!(fltsim::kernel::pool::live_bytes(portfilter::POOL_TAG), 0);
    assert_eq!(fltsim::kernel::thread::running_system_threads(), 0);
    let violations = sim.machine.shutdown();
    assert!(violations.is_empty(), "{client:?}: {violations:?}");
}

#[test]
fn unload_under_load_with_a_fast_decider() {
    unload_under_load(Client::FastDecider);
}

#[test]
fn unload_under_load_with_a_stalled_decider() {
    unload_under_load(Client::StalledDecider);
}

#[test]
fn unload_under_load_with_a_fast_notify_observer() {
    unload_under_load(Client::FastObserver(Delivery::Notify));
}

#[test]
fn unload_under_load_with_a_stalled_notify_observer() {
    unload_under_load(Client::StalledObserver(Delivery::Notify));
}

#[test]
fn unload_under_load_with_a_fast_queued_observer() {
    unload_under_load(Client::FastObserver(Delivery::Queued));
}

#[test]
fn unload_under_load_with_a_stalled_queued_observer() {
    unload_under_load(Client::StalledObserver(Delivery::Queued));
}

/// Configuration A reports `\a\` (directories too); B reports `\b\` but skips
/// directories. A create judged by B's filters with A's skip flags would report `\b\d`.
fn config_a(delivery: Delivery) -> Config {
    config_with(|c| {
        c.observer_delivery = delivery;
        c.skip_flags = 0;
        c.reply_timeout_ms = 5_000;
        c.filters
            .push_str(FilterKind::IncludePrefix, r"\a\")
            .unwrap();
    })
}

fn config_b(delivery: Delivery) -> Config {
    config_with(|c| {
        c.observer_delivery = delivery;
        c.skip_flags = SKIP_DIRECTORIES;
        c.reply_timeout_ms = 5_000;
        c.default_verdict = Decision::Deny;
        c.queue_capacity = 4096;
        c.batch_max_events = 7;
        c.filters
            .push_str(FilterKind::IncludePrefix, r"\b\")
            .unwrap();
    })
}

#[test]
fn configuration_changes_during_load_are_atomic_for_each_create() {
    let sim = Sim::start();
    let decider = spawn_decider(
        DECIDER,
        Arc::new(|e: &Seen| {
            Some(if e.path.ends_with("deny.txt") {
                Verdict::deny(e.sequence)
            } else {
                Verdict::allow(e.sequence)
            })
        }),
    );
    let observer = spawn_observer(OBSERVER, None);
    let admin = connect(2003, Role::Observer);
    admin.set_config(&config_a(Delivery::Notify));

    let stop = Arc::new(AtomicBool::new(false));
    let wrongly_denied = Arc::new(AtomicU64::new(0));
    let creates = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..3u32)
        .map(|k| {
            let (stop, wrong, creates) = (
                Arc::clone(&stop),
                Arc::clone(&wrongly_denied),
                Arc::clone(&creates),
            );
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for dir in ["a", "b", "c"] {
                        let pid = 1000 + k;
                        let _ = fltsim::create(
                            &CreateRequest::new(&format!(r"C:\{dir}\d{k}_{i}"))
                                .pid(pid)
                                .directory(),
                        );
                        let out = fltsim::create(
                            &CreateRequest::new(&format!(r"C:\{dir}\{k}_{i}.txt")).pid(pid),
                        );
                        // Only "deny.txt" names are ever denied (the default verdict is
                        // never needed: the decider answers everything).
                        if out.status == STATUS_ACCESS_DENIED {
                            wrong.fetch_add(1, Ordering::Relaxed);
                        }
                        creates.fetch_add(2, Ordering::Relaxed);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let mut switches = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(1_500) || switches < 40 {
        let delivery = if switches % 4 < 2 {
            Delivery::Notify
        } else {
            Delivery::Queued
        };
        let next = if switches % 2 == 0 {
            config_b(delivery)
        } else {
            config_a(delivery)
        };
        assert_eq!(admin.set_config(&next), next);
        switches += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        join_within(w, Duration::from_secs(20));
    }
    admin.set_config(&config_a(Delivery::Notify));
    std::thread::sleep(Duration::from_millis(100));

    assert_eq!(wrongly_denied.load(Ordering::Relaxed), 0);
    let mut seen = decider.stop().snapshot();
    seen.extend(observer.stop().snapshot());
    assert!(creates.load(Ordering::Relaxed) > 100);
    assert!(!seen.is_empty());
    for e in &seen {
        assert!(
            e.path.starts_with(r"\a\") || e.path.starts_with(r"\b\"),
            "reported outside both configurations: {}",
            e.path
        );
        let file = e.path.rsplit('\\').next().unwrap_or_default();
        assert!(
            !(e.path.starts_with(r"\b\") && file.starts_with('d')),
            "B's filters with A's skip flags: {}",
            e.path
        );
    }
    let stats = admin.stats();
    assert_eq!(stats.reply_bad, 0);
    assert_eq!(stats.reply_timeouts, 0);
    admin.close();
    sim.unload_and_check_pool();
}
