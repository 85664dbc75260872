//! The client against a buggy (or hostile) minifilter: a small test filter under fltsim
//! that answers the Hello like portfilter but then sends whatever bytes the test asks
//! for. The client must survive every such message: no panic, the message counted as
//! malformed, the next message handled, and shutdown still drains every request.

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

mod common;

use common::stand_in;
use portfilter_bindings::*;
use portfilter_client::protocol::{
    Delivery, DriverVersion, EventFields, EventView, HELLO_REPLY_BYTES, HelloReply,
    PROTOCOL_VERSION, encode_event,
};
use portfilter_client::{
    ConnectOptions, Connection, EndReason, Engine, EngineOptions, Error, Handler, Role, Verdict,
};
use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const PORT_NAME: &str = r"\FakePortFilterPort";
const CLIENT_PID: u32 = 2000;

/// Answers every command with portfilter's Hello reply (the client sends only Hello).
unsafe extern "system" fn message_notify(
    _cookie: *mut c_void,
    _input: *mut c_void,
    _input_len: u32,
    output: *mut c_void,
    output_len: u32,
    returned: *mut u32,
) -> NTSTATUS {
    let mut reply = [0u8; HELLO_REPLY_BYTES];
    HelloReply {
        driver_version: DriverVersion {
            major: 0,
            minor: 1,
            patch: 0,
        },
        protocol_version: PROTOCOL_VERSION,
        role: Role::Decider,
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

/// Sends `bytes` to the connected client as a notification (no reply buffer); waits up
/// to `timeout` for a request to take it.
fn send_raw(bytes: &[u8], timeout: Duration) -> NTSTATUS {
    let mut buffer = bytes.to_vec();
    let mut relative = -i64::try_from(timeout.as_nanos() / 100).unwrap();
    // SAFETY: the filter and client port are live while the test's connection is; the
    // buffer and timeout outlive the call.
    unsafe {
        FltSendMessage(
            stand_in::filter(),
            stand_in::CLIENT_PORT.as_ptr(),
            buffer.as_mut_ptr().cast(),
            u32::try_from(buffer.len()).unwrap(),
            null_mut(),
            null_mut(),
            (&raw mut relative).cast(),
        )
    }
}

/// A well-formed notification for `sequence`.
fn valid_event(sequence: u64) -> Vec<u8> {
    let name: Vec<u16> = r"\Device\HarddiskVolume1\ok.txt".encode_utf16().collect();
    let fields = EventFields {
        sequence,
        process_id: 1000,
        volume_name_len: 46,
        ..EventFields::default()
    };
    let mut out = vec![0u8; 512];
    let len = encode_event(&fields, &name, &mut out).unwrap();
    out.truncate(len);
    out
}

fn boot() -> stand_in::SingleClient {
    stand_in::SingleClient::boot(PORT_NAME, message_notify, CLIENT_PID)
}

fn connect() -> Arc<Connection> {
    let options = ConnectOptions {
        port_name: PORT_NAME.to_owned(),
        synchronous: false,
    };
    Arc::new(Connection::connect(Role::Decider, &options).expect("connect"))
}

/// Counts events; its `on_malformed` panics (a buggy user handler).
#[derive(Default)]
struct PanicsOnMalformed {
    events: AtomicU64,
}

impl Handler for PanicsOnMalformed {
    fn on_event(&self, _event: &EventView<'_>) -> Verdict {
        self.events.fetch_add(1, Ordering::SeqCst);
        Verdict::Allow
    }

    fn on_malformed(&self, error: &portfilter_client::protocol::Error) {
        panic!("handler bug while reporting {error}");
    }
}

#[test]
fn a_panicking_malformed_handler_costs_one_message_not_the_engine() {
    let _fake = boot();
    let connection = connect();
    let handler = Arc::new(PanicsOnMalformed::default());
    // One request, one worker: if the worker dies, nothing is received any more.
    let engine = Engine::start(
        connection,
        handler.clone(),
        EngineOptions {
            requests: 1,
            workers: 1,
        },
    )
    .expect("engine");

    assert_eq!(
        send_raw(&[0xA5; 40], Duration::from_secs(10)),
        STATUS_SUCCESS
    );
    let after = send_raw(&valid_event(7), Duration::from_secs(10));
    engine.stopper().stop();
    let ended = engine.wait_timeout(Duration::from_secs(10));
    let stats = engine.stats();
    if ended.is_none() {
        // A worker died holding a request: dropping the engine would wait forever.
        std::mem::forget(engine);
        panic!("the engine never ended after stop ({stats:?}; second send {after:#x})");
    }
    let (reason, stats) = engine.wait();
    assert_eq!(reason, EndReason::Stopped);
    assert_eq!(after, STATUS_SUCCESS, "the message after the malformed one");
    assert_eq!(handler.events.load(Ordering::SeqCst), 1);
    assert_eq!((stats.malformed, stats.handler_panics), (1, 1), "{stats:?}");
}

/// Garbage derived from a valid event: truncations, and single-byte corruptions of
/// every header and field byte, plus a few pure-noise messages.
fn garbage() -> Vec<Vec<u8>> {
    let valid = valid_event(1);
    let mut out: Vec<Vec<u8>> = (1..valid.len()).map(|n| valid[..n].to_vec()).collect();
    for i in 0..valid.len().min(96) {
        for value in [0x00, 0x01, 0x7F, 0x80, 0xFF] {
            let mut m = valid.clone();
            m[i] = value;
            out.push(m);
        }
    }
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    for len in [1, 7, 8, 16, 63, 64, 200, 1000] {
        out.push(
            (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state.to_le_bytes()[0]
                })
                .collect(),
        );
    }
    out
}

#[test]
fn the_blocking_api_survives_garbage_from_the_driver() {
    let _fake = boot();
    let connection = connect();
    let messages = garbage();
    let count = messages.len();
    let sender = std::thread::spawn(move || {
        let mut failed = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            let st = send_raw(m, Duration::from_secs(10));
            if st != STATUS_SUCCESS {
                failed.push((i, st));
            }
        }
        // Then one good event, which must still come through.
        (failed, send_raw(&valid_event(99), Duration::from_secs(10)))
    });
    let mut buffer = portfilter_client::MessageBuffer::new();
    let mut decoded = 0;
    for _ in 0..=count {
        match connection.receive(&mut buffer) {
            Ok(Some(_)) => decoded += 1,
            Ok(None) => panic!("the connection ended"),
            Err(Error::Protocol { .. }) => {}
            Err(error) => panic!("{error}"),
        }
    }
    let (failed, last) = sender.join().unwrap();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(last, STATUS_SUCCESS);
    assert!(decoded >= 1, "at least the final valid event decodes");
}

