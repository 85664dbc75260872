//! Decisions per second and create latency: request-reply versus the asynchronous decider
//! with batched verdicts (a `harness = false` binary; not a timed test).
//!
//! Same decision logic in both modes (deny `*.tmp`, allow the rest). N creating
//! threads run creates back to back for a fixed time (throughput), then at an equal
//! offered load (half of what request-reply reached; latency p50/p99). For the
//! asynchronous mode it reports events per request message and verdicts per
//! `FilterSendMessage`, from the driver's counters.
//!
//! `cargo bench -p portfilter --bench async_decisions` (`-- --quick` for a smoke run).
#![allow(clippy::cast_precision_loss, clippy::missing_panics_doc)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Buf, Port, Seen, Sim, config_with, connect, spawn_decider};
use fltsim::CreateRequest;
use portfilter_protocol::{
    CONNECT_CONTEXT_BYTES, ConnectContext, GET_MESSAGE_BUFFER_BYTES, KernelMessage,
    MAX_VERDICT_BATCH_BYTES, Role, VERDICT_BATCH_REPLY_BYTES, Verdict, VerdictEntry,
    decode_kernel_message, encode_verdict_batch, message::split_filter_message,
};
use std::ffi::c_void;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const APP: u32 = 1000;
const DECIDER: u32 = 2001;
/// Creating threads (`PORTFILTER_BENCH_THREADS`, default 16; at least 4).
fn threads() -> usize {
    std::env::var("PORTFILTER_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16usize)
        .max(4)
}

fn decide(sequence: u64, name: &str) -> Verdict {
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
}

/// The decider for `mode`; returns a stopper.
fn start_decider(mode: Mode) -> Box<dyn FnOnce()> {
    match mode {
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
            common::process(DECIDER, "decider.exe");
            let port = {
                let _p = fltsim::process::enter(DECIDER);
                let mut ctx = [0u8; CONNECT_CONTEXT_BYTES];
                ConnectContext::async_decider().encode(&mut ctx).unwrap();
                let handle =
                    common::try_connect_raw(ctx.as_ptr().cast::<c_void>(), ctx.len() as u16)
                        .unwrap();
                Arc::new(Port {
                    handle,
                    pid: DECIDER,
                })
            };
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

/// `THREADS` threads create for `duration`; `interval`: pace each thread (None: back to
/// back).
fn drive(duration: Duration, interval: Option<Duration>) -> Run {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = (0..threads())
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
    duration: Duration,
    interval: Option<Duration>,
) -> (Run, portfilter_protocol::Stats) {
    let sim = Sim::start();
    let control = connect(3001, Role::Control);
    control.set_config(&config_with(|c| c.reply_timeout_ms = 10_000));
    let stop_decider = start_decider(mode);
    // Let the decider's first FilterGetMessage be pending.
    std::thread::sleep(Duration::from_millis(20));
    let run = drive(duration, interval);
    let stats = control.stats();
    stop_decider();
    control.close();
    sim.unload_and_check_pool();
    (run, stats)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let duration = Duration::from_millis(if quick { 300 } else { 2_000 });
    println!(
        "== decisions/s: {} creating threads, back to back ==",
        threads()
    );
    let mut rate = [0.0f64; 2];
    for (k, mode) in [Mode::RequestReply, Mode::AsyncBatched]
        .into_iter()
        .enumerate()
    {
        let (run, stats) = measure(mode, duration, None);
        rate[k] = run.creates as f64 / run.elapsed.as_secs_f64();
        print!(
            "{:<14} {:>9.0} decisions/s  p50 {:>8.1} µs  p99 {:>8.1} µs",
            format!("{mode:?}"),
            rate[k],
            pct(&run.latencies, 50),
            pct(&run.latencies, 99)
        );
        if mode == Mode::AsyncBatched {
            let per_msg =
                stats.async_request_events as f64 / stats.async_request_messages.max(1) as f64;
            let per_send = stats.verdicts_applied as f64 / stats.verdict_messages.max(1) as f64;
            print!(
                "  {per_msg:>5.1} events/request message  {per_send:>5.1} verdicts/FilterSendMessage  ({} deadline defaults)",
                stats.async_deadline_defaults
            );
        } else {
            print!("  1.0 events/request message  1.0 verdicts/FilterReplyMessage");
        }
        println!();
    }
    println!("async / request-reply: {:.2}x", rate[1] / rate[0].max(1.0));

    // Equal offered load: half of request-reply's throughput, spread over the threads.
    let offered = (rate[0] / 2.0).max(100.0);
    let interval = Duration::from_secs_f64(threads() as f64 / offered);
    println!();
    println!(
        "== latency at equal offered load: {offered:.0} creates/s over {} threads ==",
        threads()
    );
    for mode in [Mode::RequestReply, Mode::AsyncBatched] {
        let (run, _) = measure(mode, duration, Some(interval));
        println!(
            "{:<14} {:>9.0} creates/s  p50 {:>8.1} µs  p99 {:>8.1} µs",
            format!("{mode:?}"),
            run.creates as f64 / run.elapsed.as_secs_f64(),
            pct(&run.latencies, 50),
            pct(&run.latencies, 99)
        );
    }
}
