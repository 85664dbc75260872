//! Load, connect, disconnect, unload: the driver's lifecycle through fltsim, with the
//! connection rules (one decider, observers up to MAX_CONNECTIONS - 1) and pool checks.

mod common;

use common::{Sim, connect, hr, try_connect};
use portfilter_protocol::{CONNECT_CONTEXT_BYTES, ConnectContext, Delivery, Role};
use std::ffi::c_void;

#[test]
fn driver_entry_connect_disconnect_unload_leaves_no_pool() {
    let sim = Sim::start();
    assert!(fltsim::log::contains("portfilter: loaded"));
    let decider = connect(2001, Role::Decider);
    let observer = connect(2002, Role::Observer);
    let h1 = decider.hello();
    let h2 = observer.hello();
    assert_eq!(h1.role, Role::Decider);
    assert_eq!(h2.role, Role::Observer);
    assert_ne!(h1.connection_id, h2.connection_id);
    assert_eq!(h1.protocol_version, portfilter_protocol::PROTOCOL_VERSION);
    assert_eq!(h1.driver_version.major, 0);
    assert_eq!(h1.observer_delivery, Delivery::Queued);
    let stats = decider.stats();
    assert_eq!(
        (stats.connected_clients, stats.deciders, stats.observers),
        (2, 1, 1)
    );
    decider.close();
    observer.close();
    assert_eq!(fltsim::port::open_connections(), 0);
    sim.unload_and_check_pool();
}

