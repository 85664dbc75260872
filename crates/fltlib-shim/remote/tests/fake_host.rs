//! The shim against a scripted fake host: what each Win32 call puts on the wire and how
//! each answer becomes the caller's result. (The real host: crates/sim-host/tests.)
//!
//! One test function: the shim's socket is process-wide.
// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]
#![allow(clippy::cast_sign_loss, clippy::cast_possible_wrap)]

use fltlib_remote::{
    CloseHandle, FilterConnectCommunicationPort, FilterGetMessage, FilterSendMessage,
};
use portfilter_sim_wire::{
    Envelope, FRAME_DEADLINE, FromHost, Incoming, Segment, ToHost, UserBuf, WIRE_VERSION, decode,
    encode, read_frame, write_frame,
};
use std::ffi::c_void;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::mpsc;
use std::time::Duration;

fn recv(s: &mut UnixStream) -> Envelope<ToHost> {
    match read_frame(s, FRAME_DEADLINE).unwrap() {
        Incoming::Frame(f) => decode(&f).unwrap(),
        other => panic!("expected a frame, got {other:?}"),
    }
}

fn answer(s: &mut UnixStream, id: u64, body: FromHost) {
    write_frame(s, &encode(&Envelope { id, body })).unwrap();
}

fn connect() -> (i32, *mut c_void) {
    let name: Vec<u16> = "\\P".encode_utf16().chain([0]).collect();
    let mut port: *mut c_void = std::ptr::null_mut();
    // SAFETY: valid name and out pointer, no context.
    let hr = unsafe {
        FilterConnectCommunicationPort(
            name.as_ptr(),
            0,
            std::ptr::null(),
            0,
            std::ptr::null(),
            &mut port,
        )
    };
    (hr, port)
}

