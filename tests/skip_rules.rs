//! What is reported and what is not: the fixed skip rules, the configurable ones, the
//! path/extension filters, and how the name is obtained (normalized, opened, none).

mod common;

use common::{Seen, Sim, config_with, create_as, nt, spawn_observer, wait_until};
use fltsim::CreateRequest;
use portfilter_bindings::{STATUS_FLT_INVALID_NAME_REQUEST, STATUS_SUCCESS};
use portfilter_protocol::{
    Delivery, EVENT_FLAG_DIRECTORY, EVENT_FLAG_KERNEL_MODE, EVENT_FLAG_NAME_OPENED,
    EVENT_FLAG_NAME_TRUNCATED, EVENT_FLAG_NAME_UNAVAILABLE, FilterKind, MAX_NAME_UNITS,
    SKIP_DIRECTORIES, SKIP_KERNEL_MODE,
};
use std::time::Duration;

const APP: u32 = 1000;
const OBSERVER: u32 = 2002;

/// Runs `creates` with a notify observer under `config`, then a marker create, and
/// returns what the observer received before the marker.
fn observe(
    configure: impl FnOnce(&mut portfilter_protocol::Config),
    creates: &[CreateRequest],
) -> (Vec<Seen>, portfilter_protocol::Stats) {
    let sim = Sim::start();
    let observer = spawn_observer(OBSERVER, None);
    observer.port.set_config(&config_with(|c| {
        c.observer_delivery = Delivery::Notify;
        c.notify_timeout_ms = 5_000;
        configure(c);
    }));
    for req in creates {
        let out = fltsim::create(req);
        assert_eq!(out.status, STATUS_SUCCESS, "{}", req.path);
    }
    // Reset filters so the marker is always reported, then wait for it.
    observer.port.set_config(&config_with(|c| {
        c.observer_delivery = Delivery::Notify;
        c.notify_timeout_ms = 5_000;
        c.skip_flags = 0;
    }));
    create_as(APP, r"C:\marker");
    assert!(wait_until(Duration::from_secs(10), || observer
        .received
        .snapshot()
        .iter()
        .any(|e| e.path == r"\marker")));
    let stats = observer.port.stats();
    let received = observer.stop();
    sim.unload_and_check_pool();
    let mut events = received.snapshot();
    events.retain(|e| e.path != r"\marker");
    (events, stats)
}

fn paths(events: &[Seen]) -> Vec<&str> {
    events.iter().map(|e| e.path.as_str()).collect()
}

