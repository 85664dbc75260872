//! The asynchronous decider (protocol version 3) through fltsim: creates are pended
//! (`FLT_PREOP_PENDING`) in the cancel-safe queue, their requests arrive in batches, and
//! one `VerdictBatch` (`FilterSendMessage`) answers many; deadlines, disconnect,
//! cancellation and unload complete every pended create exactly once; bad input is
//! counted and harmless.

mod common;

use common::{Buf, Port, Sim, config_with, connect, wait_until};
use fltsim::CreateRequest;
use portfilter_bindings::{STATUS_ACCESS_DENIED, STATUS_CANCELLED, STATUS_SUCCESS};
use portfilter_protocol::{
    Decision, EVENT_FLAG_PENDED, GET_MESSAGE_BUFFER_BYTES, KernelMessage, MAX_BATCH_VERDICTS,
    MAX_VERDICT_BATCH_BYTES, Role, VERDICT_BATCH_REPLY_BYTES, Verdict, VerdictBatchReply,
    VerdictEntry, config::REPLY_TIMEOUT_MS_MAX, decode_kernel_message, encode_verdict_batch,
    message::split_filter_message,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const DECIDER: u32 = 2001;
const APP: u32 = 1000;
const LIMIT: Duration = Duration::from_secs(20);

/// A pended request as the decider sees it.
#[derive(Debug, Clone)]
struct Request {
    sequence: u64,
    name: String,
}

/// Reads request batches until `n` requests arrived.
fn read_requests(port: &Port, n: usize) -> (Vec<Request>, usize) {
    let mut buf = Buf::new(GET_MESSAGE_BUFFER_BYTES);
    let mut out = Vec::new();
    let mut messages = 0;
    while out.len() < n {
        assert_eq!(port.get_message(&mut buf), 0, "FilterGetMessage");
        messages += 1;
        let (_, payload) = split_filter_message(buf.bytes()).unwrap();
        let KernelMessage::Batch(batch) = decode_kernel_message(payload).unwrap() else {
            panic!("the async decider receives batches");
        };
        for ev in batch.events() {
            assert_ne!(
                ev.fields.flags & EVENT_FLAG_PENDED,
                0,
                "requests are flagged PENDED"
            );
            out.push(Request {
                sequence: ev.fields.sequence,
                name: ev.name.to_string(),
            });
        }
    }
    (out, messages)
}

/// Sends raw VerdictBatch bytes; (HRESULT, reply).
fn send_batch_bytes(port: &Port, bytes: &[u8]) -> (i32, Option<VerdictBatchReply>) {
    let mut input = Buf::from_bytes(bytes);
    let (hr, out, n) = port.send_raw(&mut input, VERDICT_BATCH_REPLY_BYTES);
    let reply = (hr == 0).then(|| {
        assert_eq!(n as usize, VERDICT_BATCH_REPLY_BYTES);
        VerdictBatchReply::decode(&out).unwrap()
    });
    (hr, reply)
}

fn send_verdicts(port: &Port, entries: &[VerdictEntry]) -> (i32, Option<VerdictBatchReply>) {
    let mut bytes = vec![0u8; MAX_VERDICT_BATCH_BYTES];
    let n = encode_verdict_batch(entries, &mut bytes).unwrap();
    send_batch_bytes(port, &bytes[..n])
}

/// A decider thread that denies every request it receives, batch by batch (in the order
/// of each batch, or reversed), and counts what the driver applied and found late.
struct Answering {
    /// Set before the handle is closed at the end: a send that fails after it is the
    /// thread racing that close (on a loaded machine it may still be answering the last
    /// batch), not a driver failure; nothing of that batch was applied.
    released: Arc<AtomicBool>,
    thread: JoinHandle<(u32, u32)>,
}

impl Answering {
    fn start(decider: &Arc<Port>, reversed: bool) -> Self {
        let released = Arc::new(AtomicBool::new(false));
        let thread = {
            let decider = Arc::clone(decider);
            let released = Arc::clone(&released);
            std::thread::spawn(move || {
                let mut buf = Buf::new(GET_MESSAGE_BUFFER_BYTES);
                let mut answered = (0u32, 0u32);
                while decider.get_message(&mut buf) == 0 {
                    let (_, payload) = split_filter_message(buf.bytes()).unwrap();
                    let Ok(KernelMessage::Batch(batch)) = decode_kernel_message(payload) else {
                        panic!("batches only");
                    };
                    let mut entries: Vec<VerdictEntry> = batch
                        .events()
                        .map(|e| Verdict::deny(e.fields.sequence).into())
                        .collect();
                    if reversed {
                        entries.reverse();
                    }
                    let (hr, reply) = send_verdicts(&decider, &entries);
                    if hr != 0 && released.load(Ordering::SeqCst) {
                        break;
                    }
                    assert_eq!(hr, 0);
                    let reply = reply.unwrap();
                    assert_eq!(reply.total() as usize, entries.len(), "{reply:?}");
                    assert_eq!(
                        reply.unknown + reply.invalid + reply.duplicate,
                        0,
                        "{reply:?}"
                    );
                    answered.0 += reply.applied;
                    answered.1 += reply.late;
                }
                answered
            })
        };
        Self { released, thread }
    }

    /// Closes the decider's handle (which ends the thread's wait) and returns the verdicts
    /// applied and found late.
    fn stop(self, decider: &Port) -> (u32, u32) {
        self.released.store(true, Ordering::SeqCst);
        decider.release();
        let deadline = Instant::now() + LIMIT;
        while !self.thread.is_finished() {
            assert!(Instant::now() < deadline, "decider thread did not end");
            std::thread::sleep(Duration::from_millis(1));
        }
        self.thread.join().unwrap()
    }
}

fn spawn_create(req: CreateRequest) -> JoinHandle<i32> {
    std::thread::spawn(move || fltsim::create(&req).status)
}

fn join_status(t: JoinHandle<i32>) -> i32 {
    let deadline = Instant::now() + LIMIT;
    while !t.is_finished() {
        assert!(Instant::now() < deadline, "create did not complete");
        std::thread::sleep(Duration::from_millis(1));
    }
    t.join().unwrap()
}

/// Makes pended creates wait for a verdict, a disconnect, a cancellation or unload, never
/// for their deadline: the longest reply timeout (a minute). With the default second, a
/// slow run (a loaded machine, ThreadSanitizer) completed a create by its deadline while
/// the test still expected it pended.
fn no_deadline_in_sight() {
    let control = connect(3001, Role::Control);
    control.set_config(&config_with(|c| c.reply_timeout_ms = REPLY_TIMEOUT_MS_MAX));
    control.close();
}

fn pended_now(n: usize) -> bool {
    wait_until(LIMIT, || fltsim::pended::pended_count() == n)
}

#[test]
fn one_verdict_batch_answers_many_pended_creates() {
    let sim = Sim::start();
    no_deadline_in_sight();
    let decider = common::connect_async_decider(DECIDER);
    let names = ["a.txt", "b.secret", "c.txt", "d.secret", "e.txt", "f.txt"];
    let creates: Vec<_> = names
        .iter()
        .map(|n| spawn_create(CreateRequest::new(&format!(r"C:\work\{n}")).pid(APP)))
        .collect();
    let (requests, messages) = read_requests(&decider, names.len());
    assert!(messages <= names.len());
    assert!(pended_now(names.len()), "every create is pended");
    let entries: Vec<VerdictEntry> = requests
        .iter()
        .map(|r| {
            VerdictEntry::from(if r.name.ends_with(".secret") {
                Verdict::deny(r.sequence)
            } else {
                Verdict::allow(r.sequence)
            })
        })
        .collect();
    let (hr, reply) = send_verdicts(&decider, &entries);
    assert_eq!(hr, 0);
    assert_eq!(
        reply.unwrap(),
        VerdictBatchReply {
            applied: 6,
            ..VerdictBatchReply::default()
        }
    );
    let statuses: Vec<i32> = creates.into_iter().map(join_status).collect();
    for (name, status) in names.iter().zip(statuses) {
        let want = if name.ends_with(".secret") {
            STATUS_ACCESS_DENIED
        } else {
            STATUS_SUCCESS
        };
        assert_eq!(status, want, "{name}");
    }
    let stats = decider.stats();
    assert_eq!(stats.async_pended, 6);
    assert_eq!(stats.verdicts_applied, 6);
    assert_eq!(stats.verdict_messages, 1);
    assert_eq!(stats.async_request_events, 6);
    assert_eq!(stats.replies_deny, 2);
    assert_eq!(stats.requests_sent, 0, "no request-reply send");
    decider.close();
    sim.unload_and_check_pool();
}

#[test]
fn deadline_applies_the_default_and_a_later_verdict_is_late() {
    let sim = Sim::start();
    let control = connect(3001, Role::Control);
    control.set_config(&config_with(|c| {
        c.reply_timeout_ms = 150;
        c.default_verdict = Decision::Deny;
    }));
    let decider = common::connect_async_decider(DECIDER);
    let started = Instant::now();
    let create = spawn_create(CreateRequest::new(r"C:\work\slow.txt").pid(APP));
    let (requests, _) = read_requests(&decider, 1);
    // Nobody answers: the deadline completes it with the default verdict (deny).
    assert_eq!(join_status(create), STATUS_ACCESS_DENIED);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(140),
        "held until its deadline: {waited:?}"
    );
    let (hr, reply) = send_verdicts(&decider, &[Verdict::allow(requests[0].sequence).into()]);
    assert_eq!(hr, 0);
    assert_eq!(
        reply.unwrap(),
        VerdictBatchReply {
            late: 1,
            ..VerdictBatchReply::default()
        }
    );
    let stats = control.stats();
    assert_eq!(stats.async_deadline_defaults, 1);
    assert_eq!(stats.verdicts_late, 1);
    assert_eq!(stats.verdicts_applied, 0);
    decider.close();
    control.close();
    sim.unload_and_check_pool();
}

