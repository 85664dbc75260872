//! `VerdictBatch` (kind 20): the asynchronous decider's verdicts, through
//! `FilterSendMessage` → `MessageNotify`, on the decider's thread at PASSIVE_LEVEL.
//!
//! The input has been captured into pool memory by [`crate::commands`] (fault-tolerant
//! copy, 8-byte alignment, at most `MAX_VERDICT_BATCH_BYTES`). Then, in order:
//!
//! | check | status | effect |
//! |---|---|---|
//! | the caller is not the connected asynchronous decider | `STATUS_ACCESS_DENIED` | none; counted invalid |
//! | output smaller than the 32-byte answer | `STATUS_BUFFER_TOO_SMALL` (needed size returned) | none |
//! | output not writable | `STATUS_ACCESS_VIOLATION` | none |
//! | batch malformed: header, count 0 or > 1024, reserved ≠ 0, length ≠ 16 + 16 × count | the decode error's status (`INFO_LENGTH_MISMATCH`, `INVALID_PARAMETER`, …) | none; counted invalid |
//!
//! Otherwise every entry is handled on its own, and the call succeeds with a
//! `VerdictBatchReply`: **invalid** (verdict value not 0/1, allow with a status, deny with
//! a status that is not an error), **applied** (the create was pended for this decider
//! and is completed now), **duplicate** (the sequence appeared earlier in this batch),
//! **late** (the create was completed recently — deadline, cancellation, disconnect or
//! an earlier verdict), **unknown** (anything else). Only applied entries have an effect.

use crate::commands::{Answer, reply_bytes};
use crate::deliver::pended::{self, Peek};
use crate::deliver::reply::Outcome;
use crate::state::DriverState;
use crate::stats::Counter;
use crate::usercopy::UserPtr;
use portfilter_bindings::{STATUS_ACCESS_DENIED, STATUS_BUFFER_TOO_SMALL};
use portfilter_protocol::{
    Decision, Role, VERDICT_BATCH_REPLY_BYTES, VerdictBatchReply, VerdictBatchView,
    status_for_error,
};

/// Handles a captured `VerdictBatch` from the connection in slot `slot`.
pub(crate) fn handle(state: &DriverState, slot: usize, input: &[u8], output: UserPtr) -> Answer {
    let stats = &state.stats;
    stats.bump(Counter::VerdictMessages);
    let decider = state
        .connections
        .info(slot)
        .filter(|i| i.role == Role::Decider && i.asynchronous);
    let Some(decider) = decider else {
        stats.bump(Counter::VerdictsInvalid);
        return Answer::fail(STATUS_ACCESS_DENIED);
    };
    if output.len() < VERDICT_BATCH_REPLY_BYTES {
        return Answer {
            status: STATUS_BUFFER_TOO_SMALL,
            returned: VERDICT_BATCH_REPLY_BYTES as u32,
        };
    }
    // Nothing is applied unless the answer can be written.
    if let Err(status) = output.write_from(&[0u8; VERDICT_BATCH_REPLY_BYTES]) {
        return Answer::fail(status);
    }
    let view = match VerdictBatchView::decode(input) {
        Ok(view) => view,
        Err(e) => {
            stats.bump(Counter::VerdictsInvalid);
            return Answer::fail(status_for_error(&e));
        }
    };
    let mut answer = VerdictBatchReply::default();
    for (index, entry) in view.entries().enumerate() {
        let Ok(verdict) = entry.verdict() else {
            answer.invalid += 1;
            continue;
        };
        let peek = Peek::Sequence {
            sequence: verdict.sequence,
            connection_id: decider.connection_id,
        };
        if let Some(cbd) = state.pended.remove(peek) {
            let outcome = match verdict.decision {
                Decision::Allow => {
                    stats.bump(Counter::RepliesAllow);
                    Outcome::Allow
                }
                Decision::Deny => {
                    stats.bump(Counter::RepliesDeny);
                    Outcome::Deny(verdict.completion_status())
                }
            };
            // SAFETY: removed from the queue just now: ours to complete, once.
            unsafe { pended::complete(cbd, outcome) };
            answer.applied += 1;
        } else if view
            .entries()
            .take(index)
            .any(|earlier| earlier.sequence == verdict.sequence)
        {
            answer.duplicate += 1;
        } else if state.pended.recently_completed(verdict.sequence) {
            answer.late += 1;
        } else {
            answer.unknown += 1;
        }
    }
    stats.add(Counter::VerdictsApplied, u64::from(answer.applied));
    stats.add(Counter::VerdictsLate, u64::from(answer.late));
    stats.add(Counter::VerdictsUnknown, u64::from(answer.unknown));
    stats.add(
        Counter::VerdictsInvalid,
        u64::from(answer.invalid + answer.duplicate),
    );
    let mut buf = [0u8; VERDICT_BATCH_REPLY_BYTES];
    match answer.encode(&mut buf) {
        Ok(_) => reply_bytes(output, &buf),
        Err(e) => Answer::fail(status_for_error(&e)),
    }
}
