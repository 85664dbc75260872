//! Fault-injection sweeps (fltsim's `faults`): for every call a scenario makes to a
//! routine that can fail — pool allocation, name queries, `FltSendMessage`,
//! `PsCreateSystemThread`, `FltCreateCommunicationPort`, `FltRegisterFilter`,
//! `FltStartFiltering` — and for every failure status that routine documents, the
//! scenario is replayed with exactly that call failing. Each time the driver must give
//! the right status, keep its counters consistent, leak nothing and unload cleanly.
//!
//! The calls are counted on a clean run first, so a sweep covers each call the scenario
//! really makes (and a new call in the driver is swept without editing this file).

mod common;

use common::{Sim, config_with, connect, create_as, hr, spawn_decider, spawn_observer};
use fltsim::faults::{self, Routine};
use portfilter_bindings::{NTSTATUS, STATUS_ACCESS_DENIED, STATUS_SUCCESS};
use portfilter_protocol::{Command, Config, Delivery, Role, Stats, Verdict};
use std::sync::Arc;
use std::time::Duration;

/// FltLib's HRESULT for `STATUS_INSUFFICIENT_RESOURCES`.
const HR_INSUFFICIENT: i32 = 0x8007_05AA_u32 as i32;

/// Every (routine, n, status) to replay for calls counted in `counts`.
fn cases(counts: &[(Routine, u64)]) -> Vec<(Routine, u64, NTSTATUS)> {
    let mut out = Vec::new();
    for &(routine, calls) in counts {
        for n in 1..=calls {
            for &status in faults::documented(routine) {
                out.push((routine, n, status));
            }
        }
    }
    out
}

/// The calls made while `f` runs: on this thread only (`here`), or on every thread.
fn counted(here: bool, f: impl FnOnce()) -> Vec<(Routine, u64)> {
    faults::reset_counts();
    f();
    let calls = if here {
        faults::calls_here()
    } else {
        faults::all_calls()
    };
    calls.into_iter().filter(|&(_, n)| n > 0).collect()
}

/// After a failure was injected: the counters are consistent, the driver unloads,
/// nothing of its pool is left, and the verifier saw nothing.
fn settle(sim: Sim, what: &str) {
    let port = connect(3999, Role::Control);
    let s = port.stats();
    check_counters(&s, what);
    port.close();
    assert_eq!(
        faults::disarm(),
        0,
        "{what}: the injected failure did not fire"
    );
    sim.unload_and_check_pool();
}

fn check_counters(s: &Stats, what: &str) {
    assert_eq!(
        s.events_seen,
        s.events_reported + s.events_skipped,
        "{what}: every create seen is reported or skipped: {s:?}"
    );
    assert!(
        s.replies_allow + s.replies_deny + s.reply_bad + s.reply_timeouts <= s.requests_sent,
        "{what}: more verdict outcomes than requests: {s:?}"
    );
}

#[test]
fn driver_entry_returns_each_injected_failure_and_leaves_nothing_behind() {
    let counts = {
        let machine = fltsim::Machine::boot();
        let counts = counted(true, || {
            fltsim::load_driver(portfilter::DriverEntry).unwrap()
        });
        fltsim::unload_driver().unwrap();
        assert!(machine.shutdown().is_empty());
        counts
    };
    for needed in [
        Routine::ExAllocatePool2,
        Routine::FltRegisterFilter,
        Routine::FltCreateCommunicationPort,
        Routine::FltStartFiltering,
        Routine::PsCreateSystemThread,
    ] {
        assert!(
            counts.iter().any(|&(r, _)| r == needed),
            "DriverEntry no longer calls {needed:?}? {counts:?}"
        );
    }
    let cases = cases(&counts);
    for &(routine, n, status) in &cases {
        let what = format!("DriverEntry, call {n} of {routine:?} fails with {status:#x}");
        let machine = fltsim::Machine::boot();
        faults::arm_here(routine, n, status);
        let result = fltsim::load_driver(portfilter::DriverEntry);
        assert_eq!(result, Err(status), "{what}");
        assert_eq!(faults::disarm(), 0, "{what}: did not fire");
        assert!(!fltsim::is_loaded(), "{what}");
        assert_eq!(
            fltsim::kernel::pool::live_bytes(portfilter::POOL_TAG),
            0,
            "{what}: pool left: {:?}",
            fltsim::kernel::pool::outstanding()
        );
        // The machine is usable afterwards: the driver loads and unloads cleanly.
        fltsim::load_driver(portfilter::DriverEntry).expect("loads after the failure");
        fltsim::unload_driver().unwrap();
        let violations = machine.shutdown();
        assert!(violations.is_empty(), "{what}: {violations:?}");
    }
    eprintln!("swept {} DriverEntry failures", cases.len());
}

/// The clients of one delivery mode.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// A decider that denies everything (default verdict: allow).
    RequestReply,
    /// An observer, plain notify.
    Notify,
    /// An observer, queued batches.
    Queued,
}

/// Starts a machine with the clients of `mode`; returns it and the clients to stop.
fn start(mode: Mode) -> (Sim, common::ClientThread) {
    let sim = Sim::start();
    let control = connect(3998, Role::Control);
    let delivery = match mode {
        Mode::Notify => Delivery::Notify,
        Mode::RequestReply | Mode::Queued => Delivery::Queued,
    };
    control.set_config(&config_with(|c: &mut Config| {
        c.observer_delivery = delivery;
        c.reply_timeout_ms = 5_000;
        c.notify_timeout_ms = 2_000;
    }));
    control.close();
    let client = match mode {
        Mode::RequestReply => spawn_decider(
            2001,
            Arc::new(|e: &common::Seen| Some(Verdict::deny(e.sequence))),
        ),
        Mode::Notify | Mode::Queued => spawn_observer(2002, None),
    };
    (sim, client)
}

