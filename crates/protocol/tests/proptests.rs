//! Property tests: no decoder panics on any input, every message round-trips, decoding
//! is canonical (what decodes re-encodes to the same bytes), the batch writer and
//! iterator agree, and the filter matcher behaves as documented.

use portfilter_protocol::command::{Command, HelloReply, decode_request, encode_request};
use portfilter_protocol::filter::{
    FilterKind, FilterList, MAX_FILTER_UNITS, eq_ignore_case, extension_of, upcase_unit,
};
use portfilter_protocol::stats::{STATS_COUNTERS, STATS_RESERVED_SLOTS};
use portfilter_protocol::{
    BatchView, BatchWriter, CONFIG_MAX_BYTES, CREATE_EVENT_MAX_BYTES, Config, ConnectContext,
    Decision, Delivery, DriverVersion, EVENT_FLAG_NAME_TRUNCATED, EVENT_FLAG_NAME_UNAVAILABLE,
    EVENT_FLAG_REQUEST, EVENT_FLAGS_ALL, EventFields, MAX_BATCH_BYTES, MAX_NAME_UNITS,
    PROTOCOL_VERSION, Role, STATS_BYTES, Stats, Utf16Le, Verdict, decode_event, decode_header,
    decode_kernel_message, decode_record, encode_event,
};
use proptest::prelude::*;

fn any_fields() -> impl Strategy<Value = EventFields> {
    (
        (0u32..=EVENT_FLAGS_ALL),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        (0u32..=0x00FF_FFFF),
        (0u8..=5),
        any::<u16>(),
        any::<u32>(),
        any::<u16>(),
    )
        .prop_map(
            |(flags, seq, ts, pid, tid, access, options, disp, share, attrs, vol)| EventFields {
                // REQUEST and PENDED never come together.
                flags: if flags & EVENT_FLAG_REQUEST != 0 {
                    flags & !EVENT_FLAG_NAME_UNAVAILABLE & !portfilter_protocol::EVENT_FLAG_PENDED
                } else {
                    flags & !EVENT_FLAG_NAME_UNAVAILABLE
                },
                sequence: seq,
                timestamp: ts,
                process_id: pid,
                thread_id: tid,
                desired_access: access,
                create_options: options,
                create_disposition: disp,
                share_access: share,
                file_attributes: attrs,
                volume_name_len: vol,
            },
        )
}

/// Fields made consistent with a name of `units` units (even volume length within it).
fn fit(mut fields: EventFields, units: usize) -> EventFields {
    let kept = units.min(MAX_NAME_UNITS) as u16;
    fields.volume_name_len = (fields.volume_name_len % (kept + 1)) * 2;
    fields
}

fn any_name(max: usize) -> impl Strategy<Value = Vec<u16>> {
    prop::collection::vec(any::<u16>(), 0..max)
}

fn any_kind() -> impl Strategy<Value = FilterKind> {
    prop_oneof![
        Just(FilterKind::IncludePrefix),
        Just(FilterKind::ExcludePrefix),
        Just(FilterKind::IncludeExtension),
        Just(FilterKind::ExcludeExtension),
    ]
}

/// The extension as the protocol defines it, step by step: the final component (after
/// the last `\\`), cut at its first `:` (the stream), then what follows its last `.`.
fn extension_by_definition(path: &[u16]) -> &[u16] {
    let component = match path.iter().rposition(|&u| u == u16::from(b'\\')) {
        Some(i) => &path[i + 1..],
        None => path,
    };
    let component = match component.iter().position(|&u| u == u16::from(b':')) {
        Some(i) => &component[..i],
        None => component,
    };
    match component.iter().rposition(|&u| u == u16::from(b'.')) {
        Some(i) => &component[i + 1..],
        None => &[],
    }
}

