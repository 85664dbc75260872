//! How `watch` and `guard` print link changes: one line each, human or JSON.

use super::link::{LinkChange, SessionHandler};
use crate::guard::Guard;
use crate::output::Output;
use crate::watch::Watch;
use serde_json::json;
use std::time::Duration;

/// What is said about events missed during an outage (the count is not known).
const GAP_NOTE: &str = "events during the outage were not delivered to this client and are not counted (a driver reload restarts its sequence numbers and counters)";

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

/// Prints a link change to `output`: a `-- …` line, or with `--json` an object whose
/// `type` is `connected`, `disconnected`, `waiting` or `sequence_restarted`. A first
/// connection made at once prints nothing (the output starts as it always did).
pub fn print_link(output: &Output, change: &LinkChange) {
    match change {
        LinkChange::Connected(connected) => {
            let Some(outage) = &connected.outage else {
                return;
            };
            let human = if connected.generation == 1 {
                format!(
                    "-- connected to the driver after waiting {} ({} attempts)",
                    seconds(outage.duration),
                    outage.attempts
                )
            } else {
                format!(
                    "-- reconnected to the driver after {} ({} attempts, connection {}): {GAP_NOTE}",
                    seconds(outage.duration),
                    outage.attempts,
                    connected.generation
                )
            };
            let value = json!({
                "connection": connected.generation,
                "outage_ms": millis(outage.duration),
                "attempts": outage.attempts,
                "last_sequence_before": outage.last_sequence_before,
                "missed_events": null,
                "protocol_version": connected.hello.protocol_version,
            });
            output.summary("connected", &value, &human);
        }
        LinkChange::Disconnected(gone) => {
            let last = gone
                .last_sequence
                .map_or_else(|| "none".to_owned(), |s| s.to_string());
            let next = if gone.reconnecting {
                "reconnecting"
            } else {
                "not reconnecting"
            };
            let human = format!(
                "-- the driver closed the connection (connection {}: {} events, last sequence {last}); {next}",
                gone.generation, gone.events
            );
            let value = json!({
                "connection": gone.generation,
                "events": gone.events,
                "last_sequence": gone.last_sequence,
                "reconnecting": gone.reconnecting,
            });
            output.summary("disconnected", &value, &human);
        }
        LinkChange::Waiting(waiting) => {
            let human = format!(
                "-- waiting for the driver (attempt {}, {}): {}",
                waiting.attempts,
                seconds(waiting.elapsed),
                waiting.error
            );
            let value = json!({
                "attempts": waiting.attempts,
                "elapsed_ms": millis(waiting.elapsed),
                "error": waiting.error,
                "hresult": waiting.hresult.map(|h| format!("0x{:08X}", h.as_u32())),
            });
            output.summary("waiting", &value, &human);
        }
        LinkChange::SequenceRestarted { before, now } => {
            let human = format!(
                "-- sequence numbers restarted (last before the outage {before}, now {now}): the driver was reloaded"
            );
            output.summary(
                "sequence_restarted",
                &json!({ "before": before, "now": now }),
                &human,
            );
        }
    }
}

impl SessionHandler for Watch {
    fn on_link(&self, change: &LinkChange) {
        print_link(self.output(), change);
    }
}

impl SessionHandler for Guard {
    fn on_link(&self, change: &LinkChange) {
        print_link(self.output(), change);
    }
}
