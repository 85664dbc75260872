//! Error mapping for each connect failure a user meets, against the real driver under
//! fltsim: driver not loaded, not elevated, connection limit, second decider, protocol
//! version mismatch.

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

mod common;

use common::Sim;
use portfilter_client::protocol::{CONNECT_CONTEXT_BYTES, ConnectContext};
use portfilter_client::{ConnectOptions, Connection, Error, Hresult, Role};

fn connect(role: Role) -> Result<Connection, Error> {
    Connection::connect(role, &ConnectOptions::default())
}

#[test]
fn driver_not_loaded_is_port_not_found() {
    let _sim = Sim::boot_without_driver();
    let error = connect(Role::Observer).unwrap_err();
    assert!(matches!(error, Error::DriverNotLoaded { .. }), "{error:?}");
    assert_eq!(error.hresult(), Some(Hresult::FILE_NOT_FOUND));
    let text = error.to_string();
    assert!(text.contains("0x80070002"), "{text}");
    assert!(
        text.contains("fltmc load portfilter"),
        "message says what to do: {text}"
    );
    assert!(!text.contains('\n'), "one line: {text}");
}

#[test]
fn non_admin_is_access_denied() {
    let _sim = Sim::boot();
    fltsim::process::spawn(3000, "user.exe", false);
    let _user = fltsim::process::enter(3000);
    let error = connect(Role::Observer).unwrap_err();
    assert!(matches!(error, Error::AccessDenied { .. }), "{error:?}");
    assert_eq!(error.hresult(), Some(Hresult::ACCESS_DENIED));
    assert!(error.to_string().contains("elevated"), "{error}");
}

#[test]
fn one_observer_too_many_is_connection_limit() {
    let _sim = Sim::boot();
    // The driver keeps one of its 8 slots for the decider: 7 observers fit.
    let observers: Vec<Connection> = (0..7)
        .map(|_| connect(Role::Observer).expect("observer"))
        .collect();
    let error = connect(Role::Observer).unwrap_err();
    assert!(matches!(error, Error::ConnectionLimit { .. }), "{error:?}");
    assert_eq!(error.hresult(), Some(Hresult::CONNECTION_COUNT_LIMIT));
    // The decider's slot is still free.
    let decider = connect(Role::Decider).expect("decider");
    drop(decider);
    // Closing one observer frees a slot.
    drop(observers.into_iter().next());
    connect(Role::Observer).expect("a slot was freed");
}

#[test]
fn second_decider_is_refused_and_the_first_keeps_working() {
    let _sim = Sim::boot();
    let first = connect(Role::Decider).expect("first decider");
    let error = connect(Role::Decider).unwrap_err();
    assert!(matches!(error, Error::DeciderBusy { .. }), "{error:?}");
    assert_eq!(error.hresult(), Some(Hresult::SHARING_VIOLATION));
    assert!(error.to_string().contains("another client"), "{error}");
    first.ping().expect("the first decider is unaffected");
    drop(first);
    connect(Role::Decider).expect("a decider can connect once the first left");
}

#[test]
fn other_protocol_version_is_a_version_mismatch() {
    let _sim = Sim::boot();
    let mut context = [0u8; CONNECT_CONTEXT_BYTES];
    ConnectContext {
        role: Role::Observer,
    }
    .encode(&mut context)
    .unwrap();
    // Header: magic u16, version u16 at offset 2.
    context[2..4]
        .copy_from_slice(&(portfilter_client::protocol::PROTOCOL_VERSION + 1).to_le_bytes());
    let error =
        Connection::connect_with_context(Role::Observer, &ConnectOptions::default(), &context)
            .unwrap_err();
    assert!(matches!(error, Error::VersionMismatch { .. }), "{error:?}");
    assert_eq!(error.hresult(), Some(Hresult::REVISION_MISMATCH));
    assert!(error.to_string().contains("same release"), "{error}");
}

#[test]
fn a_wrong_port_name_is_not_found_too() {
    let _sim = Sim::boot();
    let options = ConnectOptions {
        port_name: "\\NoSuchPort".to_owned(),
        ..ConnectOptions::default()
    };
    let error = Connection::connect(Role::Observer, &options).unwrap_err();
    assert!(
        matches!(error, Error::DriverNotLoaded { ref port, .. } if port == "\\NoSuchPort"),
        "{error:?}"
    );
}