/// Paths from a small alphabet so that filters and paths collide often.
fn path_units() -> impl Strategy<Value = Vec<u16>> {
    prop::collection::vec(prop::sample::select(&b"\\.:aAbBxX"[..]), 0..12)
        .prop_map(|v| v.into_iter().map(u16::from).collect())
}

fn pattern_for(kind: FilterKind) -> impl Strategy<Value = Vec<u16>> {
    let alphabet: &'static [u8] = if kind.is_prefix() {
        b"\\aAbBx."
    } else {
        b"aAbBx"
    };
    prop::collection::vec(prop::sample::select(alphabet), 1..5).prop_map(move |v| {
        let mut units: Vec<u16> = v.into_iter().map(u16::from).collect();
        if kind.is_prefix() {
            units.insert(0, u16::from(b'\\'));
        }
        units
    })
}

fn any_filters() -> impl Strategy<Value = Vec<(FilterKind, Vec<u16>)>> {
    prop::collection::vec(
        any_kind().prop_flat_map(|k| (Just(k), pattern_for(k))),
        0..6,
    )
}

fn list_of(filters: &[(FilterKind, Vec<u16>)]) -> FilterList {
    let mut list = FilterList::new();
    for (kind, pattern) in filters {
        list.push(*kind, pattern).unwrap();
    }
    list
}

fn any_config() -> impl Strategy<Value = Config> {
    (
        prop_oneof![Just(Delivery::Notify), Just(Delivery::Queued)],
        1u32..=60_000,
        0u32..=5_000,
        prop_oneof![Just(Decision::Allow), Just(Decision::Deny)],
        0u32..=3,
        1u32..=16_384,
        1u32..=1_024,
        any_filters(),
    )
        .prop_map(
            |(delivery, reply, notify, verdict, skip, queue, batch, filters)| Config {
                observer_delivery: delivery,
                reply_timeout_ms: reply,
                notify_timeout_ms: notify,
                default_verdict: verdict,
                skip_flags: skip,
                queue_capacity: queue,
                batch_max_events: batch,
                filters: list_of(&filters),
            },
        )
}

/// Runs every decoder on `bytes`; none may panic. Successful decodes must re-encode to
/// the same bytes (canonical encoding).
fn decode_everything(bytes: &[u8]) {
    let _ = decode_header(bytes);
    if let Ok(view) = decode_event(bytes) {
        let units: Vec<u16> = view.name.units().collect();
        let mut out = vec![0u8; CREATE_EVENT_MAX_BYTES];
        let len = encode_event(&view.fields, &units, &mut out).unwrap();
        assert_eq!(&out[..len], &bytes[..len]);
        let _ = (view.volume_name(), view.path_in_volume());
    }
    if let Ok((view, len)) = decode_record(bytes) {
        assert_eq!(view.record_len(), len);
    }
    if let Ok(batch) = BatchView::decode(bytes) {
        assert_eq!(batch.events().count(), batch.count() as usize);
        assert!(batch.byte_len() <= MAX_BATCH_BYTES);
    }
    let _ = decode_kernel_message(bytes);
    if let Ok(v) = Verdict::decode(bytes) {
        let mut out = [0u8; 24];
        v.encode(&mut out).unwrap();
        assert_eq!(&out[..], bytes);
    }
    if let Ok(c) = ConnectContext::decode(bytes) {
        let mut out = [0u8; 16];
        c.encode(&mut out).unwrap();
        assert_eq!(&out[..], bytes);
    }
    let _ = decode_request(bytes);
    if let Ok(h) = HelloReply::decode(bytes) {
        let mut out = [0u8; 40];
        h.encode(&mut out).unwrap();
        assert_eq!(&out[..], bytes);
    }
    if let Ok(s) = Stats::decode(bytes) {
        let mut out = [0u8; STATS_BYTES];
        s.encode(&mut out).unwrap();
        assert_eq!(&out[..], bytes);
    }
    for command in [Command::GetConfig, Command::SetConfig] {
        if let Ok(c) = Config::decode(bytes, command) {
            let mut out = vec![0u8; CONFIG_MAX_BYTES];
            let len = c.encode(command, &mut out).unwrap();
            assert_eq!(&out[..len], bytes);
        }
    }
    if let Ok(text) = Utf16Le::new(bytes) {
        let _ = text.to_string();
    }
}

