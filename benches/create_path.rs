//! Driver benchmarks under fltsim (a `harness = false` binary; a few seconds in all):
//!
//! 1. the cost of one create through the real pre-create callback, per delivery mode, with
//!    no client, a fast client and a stalled client (single creating thread);
//! 2. observer throughput: events per second and events per port message, plain notify
//!    versus queued batches, with two creating threads and one fast observer.
//!
//! `cargo bench -p portfilter --bench create_path` (add `-- --quick` for a smoke run).
//! What the numbers do and do not say about Windows: docs/driver.md.
#![allow(clippy::cast_precision_loss, clippy::missing_panics_doc)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Seen, Sim, config_with, spawn_decider, spawn_observer};
use fltsim::CreateRequest;
use portfilter_protocol::{Config, Delivery, Verdict};
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
    let requests = Arc::new(workload());
    let stop = Arc::new(AtomicBool::new(false));
    let created = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
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
    let quick = std::env::args().any(|a| a == "--quick");
    // `cargo bench` passes --bench; nothing else is understood.
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
}
