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
//! Beside it, in the same run:
//! * **the floor**: a bare request-reply hand-off between the same number of requesting
//!   threads and one answering thread (a mutex + condition variable queue, a mutex +
//!   condition variable per requester for the reply) — what any request-reply between
//!   threads costs on this machine, with no driver, no fltsim and no client library; each
//!   decider row prints its round trips as a share of it;
//! * **an I/O-bound decider**: a handler that waits 1 ms per decision (as a scanner reading
//!   the file does), the IOCP engine with M = 1, 2, 4, 8 workers, 2·M requests outstanding
//!   and 2·M creating threads; target ≥ 0.9 × M × 1,000 decisions/s.
//!
//! Linux only (fltsim): on Windows the bench is a stub, so that `cargo build --all-targets`
//! works there.

#[cfg(windows)]
fn main() {
    eprintln!("round_trip runs the driver under fltsim, on Linux only");
}

#[cfg(not(windows))]
fn main() {
    linux::main();
}

#[cfg(not(windows))]
mod linux {
    use fltsim::CreateRequest;
    use portfilter_client::protocol::EventView;
    use portfilter_client::{
        ConnectOptions, Connection, Engine, EngineOptions, MessageBuffer, Role, Verdict,
    };
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Condvar, Mutex};
    use std::thread;
    use std::time::{Duration, Instant};

    const CLIENT_PID: u32 = 2000;

    /// How the decider runs.
    #[derive(Clone, Copy)]
    enum Mode {
        NoClient,
        Blocking,
        Engine {
            workers: usize,
            requests: usize,
        },
        /// The engine with a handler that waits 1 ms per decision.
        IoBound {
            workers: usize,
        },
    }

    impl Mode {
        fn label(self) -> String {
            match self {
                Self::NoClient => "no client (baseline)".to_owned(),
                Self::Blocking => "blocking API, 1 thread".to_owned(),
                Self::Engine { workers, requests } => {
                    format!("IOCP engine, {workers} worker(s), {requests} requests")
                }
                Self::IoBound { workers } => format!(
                    "IOCP engine, {workers} worker(s), {} requests, handler waits 1 ms",
                    2 * workers
                ),
            }
        }
    }

    struct Measured {
        creates: u64,
        seconds: f64,
        p50_us: f64,
        p99_us: f64,
    }

    fn percentile(sorted: &[Duration], p: usize) -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let rank = (sorted.len() * p).div_ceil(100).clamp(1, sorted.len()) - 1;
        sorted[rank].as_secs_f64() * 1e6
    }

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
                Mode::IoBound { workers } => {
                    let handler = Arc::new(|_: &EventView<'_>| {
                        thread::sleep(Duration::from_millis(1));
                        Verdict::Allow
                    });
                    let options = EngineOptions {
                        requests: 2 * workers,
                        workers,
                    };
                    engine = Some(Engine::start(decider, handler, options).expect("engine"));
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

    /// The floor: `requesters` threads each hand a request to one answering thread and wait
    /// for its reply, for `seconds`; returns round trips per second.
    fn bare_hand_off(requesters: usize, seconds: f64) -> f64 {
        struct Slot {
            reply: Mutex<Option<u64>>,
            ready: Condvar,
        }
        struct Shared {
            queue: Mutex<VecDeque<(usize, u64)>>,
            waiting: Condvar,
            slots: Vec<Slot>,
            stop: AtomicBool,
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            waiting: Condvar::new(),
            slots: (0..requesters)
                .map(|_| Slot {
                    reply: Mutex::new(None),
                    ready: Condvar::new(),
                })
                .collect(),
            stop: AtomicBool::new(false),
        });
        let server = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                let mut queue = shared.queue.lock().unwrap();
                loop {
                    if let Some((who, value)) = queue.pop_front() {
                        drop(queue);
                        let slot = &shared.slots[who];
                        *slot.reply.lock().unwrap() = Some(value + 1);
                        slot.ready.notify_one();
                        queue = shared.queue.lock().unwrap();
                    } else if shared.stop.load(Ordering::Acquire) {
                        return;
                    } else {
                        queue = shared.waiting.wait(queue).unwrap();
                    }
                }
            })
        };
        let start = Instant::now();
        let deadline = start + Duration::from_secs_f64(seconds);
        let threads: Vec<_> = (0..requesters)
            .map(|who| {
                let shared = Arc::clone(&shared);
                thread::spawn(move || {
                    let mut done = 0u64;
                    while Instant::now() < deadline {
                        shared.queue.lock().unwrap().push_back((who, done));
                        shared.waiting.notify_one();
                        let slot = &shared.slots[who];
                        let mut reply = slot.reply.lock().unwrap();
                        while reply.is_none() {
                            reply = slot.ready.wait(reply).unwrap();
                        }
                        assert_eq!(reply.take(), Some(done + 1));
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        let total: u64 = threads
            .into_iter()
            .map(|t| t.join().expect("requester"))
            .sum();
        let elapsed = start.elapsed().as_secs_f64();
        shared.stop.store(true, Ordering::Release);
        drop(shared.queue.lock().unwrap());
        shared.waiting.notify_all();
        server.join().expect("server");
        total as f64 / elapsed
    }

    pub fn main() {
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
        let floor = bare_hand_off(creators, seconds);
        let floor_one = bare_hand_off(1, seconds);
        println!(
            "floor: bare mutex+condvar request-reply, 1 answering thread: {floor:.0} round trips/s \
             with {creators} requesters, {floor_one:.0} with 1\n"
        );
        println!(
            "| decider | round trips/s | of the floor | create p50 µs | create p99 µs | added p50 µs | added p99 µs |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        let mut baseline = None;
        for mode in modes {
            let result = run(mode, seconds, creators);
            let rate = result.creates as f64 / result.seconds;
            let (base50, base99) = *baseline.get_or_insert((result.p50_us, result.p99_us));
            let (rate_text, share, added50, added99) = if matches!(mode, Mode::NoClient) {
                (
                    format!("({rate:.0} creates/s)"),
                    "—".to_owned(),
                    "—".to_owned(),
                    "—".to_owned(),
                )
            } else {
                (
                    format!("{rate:.0}"),
                    format!("{:.0} %", 100.0 * rate / floor),
                    format!("{:.1}", result.p50_us - base50),
                    format!("{:.1}", result.p99_us - base99),
                )
            };
            println!(
                "| {} | {rate_text} | {share} | {:.1} | {:.1} | {added50} | {added99} |",
                mode.label(),
                result.p50_us,
                result.p99_us
            );
        }
        let blocking_one = run(Mode::Blocking, seconds, 1);
        let rate_one = blocking_one.creates as f64 / blocking_one.seconds;
        println!(
            "| blocking API, 1 thread, 1 creating thread | {rate_one:.0} | {:.0} % (of {floor_one:.0}) | {:.1} | {:.1} | | |",
            100.0 * rate_one / floor_one,
            blocking_one.p50_us,
            blocking_one.p99_us
        );
        println!();
        let sleeps = 200;
        let t0 = Instant::now();
        for _ in 0..sleeps {
            thread::sleep(Duration::from_millis(1));
        }
        let one_sleep = t0.elapsed().as_secs_f64() / f64::from(sleeps);
        println!(
            "I/O-bound decider (handler waits 1 ms), 2·M creating threads; one `sleep(1 ms)` \
             takes {:.3} ms here, so M workers cannot exceed M × {:.0} decisions/s:\n",
            one_sleep * 1e3,
            1.0 / one_sleep
        );
        println!("| decider | decisions/s | target 0.9 × M × 1,000 | |");
        println!("|---|---:|---:|---|");
        for workers in [1usize, 2, 4, 8] {
            let result = run(Mode::IoBound { workers }, seconds, 2 * workers);
            let rate = result.creates as f64 / result.seconds;
            let target = 0.9 * workers as f64 * 1_000.0;
            println!(
                "| {} | {rate:.0} | {target:.0} | {} |",
                Mode::IoBound { workers }.label(),
                if rate >= target { "met" } else { "NOT met" }
            );
        }
    }
}