/// A valid message of some kind, to be mutated.
fn any_valid_message() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (any_fields(), any_name(40)).prop_map(|(f, name)| {
            let mut out = vec![0u8; CREATE_EVENT_MAX_BYTES];
            let len = encode_event(&fit(f, name.len()), &name, &mut out).unwrap();
            out.truncate(len);
            out
        }),
        prop::collection::vec((any_fields(), any_name(20)), 0..5).prop_map(|events| {
            let mut out = vec![0u8; MAX_BATCH_BYTES];
            let mut w = BatchWriter::new(&mut out, 1024, 3).unwrap();
            for (f, name) in &events {
                let mut f = fit(*f, name.len());
                f.flags &= !EVENT_FLAG_REQUEST;
                w.push(&f, name).unwrap();
            }
            w.finish().to_vec()
        }),
        (any::<u64>(), any::<bool>()).prop_map(|(seq, deny)| {
            let v = if deny {
                Verdict::deny(seq)
            } else {
                Verdict::allow(seq)
            };
            let mut out = vec![0u8; 24];
            v.encode(&mut out).unwrap();
            out
        }),
        any_config().prop_map(|c| {
            let mut out = vec![0u8; CONFIG_MAX_BYTES];
            let len = c.encode(Command::SetConfig, &mut out).unwrap();
            out.truncate(len);
            out
        }),
        Just({
            let mut out = vec![0u8; STATS_BYTES];
            Stats::default().encode(&mut out).unwrap();
            out
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes);
    }

    #[test]
    fn random_bytes_behind_a_valid_header_never_panic(
        kind in prop::sample::select(&[1u16, 2, 3, 4, 16, 17, 18, 19][..]),
        body in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut bytes = b"PF".to_vec();
        bytes.extend(PROTOCOL_VERSION.to_le_bytes());
        bytes.extend(kind.to_le_bytes());
        bytes.extend([0, 0]);
        bytes.extend(body);
        decode_everything(&bytes);
    }

    #[test]
    fn mutated_valid_messages_never_panic(
        msg in any_valid_message(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        decode_everything(&msg);
        let mut bytes = msg.clone();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        decode_everything(&bytes);
    }

    #[test]
    fn events_round_trip(fields in any_fields(), name in any_name(MAX_NAME_UNITS + 40)) {
        let fields = fit(fields, name.len());
        let mut out = vec![0u8; CREATE_EVENT_MAX_BYTES];
        let len = encode_event(&fields, &name, &mut out).unwrap();
        prop_assert_eq!(len % 8, 0);
        let view = decode_event(&out[..len]).unwrap();
        let truncated = name.len() > MAX_NAME_UNITS;
        let mut expected = fields;
        if truncated {
            expected.flags |= EVENT_FLAG_NAME_TRUNCATED;
            let kept = view.name.len_units();
            prop_assert!(kept == MAX_NAME_UNITS || kept == MAX_NAME_UNITS - 1);
            prop_assert!(view.name.units().eq(name[..kept].iter().copied()));
        } else {
            prop_assert!(view.name.eq_units(&name));
        }
        prop_assert_eq!(view.fields, expected);
        // Trailing garbage is ignored.
        let mut longer = out[..len].to_vec();
        longer.extend([0xFF; 40]);
        prop_assert_eq!(decode_event(&longer).unwrap(), view);
    }

    #[test]
    fn small_buffers_fail_cleanly(fields in any_fields(), name in any_name(30), size in 0usize..300) {
        let fields = fit(fields, name.len());
        let mut out = vec![0u8; size];
        match encode_event(&fields, &name, &mut out) {
            Ok(len) => prop_assert!(len <= size),
            Err(portfilter_protocol::Error::OutputTooSmall { need, got }) => {
                prop_assert!(need > size);
                prop_assert_eq!(got, size);
            }
            Err(e) => prop_assert!(false, "unexpected {e:?}"),
        }
    }

    #[test]
    fn verdicts_round_trip(seq in any::<u64>(), deny in any::<bool>(), status in any::<i32>()) {
        let v = if deny { Verdict::deny_with(seq, status) } else { Verdict::allow(seq) };
        let mut out = [0u8; 24];
        match v.encode(&mut out) {
            Ok(24) => prop_assert_eq!(Verdict::decode(&out), Ok(v)),
            Ok(n) => prop_assert!(false, "wrote {n}"),
            // Only a deny with a non-error, non-zero status is refused.
            Err(_) => prop_assert!(deny && status != 0 && (status as u32) >> 30 != 3),
        }
    }

    #[test]
    fn connect_and_hello_round_trip(
        role_index in 0usize..3,
        major in any::<u8>(), minor in any::<u8>(), patch in any::<u16>(),
        id in any::<u32>(), queued in any::<bool>(),
    ) {
        let role = [Role::Decider, Role::Observer, Role::Control][role_index];
        let mut ctx = [0u8; 16];
        ConnectContext::new(role).encode(&mut ctx).unwrap();
        prop_assert_eq!(ConnectContext::decode(&ctx), Ok(ConnectContext::new(role)));
        let hello = HelloReply {
            driver_version: DriverVersion { major, minor, patch },
            protocol_version: PROTOCOL_VERSION,
            role,
            connection_id: id,
            observer_delivery: if queued { Delivery::Queued } else { Delivery::Notify },
        };
        let mut out = [0u8; 40];
        hello.encode(&mut out).unwrap();
        prop_assert_eq!(HelloReply::decode(&out), Ok(hello));
        for command in Command::ALL {
            let mut req = [0u8; 8];
            if encode_request(command, &mut req).is_ok() {
                prop_assert_eq!(decode_request(&req).unwrap().command, command);
            }
        }
    }

    #[test]
    fn stats_round_trip(slots in prop::array::uniform32(any::<u64>())) {
        let mut stats = Stats {
            events_seen: slots[0], events_reported: slots[1], events_skipped: slots[2],
            self_excluded: slots[3], requests_sent: slots[4], replies_allow: slots[5],
            replies_deny: slots[6], reply_timeouts: slots[7], reply_bad: slots[8],
            default_verdicts: slots[9], notify_sent: slots[10], notify_failed: slots[11],
            queue_enqueued: slots[12], queue_dropped: slots[13], batches_sent: slots[14],
            queue_depth: slots[15], queue_high_water: slots[16],
            connected_clients: slots[17], deciders: slots[18], observers: slots[19],
            unsafe_context: slots[20], async_pended: slots[21],
            async_request_messages: slots[22], async_request_events: slots[23],
            verdict_messages: slots[24], verdicts_applied: slots[25], verdicts_late: slots[26],
            verdicts_unknown: slots[27], verdicts_invalid: slots[28],
            async_deadline_defaults: slots[29], async_cancelled: slots[30],
            reserved: [0; STATS_RESERVED_SLOTS],
        };
        stats.reserved.copy_from_slice(&slots[STATS_COUNTERS..]);
        let mut out = [0u8; STATS_BYTES];
        stats.encode(&mut out).unwrap();
        for (i, pair) in out[8..].chunks_exact(8).enumerate() {
            prop_assert_eq!(u64::from_le_bytes(pair.try_into().unwrap()), slots[i]);
        }
        prop_assert_eq!(Stats::decode(&out), Ok(stats));
    }

    #[test]
    fn configs_round_trip(config in any_config(), set in any::<bool>()) {
        let command = if set { Command::SetConfig } else { Command::GetConfig };
        let mut out = vec![0u8; CONFIG_MAX_BYTES];
        let len = config.encode(command, &mut out).unwrap();
        prop_assert_eq!(len, config.encoded_len());
        prop_assert!(len <= CONFIG_MAX_BYTES);
        prop_assert_eq!(len % 8, 0);
        prop_assert_eq!(&Config::decode(&out[..len], command).unwrap(), &config);
        let req = decode_request(&out[..len]);
        if set {
            prop_assert_eq!(req.unwrap().command, Command::SetConfig);
        } else {
            prop_assert!(req.is_err(), "a GetConfig input is header-only");
        }
    }

    #[test]
    fn batch_writer_and_iterator_agree(
        events in prop::collection::vec((any_fields(), any_name(MAX_NAME_UNITS + 8)), 0..40),
        max_events in 1u32..=48,
        extra in 0usize..40_000,
    ) {
        let size = 16 + portfilter_protocol::MAX_EVENT_BYTES + extra;
        let mut buf = vec![0u8; size];
        let mut writer = BatchWriter::new(&mut buf, max_events, 5).unwrap();
        let mut pushed = Vec::new();
        for (fields, name) in &events {
            let mut fields = fit(*fields, name.len());
            fields.flags &= !EVENT_FLAG_REQUEST;
            let fits = writer.fits(name.len());
            match writer.push(&fields, name) {
                Ok(()) => { prop_assert!(fits); pushed.push((fields, name)); }
                Err(portfilter_protocol::Error::BatchFull) => { prop_assert!(!fits); break; }
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
            }
        }
        prop_assert!(pushed.len() <= max_events as usize);
        let used = writer.bytes_used();
        let msg = writer.finish();
        prop_assert_eq!(msg.len(), used);
        prop_assert!(used <= size.min(MAX_BATCH_BYTES));
        let view = BatchView::decode(msg).unwrap();
        prop_assert_eq!(view.count() as usize, pushed.len());
        prop_assert_eq!(view.dropped_before(), 5);
        prop_assert_eq!(view.byte_len(), used);
        prop_assert_eq!(view.events().len(), pushed.len());
        for (ev, (fields, name)) in view.events().zip(&pushed) {
            let kept = ev.name.len_units();
            prop_assert!(ev.name.units().eq(name[..kept].iter().copied()));
            prop_assert_eq!(ev.fields.sequence, fields.sequence);
            prop_assert_eq!(
                ev.fields.flags & !EVENT_FLAG_NAME_TRUNCATED,
                fields.flags & !EVENT_FLAG_NAME_TRUNCATED
            );
        }
    }

    #[test]
    fn no_filters_report_everything(path in path_units()) {
        prop_assert!(FilterList::new().should_report(&path, extension_of(&path)));
    }

    #[test]
    fn include_prefix_matches_its_paths_in_any_case(
        pattern in pattern_for(FilterKind::IncludePrefix),
        suffix in path_units(),
        flip in prop::collection::vec(any::<bool>(), 16),
    ) {
        let list = list_of(&[(FilterKind::IncludePrefix, pattern.clone())]);
        let mut path = pattern.clone();
        path.extend(&suffix);
        for (unit, f) in path.iter_mut().zip(flip.iter().cycle()) {
            if *f && (u16::from(b'a')..=u16::from(b'z')).contains(unit) {
                *unit -= 0x20;
            }
        }
        prop_assert!(list.should_report(&path, extension_of(&path)));
    }

    #[test]
    fn adding_an_exclude_never_reports_more(
        filters in any_filters(),
        (kind, pattern) in prop_oneof![Just(FilterKind::ExcludePrefix), Just(FilterKind::ExcludeExtension)]
            .prop_flat_map(|k| (Just(k), pattern_for(k))),
        path in path_units(),
    ) {
        let before = list_of(&filters);
        let mut after = before.clone();
        if after.push(kind, &pattern).is_ok() {
            let ext = extension_of(&path);
            prop_assert!(!after.should_report(&path, ext) || before.should_report(&path, ext));
        }
    }

    #[test]
    fn adding_an_include_to_includes_never_reports_less(
        filters in any_filters(),
        (kind, pattern) in prop_oneof![Just(FilterKind::IncludePrefix), Just(FilterKind::IncludeExtension)]
            .prop_flat_map(|k| (Just(k), pattern_for(k))),
        path in path_units(),
    ) {
        let before = list_of(&filters);
        prop_assume!(before.has_include());
        let mut after = before.clone();
        if after.push(kind, &pattern).is_ok() {
            let ext = extension_of(&path);
            prop_assert!(after.should_report(&path, ext) || !before.should_report(&path, ext));
        }
    }

    #[test]
    fn the_matcher_follows_the_rules_and_asks_for_the_extension_only_when_needed(
        filters in any_filters(),
        path in path_units(),
    ) {
        let list = list_of(&filters);
        let ext = extension_of(&path);
        // The rules, filter by filter: an exclude hit drops; else reported when there is
        // no include or one include hits.
        let hit = |f: &portfilter_protocol::filter::Filter<'_>| f.matches(&path, ext);
        let excluded = list.iter().any(|f| !f.kind.is_include() && hit(&f));
        let includes: Vec<_> = list.iter().filter(|f| f.kind.is_include()).collect();
        let expected = !excluded && (includes.is_empty() || includes.iter().any(hit));
        let mut asked = 0;
        let lazy = list.should_report_lazy(&path, || {
            asked += 1;
            ext
        });
        prop_assert_eq!(lazy, expected);
        prop_assert_eq!(list.should_report(&path, ext), expected);
        prop_assert!(asked <= 1);
        if !list.iter().any(|f| !f.kind.is_prefix()) {
            prop_assert_eq!(asked, 0, "no extension filter: the extension is not computed");
        }
    }

    #[test]
    fn unit_comparison_is_upcase_equality(
        x in prop_oneof![0u16..0x80, 0x80u16..0x250, any::<u16>()],
        y in prop_oneof![0u16..0x80, 0x80u16..0x250, any::<u16>()],
    ) {
        prop_assert_eq!(eq_ignore_case(&[x], &[y]), upcase_unit(x) == upcase_unit(y));
    }

    #[test]
    fn extension_matches_its_definition(path in path_units()) {
        prop_assert_eq!(extension_of(&path), extension_by_definition(&path));
    }

    #[test]
    fn exclude_beats_include(filters in any_filters(), path in path_units()) {
        let ext = extension_of(&path);
        let list = list_of(&filters);
        let matches_exclude = list.iter().any(|f| !f.kind.is_include() && f.matches(&path, ext));
        let has_include = list.iter().any(|f| f.kind.is_include());
        let matches_include = list.iter().any(|f| f.kind.is_include() && f.matches(&path, ext));
        prop_assert_eq!(
            list.should_report(&path, ext),
            !matches_exclude && (!has_include || matches_include)
        );
    }

    #[test]
    fn matching_ignores_ascii_case(filters in any_filters(), path in path_units()) {
        let list = list_of(&filters);
        let upper: Vec<u16> = path.iter().map(|&u| upcase_unit(u)).collect();
        prop_assert_eq!(
            list.should_report(&path, extension_of(&path)),
            list.should_report(&upper, extension_of(&upper))
        );
    }

    #[test]
    fn extension_is_a_clean_suffix(path in path_units()) {
        let ext = extension_of(&path);
        for bad in [b'.', b'\\', b':'] {
            prop_assert!(!ext.contains(&u16::from(bad)));
        }
        // It is a substring of the final component, right after a dot.
        if !ext.is_empty() {
            let found = path.windows(ext.len() + 1).any(|w| w[0] == u16::from(b'.') && &w[1..] == ext);
            prop_assert!(found);
        }
    }

    #[test]
    fn upcase_is_idempotent_and_case_compare_is_symmetric(a in any_name(8), b in any_name(8)) {
        for &u in &a {
            prop_assert_eq!(upcase_unit(upcase_unit(u)), upcase_unit(u));
        }
        prop_assert_eq!(eq_ignore_case(&a, &b), eq_ignore_case(&b, &a));
        prop_assert!(eq_ignore_case(&a, &a));
    }

    #[test]
    fn filter_list_accepts_exactly_the_valid_patterns(kind in any_kind(), pattern in any_name(MAX_FILTER_UNITS + 4)) {
        let mut list = FilterList::new();
        let ok = list.push(kind, &pattern).is_ok();
        prop_assert_eq!(ok, portfilter_protocol::filter::validate_pattern(kind, &pattern).is_ok());
        prop_assert_eq!(list.len(), usize::from(ok));
        if ok {
            prop_assert_eq!(list.get(0).unwrap().pattern, &pattern[..]);
        }
    }
}

