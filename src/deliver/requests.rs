//! The asynchronous decider's worker: a system thread that
//! 1. completes every pended create whose deadline passed, with the default verdict;
//! 2. drains the request queue into batches (`EventBatch`, records flagged
//!    `EVENT_FLAG_PENDED`) and sends each to the asynchronous decider with a notify-only
//!    `FltSendMessage` (no reply buffer: it waits only until a `FilterGetMessage` takes
//!    it). A batch nobody took within the time left to the earliest deadline is not
//!    retried: its creates are completed with the default verdict at once;
//! 3. sleeps until the next deadline or until the create path queues a request.
//!
//! It never waits for a verdict; verdicts arrive through `MessageNotify`
//! ([`crate::verdicts`]). Each send is bounded by the time left to the earliest deadline,
//! so expiry is late by at most one wake-up.

use crate::budget::{self, Budget};
use crate::connections::Role;
use crate::deliver::batch::Batch;
use crate::deliver::notify;
use crate::deliver::pended::{self, Peek};
use crate::event::EventMessage;
use crate::state::DriverState;
use crate::stats::Counter;
use core::ffi::c_void;
use portfilter_protocol::BatchView;

/// Longest sleep without a deadline in sight (a wake-up also comes with each request).
const IDLE_WAIT_MS: u32 = 1000;

/// The thread's entry point.
pub(crate) unsafe extern "system" fn requests_main(context: *mut c_void) {
    // SAFETY: `context` is the published DriverState, alive until after this thread exits
    // (unload waits for it).
    let state: &DriverState = unsafe { &*context.cast::<DriverState>() };
    let worker = &state.async_worker;
    let Some((mut batch, _spare)) = worker.take_buffers() else {
        crate::log_error!("async worker: no batch buffers; pended creates get their deadline");
        while !worker.stopping() {
            let lost = state.requests.clear();
            state.stats.add(Counter::QueueDropped, lost);
            pended::complete_matching(state, Peek::Expired { now: budget::now() });
            let _ = worker.wait(Some(wait_ms(state)));
        }
        return;
    };
    let mut carry: Option<EventMessage> = None;
    while !worker.stopping() {
        let _ = worker.wait(Some(wait_ms(state)));
        pended::complete_matching(state, Peek::Expired { now: budget::now() });
        while !worker.stopping() {
            let max_events = state.config.settings().batch_max_events;
            batch.reset(max_events);
            fill(state, &mut batch, &mut carry);
            if batch.count() == 0 {
                break;
            }
            send(state, &mut batch);
            pended::complete_matching(state, Peek::Expired { now: budget::now() });
        }
    }
    drop(carry.take());
}

/// How long to sleep: until the earliest deadline (at least 1 ms), else a while (a
/// create that pends a request wakes the worker anyway).
fn wait_ms(state: &DriverState) -> u32 {
    state
        .pended
        .next_deadline()
        .map_or(IDLE_WAIT_MS, |d| budget::ms_until(d).clamp(1, IDLE_WAIT_MS))
}

fn fill(state: &DriverState, batch: &mut Batch, carry: &mut Option<EventMessage>) {
    let unfit = crate::deliver::worker::fill_from(&state.requests, batch, carry);
    state.stats.add(Counter::QueueDropped, unfit);
}

/// Sends the batch to the asynchronous decider; if nobody takes it, its creates get the
/// default verdict now.
fn send(state: &DriverState, batch: &mut Batch) {
    let filter = state.filter();
    let budget_ms = state
        .pended
        .next_deadline()
        .map_or(0, budget::ms_until)
        .max(1);
    let mut delivered = false;
    let count = u64::from(batch.count());
    state
        .connections
        .for_each(Role::Decider, None, &state.stats, |decider| {
            if !decider.asynchronous || delivered {
                return;
            }
            batch.set_dropped_before(0);
            delivered =
                notify::send_one(filter, decider.port, batch.message(), Budget::ms(budget_ms));
        });
    if delivered {
        state.stats.bump(Counter::AsyncRequestMessages);
        state.stats.add(Counter::AsyncRequestEvents, count);
        return;
    }
    // Not delivered: complete each of its creates now (those still pended).
    let message = batch.message();
    let Ok(view) = BatchView::decode(message) else {
        return;
    };
    for event in view.events() {
        let sequence = event.fields.sequence;
        complete_sequence(state, sequence);
    }
}

/// Completes the pended create `sequence` with the default verdict, if still pended.
fn complete_sequence(state: &DriverState, sequence: u64) {
    pended::complete_matching(state, Peek::AnySequence(sequence));
}
