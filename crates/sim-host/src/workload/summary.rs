//! The workload's summary: outcome counts and the create latency distribution.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// `STATUS_ACCESS_DENIED`.
const STATUS_ACCESS_DENIED: i32 = 0xC000_0022_u32.cast_signed();

/// Results collected while the workload runs.
pub struct Summary {
    latency_ns: Histogram<u64>,
    statuses: BTreeMap<i32, u64>,
    /// Creates that could not be performed (link lost, host refused).
    pub errors: u64,
}

impl Default for Summary {
    fn default() -> Self {
        Self::new()
    }
}

impl Summary {
    /// An empty summary (latencies from 1 ns to 1 hour, 3 significant digits).
    #[must_use]
    pub fn new() -> Self {
        Self {
            latency_ns: Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
                .expect("constant, valid histogram bounds"),
            statuses: BTreeMap::new(),
            errors: 0,
        }
    }

    /// Records one create.
    pub fn record(&mut self, status: i32, elapsed_ns: u64) {
        self.latency_ns.saturating_record(elapsed_ns.max(1));
        *self.statuses.entry(status).or_default() += 1;
    }

    /// Adds another summary (per-thread summaries are merged at the end).
    pub fn merge(&mut self, other: &Self) {
        let _ = self.latency_ns.add(&other.latency_ns);
        for (s, n) in &other.statuses {
            *self.statuses.entry(*s).or_default() += n;
        }
        self.errors += other.errors;
    }

    /// Creates performed.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.statuses.values().sum()
    }

    /// Creates that succeeded.
    #[must_use]
    pub fn allowed(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| **s >= 0)
            .map(|(_, n)| n)
            .sum()
    }

    /// Creates that failed with `STATUS_ACCESS_DENIED`.
    #[must_use]
    pub fn denied(&self) -> u64 {
        self.statuses
            .get(&STATUS_ACCESS_DENIED)
            .copied()
            .unwrap_or(0)
    }

    /// Latency at `q` (0..=1), in nanoseconds.
    #[must_use]
    pub fn latency_at(&self, q: f64) -> u64 {
        self.latency_ns.value_at_quantile(q)
    }

    /// The printed summary.
    #[must_use]
    pub fn render(&self, wall: Duration) -> String {
        let total = self.total();
        let mut s = String::new();
        let secs = wall.as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let rate = if secs > 0.0 { total as f64 / secs } else { 0.0 };
        let _ = writeln!(
            s,
            "workload: {total} creates in {secs:.2} s ({rate:.0}/s): {} allowed, {} denied, {} other failures, {} errors",
            self.allowed(),
            self.denied(),
            total - self.allowed() - self.denied(),
            self.errors
        );
        let us = |ns: u64| ns as f64 / 1000.0;
        #[allow(clippy::cast_precision_loss)]
        let _ = writeln!(
            s,
            "create latency (driver + fltsim, µs): p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
            us(self.latency_at(0.50)),
            us(self.latency_at(0.90)),
            us(self.latency_at(0.99)),
            us(self.latency_ns.max())
        );
        let _ = writeln!(s, "statuses:");
        for (status, n) in &self.statuses {
            let _ = writeln!(s, "  {:<48} {n}", crate::status::describe(*status));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_percentiles() {
        let mut a = Summary::new();
        for i in 1..=100u64 {
            a.record(0, i * 1000);
        }
        let mut b = Summary::new();
        b.record(STATUS_ACCESS_DENIED, 5000);
        b.record(0xC000_003A_u32.cast_signed(), 5000);
        b.errors = 1;
        a.merge(&b);
        assert_eq!(a.total(), 102);
        assert_eq!(a.allowed(), 100);
        assert_eq!(a.denied(), 1);
        let p50 = a.latency_at(0.5);
        assert!((49_000..=52_000).contains(&p50), "{p50}");
        let text = a.render(Duration::from_secs(1));
        assert!(text.contains("102 creates"), "{text}");
        assert!(
            text.contains("100 allowed, 1 denied, 1 other failures, 1 errors"),
            "{text}"
        );
        assert!(text.contains("STATUS_ACCESS_DENIED"), "{text}");
    }
}
