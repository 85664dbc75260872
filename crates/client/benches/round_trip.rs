//! Request-reply round trips per second and the create latency they add, for the blocking
//! API and the completion-port engine with 1, 2 and 4 workers — the real driver under
//! fltsim, in one process.
//!
//! `cargo bench -p portfilter-client --bench round_trip` (env `BENCH_SECONDS`, default 2,
//! per mode; `BENCH_CREATORS`, default 4 creating threads). Prints a Markdown table.
//!
//! What is measured: creating threads call `fltsim::create` in a loop for the duration;
//! each create runs the driver's pre-create callback, which sends a request to the
//! decider and waits for its verdict (allow). "Latency" is the time one create takes;
//! "added" subtracts the same percentile measured with no client connected (the driver
//! then lets creates through without building an event). Round trips/s = completed
//! creates / duration.
//!
//! Linux only (fltsim): on Windows the bench is a stub, so that `cargo build --all-targets`
//! works there.

#[cfg(windows)]
fn main() {
    eprintln!("round_trip runs the driver under fltsim, on Linux only");
}

#[cfg(not(windows))]
use {
    fltsim::CreateRequest,
    portfilter_client::protocol::EventView,
    portfilter_client::{
        ConnectOptions, Connection, Engine, EngineOptions, MessageBuffer, Role, Verdict,
    },
    std::sync::Arc,
    std::sync::atomic::{AtomicBool, Ordering},
    std::thread,
    std::time::{Duration, Instant},
};

#[cfg(not(windows))]
const CLIENT_PID: u32 = 2000;

/// How the decider runs.
#[cfg(not(windows))]
#[derive(Clone, Copy)]
enum Mode {
    NoClient,
    Blocking,
    Engine { workers: usize, requests: usize },
}

#[cfg(not(windows))]
impl Mode {
    fn label(self) -> String {
        match self {
            Self::NoClient => "no client (baseline)".to_owned(),
            Self::Blocking => "blocking API, 1 thread".to_owned(),
            Self::Engine { workers, requests } => {
                format!("IOCP engine, {workers} worker(s), {requests} requests")
            }
        }
    }
}

#[cfg(not(windows))]
struct Measured {
    creates: u64,
    seconds: f64,
    p50_us: f64,
    p99_us: f64,
}

#[cfg(not(windows))]
fn percentile(sorted: &[Duration], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (sorted.len() * p).div_ceil(100).clamp(1, sorted.len()) - 1;
    sorted[rank].as_secs_f64() * 1e6
}

#[cfg(not(windows))]
fn run(mode: Mode, seconds: f64, creators: usize) -> Measured {
    let machine = fltsim::Machine::boot();
    fltsim::load_driver(portfilter::DriverEntry).expect("DriverEntry");
    fltsim::process::spawn(CLIENT_PID, "bench.exe", true);
    let process = fltsim::process::enter(CLIENT_PID);

    let stop = Arc::new(AtomicBool::new(false));
    let mut decider_thread = None;
    let mut engine = None;
    if !matches!(mode, Mode::NoClient) {
        let control =
            Connection::connect(Role::Observer, &ConnectOptions::default()).expect("connect");
        let mut config = control.config().expect("config");
        config.reply_timeout_ms = 30_000;
        control.set_config(&config).expect("set config");
        drop(control);
        let decider = Arc::new(
            Connection::connect(Role::Decider, &ConnectOptions::default()).expect("decider"),
        );
        match mode {
            Mode::Blocking => {
                decider_thread = Some(thread::spawn(move || {
                    let mut buffer = MessageBuffer::new();
                    while let Ok(Some(received)) = decider.receive(&mut buffer) {
                        if let Some(to) = received.reply_to() {
                            let _ = decider.reply(to, Verdict::Allow);
                        }
                    }
                }));
            }
            Mode::Engine { workers, requests } => {
                let handler = Arc::new(|_: &EventView<'_>| Verdict::Allow);
                engine = Some(
                    Engine::start(decider, handler, EngineOptions { requests, workers })
                        .expect("engine"),
                );
            }
            Mode::NoClient => {}
        }
    }

    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let threads: Vec<_> = (0..creators)
        .map(|t| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut latencies = Vec::with_capacity(100_000);
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let request = CreateRequest::new(&format!(r"C:\bench\t{t}\f{i}.dat"))
                        .pid(1000 + t as u32);
                    let begin = Instant::now();
                    let outcome = fltsim::create(&request);
                    latencies.push(begin.elapsed());
                    assert_eq!(outcome.status, 0, "allowed");
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("creator"))
        .collect();
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);

    if let Some(engine) = engine {
        let _ = engine.stop();
    }
    fltsim::unload_driver().expect("unload");
    if let Some(thread) = decider_thread {
        thread.join().expect("decider thread");
    }
    drop(process);
    drop(machine);

    latencies.sort_unstable();
    Measured {
        creates: latencies.len() as u64,
        seconds: elapsed,
        p50_us: percentile(&latencies, 50),
        p99_us: percentile(&latencies, 99),
    }
}

#[cfg(not(windows))]
fn main() {
    // `cargo test --benches` runs bench binaries with `--bench`-less arguments; keep that
    // quick.
    let quick =
        std::env::args().any(|a| a == "--test") || std::env::var_os("BENCH_QUICK").is_some();
    let seconds: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 0.1 } else { 2.0 });
    let creators: usize = std::env::var("BENCH_CREATORS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let modes = [
        Mode::NoClient,
        Mode::Blocking,
        Mode::Engine {
            workers: 1,
            requests: 8,
        },
        Mode::Engine {
            workers: 2,
            requests: 8,
        },
        Mode::Engine {
            workers: 4,
            requests: 8,
        },
    ];
    println!(
        "{creators} creating threads, {seconds} s per mode, real driver under fltsim in-process\n"
    );
    println!(
        "| decider | round trips/s | create p50 µs | create p99 µs | added p50 µs | added p99 µs |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let mut baseline = None;
    for mode in modes {
        let result = run(mode, seconds, creators);
        let rate = result.creates as f64 / result.seconds;
        let (base50, base99) = *baseline.get_or_insert((result.p50_us, result.p99_us));
        let (rate_text, added50, added99) = if matches!(mode, Mode::NoClient) {
            (
                format!("({rate:.0} creates/s)"),
                "—".to_owned(),
                "—".to_owned(),
            )
        } else {
            (
                format!("{rate:.0}"),
                format!("{:.1}", result.p50_us - base50),
                format!("{:.1}", result.p99_us - base99),
            )
        };
        println!(
            "| {} | {rate_text} | {:.1} | {:.1} | {added50} | {added99} |",
            mode.label(),
            result.p50_us,
            result.p99_us
        );
    }
}
