//! The `timer_expiry` reading: on Windows a timed wait ends only at a clock tick
//! ("Timer accuracy": expiration is detected at the first tick after it, up to one clock
//! period late; default period 15.625 ms). Under the default reading a 100 ns timeout that
//! is not satisfied at once lasts until the next tick; under the exact reading it does not.
//!
//! Timing assertions here are built to hold on a loaded machine: a lower bound that
//! follows from the rule itself (consecutive tick-bound waits each end on a later tick),
//! and medians for "returns at once" (robust to a few preempted samples).

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]
#![allow(clippy::missing_safety_doc)]

mod common;
use common::*;
use fltsim::Readings;
use fltsim::kernel::time::{CLOCK_PERIOD, Deadline, SendTimeout, system_time};
use fltsim::readings::{TimerExpiry, ZeroTimeout};
use portfilter_bindings::*;
use std::time::{Duration, Instant};

const TICKS: Readings = Readings::HARSHEST.with_timer_expiry(TimerExpiry::ClockTick);
const EXACT: Readings = Readings::HARSHEST.with_timer_expiry(TimerExpiry::Exact);
/// Consecutive waits timed in one run.
const N: u32 = 6;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `KeWaitForSingleObject` on `event` with the raw NT timeout `t`.
fn wait(event: &mut KEVENT, mut t: i64) -> NTSTATUS {
    // SAFETY: FFI on our own initialised KEVENT; `t` is a readable LARGE_INTEGER.
    unsafe {
        KeWaitForSingleObject(
            (&raw mut *event).cast(),
            EXECUTIVE,
            KERNEL_MODE,
            FALSE,
            &mut t,
        )
    }
}

/// Initialises `e` in place (the model knows a KEVENT by its address).
fn init(e: &mut KEVENT, signalled: bool) {
    // SAFETY: FFI on our own KEVENT.
    unsafe { KeInitializeEvent(e, NOTIFICATION_EVENT, u8::from(signalled)) };
}

/// Each of `N` back-to-back runs of `f` (which must time out), and their total.
fn timed_runs(mut f: impl FnMut()) -> (Vec<Duration>, Duration) {
    let start = Instant::now();
    let each = (0..N)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    (each, start.elapsed())
}

#[test]
fn the_default_reading_is_clock_ticks() {
    assert_eq!(Readings::HARSHEST.timer_expiry, TimerExpiry::ClockTick);
    assert_eq!(Readings::LENIENT.timer_expiry, TimerExpiry::Exact);
    assert_eq!(CLOCK_PERIOD, Duration::from_micros(15_625));
}

#[test]
fn a_100ns_wait_on_an_unsignalled_event_lasts_until_the_next_clock_tick() {
    let _m = fltsim::Machine::boot_with(TICKS);
    let mut e = KEVENT::ZERO;
    init(&mut e, false);
    let (each, total) = timed_runs(|| assert_eq!(wait(&mut e, -1), STATUS_TIMEOUT));
    // Each wait starts at or after the tick that ended the previous one and is due 100 ns
    // later, so it ends on a later tick: N waits span at least N - 1 periods.
    assert!(
        total >= CLOCK_PERIOD * (N - 1),
        "{N} waits of 100 ns took {total:?} in all: {each:?}"
    );
    // A wait that starts right after a tick lasts about a period (never much more than
    // one period plus scheduling).
    let shortest = *each.iter().min().unwrap();
    assert!(
        shortest < CLOCK_PERIOD + Duration::from_millis(50),
        "{each:?}"
    );
    assert!(median(each.clone()) >= Duration::from_millis(3), "{each:?}");
}

#[test]
fn a_100ns_wait_on_an_unsignalled_event_ends_at_once_under_the_exact_reading() {
    let _m = fltsim::Machine::boot_with(EXACT);
    let mut e = KEVENT::ZERO;
    init(&mut e, false);
    let (each, _) = timed_runs(|| assert_eq!(wait(&mut e, -1), STATUS_TIMEOUT));
    assert!(median(each.clone()) < Duration::from_millis(5), "{each:?}");
}

