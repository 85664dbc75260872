//! Driver benchmarks under fltsim (a `harness = false` binary; a few seconds in all):
//!
//! 1. the cost of one create through the real pre-create callback, per delivery mode, with
//!    no client, a fast client and a stalled client (single creating thread);
//! 2. what one create costs in kernel routines, per delivery mode and skip reason, counted
//!    by fltsim on the creating thread (deterministic): push-lock acquisitions, the
//!    interlocked operations those routines cost on Windows, pool allocations, sends —
//!    beside the issue-13 targets;
//! 3. the same create paths with the driver's source (rlib) and with the shipped
//!    `out/portfilter.sys` run by fltsim's PE loader, side by side;
//! 4. observer throughput: events per second and events per port message, plain notify
//!    versus queued batches, with two creating threads and one fast observer, then with an
//!    observer that spends 50 µs per message.
//!
//! `cargo bench -p portfilter --bench create_path` (add `-- --quick` for a smoke run).
//! `-- --scenario NAME --creates N` runs only N creates of one cost scenario (what
//! `scripts/callgrind-create-path.sh` measures the driver's instructions with).
//! What the numbers do and do not say about Windows: docs/driver.md.
#![allow(clippy::cast_precision_loss, clippy::missing_panics_doc)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Buf, Seen, Sim, config_with, spawn_decider, spawn_observer};
use fltsim::CreateRequest;
use fltsim::kernel::counts::{self, Routine};
use portfilter_protocol::config::SKIP_DIRECTORIES;
use portfilter_protocol::filter::FilterKind;
use portfilter_protocol::message::split_filter_message;
use portfilter_protocol::{
    Config, Delivery, GET_MESSAGE_BUFFER_BYTES, KernelMessage, Role, Verdict, decode_kernel_message,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const APP: u32 = 1000;
const DECIDER: u32 = 2001;
const OBSERVER: u32 = 2002;

/// Creates a small set of realistic names from the bundled trace.
fn workload() -> Vec<CreateRequest> {
    common::sample_creates()
        .into_iter()
        .take(512)
        .map(|(_, _, path)| CreateRequest::new(&path).pid(APP))
        .collect()
}

/// Runs `n` creates on this thread; returns mean and 99th-percentile nanoseconds.
fn time_creates(requests: &[CreateRequest], n: usize) -> (f64, f64) {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let req = &requests[i % requests.len()];
        let t0 = Instant::now();
        let _ = fltsim::create(req);
        samples.push(t0.elapsed().as_nanos() as f64);
    }
    samples.sort_by(f64::total_cmp);
    let mean = samples.iter().sum::<f64>() / n as f64;
    let p99 = samples[(n * 99 / 100).min(n - 1)];
    (mean, p99)
}

fn report(label: &str, (mean, p99): (f64, f64)) {
    println!(
        "{label:<58} {:>10.1} µs/create   p99 {:>10.1} µs",
        mean / 1e3,
        p99 / 1e3
    );
}

fn with_config(port: &common::Port, f: impl FnOnce(&mut Config)) {
    port.set_config(&config_with(f));
}

