//! The driver configuration as `portctl config get|set` shows and edits it: named
//! settings (`reply-timeout-ms=500`), printable and serialisable views, and the counters
//! of `portctl stats`.

use portfilter_protocol::{
    Config, Decision, Delivery, FilterKind, SKIP_DIRECTORIES, SKIP_KERNEL_MODE, Stats,
};
use serde::Serialize;
use std::fmt::Write as _;

/// The settings `portctl config set` accepts, with what each does (for `--help`).
pub const SETTINGS_HELP: &str = "\
observer-delivery=notify|queued   how observers (watch) receive events
reply-timeout-ms=N                request-reply budget per create (1..=60000)
notify-timeout-ms=N               notify-mode budget per create (0..=5000)
default-verdict=allow|deny        verdict when no decider answers in time
skip-directories=true|false       do not report directory opens
skip-kernel-mode=true|false       do not report kernel-mode creates
queue-capacity=N                  queued mode: events waiting at most (1..=16384)
batch-max-events=N                queued mode: events per batch at most (1..=1024)
include-prefix=\\DIR\\             report only paths under DIR (repeatable)
exclude-prefix=\\DIR\\             do not report paths under DIR (repeatable)
include-ext=EXT                   report only files with extension EXT (repeatable)
exclude-ext=EXT                   do not report files with extension EXT (repeatable)
clear-filters                     remove every filter first";

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!("`{value}` is not true or false")),
    }
}

fn parse_u32(value: &str) -> Result<u32, String> {
    value
        .parse::<u32>()
        .map_err(|_| format!("`{value}` is not a whole number"))
}

fn set_flag(flags: &mut u32, bit: u32, on: bool) {
    if on {
        *flags |= bit;
    } else {
        *flags &= !bit;
    }
}

/// Applies one `key=value` (or `clear-filters`) to `config`. Range checks are done by
/// [`Config::validate`] afterwards (the caller validates the whole result).
///
/// # Errors
/// A message naming the key or value that is wrong.
pub fn apply_setting(config: &mut Config, setting: &str) -> Result<(), String> {
    if setting == "clear-filters" {
        config.filters.clear();
        return Ok(());
    }
    let Some((key, value)) = setting.split_once('=') else {
        return Err(format!(
            "`{setting}` is not KEY=VALUE (see `portctl config set --help`)"
        ));
    };
    match key {
        "observer-delivery" => {
            config.observer_delivery = match value.to_ascii_lowercase().as_str() {
                "notify" => Delivery::Notify,
                "queued" => Delivery::Queued,
                _ => {
                    return Err(format!(
                        "observer-delivery: `{value}` is not notify or queued"
                    ));
                }
            };
        }
        "reply-timeout-ms" => config.reply_timeout_ms = parse_u32(value)?,
        "notify-timeout-ms" => config.notify_timeout_ms = parse_u32(value)?,
        "default-verdict" => {
            config.default_verdict = match value.to_ascii_lowercase().as_str() {
                "allow" => Decision::Allow,
                "deny" => Decision::Deny,
                _ => return Err(format!("default-verdict: `{value}` is not allow or deny")),
            };
        }
        "skip-directories" => {
            set_flag(&mut config.skip_flags, SKIP_DIRECTORIES, parse_bool(value)?)
        }
        "skip-kernel-mode" => {
            set_flag(&mut config.skip_flags, SKIP_KERNEL_MODE, parse_bool(value)?)
        }
        "queue-capacity" => config.queue_capacity = parse_u32(value)?,
        "batch-max-events" => config.batch_max_events = parse_u32(value)?,
        "include-prefix" | "exclude-prefix" | "include-ext" | "exclude-ext" => {
            let kind = match key {
                "include-prefix" => FilterKind::IncludePrefix,
                "exclude-prefix" => FilterKind::ExcludePrefix,
                "include-ext" => FilterKind::IncludeExtension,
                _ => FilterKind::ExcludeExtension,
            };
            let pattern = if kind.is_prefix() {
                value
            } else {
                value.strip_prefix('.').unwrap_or(value)
            };
            config
                .filters
                .push_str(kind, pattern)
                .map_err(|error| format!("{key}={value}: {error}"))?;
        }
        _ => {
            return Err(format!(
                "unknown setting `{key}` (see `portctl config set --help`)"
            ));
        }
    }
    Ok(())
}