/// With the decider's `FilterGetMessage` already waiting and the worker asleep for its idle
/// second, a create's request reaches the get through the worker (the create wakes it),
/// and the worker still completes that create at its deadline.
#[test]
fn a_request_sent_while_the_worker_sleeps_still_gets_its_deadline() {
    let sim = Sim::start();
    let control = connect(3001, Role::Control);
    control.set_config(&config_with(|c| {
        c.reply_timeout_ms = 100;
        c.default_verdict = Decision::Deny;
    }));
    let decider = Arc::new(common::connect_async_decider(DECIDER));
    let reader = {
        let decider = Arc::clone(&decider);
        std::thread::spawn(move || read_requests(&decider, 1))
    };
    // Its get waits; the worker sleeps (nothing pended: up to a second).
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let create = spawn_create(CreateRequest::new(r"C:\work\direct.txt").pid(APP));
    let (requests, messages) = reader.join().unwrap();
    assert_eq!((requests.len(), messages), (1, 1));
    assert_eq!(
        join_status(create),
        STATUS_ACCESS_DENIED,
        "the default at the deadline"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(90),
        "held until its deadline: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(700),
        "the deadline is kept although the worker was asleep for a second: {waited:?}"
    );
    let stats = control.stats();
    assert_eq!(stats.async_deadline_defaults, 1);
    assert_eq!(stats.async_request_messages, 1);
    let decider = Arc::try_unwrap(decider).unwrap_or_else(|_| panic!("the reader is done"));
    decider.close();
    control.close();
    sim.unload_and_check_pool();
}