// ---- VerdictBatch (protocol version 3) ----

fn any_entry() -> impl Strategy<Value = portfilter_protocol::VerdictEntry> {
    (any::<u64>(), 0u32..4, prop_oneof![Just(0i32), any::<i32>()]).prop_map(
        |(sequence, verdict, status)| portfilter_protocol::VerdictEntry {
            sequence,
            verdict,
            status,
        },
    )
}

proptest! {
    #[test]
    fn verdict_batch_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(view) = portfilter_protocol::VerdictBatchView::decode(&bytes) {
            prop_assert_eq!(bytes.len(), 16 + 16 * view.len());
            for e in view.entries() {
                let _ = e.verdict();
            }
        }
        let _ = portfilter_protocol::VerdictBatchReply::decode(&bytes);
    }

    #[test]
    fn verdict_batches_round_trip(entries in prop::collection::vec(any_entry(), 1..64), cut in any::<usize>()) {
        let mut out = vec![0u8; portfilter_protocol::MAX_VERDICT_BATCH_BYTES];
        let len = portfilter_protocol::encode_verdict_batch(&entries, &mut out).unwrap();
        prop_assert_eq!(len, 16 + 16 * entries.len());
        let view = portfilter_protocol::VerdictBatchView::decode(&out[..len]).unwrap();
        prop_assert_eq!(view.entries().collect::<Vec<_>>(), entries.clone());
        for e in &entries {
            // An entry is valid exactly when it is a valid single Verdict.
            let single = e.verdict();
            let valid = match e.verdict {
                0 => e.status == 0,
                1 => e.status == 0 || (e.status as u32) >> 30 == 3,
                _ => false,
            };
            prop_assert_eq!(single.is_ok(), valid);
        }
        // Any other length is refused.
        let other = cut % (len + 16);
        if other != len {
            prop_assert!(portfilter_protocol::VerdictBatchView::decode(&out[..other.min(out.len())]).is_err());
        }
    }

    #[test]
    fn connect_contexts_with_flags_decode_strictly(role in 1u32..4, flags in any::<u32>()) {
        let mut ctx = [0u8; portfilter_protocol::CONNECT_CONTEXT_BYTES];
        ConnectContext::new(Role::Decider).encode(&mut ctx).unwrap();
        ctx[8..12].copy_from_slice(&role.to_le_bytes());
        ctx[12..16].copy_from_slice(&flags.to_le_bytes());
        let decoded = ConnectContext::decode(&ctx);
        let ok = flags == 0 || (flags == portfilter_protocol::CONNECT_FLAG_ASYNC && role == 1);
        prop_assert_eq!(decoded.is_ok(), ok);
        if let Ok(c) = decoded {
            let mut again = [0u8; portfilter_protocol::CONNECT_CONTEXT_BYTES];
            c.encode(&mut again).unwrap();
            prop_assert_eq!(again, ctx);
        }
    }
}