/// A serialisable copy of a [`Config`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigView {
    /// `notify` or `queued`.
    pub observer_delivery: &'static str,
    /// Request-reply budget, ms.
    pub reply_timeout_ms: u32,
    /// Notify budget, ms.
    pub notify_timeout_ms: u32,
    /// `allow` or `deny`.
    pub default_verdict: &'static str,
    /// Directory opens are not reported.
    pub skip_directories: bool,
    /// Kernel-mode creates are not reported.
    pub skip_kernel_mode: bool,
    /// Queued mode: capacity.
    pub queue_capacity: u32,
    /// Queued mode: events per batch.
    pub batch_max_events: u32,
    /// Filters as `kind=pattern` (`exclude-prefix=\Windows\`).
    pub filters: Vec<String>,
}

impl From<&Config> for ConfigView {
    fn from(config: &Config) -> Self {
        Self {
            observer_delivery: match config.observer_delivery {
                Delivery::Notify => "notify",
                Delivery::Queued => "queued",
            },
            reply_timeout_ms: config.reply_timeout_ms,
            notify_timeout_ms: config.notify_timeout_ms,
            default_verdict: match config.default_verdict {
                Decision::Allow => "allow",
                Decision::Deny => "deny",
            },
            skip_directories: config.skip_flags & SKIP_DIRECTORIES != 0,
            skip_kernel_mode: config.skip_flags & SKIP_KERNEL_MODE != 0,
            queue_capacity: config.queue_capacity,
            batch_max_events: config.batch_max_events,
            filters: config
                .filters
                .iter()
                .map(|filter| {
                    let key = match filter.kind {
                        FilterKind::IncludePrefix => "include-prefix",
                        FilterKind::ExcludePrefix => "exclude-prefix",
                        FilterKind::IncludeExtension => "include-ext",
                        FilterKind::ExcludeExtension => "exclude-ext",
                    };
                    format!("{key}={}", String::from_utf16_lossy(filter.pattern))
                })
                .collect(),
        }
    }
}

impl ConfigView {
    /// `key=value` lines, in the syntax `config set` accepts.
    #[must_use]
    pub fn to_lines(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(text, "observer-delivery={}", self.observer_delivery);
        let _ = writeln!(text, "reply-timeout-ms={}", self.reply_timeout_ms);
        let _ = writeln!(text, "notify-timeout-ms={}", self.notify_timeout_ms);
        let _ = writeln!(text, "default-verdict={}", self.default_verdict);
        let _ = writeln!(text, "skip-directories={}", self.skip_directories);
        let _ = writeln!(text, "skip-kernel-mode={}", self.skip_kernel_mode);
        let _ = writeln!(text, "queue-capacity={}", self.queue_capacity);
        let _ = writeln!(text, "batch-max-events={}", self.batch_max_events);
        for filter in &self.filters {
            let _ = writeln!(text, "{filter}");
        }
        text
    }
}

/// The driver's counters as `(name, value)` pairs, in wire order.
#[must_use]
pub fn stats_pairs(stats: &Stats) -> Vec<(&'static str, u64)> {
    stats.counters().to_vec()
}

