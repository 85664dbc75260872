//! The driver's attack surface: `FilterSendMessage` → MessageNotify with arbitrary input
//! bytes, arbitrary sizes, NULL and faulting buffers, on a connection of each role
//! (decider, observer, control), against the real driver loaded in fltsim.
//!
//! Input: role (1 byte), mode (1 byte: bit 0 NULL input, bit 1 NULL output, bit 2 input
//! in an inaccessible page, bit 3 output in an inaccessible page), output size (u16 LE),
//! then the input bytes. Checked: no panic, no verifier finding (a direct dereference of
//! a user buffer aborts in fltsim), bytes returned within the output, and the driver
//! keeps answering Hello.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portfilter_fuzz::{BufferKind, Driver, Setup, send};

fuzz_target!(|data: &[u8]| {
    let [role, mode, lo, hi, input @ ..] = data else {
        return;
    };
    Driver::with(Setup::Connected, |driver| {
        let port = driver.port(*role);
        let out_len = usize::from(u16::from_le_bytes([*lo, *hi]));
        let _ = send(
            port,
            input,
            BufferKind::from_bits(*mode, 1, 4),
            out_len,
            BufferKind::from_bits(*mode, 2, 8),
        );
    });
});
