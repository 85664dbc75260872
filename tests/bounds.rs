//! The driver's bounds under every reading of the Filter Manager's contract
//! (`fltsim::readings`; the harshest is the default): how long a create can be held
//! (request-reply, plain notify) and how long unload can take — with frozen clients (a
//! connected client that never calls `FilterGetMessage`, like a service stopped in a
//! debugger) and with clients that delay each phase of a send. Each test prints what it
//! measured (`cargo test --test bounds -- --nocapture`); docs/driver.md quotes them.
//!
//! A test that would hang on a driver without these bounds does not hang: after a
//! generous limit it releases the frozen client (closing its port wakes the senders) and
//! then fails.

mod common;

use common::{Buf, Port, Sim, config_with, connect, create_as, join_within, spawn_observer};
use fltsim::Readings;
use fltsim::readings::{TimeoutBudget, TimerExpiry, ZeroTimeout};
use portfilter_bindings::STATUS_SUCCESS;
use portfilter_protocol::{Decision, Delivery, GET_MESSAGE_BUFFER_BYTES, Role, Verdict};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const APP: u32 = 1000;
const DECIDER: u32 = 2001;
const OBSERVER: u32 = 2002;
const OTHER_OBSERVER: u32 = 2003;

/// What a bound may be exceeded by on an idle machine: scheduling (the model's waits
/// themselves end on time, or on the clock tick after it: [`ticks`]). Under load,
/// [`Lateness`] adds what the scheduler was measured to add in the same window.
const TOLERANCE: Duration = Duration::from_millis(200);

/// What `sends` timed `FltSendMessage` waits may add to their deadlines under the running
/// machine's timer reading: up to one clock period each under `clock_tick` (the default:
/// a timer expires at the first tick at or after its deadline, as on Windows), nothing
/// under `exact`. Part of the driver's bound, not of the tolerance: a create that sends
/// with the 100 ns timeout to an observer without a pending get waits until the tick.
fn ticks(sends: u32) -> Duration {
    match fltsim::readings::current().timer_expiry {
        TimerExpiry::ClockTick => fltsim::kernel::time::CLOCK_PERIOD * sends,
        TimerExpiry::Exact => Duration::ZERO,
    }
}

/// How late the scheduler ran a thread while a bound was being measured: a probe thread
/// sleeps 2 ms at a time and keeps its worst overshoot. A bound is then "the budget, plus
/// [`TOLERANCE`], plus twice the worst lateness seen meanwhile" (a create that times out
/// needs its own thread and the waker's to be scheduled): on an idle machine that is the
/// fixed bound, and on a machine loaded far beyond its cores (the loaded suite runs) a
/// create is not failed for time the scheduler took from every thread alike. A driver that
/// overstays its budget still fails wherever the probe stays on time.
struct Lateness {
    stop: Arc<std::sync::atomic::AtomicBool>,
    probe: JoinHandle<Duration>,
}

impl Lateness {
    fn start() -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let probe = std::thread::spawn(move || {
            let step = Duration::from_millis(2);
            let mut worst = Duration::ZERO;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                std::thread::sleep(step);
                worst = worst.max(t.elapsed().saturating_sub(step));
            }
            worst
        });
        Self { stop, probe }
    }

    /// The bound for `budget`, given the lateness measured since [`Lateness::start`].
    fn bound(self, budget: Duration) -> Duration {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let worst = self.probe.join().expect("probe");
        budget + TOLERANCE + worst * 2
    }
}

/// How long the tests wait for something that must happen before declaring it stuck.
const STUCK: Duration = Duration::from_secs(10);

/// Waits for `t` (at most [`STUCK`]); if it is still running, runs `release` (which must
/// unblock it) and fails with `what`.
fn finish_or_release<T>(t: JoinHandle<T>, what: &str, release: impl FnOnce()) -> T {
    let deadline = Instant::now() + STUCK;
    while !t.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    if !t.is_finished() {
        release();
        // Give it the chance to end once released, but never wait without a bound.
        let released = Instant::now() + STUCK;
        while !t.is_finished() && Instant::now() < released {
            std::thread::sleep(Duration::from_millis(2));
        }
        if !t.is_finished() {
            // Unwinding would wait for the blocked thread (the machine's shutdown): end
            // the test process instead, which fails the test as surely.
            eprintln!("{what}: still blocked {STUCK:?} after closing the frozen client");
            std::process::abort();
        }
        panic!("{what}: still blocked after {STUCK:?} (released by closing the frozen client)");
    }
    t.join().expect("thread panicked")
}

