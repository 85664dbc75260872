//! How `watch` and `guard` print events: a human table or one JSON object per line.

use crate::event::Event;
use parking_lot::Mutex;
use serde::Serialize;
use std::io::Write;

/// Output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// A table with a header line.
    #[default]
    Human,
    /// One JSON object per line (`{"type":"event",…}`, `{"type":"drops",…}`).
    Json,
}

/// A line-oriented, thread-safe output (stdout, a file, a test buffer).
pub struct Output {
    format: Format,
    sink: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// A decision as printed next to an event.
#[derive(Clone, Debug, Serialize)]
pub struct PrintedDecision {
    /// `allow` or `deny`.
    pub verdict: &'static str,
    /// Which rule decided (`rule 2 (line 7) deny ext tmp`) or `default`.
    pub by: String,
}

#[derive(Serialize)]
struct EventLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    event: &'a Event,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<&'a PrintedDecision>,
}

#[derive(Serialize)]
struct DropsLine {
    #[serde(rename = "type")]
    kind: &'static str,
    dropped: u32,
}

impl Output {
    /// Output to `sink` in `format`.
    #[must_use]
    pub fn new(format: Format, sink: Box<dyn Write + Send>) -> Self {
        Self {
            format,
            sink: Mutex::new(sink),
        }
    }

    /// Output to standard output.
    #[must_use]
    pub fn stdout(format: Format) -> Self {
        Self::new(format, Box::new(std::io::stdout()))
    }

    /// The format.
    #[must_use]
    pub fn format(&self) -> Format {
        self.format
    }

    /// Writes the table header (human format only).
    pub fn header(&self, with_decision: bool) {
        if self.format == Format::Human {
            let decision = if with_decision { "VERDICT  " } else { "" };
            self.line(&format!(
                "{decision}{:<12} {:>8} {:>6} {:>6} {:<12} {:<10} NAME",
                "TIME", "SEQ", "PID", "TID", "DISPOSITION", "ACCESS"
            ));
        }
    }

    /// Writes one event, with the decision taken on it if any.
    pub fn event(&self, event: &Event, decision: Option<&PrintedDecision>) {
        match self.format {
            Format::Json => {
                let line = EventLine {
                    kind: "event",
                    event,
                    decision,
                };
                match serde_json::to_string(&line) {
                    Ok(text) => self.line(&text),
                    Err(error) => tracing::error!(%error, "cannot serialise an event"),
                }
            }
            Format::Human => {
                let time = event.time.get(11..23).unwrap_or(&event.time);
                let mut flags = event.flag_words();
                flags.retain(|word| *word != "request");
                let flags = if flags.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", flags.join(","))
                };
                let verdict = decision
                    .map_or_else(String::new, |d| format!("{:<8} ", d.verdict.to_uppercase()));
                let by = decision.map_or_else(String::new, |d| format!("  <- {}", d.by));
                self.line(&format!(
                    "{verdict}{time:<12} {:>8} {:>6} {:>6} {:<12} 0x{:08X} {}{flags}{by}",
                    event.sequence,
                    event.process_id,
                    event.thread_id,
                    event.disposition_name(),
                    event.desired_access,
                    event.name,
                ));
            }
        }
    }

    /// Reports events the driver dropped before a batch (queue full or delivery to this client timed out).
    pub fn drops(&self, dropped: u32) {
        match self.format {
            Format::Json => {
                if let Ok(text) = serde_json::to_string(&DropsLine {
                    kind: "drops",
                    dropped,
                }) {
                    self.line(&text);
                }
            }
            Format::Human => self.line(&format!(
                "-- the driver dropped {dropped} events (queue full or delivery to this client timed out) --"
            )),
        }
    }

    /// Writes a summary object / text block at the end.
    pub fn summary<T: Serialize>(&self, title: &str, value: &T, human: &str) {
        match self.format {
            Format::Json => {
                #[derive(Serialize)]
                struct Summary<'a, T> {
                    #[serde(rename = "type")]
                    kind: &'a str,
                    #[serde(flatten)]
                    value: &'a T,
                }
                if let Ok(text) = serde_json::to_string(&Summary { kind: title, value }) {
                    self.line(&text);
                }
            }
            Format::Human => self.line(human),
        }
    }

    /// Writes a raw line.
    pub fn line(&self, text: &str) {
        let mut sink = self.sink.lock();
        // A closed pipe (e.g. `portctl watch | head`) must not kill the workers.
        let _ = writeln!(sink, "{text}").and_then(|()| sink.flush());
    }
}
