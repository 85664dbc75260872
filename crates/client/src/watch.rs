//! `watch`: print every create event an observer connection receives.

use crate::connection::Verdict;
use crate::engine::Handler;
use crate::event::Event;
use crate::latency::Latencies;
use crate::output::Output;
use portfilter_protocol::EventView;

/// The handler behind `portctl watch`: prints each event (and each drop report of a
/// queued-notify batch) to its [`Output`].
#[derive(Debug)]
pub struct Watch {
    output: Output,
    latencies: Latencies,
}

impl Watch {
    /// Prints to `output`; writes the table header first.
    #[must_use]
    pub fn new(output: Output) -> Self {
        output.header(false);
        Self {
            output,
            latencies: Latencies::default(),
        }
    }

    /// The output (for the final summary).
    #[must_use]
    pub fn output(&self) -> &Output {
        &self.output
    }

    /// Delivery latencies (event timestamp → received here).
    #[must_use]
    pub fn latencies(&self) -> &Latencies {
        &self.latencies
    }
}

impl Handler for Watch {
    fn on_event(&self, view: &EventView<'_>) -> Verdict {
        self.latencies.record_since(view.fields.timestamp);
        self.output.event(&Event::from_view(view), None);
        // An observer never receives requests; should one arrive, let it through.
        Verdict::Allow
    }

    fn on_drops(&self, dropped: u32) {
        self.output.drops(dropped);
    }
}