/// The pre-create of a pended create never waits in `FltSendMessage`: on Windows even the
/// shortest timeout lasts until the next clock tick when no get is waiting (fltsim's
/// default `timer_expiry` reading), up to 15.6 ms on the create path. Its request goes to
/// the worker, whether the decider's get is already waiting or not.
#[test]
fn the_pre_create_of_a_pended_create_never_calls_flt_send_message() {
    use fltsim::kernel::counts::{self, Routine};
    let sim = Sim::start();
    no_deadline_in_sight();
    let decider = common::connect_async_decider(DECIDER);
    let counted_create = |name: &str| {
        let req = CreateRequest::new(&format!(r"C:\work\{name}")).pid(APP);
        std::thread::spawn(move || {
            let before = counts::snapshot();
            let status = fltsim::create(&req).status;
            (
                status,
                (counts::snapshot() - before).calls(Routine::FltSendMessage),
            )
        })
    };
    // No get waiting when the create comes (the decider reads afterwards) ...
    let create = counted_create("late-reader.txt");
    assert!(pended_now(1));
    let (requests, _) = read_requests(&decider, 1);
    let (hr, _) = send_verdicts(&decider, &[Verdict::allow(requests[0].sequence).into()]);
    assert_eq!(hr, 0);
    assert_eq!(create.join().unwrap(), (STATUS_SUCCESS, 0));
    // ... and a get already waiting.
    let decider = Arc::new(decider);
    let reader = {
        let decider = Arc::clone(&decider);
        std::thread::spawn(move || read_requests(&decider, 1))
    };
    assert!(wait_until(LIMIT, || fltsim::port::queued_requests() == 1));
    let create = counted_create("waiting-reader.txt");
    let (requests, _) = reader.join().unwrap();
    let (hr, _) = send_verdicts(&decider, &[Verdict::allow(requests[0].sequence).into()]);
    assert_eq!(hr, 0);
    assert_eq!(create.join().unwrap(), (STATUS_SUCCESS, 0));
    let decider = Arc::try_unwrap(decider).unwrap_or_else(|_| panic!("the reader is done"));
    decider.close();
    sim.unload_and_check_pool();
}

