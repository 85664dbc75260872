//! Checks `include/portfilter_protocol.h` against the Rust crate: compiles
//! `tests/c/layout.c` with the system C compiler (`$CC`, default `cc`), then
//! - compares every size, offset and constant the C compiler reports with the Rust
//!   constants (both ways: nothing missing, nothing extra);
//! - feeds Rust-encoded messages (event, batch, stats) to the C program, which reads
//!   them through the header's structs;
//! - decodes messages the C program builds with the header (verdict reply, config).
//!
//! When `x86_64-w64-mingw32-gcc` or `c++` are installed, the header is also compiled
//! for the Windows x64 ABI and as C++ (its static assertions must hold there too).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use pf::{batch, command::hello_offset, config, connect, event, header, stats, status, verdict};
use portfilter_protocol as pf;

fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../include")
}

fn c_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/layout.c")
}

/// Builds the C program once per process.
fn program() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("pf_layout_{}", std::process::id()));
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let status = Command::new(&cc)
            .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I"])
            .arg(include_dir())
            .arg(c_source())
            .arg("-o")
            .arg(&out)
            .status()
            .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
        assert!(status.success(), "compiling tests/c/layout.c failed");
        out
    })
}

fn run(mode: &str, stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program())
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the C program");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    let output = child.wait_with_output().expect("wait for the C program");
    assert!(output.status.success(), "C program `{mode}` failed");
    output.stdout
}

