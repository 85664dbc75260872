//! The real trace sample (tests/data/sample-creates.csv, 1,278 Sysmon file creates) replayed
//! through the driver: a decider applying a rule, a queued observer and a notify observer
//! all see exactly what they should, and the counters add up.

mod common;

use common::{Seen, Sim, config_with, connect, nt, spawn_decider, spawn_observer, wait_until};
use fltsim::CreateRequest;
use portfilter_bindings::{STATUS_ACCESS_DENIED, STATUS_SUCCESS};
use portfilter_protocol::{Delivery, FilterKind, Role, Verdict};
use std::sync::Arc;
use std::time::Duration;

const DECIDER: u32 = 9001;
const OBSERVER: u32 = 9002;

/// The decider's rule: deny PowerShell scripts and anything under `\Windows\Temp\`.
fn denied(path_in_volume: &str) -> bool {
    let lower = path_in_volume.to_ascii_lowercase();
    lower.ends_with(".ps1") || lower.starts_with(r"\windows\temp\")
}

#[test]
fn trace_replay_with_a_decider_and_a_queued_observer() {
    let rows = common::sample_creates();
    assert!(rows.len() > 1000, "the sample is bundled");
    let sim = Sim::start();
    let decider = spawn_decider(
        DECIDER,
        Arc::new(|e: &Seen| {
            Some(if denied(&e.path) {
                Verdict::deny(e.sequence)
            } else {
                Verdict::allow(e.sequence)
            })
        }),
    );
    let observer = spawn_observer(OBSERVER, None);
    observer.port.set_config(&config_with(|c| {
        c.observer_delivery = Delivery::Queued;
        c.queue_capacity = 4096;
        c.batch_max_events = 100;
        c.notify_timeout_ms = 2_000;
    }));

    let mut expected_denies = 0u64;
    for (pid, _image, path) in &rows {
        let out = fltsim::create(&CreateRequest::new(path).pid(*pid));
        let rule = denied(&path[2..]);
        expected_denies += u64::from(rule);
        let want = if rule {
            STATUS_ACCESS_DENIED
        } else {
            STATUS_SUCCESS
        };
        assert_eq!(out.status, want, "{path}");
    }
    let total = rows.len();
    assert!(expected_denies > 10, "the rule matches part of the trace");
    assert!(wait_until(Duration::from_secs(20), || observer
        .received
        .count()
        == total));

    let stats = observer.port.stats();
    assert_eq!(stats.events_seen, total as u64);
    assert_eq!(stats.events_reported, total as u64);
    assert_eq!(stats.requests_sent, total as u64);
    assert_eq!(stats.replies_deny, expected_denies);
    assert_eq!(stats.replies_allow, total as u64 - expected_denies);
    assert_eq!(stats.queue_enqueued, total as u64);
    assert_eq!(stats.queue_dropped, 0);

    let to_observer = observer.stop().snapshot();
    let to_decider = decider.stop().snapshot();
    assert_eq!(to_decider.len(), total);
    for ((pid, _, path), (d, o)) in rows.iter().zip(to_decider.iter().zip(&to_observer)) {
        assert_eq!(d.name, nt(path));
        assert_eq!(d.pid, *pid);
        assert_eq!(
            o.sequence, d.sequence,
            "the observer sees the decider's event"
        );
        assert_eq!(o.name, d.name);
    }
    sim.unload_and_check_pool();
}

#[test]
fn trace_replay_with_filters_reports_only_the_selected_creates() {
    let rows = common::sample_creates();
    let sim = Sim::start();
    let observer = spawn_observer(OBSERVER, None);
    observer.port.set_config(&config_with(|c| {
        c.observer_delivery = Delivery::Notify;
        c.notify_timeout_ms = 2_000;
        c.filters
            .push_str(FilterKind::IncludePrefix, r"\ProgramData\")
            .unwrap();
        c.filters
            .push_str(FilterKind::ExcludeExtension, "tmp")
            .unwrap();
    }));
    let selected = |path: &str| {
        let rest = path[2..].to_ascii_lowercase();
        let file = rest.rsplit('\\').next().unwrap_or_default();
        let file = file.split(':').next().unwrap_or_default();
        let ext = file.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
        rest.starts_with(r"\programdata\") && ext != "tmp"
    };
    let mut expected = Vec::new();
    for (pid, _, path) in &rows {
        assert_eq!(
            fltsim::create(&CreateRequest::new(path).pid(*pid)).status,
            STATUS_SUCCESS
        );
        if selected(path) {
            expected.push(nt(path));
        }
    }
    assert!(!expected.is_empty() && expected.len() < rows.len());
    assert!(wait_until(Duration::from_secs(10), || observer
        .received
        .count()
        == expected.len()));
    let other = connect(OBSERVER + 1, Role::Observer);
    let stats = other.stats();
    other.close();
    let got: Vec<_> = observer
        .stop()
        .snapshot()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(got, expected);
    assert_eq!(stats.events_skipped, (rows.len() - expected.len()) as u64);
    sim.unload_and_check_pool();
}