/// A decider that is slow to ask for its requests still gets them: the worker offers a
/// batch until the earliest deadline in it (a minute here), not for a fixed instant.
#[test]
fn a_decider_that_asks_late_still_decides_its_pended_creates() {
    let sim = Sim::start();
    no_deadline_in_sight();
    let decider = common::connect_async_decider(DECIDER);
    let create = spawn_create(CreateRequest::new(r"C:\work\slow-reader.txt").pid(APP));
    assert!(pended_now(1));
    // Well past a clock tick with no get waiting: the batch must still be on offer.
    std::thread::sleep(Duration::from_millis(300));
    let (requests, _) = read_requests(&decider, 1);
    let (hr, reply) = send_verdicts(&decider, &[Verdict::deny(requests[0].sequence).into()]);
    assert_eq!(hr, 0);
    assert_eq!(reply.unwrap().applied, 1);
    assert_eq!(
        join_status(create),
        STATUS_ACCESS_DENIED,
        "the decider's verdict"
    );
    let stats = decider.stats();
    assert_eq!(stats.async_deadline_defaults, 0, "{stats:?}");
    decider.close();
    sim.unload_and_check_pool();
}

#[test]
fn bad_verdicts_are_counted_and_leave_other_creates_alone() {
    let sim = Sim::start();
    no_deadline_in_sight();
    let decider = common::connect_async_decider(DECIDER);
    let observer = connect(3002, Role::Observer);
    let create = spawn_create(CreateRequest::new(r"C:\work\keep.txt").pid(APP));
    let (requests, _) = read_requests(&decider, 1);
    let seq = requests[0].sequence;

    // Unknown sequence, an invalid status (deny with a success code), an invalid verdict
    // value: counted, nothing applied.
    let (hr, reply) = send_verdicts(
        &decider,
        &[
            Verdict::allow(seq + 1000).into(),
            VerdictEntry {
                sequence: seq,
                verdict: 1,
                status: 0x0000_0103,
            },
            VerdictEntry {
                sequence: seq,
                verdict: 7,
                status: 0,
            },
        ],
    );
    assert_eq!(hr, 0);
    assert_eq!(
        reply.unwrap(),
        VerdictBatchReply {
            unknown: 1,
            invalid: 2,
            ..VerdictBatchReply::default()
        }
    );
    // Malformed: a count that disagrees with the length.
    let mut bytes = vec![0u8; 64];
    encode_verdict_batch(&[Verdict::allow(seq).into(); 3], &mut bytes).unwrap();
    let (hr, _) = send_batch_bytes(&decider, &bytes[..48]);
    assert_eq!(hr as u32, 0x8007_0018, "length mismatch: ERROR_BAD_LENGTH");
    // Oversized: more than 1024 entries.
    let mut big = vec![0u8; MAX_VERDICT_BATCH_BYTES + 16];
    encode_verdict_batch(&[Verdict::allow(seq).into(); 1], &mut big).unwrap();
    big[8..12].copy_from_slice(&1025u32.to_le_bytes());
    let (hr, _) = send_batch_bytes(&decider, &big);
    assert_ne!(hr, 0, "an oversized batch is refused");
    // From a connection that is not the asynchronous decider.
    let (hr, _) = send_verdicts(&observer, &[Verdict::deny(seq).into()]);
    assert_eq!(
        hr as u32, 0x8007_0005,
        "only the asynchronous decider: access denied"
    );
    assert!(pended_now(1), "the create is still pended");

    // A duplicate inside one batch: the first applies, the second is counted.
    let (hr, reply) = send_verdicts(
        &decider,
        &[Verdict::allow(seq).into(), Verdict::deny(seq).into()],
    );
    assert_eq!(hr, 0);
    assert_eq!(
        reply.unwrap(),
        VerdictBatchReply {
            applied: 1,
            duplicate: 1,
            ..VerdictBatchReply::default()
        }
    );
    assert_eq!(
        join_status(create),
        STATUS_SUCCESS,
        "the first verdict decided"
    );
    let stats = decider.stats();
    assert_eq!(stats.verdicts_unknown, 1);
    assert_eq!(stats.verdicts_applied, 1);
    // 2 invalid entries + 3 refused batches + 1 duplicate.
    assert_eq!(stats.verdicts_invalid, 6);
    decider.close();
    observer.close();
    sim.unload_and_check_pool();
}

