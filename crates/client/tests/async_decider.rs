//! The asynchronous decider API (`portfilter_client::async_decider`) against the real
//! driver under fltsim: requests arrive in batches, verdicts go back batched by count and
//! by time, and the driver's answers add up in the sink's totals.

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

mod common;

use common::{STATUS_ACCESS_DENIED, STATUS_SUCCESS, Sim, configure, connect, create};
use portfilter_client::async_decider::{
    AsyncDecider, Batching, PendingRequest, Requests, VerdictSink, VerdictTotals, send_verdicts,
};
use portfilter_client::connection::ConnectOptions;
use portfilter_client::protocol::{EVENT_FLAG_PENDED, Verdict as WireVerdict, VerdictEntry};
use portfilter_client::{Error, Hresult, Role, Verdict};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Bound for anything the test waits for.
const LIMIT: Duration = Duration::from_secs(20);

/// Creates `C:\pended\{prefix}{i}.txt` for each i, each on its own thread.
fn spawn_creates(prefix: &str, n: usize) -> Vec<(String, JoinHandle<i32>)> {
    (0..n)
        .map(|i| {
            let name = format!("{prefix}{i}.txt");
            let path = format!(r"C:\pended\{name}");
            (name, std::thread::spawn(move || create(&path)))
        })
        .collect()
}

/// Reads requests until `n` arrived (bounded: the reading runs on its own thread).
fn read(requests: Requests, n: usize) -> (Vec<PendingRequest>, Requests) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut requests = requests;
        let mut out = Vec::new();
        while out.len() < n {
            match requests.next() {
                Some(Ok(r)) => out.push(r),
                other => panic!("the stream ended early: {other:?}"),
            }
        }
        let _ = tx.send((out, requests));
    });
    rx.recv_timeout(LIMIT).expect("the requests arrived")
}

fn join(creates: Vec<(String, JoinHandle<i32>)>) -> Vec<(String, i32)> {
    creates
        .into_iter()
        .map(|(name, t)| {
            let deadline = std::time::Instant::now() + LIMIT;
            while !t.is_finished() {
                assert!(std::time::Instant::now() < deadline, "{name} not completed");
                std::thread::sleep(Duration::from_millis(1));
            }
            (name, t.join().unwrap())
        })
        .collect()
}

/// The verdict for a file name: `…{odd}.txt` denied, the rest allowed.
fn verdict_for(name: &str) -> Verdict {
    let digit = name.trim_end_matches(".txt").chars().last().unwrap();
    if digit.to_digit(10).unwrap() % 2 == 1 {
        Verdict::Deny
    } else {
        Verdict::Allow
    }
}

fn file_of(r: &PendingRequest) -> String {
    r.event.name.rsplit('\\').next().unwrap().to_owned()
}