#[test]
fn a_timed_wait_never_ends_before_it_is_due_and_at_most_a_period_after() {
    let _m = fltsim::Machine::boot_with(TICKS);
    let mut e = KEVENT::ZERO;
    init(&mut e, false);
    let t = Instant::now();
    assert_eq!(wait(&mut e, -20 * 10_000), STATUS_TIMEOUT);
    assert!(
        t.elapsed() >= Duration::from_millis(20),
        "{:?}",
        t.elapsed()
    );
    // The deadline itself: on a tick at or after the due time, less than a period later.
    for timeout in [-1, -20 * 10_000, system_time() + 20 * 10_000] {
        let before = Instant::now();
        let Deadline::At(at) = Deadline::from_value(timeout) else {
            panic!("{timeout}: a timed deadline");
        };
        let due = if timeout < 0 {
            Duration::from_nanos(timeout.unsigned_abs() * 100)
        } else {
            Duration::from_millis(19) // absolute: system time read just before `before`
        };
        assert!(at >= before + due, "{timeout}: not before it is due");
        assert!(
            at <= Instant::now() + due + CLOCK_PERIOD + Duration::from_millis(1),
            "{timeout}: at most a period late"
        );
    }
    // Two deadlines due in the same period end on the same tick.
    let a = SendTimeout::Relative(Duration::from_nanos(100)).arm(ZeroTimeout::Polls);
    let b = SendTimeout::Relative(Duration::from_nanos(200)).arm(ZeroTimeout::Polls);
    let (Deadline::At(a), Deadline::At(b)) = (a, b) else {
        panic!("timed deadlines");
    };
    assert!(b.saturating_duration_since(a) < CLOCK_PERIOD);
}

#[test]
fn under_the_exact_reading_a_deadline_is_its_due_time() {
    let _m = fltsim::Machine::boot_with(EXACT);
    let before = Instant::now();
    let Deadline::At(at) = Deadline::from_value(-1) else {
        panic!("a timed deadline");
    };
    assert!(at >= before && at <= Instant::now() + Duration::from_micros(1));
}

#[test]
fn signalled_zero_and_past_waits_return_at_once_under_the_tick_reading() {
    let _m = fltsim::Machine::boot_with(TICKS);
    let mut set = KEVENT::ZERO;
    init(&mut set, true);
    let (each, _) = timed_runs(|| assert_eq!(wait(&mut set, -1), STATUS_SUCCESS));
    assert!(
        median(each.clone()) < Duration::from_millis(5),
        "signalled: {each:?}"
    );
    let mut unset = KEVENT::ZERO;
    init(&mut unset, false);
    let (each, _) = timed_runs(|| assert_eq!(wait(&mut unset, 0), STATUS_TIMEOUT));
    assert!(
        median(each.clone()) < Duration::from_millis(5),
        "zero: {each:?}"
    );
    let (each, _) = timed_runs(|| {
        let past = system_time() - 10_000;
        assert_eq!(wait(&mut unset, past), STATUS_TIMEOUT);
    });
    assert!(
        median(each.clone()) < Duration::from_millis(5),
        "past: {each:?}"
    );
    assert_eq!(Deadline::from_value(0), Deadline::Immediate);
    assert_eq!(Deadline::from_value(system_time() - 1), Deadline::Immediate);
}

#[test]
fn flt_send_message_with_a_100ns_timeout_and_no_get_holds_the_sender_until_a_tick() {
    let m = boot_loaded_with(Config::default(), TICKS);
    let h = connect(&[]) as usize;
    let (each, total) = timed_runs(|| {
        assert_eq!(kernel_send(0, b"x", None, POLL).status, STATUS_TIMEOUT);
    });
    assert!(
        total >= CLOCK_PERIOD * (N - 1),
        "{N} sends took {total:?} in all: {each:?}"
    );
    // With a get already pending it is delivered at once.
    assert_poll_send_reaches_a_waiting_get(h as _);
    assert!(m.violations().is_empty());
    close(h as _);
}

#[test]
fn flt_send_message_with_a_100ns_timeout_and_no_get_returns_at_once_under_the_exact_reading() {
    let m = boot_loaded_with(Config::default(), EXACT);
    let h = connect(&[]) as usize;
    let (each, _) = timed_runs(|| {
        assert_eq!(kernel_send(0, b"x", None, POLL).status, STATUS_TIMEOUT);
    });
    assert!(median(each.clone()) < Duration::from_millis(5), "{each:?}");
    assert!(m.violations().is_empty());
    close(h as _);
}