#[test]
fn verdict_batch_edges_the_largest_batch_any_answer_buffer_and_only_the_async_decider() {
    let sim = Sim::start();
    no_deadline_in_sight();
    let decider = common::connect_async_decider(DECIDER);
    // The largest batch the protocol allows (1,024 entries, the largest input of any
    // command) is taken whole: every entry answered (here: no such create).
    let entries: Vec<VerdictEntry> = (0..MAX_BATCH_VERDICTS as u64)
        .map(|k| Verdict::allow(1_000_000 + k).into())
        .collect();
    let (hr, reply) = send_verdicts(&decider, &entries);
    assert_eq!(hr, 0, "a full batch of exactly MAX_VERDICT_BATCH_BYTES");
    assert_eq!(
        reply.unwrap(),
        VerdictBatchReply {
            unknown: MAX_BATCH_VERDICTS as u32,
            ..VerdictBatchReply::default()
        }
    );
    // An answer buffer larger than the answer is fine; a smaller one is refused before
    // anything is applied.
    let create = spawn_create(CreateRequest::new(r"C:\edges.txt").pid(APP));
    let (requests, _) = read_requests(&decider, 1);
    let mut bytes = vec![0u8; 64];
    let n =
        encode_verdict_batch(&[Verdict::deny(requests[0].sequence).into()], &mut bytes).unwrap();
    let (hr, _, _) = decider.send_raw(
        &mut Buf::from_bytes(&bytes[..n]),
        VERDICT_BATCH_REPLY_BYTES - 1,
    );
    assert_eq!(
        hr as u32, 0x8007_007A,
        "a 31-byte answer buffer: buffer too small"
    );
    assert!(pended_now(1), "nothing applied by the refused call");
    let (hr, out, returned) = decider.send_raw(
        &mut Buf::from_bytes(&bytes[..n]),
        VERDICT_BATCH_REPLY_BYTES * 2,
    );
    assert_eq!(hr, 0, "a 64-byte answer buffer");
    assert_eq!(returned as usize, VERDICT_BATCH_REPLY_BYTES);
    assert_eq!(
        VerdictBatchReply::decode(&out[..VERDICT_BATCH_REPLY_BYTES]).unwrap(),
        VerdictBatchReply {
            applied: 1,
            ..VerdictBatchReply::default()
        }
    );
    assert_eq!(join_status(create), STATUS_ACCESS_DENIED);
    decider.close();
    // A decider that is not asynchronous has no pended creates to answer: refused.
    let sync = connect(DECIDER + 1, Role::Decider);
    let (hr, _) = send_verdicts(&sync, &[Verdict::allow(1).into()]);
    assert_eq!(
        hr as u32, 0x8007_0005,
        "a synchronous decider: access denied"
    );
    // Counted as invalid: this refusal only (the short answer buffer was refused before
    // the batch was read).
    assert_eq!(sync.stats().verdicts_invalid, 1);
    sync.close();
    sim.unload_and_check_pool();
}