/// Creates `n` files one after another on a thread; returns (statuses, total time).
fn creates(n: u32, dir: &'static str) -> JoinHandle<(Vec<i32>, Duration)> {
    std::thread::spawn(move || {
        let t0 = Instant::now();
        let statuses = (0..n)
            .map(|i| create_as(APP, &format!(r"C:\{dir}\{i}.txt")).status)
            .collect();
        (statuses, t0.elapsed())
    })
}

// ------------------------------------------------------------------ item 1: zero timeouts

fn frozen_notify_observer(zero: ZeroTimeout, notify_timeout_ms: u32) {
    let sim = Sim::start_with(Readings::HARSHEST.with_zero_timeout(zero));
    let frozen = connect(OBSERVER, Role::Observer);
    frozen.set_config(&config_with(|c| {
        c.observer_delivery = Delivery::Notify;
        c.notify_timeout_ms = notify_timeout_ms;
    }));
    let n = 6;
    let lateness = Lateness::start();
    let (statuses, took) = finish_or_release(
        creates(n, "frozen"),
        &format!("{zero:?}, notify_timeout_ms {notify_timeout_ms}: creates"),
        || frozen.release(),
    );
    assert!(statuses.iter().all(|&s| s == STATUS_SUCCESS));
    // The first create after the stall waits the notify budget; the others wait only for
    // their 100 ns timer; each timed wait may end up to a clock tick late.
    let bound = lateness.bound(Duration::from_millis(u64::from(notify_timeout_ms)) + ticks(n));
    println!(
        "{zero:?}: {n} creates with a frozen notify observer (notify_timeout_ms \
         {notify_timeout_ms}) took {took:?} (bound {bound:?})"
    );
    assert!(took < bound, "{took:?} for {n} creates");
    let stats = frozen.stats();
    assert_eq!(stats.notify_failed, u64::from(n));
    frozen.close();
    // No zero timeout was ever passed (the verifier reports each one).
    sim.unload_and_check_pool();
}

#[test]
fn a_frozen_notify_observer_never_holds_creates_for_good_under_either_zero_timeout_reading() {
    for zero in [ZeroTimeout::WaitsForever, ZeroTimeout::Polls] {
        frozen_notify_observer(zero, 50);
    }
}

#[test]
fn notify_timeout_zero_means_deliver_only_to_a_pending_request_under_either_reading() {
    for zero in [ZeroTimeout::WaitsForever, ZeroTimeout::Polls] {
        frozen_notify_observer(zero, 0);
    }
}

#[test]
fn a_frozen_queued_observer_never_stops_the_worker_under_either_zero_timeout_reading() {
    for zero in [ZeroTimeout::WaitsForever, ZeroTimeout::Polls] {
        let sim = Sim::start_with(Readings::HARSHEST.with_zero_timeout(zero));
        // Slot 0: frozen; slot 1: reads.
        let frozen = connect(OBSERVER, Role::Observer);
        let fast = spawn_observer(OTHER_OBSERVER, None);
        frozen.set_config(&config_with(|c| {
            c.observer_delivery = Delivery::Queued;
            c.notify_timeout_ms = 50;
        }));
        let n = 6;
        let fast_received = Arc::clone(&fast.received);
        let lateness = Lateness::start();
        let deliveries = std::thread::spawn(move || {
            let t0 = Instant::now();
            for i in 0..n {
                assert_eq!(
                    create_as(APP, &format!(r"C:\q\{i}.txt")).status,
                    STATUS_SUCCESS
                );
                // One batch per create: wait for the fast observer to have it (bounded,
                // so that a driver that never delivers fails the test instead of hanging
                // it).
                assert!(
                    common::wait_until(STUCK, || fast_received.count() > i),
                    "batch {i} never reached the reading observer"
                );
            }
            t0.elapsed()
        });
        let took = finish_or_release(deliveries, &format!("{zero:?}: batches"), || {
            frozen.release();
        });
        // One notify budget in all (the worker stops waiting for the frozen observer), and
        // twice the tolerance for six deliveries through the worker.
        // Each batch's send to the frozen observer may end up to a tick late.
        let bound = lateness.bound(
            Duration::from_millis(50) + TOLERANCE + ticks(u32::try_from(n).expect("a few batches")),
        );
        println!(
            "{zero:?}: {n} batches past a frozen queued observer took {took:?} (bound {bound:?})"
        );
        assert!(took < bound, "{took:?}");
        frozen.close();
        fast.stop();
        sim.unload_and_check_pool();
    }
}

