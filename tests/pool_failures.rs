//! Out-of-pool paths (fltsim's `pool::fail_next`): DriverEntry fails cleanly, a create
//! whose event cannot be built still completes, commands fail with
//! `STATUS_INSUFFICIENT_RESOURCES` and change nothing — and nothing leaks.

mod common;

use common::{Seen, Sim, config_with, connect, create_as, hr, spawn_decider};
use fltsim::kernel::pool;
use portfilter_bindings::{STATUS_INSUFFICIENT_RESOURCES, STATUS_SUCCESS};
use portfilter_protocol::{Config, Role, Verdict};
use std::sync::Arc;

const INSUFFICIENT: i32 = 0x8007_05AA_u32 as i32;

#[test]
fn driver_entry_fails_cleanly_without_pool_and_loads_afterwards() {
    let machine = fltsim::Machine::boot();
    pool::fail_next(1);
    assert_eq!(common::load_driver(), Err(STATUS_INSUFFICIENT_RESOURCES));
    assert_eq!(pool::live_bytes(portfilter::POOL_TAG), 0);
    assert!(!fltsim::is_loaded());
    common::load_driver().expect("loads once pool is back");
    fltsim::unload_driver().unwrap();
    assert_eq!(pool::live_bytes(portfilter::POOL_TAG), 0);
    assert!(machine.shutdown().is_empty());
}

#[test]
fn creates_complete_whatever_allocation_fails() {
    let sim = Sim::start();
    let decider = spawn_decider(2001, Arc::new(|e: &Seen| Some(Verdict::allow(e.sequence))));
    for failing in 1..6 {
        pool::fail_next(failing);
        let out = create_as(1000, &format!(r"C:\oom\{failing}.txt"));
        assert_eq!(out.status, STATUS_SUCCESS, "{failing} failing allocations");
        pool::fail_next(0);
    }
    // Business as usual afterwards.
    let before = decider.received.count();
    assert_eq!(create_as(1000, r"C:\oom\after.txt").status, STATUS_SUCCESS);
    assert_eq!(decider.received.count(), before + 1);
    decider.stop();
    sim.unload_and_check_pool();
}

#[test]
fn commands_fail_with_insufficient_resources_and_change_nothing() {
    let sim = Sim::start();
    let port = connect(2001, Role::Observer);
    let wanted = config_with(|c| c.reply_timeout_ms = 4321);
    let mut seen_failure = false;
    for failing in 1..6 {
        pool::fail_next(failing);
        let (status, applied) = port.try_set_config(&wanted);
        pool::fail_next(0);
        match status {
            hr::S_OK => assert_eq!(applied.as_ref(), Some(&wanted)),
            INSUFFICIENT => {
                seen_failure = true;
                assert_eq!(port.config(), Config::new(), "unchanged after a failure");
            }
            other => panic!("unexpected status {other:#x}"),
        }
        port.set_config(&Config::new());
    }
    assert!(seen_failure);
    pool::fail_next(1);
    let mut input = common::Buf::new(8);
    portfilter_protocol::encode_request(portfilter_protocol::Command::GetConfig, input.bytes_mut())
        .unwrap();
    let (status, _, _) = port.send_raw(&mut input, portfilter_protocol::CONFIG_MAX_BYTES);
    pool::fail_next(0);
    assert_eq!(status, INSUFFICIENT);
    assert_eq!(port.hello().role, Role::Observer);
    port.close();
    sim.unload_and_check_pool();
}

/// A create whose event cannot be allocated: reported (and counted dropped), and decided as
/// if no decider answered — the default verdict while a client is connected; allowed when
/// nobody is connected (nobody could be told or asked).
#[test]
fn a_create_without_pool_for_its_event_gets_the_default_verdict_while_clients_are_connected() {
    use fltsim::faults::{self, Routine};
    use portfilter_bindings::STATUS_ACCESS_DENIED;
    let sim = Sim::start();
    let control = connect(2001, Role::Control);
    control.set_config(&config_with(|c| {
        c.default_verdict = portfilter_protocol::Decision::Deny;
    }));
    faults::arm_here(Routine::ExAllocatePool2, 1, STATUS_INSUFFICIENT_RESOURCES);
    assert_eq!(
        create_as(1000, r"C:\oom\connected.txt").status,
        STATUS_ACCESS_DENIED
    );
    assert_eq!(faults::disarm(), 0, "the allocation failure fired");
    let s = control.stats();
    assert_eq!(
        (s.events_reported, s.queue_dropped, s.default_verdicts),
        (1, 1, 1),
        "{s:?}"
    );
    control.close();

    faults::arm_here(Routine::ExAllocatePool2, 1, STATUS_INSUFFICIENT_RESOURCES);
    assert_eq!(
        create_as(1000, r"C:\oom\alone.txt").status,
        STATUS_SUCCESS,
        "nobody connected"
    );
    assert_eq!(faults::disarm(), 0, "the allocation failure fired");
    // With pool, the same create falls to the default verdict (deny).
    assert_eq!(
        create_as(1000, r"C:\oom\alone.txt").status,
        STATUS_ACCESS_DENIED
    );
    let control = connect(2001, Role::Control);
    let s = control.stats();
    assert_eq!(s.default_verdicts, 2, "{s:?}");
    assert_eq!(s.queue_enqueued, 0, "no observer: nothing is queued");
    control.set_config(&Config::new());
    control.close();
    sim.unload_and_check_pool();
}