#[test]
fn disconnect_completes_every_pended_create_at_once() {
    let sim = Sim::start();
    no_deadline_in_sight();
    let decider = common::connect_async_decider(DECIDER);
    let creates: Vec<_> = (0..3)
        .map(|i| spawn_create(CreateRequest::new(&format!(r"C:\work\{i}.txt")).pid(APP)))
        .collect();
    let _ = read_requests(&decider, 3);
    assert!(pended_now(3));
    let started = Instant::now();
    decider.close();
    for c in creates {
        assert_eq!(join_status(c), STATUS_SUCCESS, "default verdict: allow");
    }
    // Far below the one-minute deadline (no timing assumption about a loaded machine).
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "completed at disconnect, not at the deadline: {:?}",
        started.elapsed()
    );
    let control = connect(3001, Role::Control);
    assert_eq!(control.stats().async_deadline_defaults, 3);
    control.close();
    sim.unload_and_check_pool();
}

#[test]
fn a_terminated_thread_cancels_its_pended_create() {
    let sim = Sim::start();
    no_deadline_in_sight();
    let decider = common::connect_async_decider(DECIDER);
    let create = spawn_create(CreateRequest::new(r"C:\work\killed.txt").pid(APP).tid(77));
    let (requests, _) = read_requests(&decider, 1);
    assert!(pended_now(1));
    assert_eq!(fltsim::pended::terminate_thread(77), 1);
    assert_eq!(join_status(create), STATUS_CANCELLED);
    let (hr, reply) = send_verdicts(&decider, &[Verdict::deny(requests[0].sequence).into()]);
    assert_eq!(hr, 0);
    assert_eq!(
        reply.unwrap().late,
        1,
        "a verdict after the cancellation is late"
    );
    let stats = decider.stats();
    assert_eq!(stats.async_cancelled, 1);
    assert_eq!(stats.verdicts_applied, 0);
    decider.close();
    sim.unload_and_check_pool();
}

