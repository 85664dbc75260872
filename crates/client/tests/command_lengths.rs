//! The client's commands do not depend on a length arriving with an error: whether
//! `lpBytesReturned` carries the needed size with `STATUS_BUFFER_TOO_SMALL` is disputed
//! (shared/docs/port-semantics.md), so every command passes `Command::max_output_bytes()`
//! and reads the length only on success. Checked under both of fltsim's readings.

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

mod common;

use common::{Sim, connect};
use fltsim::readings::ErrorLength;
use portfilter_client::Role;

#[test]
fn every_command_works_whether_or_not_lengths_come_back_with_errors() {
    for reading in [ErrorLength::Dropped, ErrorLength::Kept] {
        let _sim = Sim::boot();
        fltsim::readings::set(fltsim::Readings::HARSHEST.with_error_length(reading));
        let control = connect(Role::Control);
        let pong = control.ping().unwrap();
        assert_eq!(pong.hello.role, Role::Control, "{reading:?}");
        assert_eq!(control.stats().unwrap().connected_clients, 1);
        let mut config = control.config().unwrap();
        config.reply_timeout_ms = 777;
        assert_eq!(control.set_config(&config).unwrap(), config, "{reading:?}");
        assert_eq!(control.config().unwrap().reply_timeout_ms, 777);
    }
}