#[test]
fn pended_creates_are_answered_in_batches_and_the_totals_add_up() {
    let _sim = Sim::boot();
    configure(|c| c.reply_timeout_ms = 20_000);
    let decider = AsyncDecider::connect(&ConnectOptions::default()).expect("async decider");
    let creates = spawn_creates("a", 6);
    let (requests, requests_left) = read(decider.requests(), 6);
    let mut names: Vec<String> = requests.iter().map(file_of).collect();
    names.sort();
    assert_eq!(
        names,
        ["a0.txt", "a1.txt", "a2.txt", "a3.txt", "a4.txt", "a5.txt"]
    );
    assert!(
        (1..=6).contains(&requests_left.messages()),
        "each message carries at least one request: {}",
        requests_left.messages()
    );
    // Pended, not request-reply: answered with verdict batches, never with a reply.
    assert!(
        requests
            .iter()
            .all(|r| !r.event.request && r.event.flags & EVENT_FLAG_PENDED != 0)
    );

    // Four verdicts fill a batch (sent at once); the last two wait for the flush at close.
    let sink = decider.verdicts(Batching {
        max_verdicts: 4,
        max_delay: Duration::from_secs(60),
    });
    for r in &requests {
        sink.push(r.sequence, verdict_for(&file_of(r))).unwrap();
    }
    let after_pushes = sink.totals();
    assert_eq!(after_pushes.messages, 1, "{after_pushes:?}");
    assert_eq!(after_pushes.verdicts, 4);
    assert_eq!(after_pushes.applied, 4);
    let totals = sink.close().unwrap();
    assert_eq!(
        totals,
        VerdictTotals {
            messages: 2,
            verdicts: 6,
            applied: 6,
            ..VerdictTotals::default()
        }
    );
    for (name, status) in join(creates) {
        let want = if verdict_for(&name) == Verdict::Deny {
            STATUS_ACCESS_DENIED
        } else {
            STATUS_SUCCESS
        };
        assert_eq!(status, want, "{name}");
    }

    // Answers the driver cannot apply are counted as such: a second verdict for an
    // answered create (late), a sequence it never sent (unknown), twice in one batch.
    let sink = decider.verdicts(Batching::default());
    let answered = requests[0].sequence;
    sink.push(answered, Verdict::Allow).unwrap();
    sink.push(u64::MAX - 7, Verdict::Deny).unwrap();
    sink.flush().unwrap();
    let totals = sink.totals();
    assert_eq!(totals.messages, 1, "one flush, one batch: {totals:?}");
    assert_eq!(totals.verdicts, 2);
    assert_eq!((totals.late, totals.unknown, totals.applied), (1, 1, 0));
    // The same sequence twice in one batch: the second is a duplicate (and the first
    // late, as before); each adds to its own count, on top of what came before.
    sink.push(answered, Verdict::Allow).unwrap();
    sink.push(answered, Verdict::Allow).unwrap();
    sink.flush().unwrap();
    assert_eq!(
        sink.totals(),
        VerdictTotals {
            messages: 2,
            verdicts: 4,
            unknown: 1,
            late: 2,
            duplicate: 1,
            ..VerdictTotals::default()
        }
    );
    let reply = send_verdicts(
        decider.connection(),
        &[
            VerdictEntry::from(WireVerdict::allow(answered)),
            VerdictEntry::from(WireVerdict::allow(answered)),
        ],
    )
    .unwrap();
    assert_eq!(reply.total(), 2);
    assert_eq!((reply.late, reply.duplicate), (1, 1), "{reply:?}");
    drop(sink);
}

#[test]
fn the_flusher_sends_a_lone_verdict_after_the_delay() {
    let _sim = Sim::boot();
    configure(|c| c.reply_timeout_ms = 20_000);
    let decider = AsyncDecider::connect(&ConnectOptions::default()).expect("async decider");
    let creates = spawn_creates("f", 1);
    let (requests, _) = read(decider.requests(), 1);
    let sink = decider.verdicts(Batching {
        max_verdicts: 1024,
        max_delay: Duration::from_millis(20),
    });
    sink.push(requests[0].sequence, Verdict::Deny).unwrap();
    // No flush, no close: only the flusher can send it.
    assert_eq!(join(creates)[0].1, STATUS_ACCESS_DENIED);
    let totals = sink.totals();
    assert_eq!((totals.messages, totals.applied), (1, 1), "{totals:?}");
    drop(sink);
}

