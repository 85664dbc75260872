//! Issue 10, item 1, as one scenario for every way of reaching the driver: a decider that
//! receives on one thread while other threads reply and send commands on the same
//! (overlapped) connection must get every message once, in order, and every create must
//! get its verdict. A receive that waited on the handle (a NULL OVERLAPPED) would be woken
//! by the other threads' completions: the simulator's verifier reports that.

use portfilter_client::{
    Connection, Event, MessageBuffer, Payload, ReplyOutcome, ReplyTo, Verdict,
};
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Joins `thread`, failing the test if it has not finished within `limit`.
///
/// # Panics
/// If the thread is not done within `limit` or panicked.
pub fn join_within<T>(thread: thread::JoinHandle<T>, limit: Duration, what: &str) -> T {
    let deadline = Instant::now() + limit;
    while !thread.is_finished() {
        assert!(
            Instant::now() < deadline,
            "{what}: not done within {limit:?}"
        );
        thread::sleep(Duration::from_millis(2));
    }
    thread.join().expect(what)
}

/// What differs between the places the scenario runs: how a create is made and what
/// tells its verdict.
pub struct Creates<S, F> {
    /// How many creates (`C:\threads\allow-0.txt`, `C:\threads\deny-1.txt`, …: even ones
    /// are allowed, odd ones denied).
    pub count: usize,
    /// Makes one create of a Win32 path and returns what tells its verdict (an NTSTATUS,
    /// an exit code); called on a thread of its own.
    pub create: F,
    /// What `create` returns for an allowed create.
    pub allowed: S,
    /// What `create` returns for a denied create.
    pub denied: S,
    /// How long all the creates may take.
    pub within: Duration,
}

/// Runs the scenario on `decider` (a fresh decider connection; the driver's reply timeout
/// long, its default verdict Allow): a receiving thread, a replying thread (Deny for names
/// containing "deny", Allow otherwise) and a command thread (stats and ping in a loop)
/// share it while a creating thread, started once the commands flow, makes the creates.
///
/// # Panics
/// Failing the test if a create does not get its verdict, a command or a receive fails,
/// the events are not each received once in order on `\Device\HarddiskVolume3`, a reply is
/// not delivered, a reply is counted late, or the command thread never ran.
pub fn run<S, F>(decider: &Arc<Connection>, creates: Creates<S, F>)
where
    S: PartialEq + Debug + Clone + Send + 'static,
    F: Fn(&str) -> S + Send + 'static,
{
    let count = creates.count;
    let (to_replier, replies) = mpsc::channel::<(ReplyTo, String)>();
    let receiver = {
        let decider = decider.clone();
        thread::spawn(move || {
            // Leaked: were a request woken early (the bug this scenario guards against),
            // the driver would still write its message into this buffer later.
            let buffer: &'static mut MessageBuffer = Box::leak(Box::new(MessageBuffer::new()));
            let (mut names, mut errors) = (Vec::new(), Vec::new());
            while names.len() < count && errors.len() < 10 {
                match decider.receive(buffer) {
                    Ok(Some(received)) => {
                        let reply_to = received.reply_to();
                        if let Payload::Event(view) = received.payload {
                            let event = Event::from_view(&view);
                            names.push(event.name.clone());
                            if let Some(to) = reply_to {
                                to_replier.send((to, event.name)).unwrap();
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(error) => errors.push(error.to_string()),
                }
            }
            (names, errors)
        })
    };
    let replier = {
        let decider = decider.clone();
        thread::spawn(move || {
            replies
                .into_iter()
                .map(|(to, name)| {
                    let verdict = if name.contains("deny") {
                        Verdict::Deny
                    } else {
                        Verdict::Allow
                    };
                    decider.reply(to, verdict).map_err(|e| e.to_string())
                })
                .collect::<Vec<_>>()
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (first_round_done, first_round) = mpsc::channel();
    let commander = {
        let (decider, stop) = (decider.clone(), stop.clone());
        thread::spawn(move || {
            let mut commands = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Err(error) = decider.stats().and_then(|_| decider.ping()) {
                    return (commands, Some(error.to_string()));
                }
                commands += 2;
                if commands == 2 {
                    let _ = first_round_done.send(());
                }
            }
            (commands, None)
        })
    };
    // The creates start once commands are flowing, so that they overlap the receiving
    // and replying (on a loaded machine the creates could otherwise all finish before
    // the command thread is first scheduled).
    let _ = first_round.recv_timeout(Duration::from_secs(30));
    let paths: Vec<String> = (0..count)
        .map(|i| {
            let kind = if i % 2 == 0 { "allow" } else { "deny" };
            format!(r"C:\threads\{kind}-{i}.txt")
        })
        .collect();
    let expected: Vec<S> = (0..count)
        .map(|i| {
            if i % 2 == 0 {
                creates.allowed.clone()
            } else {
                creates.denied.clone()
            }
        })
        .collect();
    let creator = {
        let (paths, expected, create) = (paths.clone(), expected.clone(), creates.create);
        thread::spawn(move || {
            // Stops at the first wrong verdict (a lost message costs a reply timeout).
            let mut got = Vec::new();
            for (path, expected) in paths.iter().zip(expected) {
                got.push(create(path));
                if got.last() != Some(&expected) {
                    break;
                }
            }
            got
        })
    };
    let got = join_within(creator, creates.within, "creates");
    stop.store(true, Ordering::Relaxed);
    let (commands, command_error) =
        join_within(commander, Duration::from_secs(30), "command thread");
    assert_eq!(got, expected, "each create got its verdict");
    assert_eq!(command_error, None, "commands from another thread");
    assert!(commands > 0, "the command thread ran");
    let (names, errors) = join_within(receiver, Duration::from_secs(30), "receiving thread");
    let outcomes = join_within(replier, Duration::from_secs(30), "replying thread");
    assert!(errors.is_empty(), "receive errors: {errors:?}");
    let expected_names: Vec<String> = paths
        .iter()
        .map(|p| format!(r"\Device\HarddiskVolume3{}", &p[2..]))
        .collect();
    assert_eq!(names, expected_names, "every event once, in order");
    assert!(
        outcomes.iter().all(|o| o == &Ok(ReplyOutcome::Delivered)),
        "{outcomes:?}"
    );
    assert_eq!(decider.late_replies(), 0);
}
