//! Request-reply delivery: send the event to the decider and wait, with a finite timeout,
//! for its verdict.
//!
//! Only a reply that arrived (`FltSendMessage` returned exactly `STATUS_SUCCESS` — never
//! `NT_SUCCESS`, which `STATUS_TIMEOUT` also passes), has exactly [`VERDICT_BYTES`],
//! decodes (magic, version, kind, verdict value, status), and echoes the event's sequence
//! decides the create. Everything else applies the configured default verdict and is
//! counted.

use crate::budget::Budget;
use crate::config::Settings;
use crate::connections::{Connections, Role};
use crate::event::EventMessage;
use crate::stats::{Counter, Stats};
use core::ffi::c_void;
use portfilter_bindings::{
    FltSendMessage, NTSTATUS, PFLT_FILTER, PFLT_PORT, STATUS_BUFFER_OVERFLOW, STATUS_SUCCESS,
    STATUS_TIMEOUT,
};
use portfilter_protocol::{Decision, VERDICT_BYTES, Verdict};

/// What the create path does with the create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Let it proceed.
    Allow,
    /// Complete it with this error status.
    Deny(NTSTATUS),
}

impl Outcome {
    /// The outcome a decision of the default verdict gives.
    pub(crate) fn default_verdict(settings: &Settings, stats: &Stats) -> Self {
        stats.bump(Counter::DefaultVerdicts);
        match settings.default_verdict {
            Decision::Allow => Self::Allow,
            Decision::Deny => Self::Deny(Verdict::deny(0).completion_status()),
        }
    }
}

/// The create's outcome from the decider: ask it if one is connected (and is not the
/// requestor's own process: then the create is not held at all), else the default.
pub(crate) fn decide(
    filter: PFLT_FILTER,
    connections: &Connections,
    requestor: u32,
    event: &mut EventMessage,
    sequence: u64,
    settings: &Settings,
    stats: &Stats,
) -> Outcome {
    let mut outcome = None;
    let visit = connections.for_each(Role::Decider, Some(requestor), stats, |decider| {
        outcome = Some(request_verdict(
            filter,
            decider.port,
            event,
            sequence,
            settings,
            stats,
        ));
    });
    match outcome {
        Some(outcome) => outcome,
        // The decider's own create: never held.
        None if visit.excluded => Outcome::Allow,
        None => Outcome::default_verdict(settings, stats),
    }
}

/// The create's outcome without asking the decider (the requestor may hold resources the
/// decider needs: waiting could deadlock): the decider's own create is allowed as always,
/// every other gets the default verdict at once.
pub(crate) fn decide_without_asking(
    connections: &Connections,
    requestor: u32,
    settings: &Settings,
    stats: &Stats,
) -> Outcome {
    let visit = connections.for_each(Role::Decider, Some(requestor), stats, |_| {});
    if visit.excluded {
        Outcome::Allow
    } else {
        Outcome::default_verdict(settings, stats)
    }
}

/// Sends `event` (request flag set) to the decider's client port `port` and returns the
/// outcome.
fn request_verdict(
    filter: PFLT_FILTER,
    port: *mut PFLT_PORT,
    event: &mut EventMessage,
    sequence: u64,
    settings: &Settings,
    stats: &Stats,
) -> Outcome {
    event.set_request(true);
    let mut reply = [0u8; VERDICT_BYTES];
    let mut reply_len = VERDICT_BYTES as u32;
    // An absolute deadline: the create is held at most reply_timeout_ms under both readings
    // of the timeout (one budget, or re-armed for each internal wait).
    let mut timeout = Budget::ms(settings.reply_timeout_ms).timeout();
    stats.bump(Counter::RequestsSent);
    let len = event.len() as u32;
    // SAFETY: the port cell belongs to the decider referenced by `decide` (it stays this
    // connection's cell meanwhile); the event and reply buffers are kernel memory valid for
    // the given lengths; the timeout is finite and lives across the call.
    let status = unsafe {
        FltSendMessage(
            filter,
            port,
            event.as_mut_ptr().cast::<c_void>(),
            len,
            reply.as_mut_ptr().cast::<c_void>(),
            &raw mut reply_len,
            &raw mut timeout,
        )
    };
    event.set_request(false);
    if status == STATUS_TIMEOUT {
        stats.bump(Counter::ReplyTimeouts);
        return Outcome::default_verdict(settings, stats);
    }
    if status == STATUS_BUFFER_OVERFLOW {
        // The client replied with more than a verdict: truncated, so not a verdict.
        stats.bump(Counter::ReplyBad);
        return Outcome::default_verdict(settings, stats);
    }
    if status != STATUS_SUCCESS {
        // Disconnected, thread terminating, out of resources, or the status the client
        // put in its reply header: not a verdict.
        return Outcome::default_verdict(settings, stats);
    }
    match decode_reply(&reply, reply_len, sequence) {
        Some(verdict) if verdict.decision == Decision::Allow => {
            stats.bump(Counter::RepliesAllow);
            Outcome::Allow
        }
        Some(verdict) => {
            stats.bump(Counter::RepliesDeny);
            // The decoder checked the status is 0 or an error-severity status.
            Outcome::Deny(verdict.completion_status())
        }
        None => {
            stats.bump(Counter::ReplyBad);
            Outcome::default_verdict(settings, stats)
        }
    }
}

/// Validates a received reply: exact length, a valid verdict message, and the echo of the
/// event's sequence.
pub(crate) fn decode_reply(reply: &[u8], reply_len: u32, sequence: u64) -> Option<Verdict> {
    if reply_len as usize != VERDICT_BYTES {
        return None;
    }
    let verdict = Verdict::decode(reply.get(..VERDICT_BYTES)?).ok()?;
    (verdict.sequence == sequence).then_some(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(reply: &[u8], len: u32, sequence: u64) -> Option<Decision> {
        decode_reply(reply, len, sequence).map(|v| v.decision)
    }

    fn encoded(v: &Verdict) -> [u8; VERDICT_BYTES] {
        let mut buf = [0u8; VERDICT_BYTES];
        v.encode(&mut buf).expect("valid verdict");
        buf
    }

    #[test]
    fn reply_must_have_exact_length_and_matching_sequence() {
        let allow = encoded(&Verdict::allow(9));
        assert_eq!(decide(&allow, 24, 9), Some(Decision::Allow));
        assert_eq!(decide(&allow, 23, 9), None);
        assert_eq!(decide(&allow, 0, 9), None);
        assert_eq!(decide(&allow, 24, 10), None);
        let deny = encoded(&Verdict::deny(3));
        assert_eq!(decide(&deny, 24, 3), Some(Decision::Deny));
    }

    #[test]
    fn malformed_replies_are_refused() {
        let mut bad = encoded(&Verdict::allow(1));
        bad[16] = 7; // verdict value 7
        assert_eq!(decide(&bad, 24, 1), None);
        let mut bad = encoded(&Verdict::allow(1));
        bad[0] = b'X'; // magic
        assert_eq!(decide(&bad, 24, 1), None);
        let mut bad = encoded(&Verdict::allow(1));
        bad[2] = 99; // version
        assert_eq!(decide(&bad, 24, 1), None);
        let mut bad = encoded(&Verdict::deny(1));
        bad[20..24].copy_from_slice(&0x0000_0103i32.to_le_bytes()); // success-class status
        assert_eq!(decide(&bad, 24, 1), None);
        assert_eq!(decide(&[0u8; 24], 24, 0), None);
    }
}