fn create_path_costs(quick: bool) {
    let n = if quick { 300 } else { 5_000 };
    let slow_n = if quick { 20 } else { 200 };
    let requests = workload();
    println!("== cost of one create through the pre-create callback (1 thread) ==");

    {
        let machine = fltsim::Machine::boot();
        report(
            "no driver loaded (fltsim's own create path)",
            time_creates(&requests, n),
        );
        drop(machine);
    }
    {
        let sim = Sim::start();
        report("driver loaded, no client", time_creates(&requests, n));
        sim.unload_and_check_pool();
    }

    // Request-reply.
    {
        let sim = Sim::start();
        let decider = spawn_decider(
            DECIDER,
            Arc::new(|e: &Seen| Some(Verdict::allow(e.sequence))),
        );
        report("request-reply, fast decider", time_creates(&requests, n));
        decider.stop();
        sim.unload_and_check_pool();
    }
    {
        let sim = Sim::start();
        let decider = spawn_decider(DECIDER, Arc::new(|_: &Seen| None));
        with_config(&decider.port, |c| c.reply_timeout_ms = 1);
        report(
            "request-reply, stalled decider (reply_timeout_ms = 1)",
            time_creates(&requests, slow_n),
        );
        decider.stop();
        sim.unload_and_check_pool();
    }

    // Plain notify.
    {
        let sim = Sim::start();
        let observer = spawn_observer(OBSERVER, None);
        with_config(&observer.port, |c| c.observer_delivery = Delivery::Notify);
        report("notify, fast observer", time_creates(&requests, n));
        observer.stop();
        sim.unload_and_check_pool();
    }
    for timeout in [0u32, 1] {
        let sim = Sim::start();
        let gate = Arc::new(AtomicBool::new(false));
        let observer = spawn_observer(OBSERVER, Some(Arc::clone(&gate)));
        with_config(&observer.port, |c| {
            c.observer_delivery = Delivery::Notify;
            c.notify_timeout_ms = timeout;
        });
        let count = if timeout == 0 { n } else { slow_n };
        report(
            &format!("notify, stalled observer (notify_timeout_ms = {timeout})"),
            time_creates(&requests, count),
        );
        gate.store(true, Ordering::Release);
        observer.stop();
        sim.unload_and_check_pool();
    }

    // Queued notify.
    {
        let sim = Sim::start();
        let observer = spawn_observer(OBSERVER, None);
        with_config(&observer.port, |c| c.observer_delivery = Delivery::Queued);
        report("queued, fast observer", time_creates(&requests, n));
        observer.stop();
        sim.unload_and_check_pool();
    }
    {
        let sim = Sim::start();
        let gate = Arc::new(AtomicBool::new(false));
        let observer = spawn_observer(OBSERVER, Some(Arc::clone(&gate)));
        with_config(&observer.port, |c| {
            c.observer_delivery = Delivery::Queued;
            c.notify_timeout_ms = 100;
        });
        report(
            "queued, stalled observer (queue full: drops)",
            time_creates(&requests, n),
        );
        let stats = observer.port.stats();
        println!(
            "{:<58} enqueued {} dropped {}",
            "", stats.queue_enqueued, stats.queue_dropped
        );
        gate.store(true, Ordering::Release);
        observer.stop();
        sim.unload_and_check_pool();
    }
}