/// The counters as a JSON object.
#[must_use]
pub fn stats_json(stats: &Stats) -> serde_json::Value {
    serde_json::Value::Object(
        stats
            .counters()
            .iter()
            .map(|(name, value)| ((*name).to_owned(), serde_json::Value::from(*value)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_lines() {
        let mut config = Config::default();
        for setting in [
            "observer-delivery=notify",
            "reply-timeout-ms=250",
            "notify-timeout-ms=0",
            "default-verdict=deny",
            "skip-directories=yes",
            "skip-kernel-mode=false",
            "queue-capacity=64",
            "batch-max-events=8",
            "exclude-prefix=\\Windows\\",
            "include-ext=.TXT",
        ] {
            apply_setting(&mut config, setting).unwrap();
        }
        config.validate().unwrap();
        let view = ConfigView::from(&config);
        assert_eq!(view.observer_delivery, "notify");
        assert_eq!(view.default_verdict, "deny");
        assert!(view.skip_directories && !view.skip_kernel_mode);
        assert_eq!(
            view.filters,
            vec!["exclude-prefix=\\Windows\\", "include-ext=TXT"]
        );
        let mut again = Config::default();
        apply_setting(&mut again, "clear-filters").unwrap();
        for line in view.to_lines().lines() {
            apply_setting(&mut again, line).unwrap();
        }
        assert_eq!(again, config);
    }

    #[test]
    fn every_choice_of_each_setting_takes_effect() {
        let mut config = Config::default();
        for (setting, delivery) in [
            ("observer-delivery=queued", Delivery::Queued),
            ("observer-delivery=Notify", Delivery::Notify),
            ("observer-delivery=QUEUED", Delivery::Queued),
        ] {
            apply_setting(&mut config, setting).unwrap();
            assert_eq!(config.observer_delivery, delivery, "{setting}");
        }
        for (setting, verdict) in [
            ("default-verdict=deny", Decision::Deny),
            ("default-verdict=allow", Decision::Allow),
            ("default-verdict=Deny", Decision::Deny),
            ("default-verdict=ALLOW", Decision::Allow),
        ] {
            apply_setting(&mut config, setting).unwrap();
            assert_eq!(config.default_verdict, verdict, "{setting}");
        }
        for (directories, kernel_mode) in [(false, true), (true, false), (false, false)] {
            apply_setting(&mut config, &format!("skip-directories={directories}")).unwrap();
            apply_setting(&mut config, &format!("skip-kernel-mode={kernel_mode}")).unwrap();
            let view = ConfigView::from(&config);
            assert_eq!(
                (view.skip_directories, view.skip_kernel_mode),
                (directories, kernel_mode)
            );
        }
        apply_setting(&mut config, "clear-filters").unwrap();
        for setting in [
            "include-prefix=\\Users\\",
            "exclude-prefix=\\Windows\\",
            "include-ext=.log",
            "exclude-ext=tmp",
        ] {
            apply_setting(&mut config, setting).unwrap();
        }
        let filters: Vec<(FilterKind, String)> = config
            .filters
            .iter()
            .map(|filter| (filter.kind, String::from_utf16_lossy(filter.pattern)))
            .collect();
        assert_eq!(
            filters,
            [
                (FilterKind::IncludePrefix, "\\Users\\".to_owned()),
                (FilterKind::ExcludePrefix, "\\Windows\\".to_owned()),
                (FilterKind::IncludeExtension, "log".to_owned()),
                (FilterKind::ExcludeExtension, "tmp".to_owned()),
            ]
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let mut config = Config::default();
        assert!(
            apply_setting(&mut config, "reply-timeout-ms")
                .unwrap_err()
                .contains("KEY=VALUE")
        );
        assert!(
            apply_setting(&mut config, "nope=1")
                .unwrap_err()
                .contains("unknown setting `nope`")
        );
        assert!(
            apply_setting(&mut config, "reply-timeout-ms=x")
                .unwrap_err()
                .contains("`x`")
        );
        assert!(
            apply_setting(&mut config, "observer-delivery=fast")
                .unwrap_err()
                .contains("notify or queued")
        );
        assert!(apply_setting(&mut config, "skip-directories=maybe").is_err());
        // Out-of-range numbers are caught by Config::validate.
        apply_setting(&mut config, "reply-timeout-ms=0").unwrap();
        assert!(config.validate().is_err());
    }

    #[test]
    fn stats_pairs_name_every_counter_in_wire_order() {
        let stats = Stats {
            events_seen: 5,
            replies_deny: 6,
            async_cancelled: 9,
            ..Stats::default()
        };
        let pairs = stats_pairs(&stats);
        let names: Vec<&str> = pairs.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, portfilter_protocol::stats::STATS_COUNTER_NAMES);
        assert_eq!(pairs.first(), Some(&("events_seen", 5)));
        assert_eq!(pairs.last(), Some(&("async_cancelled", 9)));
        assert!(pairs.contains(&("replies_deny", 6)));
        let total: u64 = pairs.iter().map(|(_, value)| value).sum();
        assert_eq!(total, 5 + 6 + 9);
    }

    #[test]
    fn stats_json_has_every_counter() {
        let stats = Stats {
            events_seen: 5,
            ..Stats::default()
        };
        let json = stats_json(&stats);
        assert_eq!(json["events_seen"], 5);
        assert_eq!(
            json.as_object().unwrap().len(),
            portfilter_protocol::stats::STATS_COUNTERS
        );
    }
}