fn key_values(mode: &str, stdin: &[u8]) -> BTreeMap<String, String> {
    let text = String::from_utf8(run(mode, stdin)).expect("utf-8 output");
    text.lines()
        .map(|line| {
            let (k, v) = line.split_once('=').expect("key=value");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn expected_layout() -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: i64| assert!(m.insert(k.to_owned(), v).is_none(), "dup {k}");
    let u = |v: usize| i64::try_from(v).unwrap();

    put("size.pf_header", u(pf::HEADER_BYTES));
    put("off.pf_header.magic", u(header::offset::MAGIC));
    put("off.pf_header.version", u(header::offset::VERSION));
    put("off.pf_header.kind", u(header::offset::KIND));
    put("off.pf_header.reserved", u(header::offset::RESERVED));

    put(
        "size.pf_filter_message_header",
        u(pf::FILTER_MESSAGE_HEADER_BYTES),
    );
    put("off.pf_filter_message_header.reply_length", 0);
    put("off.pf_filter_message_header.message_id", 8);
    put(
        "size.pf_filter_reply_header",
        u(pf::FILTER_REPLY_HEADER_BYTES),
    );
    put("off.pf_filter_reply_header.status", 0);
    put("off.pf_filter_reply_header.message_id", 8);

    use event::offset as e;
    put("size.pf_event_record", u(pf::EVENT_FIXED_BYTES));
    for (name, off) in [
        ("record_len", e::RECORD_LEN),
        ("name_len", e::NAME_LEN),
        ("flags", e::FLAGS),
        ("sequence", e::SEQUENCE),
        ("timestamp", e::TIMESTAMP),
        ("process_id", e::PROCESS_ID),
        ("thread_id", e::THREAD_ID),
        ("desired_access", e::DESIRED_ACCESS),
        ("create_options", e::CREATE_OPTIONS),
        ("create_disposition", e::CREATE_DISPOSITION),
        ("reserved0", e::RESERVED0),
        ("share_access", e::SHARE_ACCESS),
        ("file_attributes", e::FILE_ATTRIBUTES),
        ("volume_name_len", e::VOLUME_NAME_LEN),
        ("reserved1", e::RESERVED1),
        ("reserved2", e::RESERVED2),
    ] {
        put(&format!("off.pf_event_record.{name}"), u(off));
    }
    put("size.pf_create_event", u(pf::CREATE_EVENT_MIN_BYTES));
    put("off.pf_create_event.record", u(pf::HEADER_BYTES));

    put("size.pf_batch_header", u(pf::BATCH_HEADER_BYTES));
    put("off.pf_batch_header.count", u(batch::offset::COUNT));
    put(
        "off.pf_batch_header.dropped_before",
        u(batch::offset::DROPPED_BEFORE),
    );

    put("size.pf_verdict", u(pf::VERDICT_BYTES));
    put("off.pf_verdict.sequence", u(verdict::offset::SEQUENCE));
    put("off.pf_verdict.verdict", u(verdict::offset::VERDICT));
    put("off.pf_verdict.status", u(verdict::offset::STATUS));
    put("size.pf_verdict_reply", u(pf::VERDICT_REPLY_BYTES));
    put(
        "off.pf_verdict_reply.verdict",
        u(pf::FILTER_REPLY_HEADER_BYTES),
    );

    put("size.pf_connect_context", u(pf::CONNECT_CONTEXT_BYTES));
    put("off.pf_connect_context.role", u(connect::offset::ROLE));
    put("off.pf_connect_context.flags", u(connect::offset::FLAGS));

    put("size.pf_hello_reply", u(pf::HELLO_REPLY_BYTES));
    for (name, off) in [
        ("driver_version", hello_offset::DRIVER_VERSION),
        ("protocol_version", hello_offset::PROTOCOL_VERSION),
        ("reserved0", hello_offset::RESERVED0),
        ("role", hello_offset::ROLE),
        ("connection_id", hello_offset::CONNECTION_ID),
        ("observer_delivery", hello_offset::OBSERVER_DELIVERY),
        ("reserved1", hello_offset::RESERVED1),
        ("reserved2", hello_offset::RESERVED2),
    ] {
        put(&format!("off.pf_hello_reply.{name}"), u(off));
    }

    use stats::offset as s;
    put("size.pf_stats", u(pf::STATS_BYTES));
    let named = [
        s::EVENTS_SEEN,
        s::EVENTS_REPORTED,
        s::EVENTS_SKIPPED,
        s::SELF_EXCLUDED,
        s::REQUESTS_SENT,
        s::REPLIES_ALLOW,
        s::REPLIES_DENY,
        s::REPLY_TIMEOUTS,
        s::REPLY_BAD,
        s::DEFAULT_VERDICTS,
        s::NOTIFY_SENT,
        s::NOTIFY_FAILED,
        s::QUEUE_ENQUEUED,
        s::QUEUE_DROPPED,
        s::BATCHES_SENT,
        s::QUEUE_DEPTH,
        s::QUEUE_HIGH_WATER,
        s::CONNECTED_CLIENTS,
        s::DECIDERS,
        s::OBSERVERS,
        s::UNSAFE_CONTEXT,
    ];
    for (name, off) in pf::STATS_COUNTER_NAMES.iter().zip(named) {
        put(&format!("off.pf_stats.{name}"), u(off));
    }
    put("off.pf_stats.reserved", u(s::RESERVED));

    use config::{filter_offset as f, offset as c};
    put("size.pf_config", u(pf::CONFIG_FIXED_BYTES));
    for (name, off) in [
        ("observer_delivery", c::OBSERVER_DELIVERY),
        ("reply_timeout_ms", c::REPLY_TIMEOUT_MS),
        ("notify_timeout_ms", c::NOTIFY_TIMEOUT_MS),
        ("default_verdict", c::DEFAULT_VERDICT),
        ("skip_flags", c::SKIP_FLAGS),
        ("queue_capacity", c::QUEUE_CAPACITY),
        ("batch_max_events", c::BATCH_MAX_EVENTS),
        ("filter_count", c::FILTER_COUNT),
    ] {
        put(&format!("off.pf_config.{name}"), u(off));
    }
    put("size.pf_filter_entry", u(config::FILTER_ENTRY_HEADER_BYTES));
    put("off.pf_filter_entry.kind", u(f::KIND));
    put("off.pf_filter_entry.len", u(f::LEN));

    let k = |kind: pf::MessageKind| i64::from(kind.as_u16());
    for (name, value) in [
        ("PF_MAGIC", i64::from(pf::MAGIC)),
        ("PF_PROTOCOL_VERSION", i64::from(pf::PROTOCOL_VERSION)),
        ("PF_HEADER_BYTES", u(pf::HEADER_BYTES)),
        ("PF_KIND_CREATE_EVENT", k(pf::MessageKind::CreateEvent)),
        ("PF_KIND_EVENT_BATCH", k(pf::MessageKind::EventBatch)),
        ("PF_KIND_VERDICT", k(pf::MessageKind::Verdict)),
        ("PF_KIND_CONNECT", k(pf::MessageKind::Connect)),
        ("PF_KIND_HELLO", k(pf::MessageKind::Hello)),
        ("PF_KIND_GET_STATS", k(pf::MessageKind::GetStats)),
        ("PF_KIND_GET_CONFIG", k(pf::MessageKind::GetConfig)),
        ("PF_KIND_SET_CONFIG", k(pf::MessageKind::SetConfig)),
        (
            "PF_FILTER_MESSAGE_HEADER_BYTES",
            u(pf::FILTER_MESSAGE_HEADER_BYTES),
        ),
        (
            "PF_FILTER_REPLY_HEADER_BYTES",
            u(pf::FILTER_REPLY_HEADER_BYTES),
        ),
        ("PF_EVENT_FIXED_BYTES", u(pf::EVENT_FIXED_BYTES)),
        ("PF_MAX_NAME_BYTES", u(pf::MAX_NAME_BYTES)),
        ("PF_MAX_NAME_UNITS", u(pf::MAX_NAME_UNITS)),
        ("PF_MAX_EVENT_BYTES", u(pf::MAX_EVENT_BYTES)),
        ("PF_CREATE_EVENT_MIN_BYTES", u(pf::CREATE_EVENT_MIN_BYTES)),
        ("PF_CREATE_EVENT_MAX_BYTES", u(pf::CREATE_EVENT_MAX_BYTES)),
        (
            "PF_EVENT_FLAG_DIRECTORY",
            i64::from(pf::EVENT_FLAG_DIRECTORY),
        ),
        (
            "PF_EVENT_FLAG_KERNEL_MODE",
            i64::from(pf::EVENT_FLAG_KERNEL_MODE),
        ),
        (
            "PF_EVENT_FLAG_NAME_OPENED",
            i64::from(pf::EVENT_FLAG_NAME_OPENED),
        ),
        (
            "PF_EVENT_FLAG_NAME_TRUNCATED",
            i64::from(pf::EVENT_FLAG_NAME_TRUNCATED),
        ),
        (
            "PF_EVENT_FLAG_NAME_UNAVAILABLE",
            i64::from(pf::EVENT_FLAG_NAME_UNAVAILABLE),
        ),
        ("PF_EVENT_FLAG_REQUEST", i64::from(pf::EVENT_FLAG_REQUEST)),
        (
            "PF_EVENT_FLAG_UNSAFE_CONTEXT",
            i64::from(pf::EVENT_FLAG_UNSAFE_CONTEXT),
        ),
        ("PF_EVENT_FLAGS_ALL", i64::from(pf::EVENT_FLAGS_ALL)),
        (
            "PF_CREATE_OPTIONS_MASK",
            i64::from(event::CREATE_OPTIONS_MASK),
        ),
        (
            "PF_MAX_CREATE_DISPOSITION",
            i64::from(event::MAX_CREATE_DISPOSITION),
        ),
        ("PF_BATCH_HEADER_BYTES", u(pf::BATCH_HEADER_BYTES)),
        ("PF_MAX_BATCH_BYTES", u(pf::MAX_BATCH_BYTES)),
        ("PF_MAX_BATCH_EVENTS", u(pf::MAX_BATCH_EVENTS)),
        ("PF_MAX_MESSAGE_BYTES", u(pf::MAX_MESSAGE_BYTES)),
        (
            "PF_GET_MESSAGE_BUFFER_BYTES",
            u(pf::GET_MESSAGE_BUFFER_BYTES),
        ),
        ("PF_VERDICT_BYTES", u(pf::VERDICT_BYTES)),
        ("PF_VERDICT_REPLY_BYTES", u(pf::VERDICT_REPLY_BYTES)),
        ("PF_VERDICT_ALLOW", i64::from(pf::VERDICT_ALLOW)),
        ("PF_VERDICT_DENY", i64::from(pf::VERDICT_DENY)),
        ("PF_CONNECT_CONTEXT_BYTES", u(pf::CONNECT_CONTEXT_BYTES)),
        ("PF_ROLE_DECIDER", i64::from(pf::ROLE_DECIDER)),
        ("PF_ROLE_OBSERVER", i64::from(pf::ROLE_OBSERVER)),
        ("PF_ROLE_CONTROL", i64::from(pf::ROLE_CONTROL)),
        ("PF_COMMAND_REQUEST_BYTES", u(pf::COMMAND_REQUEST_BYTES)),
        ("PF_HELLO_REPLY_BYTES", u(pf::HELLO_REPLY_BYTES)),
        ("PF_STATS_COUNTERS", u(stats::STATS_COUNTERS)),
        ("PF_STATS_RESERVED_SLOTS", u(stats::STATS_RESERVED_SLOTS)),
        ("PF_STATS_BYTES", u(pf::STATS_BYTES)),
        ("PF_CONFIG_FIXED_BYTES", u(pf::CONFIG_FIXED_BYTES)),
        ("PF_CONFIG_MAX_BYTES", u(pf::CONFIG_MAX_BYTES)),
        (
            "PF_FILTER_ENTRY_HEADER_BYTES",
            u(config::FILTER_ENTRY_HEADER_BYTES),
        ),
        ("PF_MAX_FILTERS", u(pf::MAX_FILTERS)),
        ("PF_MAX_FILTER_BYTES", u(pf::MAX_FILTER_BYTES)),
        ("PF_MAX_FILTER_TOTAL_BYTES", u(pf::MAX_FILTER_TOTAL_BYTES)),
        ("PF_DELIVERY_NOTIFY", i64::from(pf::DELIVERY_NOTIFY)),
        ("PF_DELIVERY_QUEUED", i64::from(pf::DELIVERY_QUEUED)),
        ("PF_SKIP_DIRECTORIES", i64::from(pf::SKIP_DIRECTORIES)),
        ("PF_SKIP_KERNEL_MODE", i64::from(pf::SKIP_KERNEL_MODE)),
        (
            "PF_REPLY_TIMEOUT_MS_MIN",
            i64::from(config::REPLY_TIMEOUT_MS_MIN),
        ),
        (
            "PF_REPLY_TIMEOUT_MS_MAX",
            i64::from(config::REPLY_TIMEOUT_MS_MAX),
        ),
        (
            "PF_NOTIFY_TIMEOUT_MS_MAX",
            i64::from(config::NOTIFY_TIMEOUT_MS_MAX),
        ),
        (
            "PF_QUEUE_CAPACITY_MIN",
            i64::from(config::QUEUE_CAPACITY_MIN),
        ),
        (
            "PF_QUEUE_CAPACITY_MAX",
            i64::from(config::QUEUE_CAPACITY_MAX),
        ),
        (
            "PF_BATCH_MAX_EVENTS_MIN",
            i64::from(config::BATCH_MAX_EVENTS_MIN),
        ),
        (
            "PF_BATCH_MAX_EVENTS_MAX",
            i64::from(config::BATCH_MAX_EVENTS_MAX),
        ),
        (
            "PF_FILTER_INCLUDE_PREFIX",
            i64::from(pf::filter::FILTER_INCLUDE_PREFIX),
        ),
        (
            "PF_FILTER_EXCLUDE_PREFIX",
            i64::from(pf::filter::FILTER_EXCLUDE_PREFIX),
        ),
        (
            "PF_FILTER_INCLUDE_EXTENSION",
            i64::from(pf::filter::FILTER_INCLUDE_EXTENSION),
        ),
        (
            "PF_FILTER_EXCLUDE_EXTENSION",
            i64::from(pf::filter::FILTER_EXCLUDE_EXTENSION),
        ),
        (
            "PF_STATUS_NOT_SUPPORTED",
            i64::from(status::STATUS_NOT_SUPPORTED),
        ),
        (
            "PF_STATUS_INFO_LENGTH_MISMATCH",
            i64::from(status::STATUS_INFO_LENGTH_MISMATCH),
        ),
        (
            "PF_STATUS_BUFFER_TOO_SMALL",
            i64::from(status::STATUS_BUFFER_TOO_SMALL),
        ),
        (
            "PF_STATUS_DATATYPE_MISALIGNMENT_ERROR",
            i64::from(status::STATUS_DATATYPE_MISALIGNMENT_ERROR),
        ),
        (
            "PF_STATUS_ACCESS_VIOLATION",
            i64::from(status::STATUS_ACCESS_VIOLATION),
        ),
        (
            "PF_STATUS_INVALID_PARAMETER",
            i64::from(status::STATUS_INVALID_PARAMETER),
        ),
        (
            "PF_STATUS_REVISION_MISMATCH",
            i64::from(status::STATUS_REVISION_MISMATCH),
        ),
        (
            "PF_STATUS_SHARING_VIOLATION",
            i64::from(status::STATUS_DECIDER_ALREADY_CONNECTED),
        ),
        (
            "PF_STATUS_ACCESS_DENIED",
            i64::from(status::STATUS_ACCESS_DENIED),
        ),
    ] {
        put(&format!("const.{name}"), value);
    }
    m
}

#[test]
fn c_layout_equals_rust_constants() {
    let reported = key_values("layout", &[]);
    let expected = expected_layout();
    let mut problems = Vec::new();
    for (key, value) in &reported {
        match expected.get(key) {
            Some(want) if want.to_string() == *value => {}
            Some(want) => problems.push(format!("{key}: C says {value}, Rust says {want}")),
            None => problems.push(format!("{key}: printed by C, unknown to the test")),
        }
    }
    for key in expected.keys() {
        if !reported.contains_key(key) {
            problems.push(format!("{key}: not printed by the C program"));
        }
    }
    assert!(
        problems.is_empty(),
        "header/Rust mismatches:\n{}",
        problems.join("\n")
    );
    assert!(
        reported.len() > 150,
        "suspiciously few checks: {}",
        reported.len()
    );
}

fn units(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

fn hex_units(name: &[u16]) -> String {
    name.iter()
        .map(|u| format!("{u:04x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn sample_fields(sequence: u64) -> pf::EventFields {
    pf::EventFields {
        flags: pf::EVENT_FLAG_DIRECTORY | pf::EVENT_FLAG_NAME_OPENED,
        sequence,
        timestamp: 133_456_789_012_345_678,
        process_id: 0xDEAD_BEEF,
        thread_id: 1234,
        desired_access: 0x0012_019F,
        create_options: 0x00AB_CDEF,
        create_disposition: 3,
        share_access: 7,
        file_attributes: 0x2020,
        volume_name_len: 46,
    }
}

fn check_record(kv: &BTreeMap<String, String>, prefix: &str, f: &pf::EventFields, name: &[u16]) {
    let get = |k: &str| {
        kv.get(&format!("{prefix}.{k}"))
            .unwrap_or_else(|| panic!("{k}"))
            .clone()
    };
    let record = pf::record_bytes(name.len() * 2);
    assert_eq!(get("record_len"), record.to_string());
    assert_eq!(get("record_bytes_macro"), record.to_string());
    assert_eq!(get("name_len"), (name.len() * 2).to_string());
    assert_eq!(get("flags"), f.flags.to_string());
    assert_eq!(get("sequence"), f.sequence.to_string());
    assert_eq!(get("timestamp"), f.timestamp.to_string());
    assert_eq!(get("process_id"), f.process_id.to_string());
    assert_eq!(get("thread_id"), f.thread_id.to_string());
    assert_eq!(get("desired_access"), f.desired_access.to_string());
    assert_eq!(get("create_options"), f.create_options.to_string());
    assert_eq!(get("create_disposition"), f.create_disposition.to_string());
    assert_eq!(get("share_access"), f.share_access.to_string());
    assert_eq!(get("file_attributes"), f.file_attributes.to_string());
    assert_eq!(get("volume_name_len"), f.volume_name_len.to_string());
    assert_eq!(get("name"), hex_units(name));
}

#[test]
fn c_reads_a_rust_event() {
    let name = units(r"\Device\HarddiskVolume3\Users\Bob\Desktop\résumé.docx");
    let fields = sample_fields(0x0123_4567_89AB_CDEF);
    let mut buf = vec![0u8; pf::CREATE_EVENT_MAX_BYTES];
    let len = pf::encode_event(&fields, &name, &mut buf).unwrap();
    let kv = key_values("event", &buf[..len]);
    assert_eq!(kv["header.magic"], pf::MAGIC.to_string());
    assert_eq!(kv["header.version"], pf::PROTOCOL_VERSION.to_string());
    assert_eq!(kv["header.kind"], "1");
    check_record(&kv, "event", &fields, &name);
}

#[test]
fn c_walks_a_rust_batch() {
    let names = [
        units(r"\Device\HarddiskVolume3\a"),
        units(r"\Device\HarddiskVolume3\ProgramData\Microsoft\Windows\WER\Temp\x.tmp"),
        units(r"\Device\HarddiskVolume3\bc"),
    ];
    let mut buf = vec![0u8; pf::MAX_BATCH_BYTES];
    let mut writer = pf::BatchWriter::new(&mut buf, 16, 42).unwrap();
    let mut fields = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let f = sample_fields(100 + i as u64);
        writer.push(&f, name).unwrap();
        fields.push(f);
    }
    let msg = writer.finish().to_vec();
    let kv = key_values("batch", &msg);
    assert_eq!(kv["batch.kind"], "2");
    assert_eq!(kv["batch.count"], "3");
    assert_eq!(kv["batch.dropped_before"], "42");
    assert_eq!(kv["batch.total"], msg.len().to_string());
    for (i, (f, name)) in fields.iter().zip(&names).enumerate() {
        check_record(&kv, &format!("batch.{i}"), f, name);
    }
}

#[test]
fn c_reads_rust_stats_by_name() {
    let mut stats = pf::Stats::default();
    let values = [
        &mut stats.events_seen,
        &mut stats.events_reported,
        &mut stats.events_skipped,
        &mut stats.self_excluded,
        &mut stats.requests_sent,
        &mut stats.replies_allow,
        &mut stats.replies_deny,
        &mut stats.reply_timeouts,
        &mut stats.reply_bad,
        &mut stats.default_verdicts,
        &mut stats.notify_sent,
        &mut stats.notify_failed,
        &mut stats.queue_enqueued,
        &mut stats.queue_dropped,
        &mut stats.batches_sent,
        &mut stats.queue_depth,
        &mut stats.queue_high_water,
        &mut stats.connected_clients,
        &mut stats.deciders,
        &mut stats.observers,
        &mut stats.unsafe_context,
    ];
    for (i, v) in values.into_iter().enumerate() {
        *v = 1_000_000_007 * (i as u64 + 1);
    }
    let mut buf = [0u8; pf::STATS_BYTES];
    stats.encode(&mut buf).unwrap();
    let kv = key_values("stats", &buf);
    assert_eq!(kv.len(), pf::STATS_COUNTER_NAMES.len());
    for (name, value) in stats.counters() {
        assert_eq!(kv[&format!("stats.{name}")], value.to_string(), "{name}");
    }
}

#[test]
fn rust_decodes_a_c_verdict_reply() {
    let bytes = run("verdict", &[]);
    assert_eq!(bytes.len(), pf::VERDICT_REPLY_BYTES);
    assert_eq!(
        u64::from_le_bytes(bytes[8..16].try_into().unwrap()),
        7,
        "MessageId"
    );
    let v = pf::Verdict::decode(&bytes[pf::FILTER_REPLY_HEADER_BYTES..]).unwrap();
    assert_eq!(
        v,
        pf::Verdict::deny_with(0x1122_3344_5566_7788, status::STATUS_SHARING_VIOLATION)
    );
}

#[test]
fn rust_decodes_a_c_config() {
    let bytes = run("config", &[]);
    let cfg = pf::Config::decode(&bytes, pf::Command::SetConfig).unwrap();
    let mut want = pf::Config {
        observer_delivery: pf::Delivery::Notify,
        reply_timeout_ms: 1500,
        notify_timeout_ms: 20,
        default_verdict: pf::Decision::Deny,
        skip_flags: pf::SKIP_DIRECTORIES,
        queue_capacity: 64,
        batch_max_events: 8,
        filters: pf::FilterList::new(),
    };
    want.filters
        .push_str(pf::FilterKind::IncludePrefix, r"\Users\")
        .unwrap();
    want.filters
        .push_str(pf::FilterKind::ExcludeExtension, "tmp")
        .unwrap();
    assert_eq!(cfg, want);
    assert_eq!(bytes.len(), want.encoded_len());
    assert!(pf::decode_request(&bytes).is_ok());
}

/// Compiles a trivial translation unit including the header with `compiler` and `args`;
/// `None` when the compiler is not installed.
fn compile_header_with(compiler: &str, args: &[&str], ext: &str) -> Option<bool> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let src = dir.join(format!(
        "pf_header_{}_{}.{ext}",
        compiler.replace('/', "_"),
        std::process::id()
    ));
    std::fs::write(
        &src,
        "#include \"portfilter_protocol.h\"\nint main(void) { return 0; }\n",
    )
    .unwrap();
    let status = Command::new(compiler)
        .args(args)
        .arg("-I")
        .arg(include_dir())
        .arg("-fsyntax-only")
        .arg(&src)
        .status();
    match status {
        Ok(s) => Some(s.success()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("running {compiler}: {e}"),
    }
}

#[test]
fn header_static_asserts_hold_for_windows_abi_and_cpp() {
    let checks: [(&str, &[&str], &str); 2] = [
        (
            "x86_64-w64-mingw32-gcc",
            &["-std=c11", "-Wall", "-Werror", "-pedantic"],
            "c",
        ),
        (
            "c++",
            &["-std=c++11", "-Wall", "-Werror", "-pedantic", "-x", "c++"],
            "cpp",
        ),
    ];
    for (compiler, args, ext) in checks {
        match compile_header_with(compiler, args, ext) {
            Some(ok) => assert!(ok, "{compiler} rejects the header"),
            None => eprintln!("note: {compiler} not installed; that check was skipped"),
        }
    }
}