#[derive(Default)]
struct Counts {
    events: AtomicU64,
    malformed: AtomicU64,
}

impl Handler for Counts {
    fn on_event(&self, _event: &EventView<'_>) -> Verdict {
        self.events.fetch_add(1, Ordering::SeqCst);
        Verdict::Allow
    }

    fn on_malformed(&self, _error: &portfilter_client::protocol::Error) {
        self.malformed.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn the_engine_survives_garbage_and_accounts_for_every_message() {
    let _fake = boot();
    let connection = connect();
    let handler = Arc::new(Counts::default());
    let engine =
        Engine::start(connection, handler.clone(), EngineOptions::default()).expect("engine");
    let mut messages = garbage();
    messages.push(valid_event(99));
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(
            send_raw(m, Duration::from_secs(10)),
            STATUS_SUCCESS,
            "message {i}"
        );
    }
    engine.stopper().stop();
    assert_eq!(
        engine.wait_timeout(Duration::from_secs(10)),
        Some(EndReason::Stopped)
    );
    let (_, stats) = engine.wait();
    let (events, malformed) = (
        handler.events.load(Ordering::SeqCst),
        handler.malformed.load(Ordering::SeqCst),
    );
    // The engine decodes exactly the bytes transferred: truncations never decode.
    assert_eq!(stats.messages, messages.len() as u64, "{stats:?}");
    assert_eq!(events + malformed, messages.len() as u64, "{stats:?}");
    assert_eq!((stats.malformed, stats.handler_panics), (malformed, 0));
    assert!(events >= 1, "the final valid event decodes");
}