#[test]
fn shim_speaks_the_wire_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake.sock");
    // SAFETY: the only test of this process.
    unsafe { std::env::set_var("PORTFILTER_SIM_SOCKET", &path) };

    // No host: "port not found", the handle is INVALID_HANDLE_VALUE.
    let (hr, port) = connect();
    assert_eq!(hr as u32, 0x8007_0002);
    assert_eq!(port as usize, usize::MAX);

    let listener = UnixListener::bind(&path).unwrap();
    let (seen_tx, seen) = mpsc::channel::<ToHost>();
    let host = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let hello = recv(&mut s);
        assert!(matches!(
            hello.body,
            ToHost::Hello {
                version: WIRE_VERSION,
                drop_admin: false
            }
        ));
        answer(
            &mut s,
            hello.id,
            FromHost::Hello {
                version: WIRE_VERSION,
                host_pid: 1,
                sim_pid: 2,
                admin: true,
            },
        );
        while let Ok(Incoming::Frame(f)) = read_frame(&mut s, FRAME_DEADLINE) {
            let Envelope { id, body } = decode::<ToHost>(&f).unwrap();
            seen_tx.send(body.clone()).unwrap();
            match body {
                ToHost::Connect { .. } => {
                    answer(&mut s, id, FromHost::Connected { status: 0, conn: 5 })
                }
                ToHost::Get {
                    token,
                    capacity: 64,
                    ..
                } => {
                    // The completion overtakes the "queued" answer: the shim must cope.
                    answer(
                        &mut s,
                        0,
                        FromHost::GetDone {
                            token,
                            status: 0,
                            information: 24,
                            segments: vec![
                                Segment {
                                    offset: 0,
                                    data: 8u32.to_le_bytes().to_vec(),
                                },
                                Segment {
                                    offset: 8,
                                    data: 42u64.to_le_bytes().to_vec(),
                                },
                                Segment {
                                    offset: 16,
                                    data: b"PAYLOAD!".to_vec(),
                                },
                            ],
                        },
                    );
                    answer(&mut s, id, FromHost::GetQueued { status: 0x103 });
                }
                ToHost::Get { .. } => {
                    answer(
                        &mut s,
                        id,
                        FromHost::GetQueued {
                            status: 0xC000_0037_u32 as i32,
                        },
                    );
                }
                ToHost::Send {
                    input: UserBuf::Bytes { data, .. },
                    ..
                } => {
                    let mut out = data.clone();
                    out.reverse();
                    answer(
                        &mut s,
                        id,
                        FromHost::Sent {
                            status: 0,
                            returned: 4,
                            output: Some(out),
                        },
                    );
                }
                ToHost::Send { .. } => {
                    answer(
                        &mut s,
                        id,
                        FromHost::Sent {
                            status: 0xC000_0005_u32 as i32,
                            returned: 0,
                            output: None,
                        },
                    );
                }
                ToHost::Close { .. } => answer(&mut s, id, FromHost::Status { status: 0 }),
                other => panic!("unexpected {other:?}"),
            }
        }
    });

    let (hr, port) = connect();
    assert_eq!(hr, 0);
    match seen.recv().unwrap() {
        ToHost::Connect {
            name,
            options,
            context,
        } => {
            assert_eq!(String::from_utf16(&name).unwrap(), "\\P");
            assert_eq!(options, 0);
            assert!(context.is_empty());
        }
        other => panic!("{other:?}"),
    }

    // A synchronous get completed out of order; header padding (bytes 4..8) untouched.
    let mut buf = [u64::from_le_bytes([0xEE; 8]); 8];
    // SAFETY: a 64-byte, 8-aligned buffer; synchronous call.
    let hr = unsafe { FilterGetMessage(port, buf.as_mut_ptr().cast(), 64, std::ptr::null_mut()) };
    assert_eq!(hr, 0);
    let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_le_bytes()).collect();
    assert_eq!(&bytes[0..4], &8u32.to_le_bytes());
    assert_eq!(&bytes[4..8], &[0xEE; 4]);
    assert_eq!(&bytes[8..16], &42u64.to_le_bytes());
    assert_eq!(&bytes[16..24], b"PAYLOAD!");
    assert!(matches!(
        seen.recv().unwrap(),
        ToHost::Get {
            conn: 5,
            capacity: 64,
            ..
        }
    ));

    // An immediate failure: the call returns it (STATUS_PORT_DISCONNECTED → 0x80070006).
    // SAFETY: as above.
    let hr = unsafe { FilterGetMessage(port, buf.as_mut_ptr().cast(), 32, std::ptr::null_mut()) };
    assert_eq!(hr as u32, 0x8007_0006);
    let _ = seen.recv().unwrap();

    // Send: the input travels with its alignment; the output comes back.
    let input = [1u8, 2, 3, 4];
    let mut output = [0u8; 4];
    let mut returned = 0u32;
    // SAFETY: live buffers.
    let hr = unsafe {
        FilterSendMessage(
            port,
            input.as_ptr().cast(),
            4,
            output.as_mut_ptr().cast(),
            4,
            &mut returned,
        )
    };
    assert_eq!((hr, returned, output), (0, 4, [4, 3, 2, 1]));
    match seen.recv().unwrap() {
        ToHost::Send {
            conn: 5,
            input: UserBuf::Bytes { align, data },
            output: UserBuf::Bytes { data: out, .. },
        } => {
            assert_eq!(usize::from(align), input.as_ptr() as usize % 16);
            assert_eq!(data, vec![1, 2, 3, 4]);
            assert_eq!(out, vec![0; 4]);
        }
        other => panic!("{other:?}"),
    }

    // A bad input pointer is never dereferenced: it travels as "faults".
    // SAFETY: the shim must not touch address 0x18.
    let hr = unsafe {
        FilterSendMessage(
            port,
            0x18 as *const c_void,
            8,
            std::ptr::null_mut(),
            0,
            &mut returned,
        )
    };
    assert_eq!(hr as u32, 0x8007_03E6);
    match seen.recv().unwrap() {
        ToHost::Send {
            input: UserBuf::Fault { align: 8, len: 8 },
            output: UserBuf::Null { len: 0 },
            ..
        } => {}
        other => panic!("{other:?}"),
    }

    assert_eq!(CloseHandle(port), 1);
    assert!(matches!(seen.recv().unwrap(), ToHost::Close { conn: 5 }));
    assert_eq!(CloseHandle(port), 0, "double close fails");
    drop(seen);
    // The fake host ends when the process exits; do not wait for it.
    drop(host);
}