#[test]
fn a_detached_sink_fails_until_it_is_bound_then_sends_on_its_connection() {
    let _sim = Sim::boot();
    configure(|c| c.reply_timeout_ms = 20_000);
    let sink = VerdictSink::detached(Batching::default());
    sink.push(1, Verdict::Allow).unwrap();
    assert!(matches!(sink.flush(), Err(Error::Disconnected)));
    let totals = sink.totals();
    assert_eq!(
        (totals.messages, totals.failed_batches),
        (1, 1),
        "{totals:?}"
    );

    let decider = AsyncDecider::connect(&ConnectOptions::default()).expect("async decider");
    // A verdict queued before the binding answers nothing of this connection: dropped.
    sink.push(2, Verdict::Allow).unwrap();
    sink.rebind(Arc::clone(decider.connection()));
    let creates = spawn_creates("d", 1);
    let (requests, _) = read(decider.requests(), 1);
    // A deny "with" a success status (STATUS_PENDING) is invalid: counted, nothing applied.
    sink.push(requests[0].sequence, Verdict::DenyWith(0x0000_0103))
        .unwrap();
    sink.flush().unwrap();
    assert_eq!((sink.totals().invalid, sink.totals().applied), (1, 0));
    sink.push(requests[0].sequence, Verdict::Allow).unwrap();
    let totals = sink.close().unwrap();
    assert_eq!(totals.messages, 3, "{totals:?}");
    assert_eq!(
        totals.verdicts, 3,
        "the dropped verdict was not sent: {totals:?}"
    );
    assert_eq!((totals.applied, totals.invalid), (1, 1));
    assert_eq!(join(creates)[0].1, STATUS_SUCCESS);
}

#[test]
fn verdict_batches_are_refused_on_other_connections_and_the_stream_ends_at_unload() {
    let _sim = Sim::boot();
    let observer = connect(Role::Observer);
    match send_verdicts(&observer, &[VerdictEntry::from(WireVerdict::allow(1))]) {
        Err(Error::Call { hresult, .. }) => {
            assert_eq!(hresult, Hresult::ACCESS_DENIED);
        }
        other => panic!("an observer's verdicts are refused: {other:?}"),
    }
    drop(observer);

    let decider = AsyncDecider::connect(&ConnectOptions::default()).expect("async decider");
    let mut requests = decider.requests();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let end = requests.next_batch().map(|b| b.map(|v| v.len()));
        let after = requests.next().map(|r| r.map(|p| p.sequence));
        let _ = tx.send((end.ok(), after.is_none(), requests.messages()));
    });
    std::thread::sleep(Duration::from_millis(50));
    fltsim::unload_driver().expect("unload");
    let (end, ended, messages) = rx.recv_timeout(LIMIT).expect("the stream ended");
    assert_eq!(end, Some(None), "Ok(None) when the connection ends");
    assert!(ended, "and the iterator ends with it");
    assert_eq!(messages, 0);
}

#[test]
fn pended_creates_arrive_in_counted_messages_and_batched_verdicts_decide_them() {
    let _sim = Sim::boot();
    configure(|c| c.reply_timeout_ms = 20_000);
    let decider = AsyncDecider::connect(&ConnectOptions::default()).expect("async decider");
    let creators = std::thread::spawn(|| {
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

/// Threads of this test process.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Waits (bounded) until this process has `n` threads.
fn threads_become(n: usize) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while threads() != n {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

#[test]
fn closing_or_dropping_a_sink_ends_its_flusher_thread() {
    let before = threads();
    let sink = VerdictSink::detached(Batching::default());
    assert_eq!(threads(), before + 1, "the sink's flusher");
    assert_eq!(sink.close().unwrap(), VerdictTotals::default());
    assert!(
        threads_become(before),
        "close ends the flusher: {}",
        threads()
    );
    let sink = VerdictSink::detached(Batching::default());
    assert_eq!(threads(), before + 1);
    drop(sink);
    assert!(
        threads_become(before),
        "drop ends the flusher: {}",
        threads()
    );
}

#[test]
fn the_flusher_waits_out_the_delay_before_it_sends() {
    // A detached sink: a batch it sends fails (no connection) and is counted, so the
    // totals tell whether the flusher has sent.
    let sink = VerdictSink::detached(Batching {
        max_verdicts: 1024,
        max_delay: Duration::from_secs(60),
    });
    sink.push(7, Verdict::Allow).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        sink.totals(),
        VerdictTotals::default(),
        "nothing sent before the delay"
    );
    assert!(matches!(sink.flush(), Err(Error::Disconnected)));
    assert_eq!(sink.totals().failed_batches, 1);
}