/// Waits until `client` has received `n` events (queued delivery is asynchronous).
fn received(client: &common::ClientThread, n: usize) -> bool {
    common::wait_until(Duration::from_secs(10), || client.received.count() >= n)
}

#[test]
fn a_create_survives_each_injected_failure_in_every_delivery_mode() {
    for mode in [Mode::RequestReply, Mode::Notify, Mode::Queued] {
        let counts = {
            let (sim, client) = start(mode);
            // Queued delivery sends from the driver's worker thread: count (and fail)
            // calls on every thread there; elsewhere a create runs on this thread.
            let counts = counted(!matches!(mode, Mode::Queued), || {
                let _ = create_as(1000, r"C:\sweep\probe.exe");
                assert!(received(&client, 1), "{mode:?}: the probe was delivered");
            });
            client.stop();
            sim.unload_and_check_pool();
            counts
        };
        assert!(
            counts.iter().any(|&(r, _)| r == Routine::FltSendMessage),
            "{mode:?}: a create is delivered with FltSendMessage: {counts:?}"
        );
        let cases = cases(&counts);
        for &(routine, n, status) in &cases {
            let what = format!("{mode:?}, call {n} of {routine:?} fails with {status:#x}");
            let (sim, client) = start(mode);
            if let Mode::Queued = mode {
                // Nothing else runs now: the observer waits, the worker is idle.
                faults::arm(routine, n, status);
            } else {
                faults::arm_here(routine, n, status);
            }
            let out = create_as(1000, r"C:\sweep\probe.exe");
            // Never anything but the decider's verdict or the default one.
            assert!(
                out.status == STATUS_SUCCESS || out.status == STATUS_ACCESS_DENIED,
                "{what}: create ended with {:#x}",
                out.status
            );
            if let Mode::Queued = mode {
                // The worker's send (or its failure) happens before anything is counted:
                // the event arrives, or the injected failure fired and the batch was lost.
                assert!(
                    common::wait_until(Duration::from_secs(10), || {
                        client.received.count() >= 1
                            || (faults::armed() == 0 && fltsim::port::waiting_senders() == 0)
                    }),
                    "{what}: the worker sent its batch or failed to"
                );
            }
            // Business as usual afterwards: the next create is delivered. After a failed
            // send the driver stops waiting for that client until it takes a message
            // again (the stall back-off), so the client's request must be pending first.
            assert!(
                common::wait_until(Duration::from_secs(10), || {
                    fltsim::port::queued_requests() >= 1
                }),
                "{what}: the client has a request pending"
            );
            let before = client.received.count();
            let next = create_as(1000, r"C:\sweep\after.exe");
            assert!(
                received(&client, before + 1),
                "{what}: next create delivered"
            );
            if let Mode::RequestReply = mode {
                assert_eq!(
                    next.status, STATUS_ACCESS_DENIED,
                    "{what}: decider still decides"
                );
            }
            client.stop();
            settle(sim, &what);
        }
        eprintln!("swept {} create failures in {mode:?} mode", cases.len());
    }
}

#[test]
fn each_command_fails_cleanly_for_each_injected_failure_and_changes_nothing() {
    let wanted = config_with(|c| c.reply_timeout_ms = 4321);
    for command in Command::ALL {
        let run = |port: &common::Port| -> i32 {
            match command {
                Command::SetConfig => port.try_set_config(&wanted).0,
                _ => {
                    let mut input = common::Buf::new(8);
                    portfilter_protocol::encode_request(command, input.bytes_mut()).unwrap();
                    port.send_raw(&mut input, command.max_output_bytes()).0
                }
            }
        };
        let counts = {
            let sim = Sim::start();
            let port = connect(2001, Role::Control);
            let counts = counted(true, || assert_eq!(run(&port), hr::S_OK, "{command:?}"));
            port.close();
            sim.unload_and_check_pool();
            counts
        };
        let cases = cases(&counts);
        for &(routine, n, status) in &cases {
            let what = format!("{command:?}, call {n} of {routine:?} fails with {status:#x}");
            let sim = Sim::start();
            let port = connect(2001, Role::Control);
            let before = port.config();
            faults::arm_here(routine, n, status);
            let result = run(&port);
            assert_eq!(
                result, HR_INSUFFICIENT,
                "{what}: the command reports the failure"
            );
            assert_eq!(port.config(), before, "{what}: nothing changed");
            port.close();
            settle(sim, &what);
        }
        eprintln!("swept {} failures of {command:?}", cases.len());
    }
}

#[test]
fn a_connect_fails_cleanly_for_each_injected_failure_and_frees_its_slot() {
    for role in [Role::Decider, Role::Observer, Role::Control] {
        let counts = {
            let sim = Sim::start();
            let counts = counted(true, || connect(2001, role).close());
            sim.unload_and_check_pool();
            counts
        };
        let cases = cases(&counts);
        for &(routine, n, status) in &cases {
            let what = format!("connect {role:?}, call {n} of {routine:?} fails with {status:#x}");
            let sim = Sim::start();
            faults::arm_here(routine, n, status);
            match common::try_connect(2001, Some(role)) {
                Err(hr) => assert_eq!(hr, HR_INSUFFICIENT, "{what}"),
                Ok(port) => panic!("{what}: connected ({:?})", port.handle),
            }
            // The slot is free again: the same role connects, and the gauges agree.
            let port = connect(2001, role);
            let s = port.stats();
            assert_eq!(s.connected_clients, 1, "{what}: {s:?}");
            assert_eq!(s.deciders, u64::from(role == Role::Decider), "{what}");
            port.close();
            settle(sim, &what);
        }
        eprintln!("swept {} connect failures as {role:?}", cases.len());
    }
}
