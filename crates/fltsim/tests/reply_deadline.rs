//! A kernel sender's wait ends at its deadline whether or not the sending thread runs
//! (docs/port-semantics.md; docs/fuzzing.md finding 9): a `FilterReplyMessage` after the
//! deadline finds no waiter (`0x801F0020`) and the sender returns `STATUS_TIMEOUT`; a
//! reply before the deadline is accepted even if the sender only runs after it. The
//! sender's thread is held with `fltsim::port::hold_senders` (a thread the scheduler does
//! not run), so these outcomes do not depend on the machine's load.

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]

mod common;
use common::*;
use fltsim::readings::TimeoutBudget;
use portfilter_bindings::*;
use std::time::{Duration, Instant};

const E_NO_WAITER: i32 = 0x801F_0020_u32 as i32;

const BUDGETS: [TimeoutBudget; 2] = [TimeoutBudget::RearmedPerWait, TimeoutBudget::OneTotal];

fn boot_with(budget: TimeoutBudget) -> fltsim::MachineGuard {
    boot_loaded_with(
        Config::default(),
        fltsim::Readings::HARSHEST.with_timeout_budget(budget),
    )
}

/// Sends a message expecting a reply with a `timeout_ms` relative timeout while the
/// sender's thread is held, takes it with a `FilterGetMessage`, waits `reply_after`
/// from the moment the get returned, replies, then releases the sender. Returns the
/// reply's HRESULT, the sender's result and when the reply was sent (from the start of
/// the send, as measured before the send began).
fn reply_while_the_sender_is_held(
    budget: TimeoutBudget,
    timeout_ms: i64,
    reply_after: Duration,
) -> (i32, KSend, Duration) {
    let _m = boot_with(budget);
    let h = connect(&[]) as usize;
    let result = std::thread::scope(|s| {
        let _release = ReleaseOnUnwind(h as _);
        let hold = fltsim::port::hold_senders();
        let start = Instant::now();
        let sender = s.spawn(move || kernel_send(0, b"question", Some(8), rel_ms(timeout_ms)));
        let mut buf = [0u8; 64];
        assert_eq!(get_message(h as _, &mut buf), 0, "delivered");
        std::thread::sleep(reply_after);
        let replied_at = start.elapsed();
        let hr = reply(h as _, STATUS_SUCCESS, header_of(&buf).1, b"answer");
        assert_eq!(
            fltsim::port::waiting_senders(),
            1,
            "the sender has not returned while it is held"
        );
        drop(hold);
        (hr, sender.join().unwrap(), replied_at)
    });
    close(h as _);
    result
}

#[test]
fn a_reply_after_the_deadline_gets_no_waiter_though_the_sender_has_not_run_since() {
    for budget in BUDGETS {
        // The reply wait's deadline is at most 100 ms after the delivery under either
        // reading (re-armed at the delivery, or counted from the send's start); the
        // reply comes 400 ms after the get returned, so after the deadline on any load.
        let (hr, sent, _) = reply_while_the_sender_is_held(budget, 100, Duration::from_millis(400));
        assert_eq!(hr, E_NO_WAITER, "{budget:?}: a late reply finds no waiter");
        assert_eq!(sent.status, STATUS_TIMEOUT, "{budget:?}");
        assert_eq!(sent.reply_len, 8, "{budget:?}: ReplyLength not written");
        assert_eq!(sent.reply, [0u8; 8], "{budget:?}: nothing of the reply");
    }
}

#[test]
fn a_reply_before_the_deadline_is_accepted_though_the_sender_runs_only_after_it() {
    for budget in BUDGETS {
        // A 1.5 s budget and a reply at once; the sender is held until 1.7 s after the
        // reply, i.e. past its deadline under either reading, and still gets the reply.
        let _m = boot_with(budget);
        let h = connect(&[]) as usize;
        let (hr, sent, replied_at) = std::thread::scope(|s| {
            let _release = ReleaseOnUnwind(h as _);
            let hold = fltsim::port::hold_senders();
            let start = Instant::now();
            let sender = s.spawn(move || kernel_send(0, b"question", Some(8), rel_ms(1_500)));
            let mut buf = [0u8; 64];
            assert_eq!(get_message(h as _, &mut buf), 0, "delivered");
            let replied_at = start.elapsed();
            let hr = reply(h as _, STATUS_ACCESS_DENIED, header_of(&buf).1, b"answer");
            std::thread::sleep(Duration::from_millis(1_700));
            assert_eq!(fltsim::port::waiting_senders(), 1, "held");
            drop(hold);
            (hr, sender.join().unwrap(), replied_at)
        });
        close(h as _);
        // The one assumption about the machine: the reply came within the budget.
        assert!(replied_at < Duration::from_millis(1_500), "{replied_at:?}");
        assert_eq!(hr, 0, "{budget:?}: replied in time");
        assert_eq!(sent.status, STATUS_ACCESS_DENIED, "{budget:?}");
        assert_eq!(sent.reply_len, 6, "{budget:?}");
        assert_eq!(&sent.reply[..6], b"answer", "{budget:?}");
    }
}

#[test]
fn a_message_whose_deadline_passed_before_any_get_is_not_delivered() {
    for budget in BUDGETS {
        let _m = boot_with(budget);
        let h = connect(&[]) as usize;
        std::thread::scope(|s| {
            let _release = ReleaseOnUnwind(h as _);
            let hold = fltsim::port::hold_senders();
            let sender = s.spawn(|| kernel_send(0, b"question", Some(8), rel_ms(100)));
            wait_until("sender registered", || fltsim::port::waiting_senders() == 1);
            std::thread::sleep(Duration::from_millis(400));
            // Past the deadline: an overlapped get finds nothing and stays pending.
            let get = OverlappedGet::start(h as _);
            drop(hold);
            let status = sender.join().unwrap().status;
            assert_eq!(get.hr, E_IO_PENDING, "{budget:?}: nothing to deliver");
            assert_ne!(
                get.finish(),
                0,
                "{budget:?}: the get was cancelled, not completed"
            );
            assert_eq!(status, STATUS_TIMEOUT, "{budget:?}");
        });
        close(h as _);
    }
}