// ------------------------------------------------------- item 2: one budget per message

/// A decider that makes the driver wait in every phase of a request: `gap` before a
/// too-small `FilterGetMessage` (the message stays with the sender), `gap` before the
/// get that takes it, `gap` before the (then late) reply.
fn slow_in_every_phase(port: Arc<Port>, gap: Duration) -> JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(gap);
        let mut small = Buf::new(32);
        if port.get_message(&mut small) == 0 {
            return;
        }
        std::thread::sleep(gap);
        let mut buf = Buf::new(GET_MESSAGE_BUFFER_BYTES);
        if port.get_message(&mut buf) != 0 {
            return;
        }
        std::thread::sleep(gap);
        let (header, payload) =
            portfilter_protocol::message::split_filter_message(buf.bytes()).unwrap();
        if let Ok(event) = portfilter_protocol::decode_event(payload) {
            let _ = port.reply(header.message_id, &Verdict::deny(event.fields.sequence));
        }
    })
}

/// One create while the only client (`role`, configured by `configure`) delays every phase
/// by `gap`, under the `budget` reading; returns how long it was held, the bound for
/// `budget_ms` in that window (see [`Lateness`]), its status, and the driver's counters
/// afterwards.
fn held_by_a_slow_client(
    budget: TimeoutBudget,
    role: Role,
    configure: impl FnOnce(&mut portfilter_protocol::Config),
    gap: Duration,
    budget_ms: u32,
) -> (Duration, Duration, i32, portfilter_protocol::Stats) {
    let sim = Sim::start_with(Readings::HARSHEST.with_timeout_budget(budget));
    let pid = if role == Role::Decider {
        DECIDER
    } else {
        OBSERVER
    };
    let port = Arc::new(connect(pid, role));
    port.set_config(&config_with(configure));
    let lateness = Lateness::start();
    let client = slow_in_every_phase(Arc::clone(&port), gap);
    let t0 = Instant::now();
    let out = create_as(APP, r"C:\slow\a.txt");
    let held = t0.elapsed();
    // One absolute deadline, which its timer may pass by up to a tick.
    let bound = lateness.bound(Duration::from_millis(u64::from(budget_ms)) + ticks(1));
    let stats = port.stats();
    // Release a client still blocked in a get, then wait for it.
    port.release();
    join_within(client, STUCK);
    sim.unload_and_check_pool();
    (held, bound, out.status, stats)
}

#[test]
fn a_create_is_held_at_most_the_reply_budget_however_the_decider_delays_each_phase() {
    let budget_ms = 600;
    for budget in [TimeoutBudget::RearmedPerWait, TimeoutBudget::OneTotal] {
        let (held, bound, status, stats) = held_by_a_slow_client(
            budget,
            Role::Decider,
            |c| {
                c.reply_timeout_ms = budget_ms;
                c.default_verdict = Decision::Allow;
            },
            Duration::from_millis(300),
            budget_ms,
        );
        println!(
            "{budget:?}: create held {held:?} (reply_timeout_ms {budget_ms}, bound {bound:?})"
        );
        assert!(held < bound, "{budget:?}: held {held:?}");
        assert_eq!(
            status, STATUS_SUCCESS,
            "the default verdict (allow), not the late deny"
        );
        assert_eq!(stats.reply_timeouts, 1, "{budget:?}");
    }
}