#[test]
fn the_driver_logs_with_a_component_and_a_level_so_that_its_errors_show_by_default() {
    use portfilter_bindings::{
        DPFLTR_ERROR_LEVEL, DPFLTR_IHVDRIVER_ID, DPFLTR_INFO_LEVEL, DPFLTR_WARNING_LEVEL,
    };
    let machine = fltsim::Machine::boot();
    // An error: DriverEntry without pool for its state.
    fltsim::kernel::pool::fail_next(1);
    assert!(fltsim::load_driver(portfilter::DriverEntry).is_err());
    // Information: load, connect, disconnect, unload; a warning: a refused command.
    fltsim::load_driver(portfilter::DriverEntry).expect("loads");
    let port = connect(2001, Role::Observer);
    let mut unknown = common::Buf::new(8);
    portfilter_protocol::encode_header(
        portfilter_protocol::MessageKind::Hello,
        unknown.bytes_mut(),
    )
    .unwrap();
    unknown.bytes_mut()[4] = 99;
    assert_eq!(port.send_raw(&mut unknown, 64).0, hr::NOT_SUPPORTED);
    port.close();
    fltsim::unload_driver().expect("unload");
    // Read the log while this test still holds the machine: once the guard is gone,
    // another test's Machine::boot may clear it (seen under ThreadSanitizer's slowdown).
    let entries = fltsim::log::entries();
    assert!(machine.shutdown().is_empty());

    let driver: Vec<fltsim::log::Entry> = entries
        .into_iter()
        .filter(|e| e.text.starts_with("portfilter: "))
        .collect();
    assert!(!driver.is_empty());
    for e in &driver {
        assert_eq!(
            e.component, DPFLTR_IHVDRIVER_ID,
            "{e:?}: DbgPrintEx, not DbgPrint"
        );
    }
    let find = |needle: &str| {
        driver
            .iter()
            .find(|e| e.text.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in {driver:#?}"))
    };
    let error = find("no pool for the driver state");
    assert_eq!(error.level, DPFLTR_ERROR_LEVEL);
    assert!(
        error.shown_by_default(),
        "errors show under the default filter"
    );
    assert_eq!(find("command failed").level, DPFLTR_WARNING_LEVEL);
    for info in [
        "loaded; port",
        "client connected",
        "client disconnected",
        "unloaded",
    ] {
        let line = find(info);
        assert_eq!(line.level, DPFLTR_INFO_LEVEL, "{line:?}");
        assert!(!line.shown_by_default());
    }
}

#[test]
fn unload_with_clients_connected_disconnects_them_and_frees_everything() {
    let sim = Sim::start();
    let decider = connect(2001, Role::Decider);
    let observer = connect(2002, Role::Observer);
    fltsim::unload_driver().expect("unload");
    assert_eq!(fltsim::port::open_connections(), 0);
    assert!(fltsim::log::contains("client disconnected"));
    // It says how many it disconnected (the two clients, not the free slots).
    assert!(
        fltsim::log::contains("unload: 2 clients disconnected"),
        "{:?}",
        fltsim::log::lines()
    );
    // The clients' handles are dead now.
    let mut input = common::Buf::new(8);
    portfilter_protocol::encode_request(portfilter_protocol::Command::Hello, input.bytes_mut())
        .unwrap();
    let (status, _, _) = decider.send_raw(&mut input, 64);
    assert_ne!(status, 0);
    decider.close();
    observer.close();
    assert_eq!(fltsim::kernel::pool::live_bytes(portfilter::POOL_TAG), 0);
    assert!(sim.machine.shutdown().is_empty());
}

#[test]
fn second_decider_gets_sharing_violation_and_first_keeps_working() {
    let sim = Sim::start();
    let first = connect(2001, Role::Decider);
    assert_eq!(
        try_connect(2003, Some(Role::Decider)).err(),
        Some(hr::SHARING_VIOLATION)
    );
    assert_eq!(first.hello().role, Role::Decider);
    // Once the first leaves, another decider may connect.
    first.close();
    let second = connect(2003, Role::Decider);
    assert_eq!(second.hello().role, Role::Decider);
    second.close();
    sim.unload_and_check_pool();
}

#[test]
fn observers_are_limited_to_max_connections_minus_one_leaving_room_for_the_decider() {
    let sim = Sim::start();
    let max = portfilter::MAX_CONNECTIONS;
    let observers: Vec<_> = (0..max - 1)
        .map(|i| connect(3000 + i as u32, Role::Observer))
        .collect();
    assert_eq!(
        try_connect(3100, Some(Role::Observer)).err(),
        Some(hr::CONNECTION_LIMIT),
        "one observer too many"
    );
    let decider = connect(3200, Role::Decider);
    assert_eq!(decider.stats().connected_clients, max as u64);
    // The port itself is full now: the Filter Manager refuses before our callback.
    assert_eq!(
        try_connect(3300, Some(Role::Decider)).err(),
        Some(hr::CONNECTION_LIMIT)
    );
    for o in observers {
        o.close();
    }
    decider.close();
    sim.unload_and_check_pool();
}

#[test]
fn connect_context_is_validated() {
    let sim = Sim::start();
    // No context at all: an observer.
    let plain = try_connect(2001, None).expect("connect without context");
    assert_eq!(plain.hello().role, Role::Observer);
    plain.close();

    common::process(2002, "bad.exe");
    let _p = fltsim::process::enter(2002);
    let mut ctx = [0u8; CONNECT_CONTEXT_BYTES];
    ConnectContext::new(Role::Decider).encode(&mut ctx).unwrap();
    let raw =
        |bytes: &[u8]| common::try_connect_raw(bytes.as_ptr().cast::<c_void>(), bytes.len() as u16);
    // Wrong size.
    assert_eq!(raw(&ctx[..12]).err(), Some(hr::INFO_LENGTH_MISMATCH));
    // Bad magic.
    let mut bad = ctx;
    bad[0] = b'X';
    assert_eq!(raw(&bad).err(), Some(hr::E_INVALIDARG));
    // Other protocol version.
    let mut bad = ctx;
    bad[2] = 9;
    assert_eq!(raw(&bad).err(), Some(hr::REVISION_MISMATCH));
    // Unknown role.
    let mut bad = ctx;
    bad[8] = 7;
    assert_eq!(raw(&bad).err(), Some(hr::E_INVALIDARG));
    // Nothing of that left a connection behind.
    assert_eq!(fltsim::port::open_connections(), 0);
    drop(_p);
    sim.unload_and_check_pool();
}

#[test]
fn non_administrators_cannot_connect() {
    let sim = Sim::start();
    fltsim::process::spawn(2500, "user.exe", false);
    assert_eq!(
        try_connect(2500, Some(Role::Observer)).err(),
        Some(hr::E_ACCESSDENIED)
    );
    sim.unload_and_check_pool();
}

#[test]
fn client_process_exit_disconnects_it() {
    for wake in common::DISCONNECT_WAKES {
        client_process_exit_disconnects_it_under(wake);
    }
}

fn client_process_exit_disconnects_it_under(wake: fltsim::readings::DisconnectWake) {
    let sim = Sim::start_with(fltsim::Readings::HARSHEST.with_disconnect_wake(wake));
    // Its handle is closed by the process exit below.
    let _observer = connect(2001, Role::Observer);
    let other = connect(2002, Role::Observer);
    assert_eq!(other.stats().connected_clients, 2);
    fltsim::process::exit(2001);
    assert_eq!(other.stats().connected_clients, 1);
    other.close();
    sim.unload_and_check_pool();
}

#[test]
fn control_connection_gets_commands_but_no_events_and_shares_the_observer_slots() {
    let sim = Sim::start();
    let control = connect(2101, Role::Control);
    assert_eq!(control.hello().role, Role::Control);
    for i in 0..20 {
        let outcome = common::create_as(2102, &format!("C:\\Users\\a\\file{i}.txt"));
        assert_eq!(outcome.status, 0);
    }
    let stats = control.stats();
    assert_eq!(
        (stats.connected_clients, stats.deciders, stats.observers),
        (1, 0, 0),
        "a control connection is connected but neither decider nor observer"
    );
    assert_eq!(stats.events_seen, 20);
    assert_eq!(
        (stats.queue_enqueued, stats.batches_sent, stats.notify_sent),
        (0, 0, 0),
        "nothing is queued or sent for a control connection"
    );
    assert_eq!(fltsim::port::queued_requests(), 0);
    // Control connections count against the non-decider slots like observers do.
    let observers: Vec<_> = (0..portfilter::MAX_CONNECTIONS - 2)
        .map(|i| connect(3000 + i as u32, Role::Observer))
        .collect();
    assert_eq!(
        try_connect(3100, Some(Role::Control)).err(),
        Some(hr::CONNECTION_LIMIT)
    );
    let decider = connect(3200, Role::Decider);
    decider.close();
    for o in observers {
        o.close();
    }
    control.close();
    sim.unload_and_check_pool();
}