#[test]
fn paging_files_volume_opens_and_target_directories_are_never_reported() {
    let (events, stats) = observe(
        |c| c.skip_flags = 0,
        &[
            CreateRequest::new(r"C:\pagefile.sys")
                .pid(APP)
                .paging_file(),
            CreateRequest::new(r"C:\").pid(APP).volume_open(),
            CreateRequest::new(r"C:\dir\renamed.txt")
                .pid(APP)
                .target_directory(),
            CreateRequest::new(r"C:\plain.txt").pid(APP),
        ],
    );
    assert_eq!(paths(&events), [r"\plain.txt"]);
    assert!(stats.events_skipped >= 3);
}

#[test]
fn directories_and_kernel_mode_follow_the_skip_flags() {
    let creates = [
        CreateRequest::new(r"C:\Users\dir").pid(APP).directory(),
        CreateRequest::new(r"C:\Windows\kernel.dat")
            .pid(APP)
            .kernel_mode(),
        CreateRequest::new(r"C:\file.txt").pid(APP),
    ];
    let (all, _) = observe(|c| c.skip_flags = 0, &creates);
    assert_eq!(
        paths(&all),
        [r"\Users\dir", r"\Windows\kernel.dat", r"\file.txt"]
    );
    assert_eq!(all[0].flags & EVENT_FLAG_DIRECTORY, EVENT_FLAG_DIRECTORY);
    assert_eq!(
        all[1].flags & EVENT_FLAG_KERNEL_MODE,
        EVENT_FLAG_KERNEL_MODE
    );
    assert_eq!(
        all[2].flags & (EVENT_FLAG_DIRECTORY | EVENT_FLAG_KERNEL_MODE),
        0
    );

    let (no_dirs, _) = observe(|c| c.skip_flags = SKIP_DIRECTORIES, &creates);
    assert_eq!(paths(&no_dirs), [r"\Windows\kernel.dat", r"\file.txt"]);
    let (no_kernel, _) = observe(|c| c.skip_flags = SKIP_KERNEL_MODE, &creates);
    assert_eq!(paths(&no_kernel), [r"\Users\dir", r"\file.txt"]);
    // The default configuration skips kernel-mode requestors.
    let (default, _) = observe(|_| {}, &creates);
    assert_eq!(paths(&default), [r"\Users\dir", r"\file.txt"]);
}

#[test]
fn kernel_mode_creates_on_behalf_of_a_user_are_treated_as_user_requests() {
    // SL_FORCE_ACCESS_CHECK: a kernel component (e.g. the SMB server) opens the file for
    // a user and asks for the user's access check. "Skip kernel-mode requestors" (the
    // default) must not skip it: it is reported and held for the decider like a user's
    // own create.
    let sim = Sim::start();
    let decider = common::spawn_decider(
        2001,
        std::sync::Arc::new(|e: &Seen| {
            Some(if e.path.contains("secret") {
                portfilter_protocol::Verdict::deny(e.sequence)
            } else {
                portfilter_protocol::Verdict::allow(e.sequence)
            })
        }),
    );
    assert_ne!(
        decider.port.config().skip_flags & SKIP_KERNEL_MODE,
        0,
        "the default"
    );
    let smb = CreateRequest::new(r"C:\share\secret.txt")
        .pid(4)
        .kernel_mode()
        .force_access_check();
    assert_eq!(
        fltsim::create(&smb).status,
        portfilter_bindings::STATUS_ACCESS_DENIED,
        "held for the decider, which denied it"
    );
    // A kernel-mode create for the kernel itself is still skipped.
    let own = CreateRequest::new(r"C:\share\secret2.txt")
        .pid(4)
        .kernel_mode();
    assert_eq!(fltsim::create(&own).status, STATUS_SUCCESS, "not held");
    let received = decider.stop();
    let seen = received.snapshot();
    assert_eq!(paths(&seen), [r"\share\secret.txt"]);
    // The event still says what the requestor mode was.
    assert_eq!(
        seen[0].flags & EVENT_FLAG_KERNEL_MODE,
        EVENT_FLAG_KERNEL_MODE
    );
    sim.unload_and_check_pool();
}

#[test]
fn filters_select_by_prefix_and_extension_case_insensitively() {
    let creates: Vec<_> = [
        r"C:\Users\a\doc.TXT",
        r"C:\Users\a\cache.tmp",
        r"C:\users\b\photo.jpg",
        r"C:\Users\a\Temp\x.txt",
        r"C:\Windows\Prefetch\A.pf",
        r"C:\Users\a\dl.zip:Zone.Identifier",
    ]
    .iter()
    .map(|p| CreateRequest::new(p).pid(APP))
    .collect();
    let (events, stats) = observe(
        |c| {
            c.filters
                .push_str(FilterKind::IncludePrefix, r"\Users\")
                .unwrap();
            c.filters
                .push_str(FilterKind::ExcludePrefix, r"\Users\a\temp\")
                .unwrap();
            c.filters
                .push_str(FilterKind::ExcludeExtension, "tmp")
                .unwrap();
        },
        &creates,
    );
    assert_eq!(
        paths(&events),
        [
            r"\Users\a\doc.TXT",
            r"\users\b\photo.jpg",
            r"\Users\a\dl.zip:Zone.Identifier"
        ]
    );
    assert_eq!(stats.events_skipped, 3);

    let (zips, _) = observe(
        |c| {
            c.filters
                .push_str(FilterKind::IncludeExtension, "ZIP")
                .unwrap();
        },
        &creates,
    );
    assert_eq!(paths(&zips), [r"\Users\a\dl.zip:Zone.Identifier"]);
}

#[test]
fn name_falls_back_to_the_opened_name_then_to_none_and_says_so() {
    let (events, _) = observe(
        |c| c.skip_flags = 0,
        &[
            CreateRequest::new(r"C:\Users\PEDRO~1.GUS\a.txt")
                .long_name(r"C:\Users\pedro.gusmao\a.txt")
                .pid(APP),
            CreateRequest::new(r"C:\Users\PEDRO~1.GUS\b.txt")
                .long_name(r"C:\Users\pedro.gusmao\b.txt")
                .fail_normalized_name(STATUS_FLT_INVALID_NAME_REQUEST)
                .pid(APP),
            CreateRequest::new(r"C:\nameless.txt")
                .fail_names(STATUS_FLT_INVALID_NAME_REQUEST)
                .pid(APP),
        ],
    );
    assert_eq!(events.len(), 3);
    assert_eq!(events[0].name, nt(r"C:\Users\pedro.gusmao\a.txt"));
    assert_eq!(events[0].flags & EVENT_FLAG_NAME_OPENED, 0);
    assert_eq!(events[1].name, nt(r"C:\Users\PEDRO~1.GUS\b.txt"));
    assert_eq!(
        events[1].flags & EVENT_FLAG_NAME_OPENED,
        EVENT_FLAG_NAME_OPENED
    );
    assert_eq!(events[2].name, "");
    assert_eq!(
        events[2].flags & EVENT_FLAG_NAME_UNAVAILABLE,
        EVENT_FLAG_NAME_UNAVAILABLE
    );
}

#[test]
fn unnamed_creates_match_no_include_filter() {
    let (events, _) = observe(
        |c| {
            c.filters.push_str(FilterKind::IncludePrefix, r"\").unwrap();
        },
        &[CreateRequest::new(r"C:\nameless.txt")
            .fail_names(STATUS_FLT_INVALID_NAME_REQUEST)
            .pid(APP)],
    );
    assert!(events.is_empty());
}

#[test]
fn very_long_names_are_truncated_and_flagged() {
    let long = format!(r"C:\{}.txt", "x".repeat(MAX_NAME_UNITS + 100));
    let (events, _) = observe(|_| {}, &[CreateRequest::new(&long).pid(APP)]);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name.encode_utf16().count(), MAX_NAME_UNITS);
    assert_eq!(
        events[0].flags & EVENT_FLAG_NAME_TRUNCATED,
        EVENT_FLAG_NAME_TRUNCATED
    );
}
