//! `FilterConnectCommunicationPort` with arbitrary context bytes and sizes (the driver's
//! Connect callback parses them). A connect either fails with an HRESULT or yields a
//! connection that answers Hello; either way nothing leaks once it is closed and no
//! verifier rule fires.
//!
//! Input: mode (1 byte: bit 0 NULL context with a non-zero size, bit 1 a size that claims
//! more than the bytes given), then the context bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portfilter_fuzz::{BufferKind, Driver, Setup, connect_raw, send};
use portfilter_protocol::{Command, HELLO_REPLY_BYTES, encode_request};
use windows_sys::Win32::Foundation::CloseHandle;

fuzz_target!(|data: &[u8]| {
    let [mode, context @ ..] = data else {
        return;
    };
    let Ok(len) = u16::try_from(context.len()) else {
        return;
    };
    Driver::with(Setup::Bare, |_driver| {
        // A heap copy so that a size claiming more than given stays inside our memory.
        let mut buf = context.to_vec();
        let claimed = if mode & 2 != 0 {
            buf.resize(usize::from(len) + 64, 0xA5);
            len.saturating_add(64)
        } else {
            len
        };
        let ptr = if mode & 1 != 0 {
            std::ptr::null()
        } else {
            buf.as_ptr().cast()
        };
        if let Ok(handle) = connect_raw(ptr, claimed) {
            let mut request = [0u8; 8];
            encode_request(Command::Hello, &mut request).expect("hello encodes");
            let (hr, n) = send(
                handle,
                &request,
                BufferKind::Valid,
                HELLO_REPLY_BYTES,
                BufferKind::Valid,
            );
            assert_eq!(
                (hr, n as usize),
                (0, HELLO_REPLY_BYTES),
                "a connection answers Hello"
            );
            // SAFETY: our handle, closed once.
            unsafe { CloseHandle(handle) };
        }
    });
});
