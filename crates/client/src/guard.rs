//! `guard`: answer request-reply events with a rule set, printing each decision.

use crate::connection::Verdict;
use crate::engine::Handler;
use crate::event::Event;
use crate::latency::Latencies;
use crate::output::{Output, PrintedDecision};
use crate::rules::{Action, RuleSet};
use portfilter_protocol::EventView;

/// The handler behind `portctl guard`: decides each request with a [`RuleSet`] (first
/// match wins, else the default) and prints the event with the decision.
#[derive(Debug)]
pub struct Guard {
    rules: RuleSet,
    output: Output,
    latencies: Latencies,
}

impl Guard {
    /// Decides with `rules`, prints to `output` (table header first).
    #[must_use]
    pub fn new(rules: RuleSet, output: Output) -> Self {
        output.header(true);
        Self {
            rules,
            output,
            latencies: Latencies::default(),
        }
    }

    /// The rule set.
    #[must_use]
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// The output (for the final summary).
    #[must_use]
    pub fn output(&self) -> &Output {
        &self.output
    }

    /// Decision latencies: event timestamp (the create entered the driver) → verdict
    /// decided here. The reply's trip back is not included.
    #[must_use]
    pub fn latencies(&self) -> &Latencies {
        &self.latencies
    }

    /// Decides one event (without printing).
    #[must_use]
    pub fn decide(&self, event: &Event) -> (Verdict, PrintedDecision) {
        let decision = self.rules.decide(&event.subject());
        let verdict = match (decision.action, decision.status()) {
            (Action::Allow, _) => Verdict::Allow,
            (Action::Deny, None) => Verdict::Deny,
            (Action::Deny, Some(status)) => Verdict::DenyWith(status),
        };
        let by = match decision.rule {
            Some((index, rule)) => format!("rule {} {rule}", index + 1),
            None => "default".to_owned(),
        };
        (
            verdict,
            PrintedDecision {
                verdict: if verdict.is_deny() { "deny" } else { "allow" },
                by,
            },
        )
    }
}

impl Handler for Guard {
    fn on_event(&self, view: &EventView<'_>) -> Verdict {
        let event = Event::from_view(view);
        let (verdict, printed) = self.decide(&event);
        self.latencies.record_since(view.fields.timestamp);
        self.output.event(&event, Some(&printed));
        verdict
    }

    fn on_drops(&self, dropped: u32) {
        self.output.drops(dropped);
    }
}