#[test]
fn a_create_is_held_at_most_the_notify_budget_however_an_observer_delays_each_phase() {
    let budget_ms = 500;
    for budget in [TimeoutBudget::RearmedPerWait, TimeoutBudget::OneTotal] {
        let (held, bound, status, stats) = held_by_a_slow_client(
            budget,
            Role::Observer,
            |c| {
                c.observer_delivery = Delivery::Notify;
                c.notify_timeout_ms = budget_ms;
            },
            Duration::from_millis(400),
            budget_ms,
        );
        println!(
            "{budget:?}: create held {held:?} by notify (notify_timeout_ms {budget_ms}, bound {bound:?})"
        );
        assert!(held < bound, "{budget:?}: held {held:?}");
        assert_eq!(status, STATUS_SUCCESS);
        assert_eq!(stats.notify_failed, 1, "{budget:?}");
    }
}

// ------------------------------------------------ item 3: unload never waits without bound

#[derive(Clone, Copy, Debug)]
enum Frozen {
    Decider,
    NotifyObserver,
    QueuedObserver,
}

/// How long unload may take with frozen clients and long budgets (plus the measured
/// [`Lateness`]): nothing in it waits for a client, so only scheduling counts.
const UNLOAD_BOUND: Duration = Duration::from_millis(1_000);

fn unload_with_a_frozen_client(frozen: Frozen, readings: Readings) {
    let sim = Sim::start_with(readings);
    let role = match frozen {
        Frozen::Decider => Role::Decider,
        Frozen::NotifyObserver | Frozen::QueuedObserver => Role::Observer,
    };
    let client = connect(DECIDER, role);
    client.set_config(&config_with(|c| {
        // The longest budgets: only the unload sequence can end the waits quickly.
        c.reply_timeout_ms = 60_000;
        c.notify_timeout_ms = 5_000;
        c.observer_delivery = match frozen {
            Frozen::QueuedObserver => Delivery::Queued,
            _ => Delivery::Notify,
        };
    }));
    // Two creators; their creates (or the worker's batch send) wait for the frozen client.
    let creators: Vec<_> = (0..2u32)
        .map(|k| {
            std::thread::spawn(move || {
                let t0 = Instant::now();
                let status = create_as(APP + k, &format!(r"C:\u\{k}.txt")).status;
                (status, t0.elapsed())
            })
        })
        .collect();
    assert!(
        common::wait_until(STUCK, || fltsim::port::waiting_senders() >= 1),
        "{frozen:?}: a send is waiting for the frozen client"
    );
    std::thread::sleep(Duration::from_millis(50));
    let lateness = Lateness::start();
    let unloader = std::thread::spawn(|| {
        let t0 = Instant::now();
        let result = fltsim::unload_driver();
        (result, t0.elapsed())
    });
    let (result, took) = finish_or_release(unloader, &format!("{frozen:?}: unload"), || {
        client.release();
    });
    result.expect("unload succeeds");
    let bound = lateness.bound(UNLOAD_BOUND - TOLERANCE);
    println!("{frozen:?} ({readings:?}): unload took {took:?} (bound {bound:?})");
    assert!(took < bound, "{frozen:?}: unload took {took:?}");
    for c in creators {
        let (status, held) = join_within(c, Duration::from_secs(20));
        assert_eq!(status, STATUS_SUCCESS, "{frozen:?}: fail-open");
        assert!(held < STUCK, "{frozen:?}: a create held {held:?}");
    }
    client.close();
    assert_eq!(fltsim::kernel::pool::live_bytes(portfilter::POOL_TAG), 0);
    assert_eq!(fltsim::kernel::thread::running_system_threads(), 0);
    let violations = sim.machine.shutdown();
    assert!(violations.is_empty(), "{frozen:?}: {violations:?}");
}

#[test]
fn unload_with_a_frozen_decider_is_bounded_under_every_reading() {
    unload_with_a_frozen_client(Frozen::Decider, Readings::HARSHEST);
    unload_with_a_frozen_client(Frozen::Decider, Readings::LENIENT);
}

#[test]
fn unload_with_a_frozen_notify_observer_is_bounded_under_every_reading() {
    unload_with_a_frozen_client(Frozen::NotifyObserver, Readings::HARSHEST);
    unload_with_a_frozen_client(Frozen::NotifyObserver, Readings::LENIENT);
}

#[test]
fn unload_with_a_frozen_queued_observer_is_bounded_under_every_reading() {
    unload_with_a_frozen_client(Frozen::QueuedObserver, Readings::HARSHEST);
    unload_with_a_frozen_client(Frozen::QueuedObserver, Readings::LENIENT);
}
