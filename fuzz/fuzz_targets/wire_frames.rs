//! The Unix-socket protocol between `portfilter-sim` and `libfltlib_shim.so`: a byte stream
//! read as frames (never allocating past the limit), each frame decoded both as a
//! request to the host and as an answer to the shim. Whatever decodes re-encodes to the
//! same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portfilter_sim_wire::{
    FromHost, Incoming, MAX_FRAME_BYTES, ToHost, decode, encode, read_frame,
};
use std::io::Cursor;
use std::time::Duration;

fn check<T>(body: &[u8])
where
    T: serde::Serialize + for<'de> serde::Deserialize<'de> + PartialEq + std::fmt::Debug,
{
    if let Ok(envelope) = decode::<T>(body) {
        let again = encode(&envelope);
        assert_eq!(
            decode::<T>(&again).expect("re-encoded frame decodes"),
            envelope
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut stream = Cursor::new(data);
    for _ in 0..64 {
        match read_frame(&mut stream, Duration::from_millis(1)) {
            Ok(Incoming::Frame(body)) => {
                assert!(body.len() <= MAX_FRAME_BYTES);
                check::<ToHost>(&body);
                check::<FromHost>(&body);
            }
            Ok(Incoming::Idle | Incoming::Closed) | Err(_) => break,
        }
    }
});