#[test]
fn unload_completes_every_pended_create() {
    let sim = Sim::start();
    no_deadline_in_sight();
    let decider = Arc::new(common::connect_async_decider(DECIDER));
    let creates: Vec<_> = (0..4)
        .map(|i| spawn_create(CreateRequest::new(&format!(r"C:\work\u{i}.txt")).pid(APP)))
        .collect();
    let _ = read_requests(&decider, 4);
    assert!(pended_now(4));
    // Unload (verifier: nothing pended at FltUnregisterFilter, nothing completed twice or
    // after unload, no pool left).
    // (The creating threads hold their pre-create open: FltUnregisterFilter waits for them
    // after the driver completed them.)
    let joiner =
        std::thread::spawn(move || creates.into_iter().map(join_status).collect::<Vec<_>>());
    sim.unload_and_check_pool();
    let deadline = Instant::now() + LIMIT;
    while !joiner.is_finished() {
        assert!(Instant::now() < deadline, "creates did not complete");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(joiner.join().unwrap(), vec![STATUS_SUCCESS; 4]);
    // Unload says how many it completed, and (the decider had taken every request)
    // reports no lost request.
    assert!(
        fltsim::log::contains("unload: 4 pended creates completed with the default verdict"),
        "{:?}",
        fltsim::log::lines()
    );
    assert!(
        !fltsim::log::contains("asynchronous requests dropped"),
        "{:?}",
        fltsim::log::lines()
    );
    drop(decider);
}

#[test]
fn verdicts_racing_deadlines_complete_each_create_once() {
    let sim = Sim::start();
    let control = connect(3001, Role::Control);
    control.set_config(&config_with(|c| c.reply_timeout_ms = 2));
    let decider = Arc::new(common::connect_async_decider(DECIDER));
    // Answer whatever arrives, as fast as possible: some verdicts win, some deadlines do
    // (and a batch the decider was too slow to take is completed with the default at once).
    let answering = Answering::start(&decider, false);
    let rounds = 40;
    let creates: Vec<_> = (0..rounds)
        .map(|i| spawn_create(CreateRequest::new(&format!(r"C:\work\r{i}.txt")).pid(APP)))
        .collect();
    let mut denied = 0u64;
    for c in creates {
        let status = join_status(c);
        assert!(status == STATUS_SUCCESS || status == STATUS_ACCESS_DENIED);
        denied += u64::from(status == STATUS_ACCESS_DENIED);
    }
    let (applied, _late) = answering.stop(&decider);
    let stats = control.stats();
    assert_eq!(
        u64::from(applied),
        denied,
        "every applied verdict denied its create"
    );
    assert_eq!(stats.verdicts_applied, denied);
    assert_eq!(
        stats.verdicts_applied + stats.async_deadline_defaults,
        rounds as u64,
        "each create completed exactly once: {stats:?}"
    );
    control.close();
    // Verifier: no pended create completed twice.
    sim.unload_and_check_pool();
}

#[test]
fn unsafe_context_and_the_deciders_own_creates_are_never_pended() {
    let sim = Sim::start();
    let control = connect(3001, Role::Control);
    control.set_config(&config_with(|c| c.default_verdict = Decision::Deny));
    let decider = common::connect_async_decider(DECIDER);
    // A top-level IRP: the requestor may hold file-system resources: not held.
    let started = Instant::now();
    let unsafe_create = fltsim::create(
        &CreateRequest::new(r"C:\work\cache.txt")
            .pid(APP)
            .top_level_irp(),
    );
    assert_eq!(
        unsafe_create.status, STATUS_ACCESS_DENIED,
        "default verdict at once"
    );
    let guarded = fltsim::create(
        &CreateRequest::new(r"C:\work\guarded.txt")
            .pid(APP)
            .apcs_disabled(),
    );
    assert_eq!(guarded.status, STATUS_ACCESS_DENIED);
    // The decider's own create: never held, allowed.
    let own = fltsim::create(&CreateRequest::new(r"C:\work\own.txt").pid(DECIDER));
    assert_eq!(own.status, STATUS_SUCCESS);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "nothing waited"
    );
    let stats = control.stats();
    assert_eq!(stats.async_pended, 0);
    assert_eq!(stats.unsafe_context, 2);
    assert!(stats.self_excluded >= 1);
    decider.close();
    control.close();
    sim.unload_and_check_pool();
}

/// Many creates pended at once (each on its own thread), some cancelled by their thread's
/// termination, the rest answered in a scrambled order over several `VerdictBatch`es:
/// every create gets its own verdict, once (the index by sequence must find each one
/// after any number of removals around it).
#[test]
fn many_pended_creates_answered_out_of_order_each_get_their_own_verdict() {
    const N: usize = 96;
    const TID: u64 = 5000;
    let sim = Sim::start();
    no_deadline_in_sight();
    let decider = common::connect_async_decider(DECIDER);
    let creates: Vec<_> = (0..N)
        .map(|i| {
            spawn_create(
                CreateRequest::new(&format!(r"C:\work\m{i}.txt"))
                    .pid(APP)
                    .tid(TID + i as u64),
            )
        })
        .collect();
    let (requests, _) = read_requests(&decider, N);
    assert!(pended_now(N), "every create is pended");
    let index_of = |r: &Request| -> usize {
        r.name
            .rsplit('\\')
            .next()
            .and_then(|n| n.strip_prefix('m'))
            .and_then(|n| n.strip_suffix(".txt"))
            .and_then(|n| n.parse().ok())
            .unwrap()
    };
    // Every seventh create is cancelled before any verdict.
    let cancelled = |i: usize| i % 7 == 3;
    for i in (0..N).filter(|&i| cancelled(i)) {
        assert_eq!(fltsim::pended::terminate_thread(TID + i as u64), 1);
    }
    let n_cancelled = (0..N).filter(|&i| cancelled(i)).count();
    // Scrambled order: a fixed permutation (stride coprime with N), in batches of 13.
    let order: Vec<&Request> = (0..N).map(|k| &requests[(k * 37 + 11) % N]).collect();
    let mut total = VerdictBatchReply::default();
    for chunk in order.chunks(13) {
        let entries: Vec<VerdictEntry> = chunk
            .iter()
            .map(|r| {
                VerdictEntry::from(if index_of(r) % 2 == 1 {
                    Verdict::deny(r.sequence)
                } else {
                    Verdict::allow(r.sequence)
                })
            })
            .collect();
        let (hr, reply) = send_verdicts(&decider, &entries);
        assert_eq!(hr, 0);
        let reply = reply.unwrap();
        total.applied += reply.applied;
        total.late += reply.late;
        total.unknown += reply.unknown;
    }
    assert_eq!(total.applied as usize, N - n_cancelled, "{total:?}");
    assert_eq!(total.late as usize, n_cancelled, "{total:?}");
    assert_eq!(total.unknown, 0);
    // A second verdict for an answered create is late, not applied again.
    let (hr, reply) = send_verdicts(&decider, &[Verdict::deny(requests[0].sequence).into()]);
    assert_eq!(hr, 0);
    assert_eq!(reply.unwrap().late, 1);
    let statuses: Vec<i32> = creates.into_iter().map(join_status).collect();
    for (i, status) in statuses.into_iter().enumerate() {
        let want = if cancelled(i) {
            STATUS_CANCELLED
        } else if i % 2 == 1 {
            STATUS_ACCESS_DENIED
        } else {
            STATUS_SUCCESS
        };
        assert_eq!(status, want, "create {i}");
    }
    assert!(pended_now(0));
    let stats = decider.stats();
    assert_eq!(stats.async_cancelled as usize, n_cancelled);
    assert_eq!(stats.verdicts_applied as usize, N - n_cancelled);
    decider.close();
    // Verifier: nothing completed twice.
    sim.unload_and_check_pool();
}

