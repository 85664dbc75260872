//! Issue 10, item 1, across the socket: a decider built on portfilter-client's blocking
//! API receives on one thread while other threads reply and send commands on the same
//! (overlapped) connection, through the shim (what `portctl` links) to a real
//! `portfilter-sim`. Every event arrives once, in order; every create gets its verdict;
//! the host's verifier sees no handle-rule violation (a receive waiting on the handle
//! would be woken by the other threads' calls: the shim reports that to the host).
//!
//! One test function: the shim's socket is process-wide.
#![cfg(unix)]

mod common;

use common::Host;
use fltlib_shim as _;
use portfilter_client::protocol::Decision;
use portfilter_client::{ConnectOptions, Connection, Role};
use std::sync::Arc;
use std::time::Duration;
use test_support::decider_threads;

const CREATES: usize = 12;

#[test]
fn a_decider_receiving_on_one_thread_while_others_reply_and_send_commands_over_the_socket() {
    let host = Arc::new(Host::start());
    // SAFETY: set before any other thread of this test reads the environment.
    unsafe { std::env::set_var("PORTFILTER_SIM_SOCKET", &host.socket) };
    {
        let control = Connection::connect(Role::Control, &ConnectOptions::default()).unwrap();
        let mut config = control.config().unwrap();
        config.reply_timeout_ms = 10_000;
        config.default_verdict = Decision::Allow;
        control.set_config(&config).unwrap();
    }
    let decider = Arc::new(Connection::connect(Role::Decider, &ConnectOptions::default()).unwrap());
    decider_threads::run(
        &decider,
        decider_threads::Creates {
            count: CREATES,
            // `portfilter-sim create`: exit code 0 allowed, 1 denied.
            create: {
                let host = host.clone();
                move |path: &str| host.create(path).code
            },
            allowed: Some(0),
            denied: Some(1),
            within: Duration::from_secs(120),
        },
    );
    drop(decider);

    let host = Arc::into_inner(host).expect("the creator thread is done");
    let (status, report) = host.stop_with_status();
    assert!(report.contains("verifier: no violations"), "{report}");
    assert!(status.success(), "{report}");
}
