//! The asynchronous decider against the real driver under fltsim: pended creates arrive
//! as request batches, verdicts sent in batches decide them, and the client's counts agree
//! with the driver's.

// Linux only: fltsim does not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

mod common;

use common::{STATUS_ACCESS_DENIED, STATUS_SUCCESS, Sim, configure, create};
use portfilter_client::async_decider::{AsyncDecider, Batching};
use portfilter_client::{ConnectOptions, Verdict};
use std::thread;

#[test]
fn pended_creates_arrive_in_counted_messages_and_batched_verdicts_decide_them() {
    let _sim = Sim::boot();
    configure(|c| c.reply_timeout_ms = 20_000);
    let decider = AsyncDecider::connect(&ConnectOptions::default()).expect("async decider");
    let creators = thread::spawn(|| {
        ["a.txt", "b.tmp", "c.txt", "d.tmp"]
            .map(|name| (name, create(&format!(r"C:\pended\{name}"))))
    });
    let mut requests = decider.requests();
    let sink = decider.verdicts(Batching::default());
    let mut decided = 0;
    // The creates run one after another (each waits for its verdict): each message
    // carries at least one request, so four messages are enough.
    for _ in 0..4 {
        if decided == 4 {
            break;
        }
        let batch = requests.next_batch().expect("receive").expect("open");
        for request in batch {
            let verdict = if request.event.name.ends_with(".tmp") {
                Verdict::Deny
            } else {
                Verdict::Allow
            };
            sink.push(request.sequence, verdict).expect("push");
            decided += 1;
        }
        sink.flush().expect("flush");
    }
    assert_eq!(decided, 4, "every pended create arrived as a request");
    for (name, status) in creators.join().unwrap() {
        let expected = if name.ends_with(".tmp") {
            STATUS_ACCESS_DENIED
        } else {
            STATUS_SUCCESS
        };
        assert_eq!(status, expected, "{name}");
    }
    let totals = sink.close().expect("close");
    assert_eq!((totals.verdicts, totals.applied), (4, 4), "{totals:?}");
    let stats = decider.connection().stats().expect("stats");
    assert_eq!(stats.async_request_events, 4);
    assert_eq!(requests.messages(), stats.async_request_messages);
    assert!(requests.messages() >= 1);
}
