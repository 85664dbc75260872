//! Decisions per second and create latency: request-reply versus the asynchronous decider
//! with batched verdicts (a `harness = false` binary; not a timed test).
//!
//! Same decision logic in both modes (deny `*.tmp`, allow the rest, plus
//! `PORTFILTER_BENCH_WORK_US` µs of busy work per decision, default 0). For each count
//! of creating threads (`PORTFILTER_BENCH_THREADS`, a comma list, default `4,8,16,64`)
//! the threads run creates back to back for a fixed time (throughput, both modes, and
//! the ratio of the medians of `PORTFILTER_BENCH_REPS` alternating runs, default 3),
//! then at an equal offered load (half of what request-reply reached;
//! latency p50/p99). For the asynchronous mode it reports events per request message
//! and verdicts per `FilterSendMessage`, from the driver's counters.
//!
//! `cargo bench -p portfilter --bench async_decisions` (`-- --quick` for a smoke run;
//! `PORTFILTER_BENCH_PENDED=n` instead times one `VerdictBatch` answering `n` pended creates).
#![allow(clippy::cast_precision_loss, clippy::missing_panics_doc)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Buf, Seen, Sim, config_with, connect, spawn_decider};
use fltsim::CreateRequest;
use portfilter_protocol::{
    GET_MESSAGE_BUFFER_BYTES, KernelMessage, MAX_VERDICT_BATCH_BYTES, Role,
    VERDICT_BATCH_REPLY_BYTES, Verdict, VerdictEntry, decode_kernel_message, encode_verdict_batch,
    message::split_filter_message,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const APP: u32 = 1000;
const DECIDER: u32 = 2001;
/// Counts of creating threads (`PORTFILTER_BENCH_THREADS`, default `4,8,16,64`).
fn thread_counts() -> Vec<usize> {
    let list = std::env::var("PORTFILTER_BENCH_THREADS").unwrap_or_else(|_| "4,8,16,64".into());
    let counts: Vec<usize> = list
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .filter(|&n| n > 0)
        .collect();
    if counts.is_empty() {
        vec![4, 8, 16, 64]
    } else {
        counts
    }
}

/// Repetitions of each throughput run (`PORTFILTER_BENCH_REPS`, default 3).
fn reps() -> usize {
    std::env::var("PORTFILTER_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3usize)
        .max(1)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Busy work per decision (`PORTFILTER_BENCH_WORK_US`, default 0).
fn work() -> Duration {
    Duration::from_micros(
        std::env::var("PORTFILTER_BENCH_WORK_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    )
}

fn decide(sequence: u64, name: &str) -> Verdict {
    let work = work();
    if !work.is_zero() {
        let t0 = Instant::now();
        while t0.elapsed() < work {
            std::hint::spin_loop();
        }
    }
    if name.ends_with(".tmp") {
        Verdict::deny(sequence)
    } else {
        Verdict::allow(sequence)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    RequestReply,
    AsyncBatched,
    /// No decider: the create path (event built, default verdict at once) without any
    /// trip to user mode — the ceiling of decisions/s for any mode.
    NoDecider,
}

/// The decider for `mode`; returns a stopper.
fn start_decider(mode: Mode) -> Box<dyn FnOnce()> {
    match mode {
        Mode::NoDecider => Box::new(|| {}),
        Mode::RequestReply => {
            let d = spawn_decider(
                DECIDER,
                Arc::new(|e: &Seen| Some(decide(e.sequence, &e.name))),
            );
            Box::new(move || {
                d.stop();
            })
        }
        Mode::AsyncBatched => {
            let port = Arc::new(common::connect_async_decider(DECIDER));
            let thread = {
                let port = Arc::clone(&port);
                std::thread::spawn(move || {
                    let mut buf = Buf::new(GET_MESSAGE_BUFFER_BYTES);
                    let mut out = vec![0u8; MAX_VERDICT_BATCH_BYTES];
                    while port.get_message(&mut buf) == 0 {
                        let (_, payload) = split_filter_message(buf.bytes()).unwrap();
                        let Ok(KernelMessage::Batch(batch)) = decode_kernel_message(payload) else {
                            continue;
                        };
                        // One FilterSendMessage answers the whole batch.
                        let entries: Vec<VerdictEntry> = batch
                            .events()
                            .map(|e| decide(e.fields.sequence, &e.name.to_string()).into())
                            .collect();
                        if entries.is_empty() {
                            continue;
                        }
                        let n = encode_verdict_batch(&entries, &mut out).unwrap();
                        let mut input = Buf::from_bytes(&out[..n]);
                        let _ = port.send_raw(&mut input, VERDICT_BATCH_REPLY_BYTES);
                    }
                })
            };
            Box::new(move || {
                port.release();
                let _ = thread.join();
            })
        }
    }
}

struct Run {
    creates: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

/// `threads` threads create for `duration`; `interval`: pace each thread (None: back to
/// back).
fn drive(threads: usize, duration: Duration, interval: Option<Duration>) -> Run {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = (0..threads)
        .map(|t| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut next = Instant::now();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if let Some(iv) = interval {
                        let now = Instant::now();
                        if now < next {
                            std::thread::sleep(next - now);
                        }
                        next += iv;
                    }
                    let ext = if i.is_multiple_of(5) { "tmp" } else { "txt" };
                    let req = CreateRequest::new(&format!(r"C:\bench\t{t}\f{i}.{ext}")).pid(APP);
                    let t0 = Instant::now();
                    let _ = fltsim::create(&req);
                    lat.push(t0.elapsed());
                    i += 1;
                }
                lat
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in threads {
        latencies.extend(t.join().unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Run {
        creates: latencies.len(),
        elapsed,
        latencies,
    }
}

fn pct(lat: &[Duration], p: usize) -> f64 {
    if lat.is_empty() {
        return 0.0;
    }
    lat[(lat.len() * p / 100).min(lat.len() - 1)].as_secs_f64() * 1e6
}

fn measure(
    mode: Mode,
    threads: usize,
    duration: Duration,
    interval: Option<Duration>,
) -> (Run, portfilter_protocol::Stats) {
    let sim = Sim::start();
    let control = connect(3001, Role::Control);
    control.set_config(&config_with(|c| c.reply_timeout_ms = 10_000));
    let stop_decider = start_decider(mode);
    // Let the decider's first FilterGetMessage be pending.
    std::thread::sleep(Duration::from_millis(20));
    let run = drive(threads, duration, interval);
    let stats = control.stats();
    stop_decider();
    control.close();
    sim.unload_and_check_pool();
    (run, stats)
}

fn main() {
    if std::env::var_os("PORTFILTER_BENCH_PENDED").is_some() {
        backlog();
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let duration = Duration::from_millis(if quick { 300 } else { 2_000 });
    println!(
        "decision logic: deny *.tmp, allow the rest, {} µs of work per decision",
        work().as_micros()
    );
    let mut table = Vec::new();
    for threads in thread_counts() {
        table.push(compare(threads, duration));
    }
    println!();
    println!("== summary ==");
    println!(
        "{:>7} {:>12} {:>12} {:>6} {:>12} {:>6} {:>22} {:>22} {:>9} {:>9}",
        "threads",
        "rr dec/s",
        "async dec/s",
        "ratio",
        "no-dec c/s",
        "max",
        "rr p50/p99 µs",
        "async p50/p99 µs",
        "ev/msg",
        "vd/send"
    );
    for row in table {
        println!("{row}");
    }
}

/// One thread count: throughput of both modes back to back, then latency at equal load.
fn compare(threads: usize, duration: Duration) -> String {
    println!();
    println!("== decisions/s: {threads} creating threads, back to back ==");
    // The machine may be shared: the modes alternate, `reps()` times each, and the
    // median of each mode is compared (every run is printed).
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut ceiling = Vec::new();
    let mut per_msg = 0.0;
    let mut per_send = 0.0;
    for _ in 0..reps() {
        for (k, mode) in [Mode::RequestReply, Mode::AsyncBatched]
            .into_iter()
            .enumerate()
        {
            let (run, stats) = measure(mode, threads, duration, None);
            let rate = run.creates as f64 / run.elapsed.as_secs_f64();
            rates[k].push(rate);
            print!(
                "{:<14} {:>9.0} decisions/s  p50 {:>8.1} µs  p99 {:>8.1} µs",
                format!("{mode:?}"),
                rate,
                pct(&run.latencies, 50),
                pct(&run.latencies, 99)
            );
            if mode == Mode::AsyncBatched {
                per_msg =
                    stats.async_request_events as f64 / stats.async_request_messages.max(1) as f64;
                per_send = stats.verdicts_applied as f64 / stats.verdict_messages.max(1) as f64;
                print!(
                    "  {per_msg:>5.1} events/request message  {per_send:>5.1} verdicts/FilterSendMessage  ({} deadline defaults)",
                    stats.async_deadline_defaults
                );
            } else {
                print!("  1.0 events/request message  1.0 verdicts/FilterReplyMessage");
            }
            println!();
        }
        let (run, _) = measure(Mode::NoDecider, threads, duration, None);
        let rate = run.creates as f64 / run.elapsed.as_secs_f64();
        ceiling.push(rate);
        println!(
            "{:<14} {rate:>9.0} creates/s (no trip to user mode)",
            "NoDecider"
        );
    }
    let rate = [median(&mut rates[0]), median(&mut rates[1])];
    let ceiling = median(&mut ceiling);
    println!(
        "medians: request-reply {:.0}/s, async {:.0}/s, no decider {ceiling:.0}/s (ceiling: {:.2}x request-reply)",
        rate[0],
        rate[1],
        ceiling / rate[0].max(1.0)
    );
    let ratio = rate[1] / rate[0].max(1.0);
    println!("async / request-reply: {ratio:.2}x");

    // Equal offered load: half of request-reply's throughput, spread over the threads.
    let offered = (rate[0] / 2.0).max(100.0);
    let interval = Duration::from_secs_f64(threads as f64 / offered);
    println!("== latency at equal offered load: {offered:.0} creates/s over {threads} threads ==");
    let mut lat = [(0.0, 0.0); 2];
    for (k, mode) in [Mode::RequestReply, Mode::AsyncBatched]
        .into_iter()
        .enumerate()
    {
        let (run, _) = measure(mode, threads, duration, Some(interval));
        lat[k] = (pct(&run.latencies, 50), pct(&run.latencies, 99));
        println!(
            "{:<14} {:>9.0} creates/s  p50 {:>8.1} µs  p99 {:>8.1} µs",
            format!("{mode:?}"),
            run.creates as f64 / run.elapsed.as_secs_f64(),
            lat[k].0,
            lat[k].1
        );
    }
    format!(
        "{threads:>7} {:>12.0} {:>12.0} {ratio:>5.2}x {:>12.0} {:>5.2}x {:>22} {:>22} {per_msg:>9.1} {per_send:>9.1}",
        rate[0],
        rate[1],
        ceiling,
        ceiling / rate[0].max(1.0),
        format!("{:.0} / {:.0}", lat[0].0, lat[0].1),
        format!("{:.0} / {:.0}", lat[1].0, lat[1].1),
    )
}

/// `PORTFILTER_BENCH_PENDED=n` (at most 1024): `n` creates pended at once (a slow
/// decider's backlog), then answered by one `VerdictBatch` in reverse order; prints how
/// long that one `FilterSendMessage` took (median of 3). This is where finding a pended
/// create by sequence matters: the work under the queue's spin lock per verdict.
fn backlog() {
    let Some(n) = std::env::var("PORTFILTER_BENCH_PENDED")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| (1..=1024).contains(&n))
    else {
        return;
    };
    let mut took = Vec::new();
    for _ in 0..3 {
        let sim = Sim::start();
        let control = connect(3001, Role::Control);
        control.set_config(&config_with(|c| c.reply_timeout_ms = 60_000));
        let port = common::connect_async_decider(DECIDER);
        let creates: Vec<_> = (0..n)
            .map(|i| {
                std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn(move || {
                        let req = CreateRequest::new(&format!(r"C:\bench\b{i}.txt")).pid(APP);
                        let _ = fltsim::create(&req);
                    })
                    .unwrap()
            })
            .collect();
        let mut buf = Buf::new(GET_MESSAGE_BUFFER_BYTES);
        let mut sequences = Vec::new();
        while sequences.len() < n {
            assert_eq!(port.get_message(&mut buf), 0);
            let (_, payload) = split_filter_message(buf.bytes()).unwrap();
            if let Ok(KernelMessage::Batch(batch)) = decode_kernel_message(payload) {
                sequences.extend(batch.events().map(|e| e.fields.sequence));
            }
        }
        while fltsim::pended::pended_count() < n {
            std::thread::sleep(Duration::from_millis(1));
        }
        let entries: Vec<VerdictEntry> = sequences
            .iter()
            .rev()
            .map(|&s| Verdict::allow(s).into())
            .collect();
        let mut out = vec![0u8; MAX_VERDICT_BATCH_BYTES];
        let len = encode_verdict_batch(&entries, &mut out).unwrap();
        let mut input = Buf::from_bytes(&out[..len]);
        let t0 = Instant::now();
        let (hr, _, _) = port.send_raw(&mut input, VERDICT_BATCH_REPLY_BYTES);
        took.push(t0.elapsed().as_secs_f64() * 1e6);
        assert_eq!(hr, 0);
        for c in creates {
            c.join().unwrap();
        }
        port.close();
        control.close();
        sim.unload_and_check_pool();
    }
    let us = median(&mut took);
    println!(
        "backlog: {n} pended creates answered by one VerdictBatch: {us:.0} µs ({:.2} µs per verdict, median of 3)",
        us / n as f64
    );
}
