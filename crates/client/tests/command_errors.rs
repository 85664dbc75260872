//! How a command (or receive) the port refuses reaches the caller: a refusal for the
//! protocol revision is a version mismatch, a closed connection is `Disconnected`, and any
//! other refusal is a `Call` error naming the operation and the HRESULT. A stand-in
//! minifilter under fltsim answers the connect's Hello like portfilter, then refuses every
//! command with the status the test sets (or holds a command until the test lets it go).

// Linux only: fltsim does not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

mod common;

use common::stand_in;
use portfilter_bindings::*;
use portfilter_client::protocol::{
    Delivery, DriverVersion, HELLO_REPLY_BYTES, HelloReply, PROTOCOL_VERSION,
};
use portfilter_client::{ConnectOptions, Connection, Error, Hresult, Role};
use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

const PORT_NAME: &str = r"\RefusingPortFilterPort";
const CLIENT_PID: u32 = 2000;

/// The status every command gets; `STATUS_SUCCESS` answers with the Hello reply.
static REFUSE_WITH: AtomicI32 = AtomicI32::new(STATUS_SUCCESS);
/// While set, a command waits in MessageNotify (after setting `HELD`).
static HOLD: AtomicBool = AtomicBool::new(false);
/// A command is waiting in MessageNotify.
static HELD: AtomicBool = AtomicBool::new(false);

/// Refuses with `REFUSE_WITH`, or answers with portfilter's Hello reply.
unsafe extern "system" fn message_notify(
    _cookie: *mut c_void,
    _input: *mut c_void,
    _input_len: u32,
    output: *mut c_void,
    output_len: u32,
    returned: *mut u32,
) -> NTSTATUS {
    while HOLD.load(Ordering::SeqCst) {
        HELD.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(1));
    }
    let refusal = REFUSE_WITH.load(Ordering::SeqCst);
    if refusal != STATUS_SUCCESS {
        return refusal;
    }
    let mut reply = [0u8; HELLO_REPLY_BYTES];
    HelloReply {
        driver_version: DriverVersion {
            major: 0,
            minor: 1,
            patch: 0,
        },
        protocol_version: PROTOCOL_VERSION,
        role: Role::Observer,
        connection_id: 1,
        observer_delivery: Delivery::Notify,
    }
    .encode(&mut reply)
    .unwrap();
    if (output_len as usize) < reply.len() {
        return STATUS_BUFFER_TOO_SMALL;
    }
    // SAFETY: a fault-tolerant copy to the caller's buffer, whose length was checked;
    // `returned` is the model's valid out pointer.
    unsafe {
        let st = PfCopyToUser(output, reply.as_ptr().cast(), reply.len());
        if !nt_success(st) {
            return st;
        }
        *returned = reply.len() as u32;
    }
    STATUS_SUCCESS
}

fn boot() -> stand_in::SingleClient {
    stand_in::SingleClient::boot(PORT_NAME, message_notify, CLIENT_PID)
}

/// Connects (the Hello succeeds), then makes the driver refuse with `status`.
fn connect_then_refuse_with(status: NTSTATUS) -> Connection {
    REFUSE_WITH.store(STATUS_SUCCESS, Ordering::SeqCst);
    let connection = connect(false);
    REFUSE_WITH.store(status, Ordering::SeqCst);
    connection
}

fn connect(synchronous: bool) -> Connection {
    let options = ConnectOptions {
        port_name: PORT_NAME.to_owned(),
        synchronous,
    };
    Connection::connect(Role::Observer, &options).expect("connect")
}

#[test]
fn a_command_refused_for_its_revision_is_a_version_mismatch() {
    let _driver = boot();
    let connection = connect_then_refuse_with(STATUS_REVISION_MISMATCH);
    for error in [
        connection.stats().unwrap_err(),
        connection.config().unwrap_err(),
        connection.ping().unwrap_err(),
    ] {
        let Error::VersionMismatch {
            client, hresult, ..
        } = &error
        else {
            panic!("{error:?}")
        };
        assert_eq!(
            (*client, *hresult),
            (PROTOCOL_VERSION, Some(Hresult::REVISION_MISMATCH))
        );
        assert_eq!(error.hresult(), Some(Hresult::REVISION_MISMATCH));
    }
}

