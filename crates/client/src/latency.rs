//! A small latency recorder: event timestamps (kernel FILETIME) to "now", percentiles.

use parking_lot::Mutex;
use serde::Serialize;
use std::time::{SystemTime, UNIX_EPOCH};

/// Samples kept at most (the first ones are kept; later ones are dropped, not counted).
const MAX_SAMPLES: usize = 1 << 20;
/// 100 ns units between 1601-01-01 and 1970-01-01.
pub(crate) const FILETIME_UNIX_EPOCH: u64 = 116_444_736_000_000_000;

/// Now as a FILETIME (100 ns since 1601-01-01 UTC).
#[must_use]
pub fn filetime_now() -> u64 {
    let since_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // A clock past the year 58,000 saturates rather than wraps.
    FILETIME_UNIX_EPOCH
        .saturating_add(u64::try_from(since_unix.as_nanos() / 100).unwrap_or(u64::MAX))
}

/// Latency samples in microseconds.
#[derive(Debug, Default)]
pub struct Latencies {
    samples: Mutex<Vec<u64>>,
}

/// Percentiles of the recorded samples, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LatencySummary {
    /// Samples recorded.
    pub count: usize,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Largest.
    pub max_us: u64,
}

impl Latencies {
    /// Records the time from `timestamp` (FILETIME) to now; a timestamp in the future
    /// (clock skew) counts as 0.
    pub fn record_since(&self, timestamp: u64) {
        self.record_us(filetime_now().saturating_sub(timestamp) / 10);
    }

    /// Records one sample.
    pub fn record_us(&self, micros: u64) {
        let mut samples = self.samples.lock();
        if samples.len() < MAX_SAMPLES {
            samples.push(micros);
        }
    }

    /// p50 / p99 / max of what was recorded.
    #[must_use]
    pub fn summary(&self) -> LatencySummary {
        let mut samples = self.samples.lock().clone();
        summarize(&mut samples)
    }
}

/// Percentiles (nearest rank) of `samples` (sorted in place).
#[must_use]
pub fn summarize(samples: &mut [u64]) -> LatencySummary {
    if samples.is_empty() {
        return LatencySummary::default();
    }
    samples.sort_unstable();
    let rank = |p: usize| samples[(samples.len() * p).div_ceil(100).clamp(1, samples.len()) - 1];
    LatencySummary {
        count: samples.len(),
        p50_us: rank(50),
        p99_us: rank(99),
        max_us: samples[samples.len() - 1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut samples: Vec<u64> = (1..=100).collect();
        let s = summarize(&mut samples);
        assert_eq!((s.count, s.p50_us, s.p99_us, s.max_us), (100, 50, 99, 100));
        let mut one = vec![7];
        assert_eq!(summarize(&mut one).p99_us, 7);
        assert_eq!(summarize(&mut []).count, 0);
    }

    #[test]
    fn record_since_measures_from_a_filetime() {
        let l = Latencies::default();
        l.record_since(filetime_now() - 20_000); // 2 ms ago
        l.record_since(filetime_now() + 1_000_000); // future: 0
        let s = l.summary();
        assert_eq!(s.count, 2);
        assert!(s.max_us >= 2_000, "{s:?}");
        assert_eq!(s.p50_us, 0);
    }

    #[test]
    fn filetime_now_is_the_system_clock_in_100_ns_units_since_1601() {
        let as_filetime = |time: SystemTime| {
            let since_unix = time.duration_since(UNIX_EPOCH).unwrap();
            FILETIME_UNIX_EPOCH + u64::try_from(since_unix.as_nanos() / 100).unwrap()
        };
        let before = as_filetime(SystemTime::now());
        let now = filetime_now();
        let after = as_filetime(SystemTime::now());
        assert!(
            (before..=after).contains(&now),
            "{before} <= {now} <= {after}"
        );
        assert!(
            crate::event::format_filetime(now).starts_with("20"),
            "{now}"
        );
    }

    #[test]
    fn record_since_records_microseconds() {
        let l = Latencies::default();
        // 100 s ago (10^9 × 100 ns): at least 10^8 µs; the bound above allows a minute of
        // slack for a loaded machine, far below a wrong unit (a factor of 10 or more).
        l.record_since(filetime_now() - 1_000_000_000);
        let s = l.summary();
        assert!((100_000_000..160_000_000).contains(&s.max_us), "{s:?}");
    }

    #[test]
    fn the_first_samples_are_kept_and_later_ones_dropped() {
        let l = Latencies::default();
        for _ in 0..MAX_SAMPLES {
            l.record_us(1);
        }
        l.record_us(1_000_000);
        let s = l.summary();
        assert_eq!((s.count, s.max_us), (MAX_SAMPLES, 1), "{s:?}");
    }
}