/// Verdicts, deadlines (2 ms) and thread terminations race for the same pended creates:
/// each create is completed exactly once, by one of the three.
#[test]
fn verdicts_deadlines_and_cancellations_racing_complete_each_create_once() {
    const ROUNDS: usize = 60;
    const TID: u64 = 7000;
    let sim = Sim::start();
    let control = connect(3001, Role::Control);
    control.set_config(&config_with(|c| c.reply_timeout_ms = 2));
    let decider = Arc::new(common::connect_async_decider(DECIDER));
    // Answered last to first.
    let answering = Answering::start(&decider, true);
    let creates: Vec<_> = (0..ROUNDS)
        .map(|i| {
            spawn_create(
                CreateRequest::new(&format!(r"C:\work\x{i}.txt"))
                    .pid(APP)
                    .tid(TID + i as u64),
            )
        })
        .collect();
    // Terminate every third creating thread while verdicts and deadlines run.
    let killer = std::thread::spawn(|| {
        let mut cancelled = 0;
        for i in (0..ROUNDS).filter(|i| i % 3 == 0) {
            cancelled += fltsim::pended::terminate_thread(TID + i as u64);
            std::thread::yield_now();
        }
        cancelled
    });
    let statuses: Vec<i32> = creates.into_iter().map(join_status).collect();
    let _ = killer.join().unwrap();
    let applied = u64::from(answering.stop(&decider).0);
    let count = |s: i32| statuses.iter().filter(|&&x| x == s).count() as u64;
    let stats = control.stats();
    assert_eq!(
        count(STATUS_SUCCESS) + count(STATUS_ACCESS_DENIED) + count(STATUS_CANCELLED),
        ROUNDS as u64,
        "{statuses:?}"
    );
    assert_eq!(
        count(STATUS_ACCESS_DENIED),
        applied,
        "every applied verdict denied"
    );
    assert_eq!(stats.verdicts_applied, applied);
    assert_eq!(count(STATUS_CANCELLED), stats.async_cancelled);
    // Cancelled before the pre-create pended it: the driver never pended it at all
    // (only a create still in the queue is cancelled through it).
    assert_eq!(
        stats.verdicts_applied + stats.async_deadline_defaults + stats.async_cancelled,
        stats.async_pended,
        "each pended create completed exactly once: {stats:?}"
    );
    control.close();
    // Verifier: no pended create completed twice or left open.
    sim.unload_and_check_pool();
}