#[test]
fn a_command_refused_for_another_reason_names_the_call_and_its_code() {
    let _driver = boot();
    let connection = connect_then_refuse_with(STATUS_INVALID_PARAMETER);
    let error = connection.stats().unwrap_err();
    assert!(
        matches!(
            error,
            Error::Call {
                operation: "FilterSendMessage(GetStats)",
                hresult: Hresult::INVALID_ARG,
            }
        ),
        "{error:?}"
    );
    REFUSE_WITH.store(STATUS_NOT_SUPPORTED, Ordering::SeqCst);
    let error = connection.config().unwrap_err();
    assert!(
        matches!(
            error,
            Error::Call {
                operation: "FilterSendMessage(GetConfig)",
                hresult: Hresult::NOT_SUPPORTED,
            }
        ),
        "{error:?}"
    );
}

#[test]
fn a_command_on_a_closed_connection_is_disconnected() {
    let _driver = boot();
    let connection = connect_then_refuse_with(STATUS_PORT_DISCONNECTED);
    let error = connection.stats().unwrap_err();
    assert!(matches!(error, Error::Disconnected), "{error:?}");
}

#[test]
fn a_connection_reports_how_it_was_opened() {
    let _driver = boot();
    let connection = connect(true);
    assert_eq!(connection.port_name(), PORT_NAME);
    assert_eq!(connection.role(), Role::Observer);
    assert!(connection.is_synchronous());
}

#[test]
fn on_a_synchronous_handle_a_command_waits_for_another_command_to_end() {
    let _driver = boot();
    let connection = connect(true);
    HOLD.store(true, Ordering::SeqCst);
    std::thread::scope(|scope| {
        let first = scope.spawn(|| connection.ping().map(|_| ()));
        while !HELD.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        // The first ping is inside FilterSendMessage: the second must wait for it (only
        // a receive, which holds the handle until the next message, is refused).
        let second = scope.spawn(|| connection.ping().map(|_| ()));
        std::thread::sleep(Duration::from_millis(200));
        HOLD.store(false, Ordering::SeqCst);
        let (first, second) = (first.join().unwrap(), second.join().unwrap());
        assert!(first.is_ok(), "{first:?}");
        assert!(
            second.is_ok(),
            "the second command waited its turn: {second:?}"
        );
    });
}

#[test]
fn a_receive_that_fails_is_a_call_error_not_the_end_of_the_stream() {
    let _driver = boot();
    let connection = connect(false);
    // A message larger than any the driver sends: the Filter Manager completes the
    // client's FilterGetMessage with STATUS_BUFFER_TOO_SMALL (the sender keeps waiting,
    // here until its 2 s timeout).
    let sender = std::thread::spawn(|| {
        let mut message = vec![0u8; portfilter_client::message::MAX_MESSAGE_BYTES + 4096];
        let mut relative = -20_000_000i64; // 2 s
        // SAFETY: the filter and client port are live while the test's connection is;
        // the buffer and timeout outlive the call.
        unsafe {
            FltSendMessage(
                stand_in::filter(),
                stand_in::CLIENT_PORT.as_ptr(),
                message.as_mut_ptr().cast(),
                u32::try_from(message.len()).unwrap(),
                null_mut(),
                null_mut(),
                (&raw mut relative).cast(),
            )
        }
    });
    let mut buffer = portfilter_client::MessageBuffer::new();
    let error = connection.receive(&mut buffer).map(|_| ()).unwrap_err();
    assert!(
        matches!(
            error,
            Error::Call {
                operation: "FilterGetMessage",
                hresult: Hresult::INSUFFICIENT_BUFFER,
            }
        ),
        "{error:?}"
    );
    assert_ne!(
        sender.join().unwrap(),
        STATUS_SUCCESS,
        "no one took the message"
    );
}