/// Two threads create files from the workload for `duration`; returns how many.
fn create_for(duration: Duration) -> u64 {
    let requests = Arc::new(workload());
    let stop = Arc::new(AtomicBool::new(false));
    let created = Arc::new(AtomicU64::new(0));
    let creators: Vec<_> = (0..2)
        .map(|k| {
            let (requests, stop, created) = (
                Arc::clone(&requests),
                Arc::clone(&stop),
                Arc::clone(&created),
            );
            std::thread::spawn(move || {
                let mut i = k;
                while !stop.load(Ordering::Relaxed) {
                    let _ = fltsim::create(&requests[i % requests.len()]);
                    created.fetch_add(1, Ordering::Relaxed);
                    i += 2;
                }
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for c in creators {
        c.join().unwrap();
    }
    created.load(Ordering::Relaxed)
}

/// Two creating threads for `duration`; one fast observer. Returns (events delivered per
/// second, creates per second, events per message, events dropped).
fn throughput(delivery: Delivery, duration: Duration) -> (f64, f64, f64, u64) {
    let sim = Sim::start();
    let observer = spawn_observer(OBSERVER, None);
    with_config(&observer.port, |c| {
        c.observer_delivery = delivery;
        c.queue_capacity = 16_384;
        c.notify_timeout_ms = 1_000;
    });
    let t0 = Instant::now();
    let created = Arc::new(AtomicU64::new(create_for(duration)));
    // Let the queue drain before counting.
    common::wait_until(Duration::from_secs(10), || {
        observer.port.stats().queue_depth == 0
    });
    let elapsed = t0.elapsed().as_secs_f64();
    let stats = observer.port.stats();
    let received = observer.stop();
    let events = received.count() as f64;
    let messages = received.messages.load(Ordering::Relaxed) as f64;
    assert!(stats.queue_dropped == 0 || delivery == Delivery::Queued);
    sim.unload_and_check_pool();
    (
        events / elapsed,
        created.load(Ordering::Relaxed) as f64 / elapsed,
        events / messages.max(1.0),
        stats.queue_dropped,
    )
}

/// One cost scenario: what runs beside the creating thread, and which creates it makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    /// Driver loaded, nobody connected: every create is skipped.
    NoClient,
    /// An observer connected, directories skipped by configuration; directory creates.
    SkipRule,
    /// An observer connected, an include filter that no create matches.
    FilteredOut,
    /// One fast observer in queued mode.
    Queued,
    /// One fast observer in plain notify mode.
    Notify,
    /// A fast decider (observers in queued mode, none connected).
    RequestReply,
}

impl Scenario {
    const ALL: [Self; 6] = [
        Self::NoClient,
        Self::SkipRule,
        Self::FilteredOut,
        Self::Queued,
        Self::Notify,
        Self::RequestReply,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::NoClient => "skipped-no-client",
            Self::SkipRule => "skipped-skip-rule",
            Self::FilteredOut => "skipped-filtered-out",
            Self::Queued => "reported-queued",
            Self::Notify => "reported-notify",
            Self::RequestReply => "reported-request-reply",
        }
    }

    /// The issue-13 target: (most lock acquisitions, most pool allocations) per create.
    fn target(self) -> Option<(u64, u64)> {
        match self {
            Self::NoClient | Self::SkipRule | Self::FilteredOut => Some((0, 0)),
            Self::Queued => Some((2, 1)),
            Self::Notify | Self::RequestReply => None,
        }
    }

    /// Sets up the clients, runs `f` with the creates to make, tears down.
    fn run<R>(self, f: impl FnOnce(&[CreateRequest]) -> R) -> R {
        let sim = Sim::start();
        let mut requests = workload();
        let client = match self {
            Self::NoClient => None,
            Self::SkipRule | Self::FilteredOut | Self::Queued | Self::Notify => {
                let observer = spawn_observer(OBSERVER, None);
                with_config(&observer.port, |c| match self {
                    Self::SkipRule => c.skip_flags |= SKIP_DIRECTORIES,
                    Self::FilteredOut => c
                        .filters
                        .push_str(FilterKind::IncludePrefix, r"\no-create-is-under-here")
                        .expect("valid filter"),
                    Self::Notify => c.observer_delivery = Delivery::Notify,
                    _ => c.observer_delivery = Delivery::Queued,
                });
                Some(observer)
            }
            Self::RequestReply => Some(spawn_decider(
                DECIDER,
                Arc::new(|e: &Seen| Some(Verdict::allow(e.sequence))),
            )),
        };
        if self == Self::SkipRule {
            requests = requests.into_iter().map(CreateRequest::directory).collect();
        }
        let result = f(&requests);
        if let Some(client) = client {
            client.stop();
        }
        sim.unload_and_check_pool();
        result
    }
}

/// Kernel-routine calls per create on the creating thread, over `n` creates (after a
/// short warm-up).
fn routine_costs(scenario: Scenario, n: usize) -> (counts::Counts, usize) {
    scenario.run(|requests| {
        for req in requests.iter().take(64) {
            let _ = fltsim::create(req);
        }
        let before = counts::snapshot();
        for i in 0..n {
            let _ = fltsim::create(&requests[i % requests.len()]);
        }
        (counts::snapshot() - before, n)
    })
}

fn routine_cost_table(quick: bool) {
    let n = if quick { 500 } else { 5_000 };
    println!(
        "== kernel routines per create, on the creating thread (fltsim counts; deterministic) =="
    );
    println!(
        "{:<24} {:>12} {:>12} {:>12} {:>10} {:>9}   target (locks, allocations)",
        "scenario", "locks", "interlocked", "pool allocs", "sends", "KeSetEvent"
    );
    for scenario in Scenario::ALL {
        let (c, n) = routine_costs(scenario, n);
        let per = |v: u64| v as f64 / n as f64;
        let target = scenario.target().map_or_else(
            || "—".to_owned(),
            |(locks, allocs)| {
                let met = per(c.lock_acquisitions()) <= locks as f64
                    && per(c.allocations()) <= allocs as f64;
                format!(
                    "≤ {locks}, ≤ {allocs}  {}",
                    if met { "met" } else { "NOT met" }
                )
            },
        );
        println!(
            "{:<24} {:>12.2} {:>12.2} {:>12.2} {:>10.2} {:>9.2}   {target}",
            scenario.name(),
            per(c.lock_acquisitions()),
            per(c.interlocked()),
            per(c.allocations()),
            per(c.calls(Routine::FltSendMessage)),
            per(c.calls(Routine::KeSetEvent)),
        );
    }
    println!(
        "(interlocked: the Windows fast-path cost of those routines, fltsim/src/kernel/counts.rs; \
         the driver's own atomics are listed in docs/driver.md)"
    );
}

/// Two creating threads for `duration`; one observer spending `per_message` on each
/// message it takes (busy, as a parser would). Returns (events delivered per second,
/// creates per second, events per message, events dropped).
fn slow_observer_throughput(
    delivery: Delivery,
    per_message: Duration,
    duration: Duration,
) -> (f64, f64, f64, u64) {
    let sim = Sim::start();
    let port = Arc::new(common::connect(OBSERVER, Role::Observer));
    with_config(&port, |c| {
        c.observer_delivery = delivery;
        c.queue_capacity = 16_384;
        c.notify_timeout_ms = 1_000;
    });
    let events = Arc::new(AtomicU64::new(0));
    let messages = Arc::new(AtomicU64::new(0));
    let reader = {
        let (port, events, messages) = (
            Arc::clone(&port),
            Arc::clone(&events),
            Arc::clone(&messages),
        );
        std::thread::spawn(move || {
            let _p = fltsim::process::enter(port.pid);
            let mut buf = Buf::new(GET_MESSAGE_BUFFER_BYTES);
            while port.get_message(&mut buf) == 0 {
                let spent = Instant::now();
                let Ok((_, payload)) = split_filter_message(buf.bytes()) else {
                    break;
                };
                let n = match decode_kernel_message(payload) {
                    Ok(KernelMessage::Batch(batch)) => batch.events().count() as u64,
                    Ok(KernelMessage::Event(_)) => 1,
                    Err(_) => 0,
                };
                while spent.elapsed() < per_message {
                    std::hint::spin_loop();
                }
                events.fetch_add(n, Ordering::Relaxed);
                messages.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let t0 = Instant::now();
    let created = Arc::new(AtomicU64::new(create_for(duration)));
    let creates = created.load(Ordering::Relaxed);
    common::wait_until(Duration::from_secs(20), || {
        port.stats().queue_depth == 0
            && events.load(Ordering::Relaxed) + port.stats().queue_dropped >= creates
    });
    let elapsed = t0.elapsed().as_secs_f64();
    let stats = port.stats();
    port.release();
    let _ = reader.join();
    sim.unload_and_check_pool();
    let events = events.load(Ordering::Relaxed) as f64;
    (
        events / elapsed,
        creates as f64 / elapsed,
        events / (messages.load(Ordering::Relaxed) as f64).max(1.0),
        stats.queue_dropped,
    )
}

/// The shipped image, if built (`scripts/build-sys.sh`).
fn shipped_image() -> Option<std::path::PathBuf> {
    let out = std::env::var_os("PORTFILTER_OUT").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("out"),
        std::path::PathBuf::from,
    );
    Some(out.join("portfilter.sys")).filter(|p| p.exists())
}

/// A machine with the driver loaded from `image` (the rlib when `None`).
fn start(image: Option<&std::path::Path>) -> Sim {
    let machine = fltsim::Machine::boot();
    match image {
        Some(path) => fltsim::image::load_driver_image(path).expect("the image loads"),
        None => fltsim::load_driver(portfilter::DriverEntry).expect("DriverEntry"),
    }
    Sim { machine }
}

/// The same create paths with the driver's source built for Linux (rlib) and with the
/// shipped `portfilter.sys` loaded by fltsim's PE loader (Windows x64 calling convention
/// at every import and callback, the image's own code generation).
fn image_versus_rlib(quick: bool) {
    let Some(path) = shipped_image() else {
        println!("(out/portfilter.sys not built: run scripts/build-sys.sh to compare)");
        return;
    };
    let n = if quick { 300 } else { 5_000 };
    let requests = workload();
    println!("== rlib versus the shipped image (1 creating thread) ==");
    let run = |label: &str, client: Option<Delivery>| {
        let mut means = Vec::new();
        for image in [None, Some(path.as_path())] {
            let sim = start(image);
            let thread = client.map(|delivery| match delivery {
                Delivery::Queued => {
                    let o = spawn_observer(OBSERVER, None);
                    with_config(&o.port, |c| c.observer_delivery = Delivery::Queued);
                    o
                }
                _ => spawn_decider(
                    DECIDER,
                    Arc::new(|e: &Seen| Some(Verdict::allow(e.sequence))),
                ),
            });
            means.push(time_creates(&requests, n));
            if let Some(t) = thread {
                t.stop();
            }
            sim.unload_and_check_pool();
        }
        println!(
            "{label:<34} rlib {:>7.1} µs (p99 {:>7.1})   image {:>7.1} µs (p99 {:>7.1})",
            means[0].0 / 1e3,
            means[0].1 / 1e3,
            means[1].0 / 1e3,
            means[1].1 / 1e3
        );
    };
    run("driver loaded, no client", None);
    run("queued, fast observer", Some(Delivery::Queued));
    run("request-reply, fast decider", Some(Delivery::Notify));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick" || a == "--test");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if let Some(name) = value("--scenario") {
        // One scenario only, for callgrind (scripts/callgrind-create-path.sh).
        let scenario = Scenario::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .unwrap_or_else(|| panic!("unknown scenario {name}"));
        let n = value("--creates")
            .and_then(|v| v.parse().ok())
            .unwrap_or(2_000);
        let (c, n) = routine_costs(scenario, n);
        println!(
            "{name}: {n} creates, {} lock acquisitions, {} pool allocations",
            c.lock_acquisitions(),
            c.allocations()
        );
        return;
    }
    routine_cost_table(quick);
    println!();
    create_path_costs(quick);
    println!();
    image_versus_rlib(quick);
    println!();
    println!("== observer throughput: 2 creating threads, 1 fast observer ==");
    let duration = Duration::from_millis(if quick { 200 } else { 1_500 });
    for delivery in [Delivery::Notify, Delivery::Queued] {
        let (eps, cps, per_message, dropped) = throughput(delivery, duration);
        println!(
            "{:<8} {:>9.0} events/s delivered {:>9.0} creates/s {:>6.1} events/message {:>8} dropped",
            format!("{delivery:?}"),
            eps,
            cps,
            per_message,
            dropped
        );
    }
    println!();
    println!(
        "== observer throughput: 2 creating threads, 1 observer spending 50 µs per message =="
    );
    let spend = Duration::from_micros(50);
    let (notify_eps, ..) = {
        let r = slow_observer_throughput(Delivery::Notify, spend, duration);
        println!(
            "Notify   {:>9.0} events/s delivered {:>9.0} creates/s {:>6.1} events/message {:>8} dropped",
            r.0, r.1, r.2, r.3
        );
        r
    };
    let (eps, cps, per_message, dropped) =
        slow_observer_throughput(Delivery::Queued, spend, duration);
    println!(
        "Queued   {eps:>9.0} events/s delivered {cps:>9.0} creates/s {per_message:>6.1} events/message {dropped:>8} dropped"
    );
    println!(
        "queued / notify: {:.1}× events/s (target ≥ 10×: {}); {per_message:.1} events/message (target ≥ 64: {}); drops {dropped} (target 0: {})",
        eps / notify_eps.max(1.0),
        if eps >= 10.0 * notify_eps {
            "met"
        } else {
            "NOT met"
        },
        if per_message >= 64.0 {
            "met"
        } else {
            "NOT met"
        },
        if dropped == 0 { "met" } else { "NOT met" },
    );
}
